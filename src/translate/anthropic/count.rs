//! `POST /v1/messages/count_tokens` for a model on an OpenAI-format provider, which has no
//! counting endpoint: the relay answers an estimate (marked `x-relay-estimate: true` by the
//! edge) rather than a 404 for a model that `messages.create` serves.

use serde_json::Value;

use crate::metering::usage::estimate_tokens;

/// Keys whose strings are not read as text by the model: ids, block kinds, signatures, and
/// `source` (image and document bytes, which base64 would count many times over).
const SKIP: [&str; 7] = [
    "type",
    "id",
    "tool_use_id",
    "signature",
    "source",
    "cache_control",
    "media_type",
];

/// The relay's usual estimate, ⌈characters ÷ 4⌉, over what the model reads: the system prompt,
/// every message's text, tool inputs and results, and the tool definitions (names, descriptions
/// and schemas, which providers put in the prompt too). Thinking blocks count: they are sent.
pub fn estimate_input_tokens(messages_body: &Value) -> u64 {
    let chars: u64 = ["system", "messages", "tools"]
        .iter()
        .filter_map(|k| messages_body.get(*k))
        .map(text_chars)
        .sum();
    estimate_tokens(chars)
}

fn text_chars(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.chars().count() as u64,
        Value::Array(items) => items.iter().map(text_chars).sum(),
        Value::Object(o) => o
            .iter()
            .filter(|(k, _)| !SKIP.contains(&k.as_str()))
            .map(|(k, v)| match v {
                // Schema property names are part of the prompt; other keys are structure.
                Value::Object(_) if k == "properties" => keys_and_values(v),
                other => text_chars(other),
            })
            .sum(),
        _ => 0,
    }
}

fn keys_and_values(v: &Value) -> u64 {
    v.as_object().map_or(0, |o| {
        o.iter()
            .map(|(k, v)| k.chars().count() as u64 + text_chars(v))
            .sum()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_what_the_model_reads() {
        let body = json!({"model":"gpt-4o-mini",
            "system":[{"type":"text","text":"You are kind","cache_control":{"type":"ephemeral"}}],
            "messages":[{"role":"user","content":"ping"},
                        {"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"f","input":{}}]},
                        {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"1234567"}]}]});
        // Text 12 + 4 + 7, the roles (which become prompt tokens too) 4 + 9 + 4, the tool name 1.
        assert_eq!(
            estimate_input_tokens(&body),
            (12 + 4 + 7 + 17 + 1_u64).div_ceil(4)
        );
        let image = json!({"messages":[{"role":"user","content":[{"type":"image",
            "source":{"type":"base64","media_type":"image/png","data":"A".repeat(4000)}}]}]});
        assert_eq!(estimate_input_tokens(&image), 1, "image bytes are not text");
        let tools = json!({"tools":[{"name":"get_weather","description":"Get weather",
            "input_schema":{"type":"object","properties":{"city":{"type":"string"}}}}]});
        assert_eq!(
            estimate_input_tokens(&tools),
            ("get_weather".len() + "Get weather".len() + "city".len()) as u64 / 4 + 1
        );
        assert_eq!(estimate_input_tokens(&json!({})), 0);
    }
}
