//! OpenAI chat completion → Anthropic Message (protocol.md §6.3, §6.4): the non-stream answer.

use serde_json::{json, Value};

use crate::metering::usage::Tokens;

use super::{anthropic_counts, fallback_tool_id, message_id, stop_reason};

/// A non-stream chat completion as an Anthropic Message. `model` is the name the client asked
/// for. Reasoning fields are dropped, like `thinking` on the request side.
pub fn to_message(chat_completion: &Value, model: &str) -> Value {
    let id = message_id(chat_completion.get("id").and_then(Value::as_str));
    let choice = chat_completion.pointer("/choices/0");
    let message = choice.and_then(|c| c.get("message"));
    let mut content = Vec::new();
    let text = message.map(message_text).unwrap_or_default();
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    let calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array);
    for (k, call) in calls.into_iter().flatten().enumerate() {
        let f = call.get("function");
        let field = |v: Option<&Value>, key: &str| {
            v.and_then(|v| v.get(key))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let args = field(f, "arguments").unwrap_or_default();
        content.push(json!({
            "type": "tool_use",
            "id": field(Some(call), "id").unwrap_or_else(|| fallback_tool_id(&id, k)),
            "name": field(f, "name").unwrap_or_default(),
            "input": parse_input(&args),
        }));
    }
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    let tokens = chat_completion
        .get("usage")
        .and_then(Tokens::from_openai)
        .unwrap_or_default();
    let (input, cache_write, cache_read, output) = anthropic_counts(&tokens);
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish),
        "stop_sequence": null,
        "usage": {
            "input_tokens": input,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
            "output_tokens": output,
        },
    })
}

/// The message's text: `content` as a string or as text parts, else a `refusal`, which Anthropic
/// has no field for but the user should still see.
fn message_text(message: &Value) -> String {
    let text = match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    };
    if text.is_empty() {
        if let Some(r) = message.get("refusal").and_then(Value::as_str) {
            return r.to_string();
        }
    }
    text
}

/// Tool arguments as an `input` object; anything else becomes `{}`, since Anthropic's `input`
/// is always an object and the client must not fail on a model's malformed JSON.
fn parse_input(arguments: &str) -> Value {
    serde_json::from_str::<Value>(arguments)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}
