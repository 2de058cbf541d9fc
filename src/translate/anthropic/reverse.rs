//! A→O translation (protocol.md §6.3, §6.4, §6.6, §6.7): an Anthropic SDK client on a model whose
//! upstream is OpenAI-compatible. `to_chat_request` turns the Messages request into a Chat
//! request, `to_message` turns a non-stream chat completion back into a Message, and
//! `ReverseTranslator` turns the upstream's chat SSE into Anthropic events as it arrives.

use serde_json::{json, Map, Value};

use crate::http::error::RelayError;
use crate::keys::auth::hash_key;
use crate::metering::usage::{estimate_tokens, Outcome, Tokens, UsageSource};
use crate::protocols::messages::TRUNCATED_TAIL;
use crate::protocols::sse::{SseDecoder, SseEvent};
use crate::protocols::stream::{Relay, Settled};

/// Used when the upstream gives no chunk id, so the client still gets a `msg_…` id.
const FALLBACK_ID: &str = "msg_relay";

/// `finish_reason` → `stop_reason` (§6.3). `stop` never becomes `stop_sequence`: OpenAI does not
/// say which sequence matched, and Anthropic pairs that reason with the matched string.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

// ---------------------------------------------------------------------------------------------
// Request: Anthropic Messages → OpenAI Chat
// ---------------------------------------------------------------------------------------------

/// Builds the OpenAI `POST /v1/chat/completions` body for an Anthropic request routed to an
/// OpenAI-compatible model. `include_usage` says whether the provider accepts
/// `stream_options.include_usage`; without it the stream's usage is estimated (§6.6).
pub fn to_chat_request(
    messages_body: &Value,
    upstream_model: &str,
    include_usage: bool,
) -> Result<Value, RelayError> {
    let body = messages_body
        .as_object()
        .ok_or_else(|| RelayError::invalid("The body must be a JSON object.", None))?;
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));

    let messages = field("messages").ok_or_else(|| missing("messages"))?;
    let messages = messages
        .as_array()
        .ok_or_else(|| wrong_type("messages", "an array", messages))?;
    if messages.is_empty() {
        return Err(RelayError::invalid(
            "'messages' must contain at least one message.",
            Some("messages"),
        ));
    }
    let mut chat = Vec::with_capacity(messages.len() + 1);
    if let Some(system) = field("system") {
        if let Some(text) = system_text(system)? {
            chat.push(json!({"role": "system", "content": text}));
        }
    }
    for (i, msg) in messages.iter().enumerate() {
        map_message(msg, &format!("messages[{i}]"), &mut chat)?;
    }
    if chat.is_empty() {
        // Only empty or thinking-only turns: Chat refuses `messages: []`, so say it here.
        return Err(RelayError::invalid(
            "'messages' must contain at least one message with content.",
            Some("messages"),
        ));
    }
    out.insert("messages".into(), Value::Array(chat));

    if let Some(v) = field("max_tokens") {
        let n = v
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| wrong_type("max_tokens", "a positive integer", v))?;
        // `max_tokens` is deprecated on OpenAI and refused by its reasoning models.
        out.insert("max_completion_tokens".into(), json!(n));
    }
    for name in ["temperature", "top_p"] {
        if let Some(v) = field(name) {
            if !v.is_number() {
                return Err(wrong_type(name, "a number", v));
            }
            out.insert(name.into(), v.clone());
        }
    }
    if let Some(v) = field("stop_sequences") {
        let seqs = v
            .as_array()
            .ok_or_else(|| wrong_type("stop_sequences", "an array", v))?;
        let mut stop = Vec::with_capacity(seqs.len());
        for (i, s) in seqs.iter().enumerate() {
            let s = s
                .as_str()
                .ok_or_else(|| wrong_type(&format!("stop_sequences[{i}]"), "a string", s))?;
            stop.push(json!(s));
        }
        if !stop.is_empty() {
            out.insert("stop".into(), Value::Array(stop));
        }
    }
    if let Some(user) = field("metadata").and_then(|m| m.get("user_id")) {
        if let Some(user) = user.as_str().filter(|u| !u.is_empty()) {
            // A hash, as in the O→A direction: stable per user, never the raw value, and short
            // enough for providers that cap `user` (Claude Code's ids run past 150 chars).
            out.insert("user".into(), json!(hash_key(user)));
        } else if !user.is_null() {
            return Err(wrong_type("metadata.user_id", "a string", user));
        }
    }
    if let Some(stream) = field("stream") {
        let on = stream
            .as_bool()
            .ok_or_else(|| wrong_type("stream", "a boolean", stream))?;
        out.insert("stream".into(), json!(on));
        if on && include_usage {
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }

    let tools = match field("tools") {
        Some(t) => map_tools(t)?,
        None => Vec::new(),
    };
    let choice = field("tool_choice").map(map_tool_choice).transpose()?;
    // OpenAI refuses `tool_choice` and `parallel_tool_calls` without `tools`; they mean nothing
    // then anyway.
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        if let Some((choice, parallel_off)) = choice {
            out.insert("tool_choice".into(), choice);
            if parallel_off {
                out.insert("parallel_tool_calls".into(), json!(false));
            }
        }
    }
    // Everything else (thinking, top_k, service_tier, container, cache_control, unknown fields)
    // is dropped: Chat has no equivalent, and strict providers refuse unknown fields.
    Ok(Value::Object(out))
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> RelayError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    RelayError::invalid(
        format!("{param}: expected {expected}, but got {got} instead."),
        Some(param),
    )
}

fn missing(param: &str) -> RelayError {
    RelayError::invalid(format!("{param}: Field required"), Some(param))
}

fn unsupported_block(kind: Option<&str>, at: &str) -> RelayError {
    RelayError::invalid(
        format!(
            "{at}.type: content block type '{}' is not supported for this model.",
            kind.unwrap_or("")
        ),
        Some(&format!("{at}.type")),
    )
}

fn block_type(block: &Value) -> Option<&str> {
    block.get("type").and_then(Value::as_str)
}

/// A `text` block's text; any other block type is refused.
fn text_of<'a>(block: &'a Value, at: &str) -> Result<&'a str, RelayError> {
    match block_type(block) {
        Some("text") => block
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&format!("{at}.text"))),
        other => Err(unsupported_block(other, at)),
    }
}

/// `system` as one string; None when empty, so no blank system message goes upstream.
/// `cache_control` markers are dropped: OpenAI-compatible providers cache prefixes themselves.
fn system_text(system: &Value) -> Result<Option<String>, RelayError> {
    let text = match system {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| text_of(b, &format!("system[{i}]")))
            .collect::<Result<Vec<_>, _>>()?
            .join("\n"),
        other => return Err(wrong_type("system", "a string or an array", other)),
    };
    Ok(Some(text).filter(|t| !t.is_empty()))
}

/// Appends the Chat messages for one Anthropic message (none, one, or several for tool results).
fn map_message(msg: &Value, at: &str, out: &mut Vec<Value>) -> Result<(), RelayError> {
    let role_at = format!("{at}.role");
    let role = msg
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| missing(&role_at))?;
    if role != "user" && role != "assistant" && role != "system" {
        return Err(RelayError::invalid(
            format!("{role_at}: Input should be 'user', 'assistant' or 'system'"),
            Some(&role_at),
        ));
    }
    let content_at = format!("{at}.content");
    let content = msg
        .get("content")
        .filter(|c| !c.is_null())
        .ok_or_else(|| missing(&content_at))?;
    if role == "system" {
        return mid_conversation_system(content, &content_at, out);
    }
    match content {
        Value::String(s) => {
            out.push(json!({"role": role, "content": s}));
            Ok(())
        }
        Value::Array(blocks) if role == "user" => user_blocks(blocks, &content_at, out),
        Value::Array(blocks) => assistant_blocks(blocks, &content_at, out),
        other => Err(wrong_type(&content_at, "a string or an array", other)),
    }
}

/// A `system` message inside `messages` (Claude Code sends them for models it does not know,
/// beta `mid-conversation-system-2026-04-07`) stays a Chat `system` message at the same place:
/// Chat allows system messages anywhere, and hoisting it into the top prompt would move an
/// instruction given late in the conversation (`<system-reminder>`s) ahead of the turns it
/// follows. `system`, not `developer`: many OpenAI-compatible servers know only the former.
/// Text only, like the top-level `system`; an empty one is left out.
fn mid_conversation_system(
    content: &Value,
    at: &str,
    out: &mut Vec<Value>,
) -> Result<(), RelayError> {
    let text = match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| text_of(b, &format!("{at}[{i}]")))
            .collect::<Result<Vec<_>, _>>()?
            .join("\n"),
        other => return Err(wrong_type(at, "a string or an array", other)),
    };
    if !text.is_empty() {
        out.push(json!({"role": "system", "content": text}));
    }
    Ok(())
}

/// A user turn: its `tool_result`s become `tool` messages, which must come first because Chat
/// wants them right after the assistant message that made the calls; the rest follows as one
/// user message.
fn user_blocks(blocks: &[Value], at: &str, out: &mut Vec<Value>) -> Result<(), RelayError> {
    let mut tool_messages = Vec::new();
    // Images a tool returned cannot ride in a `tool` message (text only), so they lead the user
    // message instead of being lost.
    let mut parts = Vec::new();
    let mut own_parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}[{j}]");
        match block_type(block) {
            Some("text") => own_parts.push(json!({"type": "text", "text": text_of(block, &at)?})),
            Some("image") => own_parts.push(image_part(block, &at)?),
            Some("tool_result") => tool_messages.push(tool_message(block, &at, &mut parts)?),
            other => return Err(unsupported_block(other, &at)),
        }
    }
    out.extend(tool_messages);
    parts.extend(own_parts);
    if parts.is_empty() {
        return Ok(());
    }
    let texts: Option<Vec<&str>> = parts
        .iter()
        .map(|p| p.get("text").and_then(Value::as_str))
        .collect();
    // A plain string whenever possible: many OpenAI-compatible servers accept nothing else.
    let content = match texts {
        Some(texts) => json!(texts.join("\n")),
        None => Value::Array(parts),
    };
    out.push(json!({"role": "user", "content": content}));
    Ok(())
}

/// `is_error` has no Chat field and is dropped; the result text already carries the failure.
fn tool_message(block: &Value, at: &str, images: &mut Vec<Value>) -> Result<Value, RelayError> {
    let id = block
        .get("tool_use_id")
        .and_then(Value::as_str)
        .ok_or_else(|| missing(&format!("{at}.tool_use_id")))?;
    let content_at = format!("{at}.content");
    let content = match block.get("content").filter(|c| !c.is_null()) {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let mut texts = Vec::new();
            for (k, item) in items.iter().enumerate() {
                let at = format!("{content_at}[{k}]");
                match block_type(item) {
                    Some("text") => texts.push(text_of(item, &at)?),
                    Some("image") => images.push(image_part(item, &at)?),
                    other => return Err(unsupported_block(other, &at)),
                }
            }
            texts.join("\n")
        }
        Some(other) => return Err(wrong_type(&content_at, "a string or an array", other)),
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

/// base64 sources become `data:` URLs, URL sources pass as they are.
fn image_part(block: &Value, at: &str) -> Result<Value, RelayError> {
    let source_at = format!("{at}.source");
    let source = block
        .get("source")
        .filter(|s| s.is_object())
        .ok_or_else(|| missing(&source_at))?;
    let field = |k: &str| {
        source
            .get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&format!("{source_at}.{k}")))
    };
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => format!("data:{};base64,{}", field("media_type")?, field("data")?),
        Some("url") => field("url")?.to_string(),
        other => {
            return Err(RelayError::invalid(
                format!(
                    "{source_at}.type: image source type '{}' is not supported for this model; use base64 or url.",
                    other.unwrap_or("")
                ),
                Some(&format!("{source_at}.type")),
            ))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

/// An assistant turn: text joined into `content` (null when there is none, as Chat has it for
/// tool-only turns), `tool_use` blocks as `tool_calls`. Text blocks are joined without a
/// separator because Anthropic splits one text into several blocks around citations.
fn assistant_blocks(blocks: &[Value], at: &str, out: &mut Vec<Value>) -> Result<(), RelayError> {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{at}[{j}]");
        match block_type(block) {
            Some("text") => texts.push(text_of(block, &at)?),
            Some("tool_use") => calls.push(tool_call(block, &at)?),
            // Reasoning from an earlier turn has no Chat field; `thinking` itself is dropped too.
            Some("thinking" | "redacted_thinking") => {}
            other => return Err(unsupported_block(other, &at)),
        }
    }
    if texts.is_empty() && calls.is_empty() {
        return Ok(());
    }
    let mut msg = Map::new();
    msg.insert("role".into(), json!("assistant"));
    let content = if texts.is_empty() {
        Value::Null
    } else {
        json!(texts.concat())
    };
    msg.insert("content".into(), content);
    if !calls.is_empty() {
        msg.insert("tool_calls".into(), Value::Array(calls));
    }
    out.push(Value::Object(msg));
    Ok(())
}

fn tool_call(block: &Value, at: &str) -> Result<Value, RelayError> {
    let field = |k: &str| {
        block
            .get(k)
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&format!("{at}.{k}")))
    };
    let (id, name) = (field("id")?, field("name")?);
    let arguments = match block.get("input").filter(|i| !i.is_null()) {
        None => "{}".to_string(),
        Some(input @ Value::Object(_)) => input.to_string(),
        Some(other) => return Err(wrong_type(&format!("{at}.input"), "an object", other)),
    };
    Ok(json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}))
}

/// Client tools become function tools. Server tools (`web_search_…`, `bash_…`) run on
/// Anthropic's side and have no Chat equivalent, so they are refused rather than silently
/// missing. `strict` is dropped: OpenAI's strict mode has schema rules Anthropic's does not.
fn map_tools(tools: &Value) -> Result<Vec<Value>, RelayError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| wrong_type("tools", "an array", tools))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let at = format!("tools[{i}]");
        if let Some(kind) = tool.get("type").and_then(Value::as_str) {
            if kind != "custom" {
                return Err(RelayError::invalid(
                    format!("{at}.type: tool type '{kind}' is not supported for this model."),
                    Some(&format!("{at}.type")),
                ));
            }
        }
        let name = tool
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&format!("{at}.name")))?;
        let mut f = Map::new();
        f.insert("name".into(), json!(name));
        if let Some(d) = tool.get("description").filter(|d| d.is_string()) {
            f.insert("description".into(), d.clone());
        }
        let parameters = match tool.get("input_schema").filter(|s| !s.is_null()) {
            None => json!({"type": "object", "properties": {}}),
            Some(schema @ Value::Object(_)) => schema.clone(),
            Some(other) => {
                return Err(wrong_type(
                    &format!("{at}.input_schema"),
                    "an object",
                    other,
                ))
            }
        };
        f.insert("parameters".into(), parameters);
        out.push(json!({"type": "function", "function": f}));
    }
    Ok(out)
}

/// The Chat `tool_choice`, and whether parallel tool calls are off.
fn map_tool_choice(choice: &Value) -> Result<(Value, bool), RelayError> {
    let kind = choice
        .as_object()
        .ok_or_else(|| wrong_type("tool_choice", "an object", choice))?
        .get("type")
        .and_then(Value::as_str);
    let mapped = match kind {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| missing("tool_choice.name"))?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(RelayError::invalid(
                "tool_choice.type: expected 'auto', 'any', 'tool' or 'none'.",
                Some("tool_choice.type"),
            ))
        }
    };
    let parallel_off = choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true));
    Ok((mapped, parallel_off))
}

// ---------------------------------------------------------------------------------------------
// Response: OpenAI chat completion → Anthropic Message
// ---------------------------------------------------------------------------------------------

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

/// `chatcmpl-XYZ` → `msg_XYZ`, so clients that check the prefix are satisfied; other ids are
/// kept as given.
fn message_id(id: Option<&str>) -> String {
    match id.filter(|s| !s.is_empty()) {
        None => FALLBACK_ID.to_string(),
        Some(id) => match id.strip_prefix("chatcmpl-") {
            Some(tail) if !tail.is_empty() => format!("msg_{tail}"),
            _ => id.to_string(),
        },
    }
}

/// An id for a tool call the upstream sent without one: the client needs it to answer with a
/// `tool_result`, and the message id keeps it unique across turns.
fn fallback_tool_id(message_id: &str, k: usize) -> String {
    format!(
        "toolu_{}_{k}",
        message_id.strip_prefix("msg_").unwrap_or(message_id)
    )
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

/// (input, cache_creation, cache_read, output) per §6.4. Cache writes are taken out of
/// `input_tokens` as well as reads, so the three input fields add up to `prompt_tokens`, as the
/// A→O direction assumes.
fn anthropic_counts(t: &Tokens) -> (u64, u64, u64, u64) {
    let input = t
        .prompt
        .saturating_sub(t.cached)
        .saturating_sub(t.cache_write);
    (input, t.cache_write, t.cached, t.completion)
}

/// The Anthropic error `type` for an OpenAI in-band error object (§6.7). Codes are checked
/// before types because they are the more specific; numeric codes are HTTP statuses, as some
/// gateways send them.
fn anthropic_error_type(err: &Value) -> &'static str {
    let status = err
        .get("code")
        .and_then(Value::as_u64)
        .or_else(|| err.get("status").and_then(Value::as_u64));
    if let Some(status) = status {
        return match status {
            400 | 422 => "invalid_request_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            504 => "timeout_error",
            // 401/403 concern the relay's own provider key (R2.4).
            _ => "api_error",
        };
    }
    let names = ["code", "type"].map(|k| err.get(k).and_then(Value::as_str));
    for name in names.into_iter().flatten() {
        let kind = match name {
            "rate_limit_exceeded" | "rate_limit_error" | "requests" | "tokens" => {
                "rate_limit_error"
            }
            "overloaded" | "overloaded_error" | "server_overloaded" | "service_unavailable" => {
                "overloaded_error"
            }
            "timeout" | "timeout_error" => "timeout_error",
            "model_not_found" | "not_found_error" => "not_found_error",
            "request_too_large" => "request_too_large",
            "context_length_exceeded" | "invalid_request_error" => "invalid_request_error",
            // Quota and credential errors are the relay's account's (R2.4); server errors are
            // plain upstream failures.
            "insufficient_quota" | "invalid_api_key" | "authentication_error" | "server_error" => {
                "api_error"
            }
            _ => continue,
        };
        return kind;
    }
    "api_error"
}

// ---------------------------------------------------------------------------------------------
// Stream: OpenAI chat SSE → Anthropic events
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// No block yet: the name has not arrived. Arguments wait in `pending`.
    Pending,
    Open(u64),
    Closed,
}

#[derive(Debug, Clone)]
struct Call {
    /// The upstream's `tool_calls[].index`.
    index: u64,
    id: Option<String>,
    name: Option<String>,
    state: CallState,
    pending: String,
}

/// Translates one OpenAI chat stream into Anthropic Messages SSE (§6.6), every event with its
/// `event:` line (R5.1). The stop reason is held until the usage chunk, so `message_delta` can
/// carry real counts; `message_stop` goes out then, without waiting for `[DONE]`.
///
/// Tool calls become blocks in the order they start. A call whose name has not arrived yet
/// buffers its arguments until its block opens (§6.6 [DECISION]); fragments for a call whose
/// block is already closed (interleaved calls, which OpenAI does not send) cannot be expressed
/// and are only counted.
#[derive(Debug)]
pub struct ReverseTranslator {
    decoder: SseDecoder,
    id: String,
    model: String,
    started: bool,
    /// The open block's index, and the call it belongs to (None for text).
    open: Option<(u64, Option<usize>)>,
    next_block: u64,
    calls: Vec<Call>,
    /// Mapped from `finish_reason`; set to `end_turn` at `message_stop` if none came.
    stop: Option<&'static str>,
    usage: Option<Tokens>,
    /// Characters of content, refusal and tool arguments, for the estimate.
    completion_chars: u64,
    saw_done: bool,
    /// `message_stop` went out: the client has a complete message.
    stopped: bool,
    /// The relay ended the stream with its own error (EOF, upstream failure, oversize event).
    truncated: bool,
    /// Code (or type) of an in-band upstream error.
    upstream_error: Option<String>,
    ended: bool,
}

impl ReverseTranslator {
    /// `model` is the name the client asked for; `fallback_id` is the message id used when the
    /// upstream's chunks carry none.
    pub fn new(fallback_id: String, model: String) -> Self {
        Self::with_decoder(fallback_id, model, SseDecoder::new())
    }

    /// As `new`, with a decoder of the caller's choosing (e.g. a smaller event-size limit).
    pub fn with_decoder(fallback_id: String, model: String, decoder: SseDecoder) -> Self {
        ReverseTranslator {
            decoder,
            id: fallback_id,
            model,
            started: false,
            open: None,
            next_block: 0,
            calls: Vec::new(),
            stop: None,
            usage: None,
            completion_chars: 0,
            saw_done: false,
            stopped: false,
            truncated: false,
            upstream_error: None,
            ended: false,
        }
    }

    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if ev.data.starts_with("[DONE]") {
            self.saw_done = true;
            self.end_message(out);
            return;
        }
        // Comments never reach here; other non-JSON data is noise a client cannot use.
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        if !v.is_object() {
            return;
        }
        if let Some(err) = v
            .get("error")
            .filter(|e| !e.is_null() && *e != &Value::Bool(false))
        {
            self.on_error(err, out);
            return;
        }
        if let Some(t) = v.get("usage").and_then(Tokens::from_openai) {
            self.usage = Some(t);
        }
        self.start(&v, out);
        let choices = v.get("choices").and_then(Value::as_array);
        // Only choice 0: an Anthropic message has one, and the relay never asks for `n`.
        let choice = choices
            .into_iter()
            .flatten()
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0);
        if let Some(choice) = choice {
            let delta = choice.get("delta");
            for key in ["content", "refusal"] {
                if let Some(text) = delta
                    .and_then(|d| d.get(key))
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    self.text(text, out);
                }
            }
            let calls = delta
                .and_then(|d| d.get("tool_calls"))
                .and_then(Value::as_array);
            for call in calls.into_iter().flatten() {
                self.tool_fragment(call, out);
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.close_all(out);
                self.stop = Some(stop_reason(Some(reason)));
            }
        }
        // Usage is cumulative and comes with or after the finishing chunk, so both in hand
        // means the message is complete.
        if self.stop.is_some() && self.usage.is_some() {
            self.end_message(out);
        }
    }

    fn start(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(id) = chunk.get("id").and_then(Value::as_str) {
            if !id.is_empty() {
                self.id = message_id(Some(id));
            }
        }
        // Input tokens are usually unknown until the last chunk; `message_delta` sends them.
        let usage = match &self.usage {
            Some(t) => usage_fields(t),
            None => "\"input_tokens\":0,\"output_tokens\":0".to_string(),
        };
        let data = format!(
            "{{\"type\":\"message_start\",\"message\":{{\"id\":{},\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":{},\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{{usage}}}}}}}",
            quote(&self.id),
            quote(&self.model)
        );
        event(out, "message_start", &data);
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        self.completion_chars += text.chars().count() as u64;
        let block = match self.open {
            Some((block, None)) => block,
            _ => {
                self.close(out);
                let block = self.new_block();
                event(
                    out,
                    "content_block_start",
                    &format!("{{\"type\":\"content_block_start\",\"index\":{block},\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}"),
                );
                self.open = Some((block, None));
                block
            }
        };
        event(
            out,
            "content_block_delta",
            &format!(
                "{{\"type\":\"content_block_delta\",\"index\":{block},\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}",
                quote(text)
            ),
        );
    }

    fn tool_fragment(&mut self, frag: &Value, out: &mut Vec<u8>) {
        let id = frag
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let f = frag.get("function");
        let name = f
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let args = f
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or("");
        self.completion_chars += args.chars().count() as u64;

        // The latest call at this index, unless the fragment names a different id: some
        // servers reuse index 0 for every call. Without an index, an id means a new call and
        // no id means the latest one.
        let found = match frag.get("index").and_then(Value::as_u64) {
            Some(i) => self.calls.iter().rposition(|c| c.index == i),
            None if id.is_some() => self.calls.iter().rposition(|c| c.id.as_deref() == id),
            None => self.calls.len().checked_sub(1),
        };
        let found = found.filter(|&p| {
            let known = self.calls.get(p).and_then(|c| c.id.as_deref());
            id.is_none() || known.is_none() || known == id
        });
        let pos = match found {
            Some(p) => p,
            None => {
                let index = frag
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or_else(|| self.calls.iter().map(|c| c.index + 1).max().unwrap_or(0));
                self.calls.push(Call {
                    index,
                    id: None,
                    name: None,
                    state: CallState::Pending,
                    pending: String::new(),
                });
                self.calls.len() - 1
            }
        };
        let Some(call) = self.calls.get_mut(pos) else {
            return;
        };
        if call.id.is_none() {
            call.id = id.map(str::to_string);
        }
        // Names arrive whole; a repeated one is not appended (that would corrupt it).
        if call.name.is_none() {
            call.name = name.map(str::to_string);
        }
        match call.state {
            CallState::Open(block) => args_delta(out, block, args),
            CallState::Pending => {
                call.pending.push_str(args);
                if call.name.is_some() {
                    self.open_tool(pos, out);
                }
            }
            CallState::Closed => {}
        }
    }

    /// Closes the open block and starts the call's `tool_use` block, flushing buffered arguments.
    fn open_tool(&mut self, pos: usize, out: &mut Vec<u8>) {
        self.close(out);
        let block = self.new_block();
        let message_id = self.id.clone();
        let Some(call) = self.calls.get_mut(pos) else {
            return;
        };
        let id = call
            .id
            .get_or_insert_with(|| fallback_tool_id(&message_id, pos))
            .clone();
        let data = format!(
            "{{\"type\":\"content_block_start\",\"index\":{block},\"content_block\":{{\"type\":\"tool_use\",\"id\":{},\"name\":{},\"input\":{{}}}}}}",
            quote(&id),
            quote(call.name.as_deref().unwrap_or(""))
        );
        event(out, "content_block_start", &data);
        let pending = std::mem::take(&mut call.pending);
        call.state = CallState::Open(block);
        args_delta(out, block, &pending);
        self.open = Some((block, Some(pos)));
    }

    fn new_block(&mut self) -> u64 {
        let block = self.next_block;
        self.next_block += 1;
        block
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((block, call)) = self.open.take() {
            if let Some(c) = call.and_then(|p| self.calls.get_mut(p)) {
                c.state = CallState::Closed;
            }
            event(
                out,
                "content_block_stop",
                &format!("{{\"type\":\"content_block_stop\",\"index\":{block}}}"),
            );
        }
    }

    /// Closes the open block, then gives calls that never got a name a block of their own, so
    /// no arguments are lost.
    fn close_all(&mut self, out: &mut Vec<u8>) {
        self.close(out);
        while let Some(pos) = self
            .calls
            .iter()
            .position(|c| c.state == CallState::Pending)
        {
            self.open_tool(pos, out);
            self.close(out);
        }
    }

    fn end_message(&mut self, out: &mut Vec<u8>) {
        if self.stopped {
            return;
        }
        self.start(&Value::Null, out);
        self.close_all(out);
        let stop = *self.stop.get_or_insert("end_turn");
        let usage = match &self.usage {
            Some(t) => usage_fields(t),
            // Only the output can be estimated here; the client keeps message_start's 0 input.
            None => format!(
                "\"output_tokens\":{}",
                estimate_tokens(self.completion_chars)
            ),
        };
        event(
            out,
            "message_delta",
            &format!("{{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":{},\"stop_sequence\":null}},\"usage\":{{{usage}}}}}", quote(stop)),
        );
        event(out, "message_stop", "{\"type\":\"message_stop\"}");
        self.stopped = true;
        self.ended = true;
    }

    fn on_error(&mut self, err: &Value, out: &mut Vec<u8>) {
        let text = |k: &str| err.get(k).and_then(Value::as_str);
        let code = text("code").or_else(|| text("type")).unwrap_or("error");
        self.upstream_error = Some(code.to_string());
        let message = err
            .as_str()
            .or_else(|| text("message"))
            .filter(|m| !m.is_empty())
            .unwrap_or("Upstream provider error.");
        self.close(out);
        let data = format!(
            "{{\"type\":\"error\",\"error\":{{\"type\":\"{}\",\"message\":{}}}}}",
            anthropic_error_type(err),
            quote(message)
        );
        event(out, "error", &data);
        self.ended = true;
    }
}

impl Relay for ReverseTranslator {
    fn feed(&mut self, chunk: Vec<u8>) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        let events = match self.decoder.feed(&chunk) {
            Ok(events) => events,
            Err(_) => return self.abort(),
        };
        let mut out = Vec::new();
        for ev in &events {
            self.on_event(ev, &mut out);
        }
        out
    }

    /// EOF: nothing more once `message_stop` or an error went out; otherwise the stream was cut
    /// short, and the client gets an error rather than a message that looks complete.
    fn finish(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(ev) = self.decoder.finish() {
            // A last event without its blank line (V10) still counts.
            self.on_event(&ev, &mut out);
        }
        out.extend(self.abort());
        out
    }

    fn abort(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        self.truncated = true;
        let mut out = Vec::new();
        self.close(&mut out);
        out.extend_from_slice(TRUNCATED_TAIL);
        out
    }

    fn ended(&self) -> bool {
        self.ended
    }

    /// As `StreamMeter::settle`, where a sent `message_stop` counts like `[DONE]`: the client
    /// has the whole message even if the upstream then closed without `[DONE]`.
    fn settle(&self, prompt_chars: u64, cancelled: bool) -> Settled {
        let outcome = if self.upstream_error.is_some() {
            Outcome::UpstreamError
        } else if cancelled {
            Outcome::ClientCancelled
        } else if (self.saw_done || self.stopped) && !self.truncated {
            Outcome::Ok
        } else {
            Outcome::Truncated
        };
        let (tokens, source) = match self.usage {
            Some(t) => (t, UsageSource::Upstream),
            None => (
                Tokens::estimated(prompt_chars, self.completion_chars),
                UsageSource::Estimated,
            ),
        };
        Settled {
            outcome,
            tokens,
            source,
            finish_reason: self.stop.map(str::to_string),
            upstream_error: self.upstream_error.clone(),
        }
    }
}

/// The four Anthropic usage fields, in the API's order, without braces.
fn usage_fields(t: &Tokens) -> String {
    let (input, cache_write, cache_read, output) = anthropic_counts(t);
    format!("\"input_tokens\":{input},\"cache_creation_input_tokens\":{cache_write},\"cache_read_input_tokens\":{cache_read},\"output_tokens\":{output}")
}

fn args_delta(out: &mut Vec<u8>, block: u64, partial: &str) {
    // Empty fragments (OpenAI's first `arguments: ""`) carry nothing; the block's `input: {}`
    // already stands for a call without arguments.
    if partial.is_empty() {
        return;
    }
    event(
        out,
        "content_block_delta",
        &format!(
            "{{\"type\":\"content_block_delta\",\"index\":{block},\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":{}}}}}",
            quote(partial)
        ),
    );
}

/// One Anthropic SSE event: the `event:` line must name `data.type` (§5.4).
fn event(out: &mut Vec<u8>, kind: &str, data: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// `s` as a JSON string literal.
fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // ---- request ------------------------------------------------------------------------------

    fn req(body: Value) -> Value {
        to_chat_request(&body, "gpt-4o", true).unwrap()
    }

    fn param_of(body: Value) -> Option<String> {
        match to_chat_request(&body, "gpt-4o", true) {
            Err(RelayError::InvalidRequest { param, .. }) => param,
            other => Some(format!("not a 400: {other:?}")),
        }
    }

    #[test]
    fn request_with_no_content_left_is_refused() {
        // Found by tests/fuzz: an empty assistant turn alone became Chat's `messages: []`,
        // which the provider refuses after the relay had already spent an attempt on it.
        let empty =
            json!({"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[]}]});
        assert_eq!(param_of(empty).as_deref(), Some("messages"));
        let thinking = json!({"model":"m","max_tokens":1,"messages":[{"role":"assistant",
            "content":[{"type":"thinking","thinking":"hm","signature":"s"}]}]});
        assert_eq!(param_of(thinking).as_deref(), Some("messages"));
        // A system prompt is content enough for Chat.
        let with_system = json!({"model":"m","max_tokens":1,"system":"Be brief.",
            "messages":[{"role":"assistant","content":[]}]});
        assert_eq!(
            req(with_system)["messages"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn request_golden_tool_round_trip() {
        let schema =
            json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]});
        let anthropic = json!({"model":"relay-gpt","max_tokens":1024,"temperature":0.2,"top_p":0.9,
            "top_k":40,"stop_sequences":["END"],"metadata":{"user_id":"user_abc"},"stream":true,
            "thinking":{"type":"enabled","budget_tokens":2048},"service_tier":"auto","unknown":1,
            "system":[{"type":"text","text":"You are terse.","cache_control":{"type":"ephemeral"}},
                      {"type":"text","text":"Answer in English."}],
            "tools":[{"name":"get_weather","description":"Get weather","input_schema":schema,
                      "cache_control":{"type":"ephemeral"}}],
            "tool_choice":{"type":"any","disable_parallel_tool_use":true},
            "messages":[
                {"role":"user","content":"Weather in SF?"},
                {"role":"assistant","content":[
                    {"type":"thinking","thinking":"hmm","signature":"sig"},
                    {"type":"text","text":"Checking."},
                    {"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"city":"SF"}}]},
                {"role":"user","content":[
                    {"type":"tool_result","tool_use_id":"toolu_01A",
                     "content":[{"type":"text","text":"15°C"},{"type":"text","text":"fog"}]},
                    {"type":"text","text":"And tomorrow?"}]},
                {"role":"assistant","content":[
                    {"type":"tool_use","id":"toolu_01B","name":"get_weather","input":{}}]},
                {"role":"user","content":[
                    {"type":"tool_result","tool_use_id":"toolu_01B","content":"rain","is_error":false},
                    {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
                    {"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}]});
        let want = json!({"model":"gpt-4o","max_completion_tokens":1024,"temperature":0.2,"top_p":0.9,
            "stop":["END"],"user":hash_key("user_abc"),"stream":true,
            "stream_options":{"include_usage":true},
            "messages":[
                {"role":"system","content":"You are terse.\nAnswer in English."},
                {"role":"user","content":"Weather in SF?"},
                {"role":"assistant","content":"Checking.","tool_calls":[
                    {"id":"toolu_01A","type":"function",
                     "function":{"name":"get_weather","arguments":"{\"city\":\"SF\"}"}}]},
                {"role":"tool","tool_call_id":"toolu_01A","content":"15°C\nfog"},
                {"role":"user","content":"And tomorrow?"},
                {"role":"assistant","content":null,"tool_calls":[
                    {"id":"toolu_01B","type":"function",
                     "function":{"name":"get_weather","arguments":"{}"}}]},
                {"role":"tool","tool_call_id":"toolu_01B","content":"rain"},
                {"role":"user","content":[
                    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
                    {"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}],
            "tools":[{"type":"function","function":{"name":"get_weather","description":"Get weather",
                "parameters":schema}}],
            "tool_choice":"required","parallel_tool_calls":false});
        assert_eq!(req(anthropic.clone()), want);

        // A provider without include_usage support gets no stream_options.
        let plain = to_chat_request(&anthropic, "gpt-4o", false).unwrap();
        assert_eq!(plain.get("stream_options"), None);
        assert_eq!(plain["stream"], true);
    }

    #[test]
    fn request_minimal_and_tool_choices() {
        let out = req(json!({"model":"m","max_tokens":5,"system":"Be brief.",
            "messages":[{"role":"user","content":"hi"}]}));
        assert_eq!(
            out,
            json!({"model":"gpt-4o","max_completion_tokens":5,"messages":[
                {"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]})
        );
        let tools = json!([{"name":"f","input_schema":{"type":"object"}}]);
        let rows = [
            (json!({"type":"auto"}), json!("auto"), None),
            (json!({"type":"none"}), json!("none"), None),
            (
                json!({"type":"tool","name":"f","disable_parallel_tool_use":true}),
                json!({"type":"function","function":{"name":"f"}}),
                Some(json!(false)),
            ),
        ];
        for (choice, want, parallel) in rows {
            let out = req(
                json!({"model":"m","messages":[{"role":"user","content":"x"}],
                "tools":tools,"tool_choice":choice}),
            );
            assert_eq!(out["tool_choice"], want);
            assert_eq!(out.get("parallel_tool_calls"), parallel.as_ref());
            assert_eq!(
                out["tools"][0]["function"]["parameters"],
                json!({"type":"object"})
            );
        }
        // Without tools, tool_choice is validated but not sent; an empty system is not sent.
        let out = req(json!({"model":"m","system":[],"tool_choice":{"type":"any"},
            "messages":[{"role":"user","content":"x"}],"stream":false}));
        assert_eq!(
            out,
            json!({"model":"gpt-4o","stream":false,"messages":[{"role":"user","content":"x"}]})
        );
    }

    #[test]
    fn request_tool_result_images_follow_the_tool_message() {
        let out = req(json!({"model":"m","messages":[
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[
                {"type":"text","text":"shot:"},
                {"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"AAA"}}]},
                {"type":"text","text":"What is it?"}]}]}));
        assert_eq!(
            out["messages"],
            json!([
                {"role":"tool","tool_call_id":"t1","content":"shot:"},
                {"role":"user","content":[
                    {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,AAA"}},
                    {"type":"text","text":"What is it?"}]}])
        );
    }

    /// Claude Code's shape for a model it does not know: a system message after the first user
    /// turn, blocks with `cache_control`, another after a tool round trip. Each stays where it
    /// was, as a Chat `system` message; the top-level `system` still leads.
    #[test]
    fn mid_conversation_system_messages_keep_their_place() {
        let out = req(json!({"model":"m","max_tokens":32000,
            "system":[{"type":"text","text":"You are Claude Code."}],
            "messages":[
                {"role":"user","content":[{"type":"text","text":"<system-reminder>r</system-reminder>"},
                    {"type":"text","text":"what does hello.txt say"}]},
                {"role":"system","content":[{"type":"text","text":"# Environment","cache_control":{"type":"ephemeral"}},
                    {"type":"text","text":"cwd: /tmp"}]},
                {"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},
                    {"type":"tool_use","id":"toolu_1","name":"Read","input":{"file_path":"hello.txt"}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"hello",
                    "cache_control":{"type":"ephemeral"}}]},
                {"role":"system","content":"Be brief."},
                {"role":"system","content":""}]}));
        assert_eq!(
            out["messages"],
            json!([
                {"role":"system","content":"You are Claude Code."},
                {"role":"user","content":"<system-reminder>r</system-reminder>\nwhat does hello.txt say"},
                {"role":"system","content":"# Environment\ncwd: /tmp"},
                {"role":"assistant","content":null,"tool_calls":[{"id":"toolu_1","type":"function",
                    "function":{"name":"Read","arguments":"{\"file_path\":\"hello.txt\"}"}}]},
                {"role":"tool","tool_call_id":"toolu_1","content":"hello"},
                {"role":"system","content":"Be brief."}])
        );
    }

    #[test]
    fn request_invalid_shapes_name_the_param() {
        let user = |content: Value| json!({"role":"user","content":content});
        let rows: Vec<(Value, &str)> = vec![
            (json!({"model":"m"}), "messages"),
            (json!({"model":"m","messages":[]}), "messages"),
            (json!({"model":"m","messages":"hi"}), "messages"),
            (
                json!({"model":"m","messages":[{"role":"tool","content":"x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model":"m","messages":[user(json!("a")),
                    {"role":"system","content":[{"type":"image","source":{}}]}]}),
                "messages[1].content[0].type",
            ),
            (
                json!({"model":"m","messages":[user(json!("a")),{"role":"system","content":7}]}),
                "messages[1].content",
            ),
            (
                json!({"model":"m","messages":[{"role":"user"}]}),
                "messages[0].content",
            ),
            (
                json!({"model":"m","messages":[user(json!("a")),{"role":"assistant","content":"b"},
                    user(json!([{"type":"document","source":{}}]))]}),
                "messages[2].content[0].type",
            ),
            (
                json!({"model":"m","messages":[user(json!([{"type":"text"}]))]}),
                "messages[0].content[0].text",
            ),
            (
                json!({"model":"m","messages":[user(json!([{"type":"image","source":{"type":"file","file_id":"f"}}]))]}),
                "messages[0].content[0].source.type",
            ),
            (
                json!({"model":"m","messages":[user(json!([{"type":"image","source":{"type":"base64","data":"A"}}]))]}),
                "messages[0].content[0].source.media_type",
            ),
            (
                json!({"model":"m","messages":[user(json!([{"type":"tool_result","content":"x"}]))]}),
                "messages[0].content[0].tool_use_id",
            ),
            (
                json!({"model":"m","messages":[user(json!([{"type":"tool_result","tool_use_id":"t",
                    "content":[{"type":"document"}]}]))]}),
                "messages[0].content[0].content[0].type",
            ),
            (
                json!({"model":"m","messages":[user(json!("a")),{"role":"assistant","content":[
                    {"type":"tool_use","id":"t","name":"f","input":"{}"}]}]}),
                "messages[1].content[0].input",
            ),
            (
                json!({"model":"m","messages":[user(json!("a")),{"role":"assistant","content":[
                    {"type":"tool_use","id":"t","input":{}}]}]}),
                "messages[1].content[0].name",
            ),
            (
                json!({"model":"m","system":[{"type":"image"}],"messages":[user(json!("a"))]}),
                "system[0].type",
            ),
            (
                json!({"model":"m","max_tokens":"9","messages":[user(json!("a"))]}),
                "max_tokens",
            ),
            (
                json!({"model":"m","temperature":"hot","messages":[user(json!("a"))]}),
                "temperature",
            ),
            (
                json!({"model":"m","stop_sequences":["a",1],"messages":[user(json!("a"))]}),
                "stop_sequences[1]",
            ),
            (
                json!({"model":"m","stream":"yes","messages":[user(json!("a"))]}),
                "stream",
            ),
            (
                json!({"model":"m","messages":[user(json!("a"))],
                    "tools":[{"type":"web_search_20250305","name":"web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"model":"m","messages":[user(json!("a"))],"tools":[{"input_schema":{}}]}),
                "tools[0].name",
            ),
            (
                json!({"model":"m","messages":[user(json!("a"))],"tool_choice":{"type":"bogus"}}),
                "tool_choice.type",
            ),
            (
                json!({"model":"m","messages":[user(json!("a"))],"tool_choice":{"type":"tool"}}),
                "tool_choice.name",
            ),
        ];
        for (body, want) in rows {
            assert_eq!(param_of(body.clone()).as_deref(), Some(want), "{body}");
        }
        assert_eq!(
            to_chat_request(&json!([]), "m", true).unwrap_err().status(),
            400
        );
    }

    // ---- non-stream response ----------------------------------------------------------------

    #[test]
    fn non_stream_response_maps_to_message() {
        let completion = json!({"id":"chatcmpl-B9a","object":"chat.completion","created":1,
            "model":"gpt-4o-2024-08-06","choices":[{"index":0,"logprobs":null,"finish_reason":"tool_calls",
                "message":{"role":"assistant","content":"Let me check.","refusal":null,
                    "tool_calls":[
                        {"id":"call_A","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"SF\"}"}},
                        {"id":"call_B","type":"function","function":{"name":"broken","arguments":"{not json"}},
                        {"type":"function","function":{"name":"no_id","arguments":""}}]}}],
            "usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,
                "prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":5}}});
        let want = json!({"id":"msg_B9a","type":"message","role":"assistant","model":"relay-gpt",
            "content":[
                {"type":"text","text":"Let me check."},
                {"type":"tool_use","id":"call_A","name":"get_weather","input":{"city":"SF"}},
                {"type":"tool_use","id":"call_B","name":"broken","input":{}},
                {"type":"tool_use","id":"toolu_B9a_2","name":"no_id","input":{}}],
            "stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":18,"cache_creation_input_tokens":0,"cache_read_input_tokens":64,
                "output_tokens":17}});
        assert_eq!(to_message(&completion, "relay-gpt"), want);

        // Cache writes come out of input_tokens too, so the three input fields sum to prompt.
        let cached = json!({"id":"gen-1","choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":100,"completion_tokens":3,
                "prompt_tokens_details":{"cached_tokens":60,"cache_write_tokens":12}}});
        let m = to_message(&cached, "m");
        assert_eq!(m["id"], "gen-1");
        assert_eq!(
            m["usage"],
            json!({"input_tokens":28,"cache_creation_input_tokens":12,"cache_read_input_tokens":60,"output_tokens":3})
        );

        // Nothing usable: an empty message with zero usage; a refusal is shown as text.
        let empty = to_message(&json!({}), "m");
        assert_eq!(
            empty,
            json!({"id":"msg_relay","type":"message","role":"assistant","model":"m","content":[],
                "stop_reason":"end_turn","stop_sequence":null,
                "usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}})
        );
        let refusal = json!({"id":"chatcmpl-r","choices":[{"message":{"content":null,
            "refusal":"I can't help with that."},"finish_reason":"content_filter"}]});
        let m = to_message(&refusal, "m");
        assert_eq!(
            m["content"],
            json!([{"type":"text","text":"I can't help with that."}])
        );
        assert_eq!(m["stop_reason"], "refusal");
    }

    // ---- stream -------------------------------------------------------------------------------

    fn chunk(body: &str) -> String {
        format!(
            "data: {{\"id\":\"chatcmpl-B9a\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o\",\"choices\":[{body}],\"usage\":null}}\n\n"
        )
    }

    fn delta(d: &str) -> String {
        chunk(&format!(
            "{{\"index\":0,\"delta\":{d},\"logprobs\":null,\"finish_reason\":null}}"
        ))
    }

    fn finish_chunk(reason: &str) -> String {
        chunk(&format!(
            "{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"{reason}\"}}"
        ))
    }

    const USAGE: &str = "data: {\"id\":\"chatcmpl-B9a\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":82,\"completion_tokens\":17,\"total_tokens\":99,\"prompt_tokens_details\":{\"cached_tokens\":64},\"completion_tokens_details\":{\"reasoning_tokens\":5}}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";

    /// An OpenAI stream with text, then one tool call, then the usage chunk and `[DONE]`.
    fn t28_upstream() -> String {
        [
            delta(r#"{"role":"assistant","content":"","refusal":null}"#),
            delta(r#"{"content":"Let me check"}"#),
            delta(r#"{"content":" the weather."}"#),
            delta(
                r#"{"tool_calls":[{"index":0,"id":"call_A","type":"function","function":{"name":"get_weather","arguments":""}}]}"#,
            ),
            delta(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#),
            delta(r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"SF\"}"}}]}"#),
            finish_chunk("tool_calls"),
            USAGE.to_string(),
            DONE.to_string(),
        ]
        .concat()
    }

    const T28_WANT: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_B9a\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"relay-gpt\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n",
        "\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check\"}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" the weather.\"}}\n",
        "\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n",
        "\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_A\",\"name\":\"get_weather\",\"input\":{}}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"SF\\\"}\"}}\n",
        "\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n",
        "\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":18,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":64,\"output_tokens\":17}}\n",
        "\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n",
        "\n",
    );

    fn translator() -> ReverseTranslator {
        ReverseTranslator::new("msg_rly_1".to_string(), "relay-gpt".to_string())
    }

    /// Upstream chunks → translator → client bytes, ending with EOF.
    fn run(chunks: &[&[u8]]) -> (String, ReverseTranslator) {
        let mut t = translator();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(t.feed(c.to_vec()));
        }
        out.extend(t.finish());
        (String::from_utf8(out).unwrap(), t)
    }

    /// Rebuilds the final message the way the Anthropic SDK's `accumulate_event` does, checking
    /// on the way that every `event:` name equals `data.type` and blocks are dense and ordered.
    fn accumulate(bytes: &str) -> (Vec<String>, Value) {
        let mut dec = SseDecoder::new();
        let mut events = dec.feed(bytes.as_bytes()).unwrap();
        events.extend(dec.finish());
        let mut names = Vec::new();
        let mut msg = Value::Null;
        let mut json_buf: Vec<String> = Vec::new();
        let mut open: Option<u64> = None;
        for ev in events {
            let v: Value = serde_json::from_str(&ev.data).unwrap();
            let name = ev.event.clone().unwrap();
            assert_eq!(v["type"], name.as_str(), "event line vs data.type");
            names.push(name.clone());
            match name.as_str() {
                "message_start" => msg = v["message"].clone(),
                "content_block_start" => {
                    let content = msg["content"].as_array_mut().unwrap();
                    assert_eq!(v["index"], content.len(), "dense block indices");
                    assert_eq!(open, None, "a block was still open");
                    open = v["index"].as_u64();
                    content.push(v["content_block"].clone());
                    json_buf.push(String::new());
                }
                "content_block_delta" => {
                    let i = v["index"].as_u64().unwrap();
                    assert_eq!(open, Some(i), "delta for a block that is not open");
                    let i = i as usize;
                    let d = &v["delta"];
                    match d["type"].as_str().unwrap() {
                        "text_delta" => {
                            let block = &mut msg["content"][i];
                            let text = format!(
                                "{}{}",
                                block["text"].as_str().unwrap(),
                                d["text"].as_str().unwrap()
                            );
                            block["text"] = json!(text);
                        }
                        other => {
                            assert_eq!(other, "input_json_delta");
                            json_buf[i].push_str(d["partial_json"].as_str().unwrap())
                        }
                    }
                }
                "content_block_stop" => {
                    let i = v["index"].as_u64().unwrap();
                    assert_eq!(open, Some(i));
                    open = None;
                    let i = i as usize;
                    if msg["content"][i]["type"] == "tool_use" && !json_buf[i].is_empty() {
                        msg["content"][i]["input"] = serde_json::from_str(&json_buf[i]).unwrap();
                    }
                }
                "message_delta" => {
                    msg["stop_reason"] = v["delta"]["stop_reason"].clone();
                    msg["stop_sequence"] = v["delta"]["stop_sequence"].clone();
                    for (k, n) in v["usage"].as_object().unwrap() {
                        if !n.is_null() {
                            msg["usage"][k] = n.clone();
                        }
                    }
                }
                _ => {}
            }
        }
        (names, msg)
    }

    #[test]
    fn t28_text_then_tool_call_exact_events() {
        let upstream = t28_upstream();
        let (out, t) = run(&[upstream.as_bytes()]);
        assert_eq!(out, T28_WANT);

        let (names, msg) = accumulate(&out);
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        // The streamed message equals the non-stream mapping of the same answer.
        let completion = json!({"id":"chatcmpl-B9a","choices":[{"index":0,"finish_reason":"tool_calls",
            "message":{"role":"assistant","content":"Let me check the weather.","tool_calls":[
                {"id":"call_A","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"SF\"}"}}]}}],
            "usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,
                "prompt_tokens_details":{"cached_tokens":64}}});
        assert_eq!(msg, to_message(&completion, "relay-gpt"));

        let s = t.settle(0, false);
        assert_eq!(
            (s.outcome, s.source, s.finish_reason.as_deref()),
            (Outcome::Ok, UsageSource::Upstream, Some("tool_use"))
        );
        assert_eq!(
            s.tokens,
            Tokens {
                prompt: 82,
                completion: 17,
                cached: 64,
                cache_write: 0,
                reasoning: 5
            }
        );
        assert!(t.ended());
    }

    #[test]
    fn every_two_way_split_gives_identical_output() {
        let upstream = t28_upstream();
        let bytes = upstream.as_bytes();
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            let (got, t) = run(&[a, b]);
            assert_eq!(got, T28_WANT, "split at {i}");
            assert_eq!(t.settle(0, false).outcome, Outcome::Ok, "split at {i}");
        }
    }

    #[test]
    fn t29_finish_reason_table() {
        let rows = [
            (Some("stop"), "end_turn"),
            (Some("length"), "max_tokens"),
            (Some("tool_calls"), "tool_use"),
            (Some("function_call"), "tool_use"),
            (Some("content_filter"), "refusal"),
            (Some("something_new"), "end_turn"),
            (None, "end_turn"),
        ];
        for (finish, want) in rows {
            assert_eq!(stop_reason(finish), want, "{finish:?}");
            let completion =
                json!({"choices":[{"message":{"content":"x"},"finish_reason":finish}]});
            assert_eq!(to_message(&completion, "m")["stop_reason"], want);

            let mut upstream = delta(r#"{"content":"x"}"#);
            if let Some(f) = finish {
                upstream.push_str(&finish_chunk(f));
            }
            upstream.push_str(DONE);
            let (out, t) = run(&[upstream.as_bytes()]);
            let (_, msg) = accumulate(&out);
            assert_eq!(msg["stop_reason"], want, "{finish:?}");
            assert_eq!(t.settle(0, false).finish_reason.as_deref(), Some(want));
        }
    }

    #[test]
    fn without_usage_output_is_estimated_at_done() {
        let upstream = [
            delta(r#"{"role":"assistant","content":"12345678"}"#),
            finish_chunk("stop"),
            DONE.to_string(),
        ]
        .concat();
        let (out, t) = run(&[upstream.as_bytes()]);
        assert!(out.ends_with(concat!(
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n"
        )));
        let s = t.settle(40, false);
        assert_eq!(
            (s.outcome, s.source, s.tokens),
            (
                Outcome::Ok,
                UsageSource::Estimated,
                Tokens::estimated(40, 8)
            )
        );
    }

    #[test]
    fn usage_on_the_finish_chunk_ends_without_waiting_for_done() {
        let mut t = translator();
        let mut out = t.feed(delta(r#"{"content":"hi"}"#).into_bytes());
        out.extend(t.feed(
            "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n"
                .as_bytes()
                .to_vec(),
        ));
        assert!(t.ended());
        let (_, msg) = accumulate(&String::from_utf8(out).unwrap());
        assert_eq!(msg["stop_reason"], "max_tokens");
        assert_eq!(msg["usage"]["input_tokens"], 5);
        // The upstream then closes without [DONE]: nothing more, and the client had it all.
        assert!(t.feed(DONE.as_bytes().to_vec()).is_empty());
        assert!(t.finish().is_empty());
        assert_eq!(t.settle(0, false).outcome, Outcome::Ok);
    }

    #[test]
    fn first_chunk_usage_and_fallback_id_fill_message_start() {
        let mut t = translator();
        let out = t.feed(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":0,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n"
                .to_vec(),
        );
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with(concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_rly_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"relay-gpt\",\"stop_reason\":null,\"stop_sequence\":null,",
            "\"usage\":{\"input_tokens\":6,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":4,\"output_tokens\":0}}}\n\n"
        )));
    }

    #[test]
    fn in_band_error_closes_the_block_and_ends() {
        let upstream = [
            delta(r#"{"content":"Hel"}"#),
            "data: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n".to_string(),
            DONE.to_string(),
        ]
        .concat();
        let (out, t) = run(&[upstream.as_bytes()]);
        assert!(out.ends_with(concat!(
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: error\n",
            "data: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"The server had an error while processing your request.\"}}\n\n"
        )));
        assert!(!out.contains("message_stop"));
        let s = t.settle(0, false);
        assert_eq!(s.outcome, Outcome::UpstreamError);
        assert_eq!(s.upstream_error.as_deref(), Some("server_error"));
        assert_eq!(s.source, UsageSource::Estimated);
    }

    #[test]
    fn error_type_mapping_section_6_7() {
        let rows = [
            (
                json!({"type":"invalid_request_error","code":"context_length_exceeded"}),
                "invalid_request_error",
            ),
            (
                json!({"type":"requests","code":"rate_limit_exceeded"}),
                "rate_limit_error",
            ),
            (
                json!({"type":"insufficient_quota","code":"insufficient_quota"}),
                "api_error",
            ),
            (
                json!({"type":"server_error","code":"overloaded"}),
                "overloaded_error",
            ),
            (
                json!({"type":"server_error","code":"timeout"}),
                "timeout_error",
            ),
            (
                json!({"type":"invalid_request_error","code":"model_not_found"}),
                "not_found_error",
            ),
            (json!({"code":429,"message":"slow"}), "rate_limit_error"),
            (json!({"code":503}), "overloaded_error"),
            (json!({"code":401}), "api_error"),
            (json!({"code":413}), "request_too_large"),
            (json!({"message":"?"}), "api_error"),
            (json!("plain string"), "api_error"),
        ];
        for (err, want) in rows {
            assert_eq!(anthropic_error_type(&err), want, "{err}");
        }
        // A string error object still yields a message.
        let mut t = translator();
        let out = t.feed(b"data: {\"error\":\"boom\"}\n\n".to_vec());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}\n\n"
        );
        assert_eq!(t.settle(0, false).upstream_error.as_deref(), Some("error"));
    }

    #[test]
    fn truncated_stream_closes_the_block_and_errors() {
        let upstream = t28_upstream();
        // Cut inside the second argument fragment: the tool block is open.
        let cut = upstream.find("\\\"SF").unwrap();
        let (out, t) = run(&[&upstream.as_bytes()[..cut]]);
        let tail = concat!(
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: error\n",
            "data: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Upstream stream ended unexpectedly.\"}}\n\n"
        );
        assert!(out.ends_with(tail), "{out}");
        assert!(!out.contains("message_delta"));
        let s = t.settle(20, false);
        assert_eq!(
            (s.outcome, s.source, s.finish_reason),
            (Outcome::Truncated, UsageSource::Estimated, None)
        );
        // "Let me check the weather." + "{\"city\":" = 25 + 8 chars.
        assert_eq!(s.tokens, Tokens::estimated(20, 33));
        assert_eq!(t.settle(20, true).outcome, Outcome::ClientCancelled);

        // After finish_reason but before usage and [DONE]: still cut short.
        let cut = upstream.find(USAGE).unwrap();
        let (out, t) = run(&[&upstream.as_bytes()[..cut]]);
        assert!(out.ends_with(std::str::from_utf8(TRUNCATED_TAIL).unwrap()));
        assert!(!out.contains("message_delta"));
        assert_eq!(t.settle(0, false).outcome, Outcome::Truncated);
        assert_eq!(
            t.settle(0, false).finish_reason.as_deref(),
            Some("tool_use")
        );

        // Nothing at all: only the error.
        let (out, _) = run(&[]);
        assert_eq!(out.as_bytes(), TRUNCATED_TAIL);
    }

    #[test]
    fn abort_and_a_final_event_without_blank_line() {
        let mut t = translator();
        t.feed(delta(r#"{"content":"a"}"#).into_bytes());
        let tail = t.abort();
        assert!(String::from_utf8(tail)
            .unwrap()
            .starts_with("event: content_block_stop\n"));
        assert!(t.abort().is_empty() && t.finish().is_empty() && t.ended());
        assert!(t.feed(DONE.as_bytes().to_vec()).is_empty());
        assert_eq!(t.settle(0, false).outcome, Outcome::Truncated);

        // V10: `[DONE]` with no blank line at EOF still completes the message.
        let upstream = [delta(r#"{"content":"a"}"#), "data: [DONE]".to_string()].concat();
        let (out, t) = run(&[upstream.as_bytes()]);
        assert!(out.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
        assert_eq!(t.settle(0, false).outcome, Outcome::Ok);
    }

    #[test]
    fn tool_calls_in_odd_shapes_stay_whole() {
        let upstream = [
            // Name arrives after the first argument fragment: buffered until the block opens.
            delta(r#"{"tool_calls":[{"index":0,"id":"call_1","function":{"arguments":"{\"a\""}}]}"#),
            delta(r#"{"tool_calls":[{"index":0,"function":{"name":"f","arguments":":1}"}}]}"#),
            // Index reused for a second call with its own id.
            delta(r#"{"tool_calls":[{"index":0,"id":"call_2","type":"function","function":{"name":"g","arguments":"{}"}}]}"#),
            // No index at all: an id starts a call, no id continues the latest.
            delta(r#"{"tool_calls":[{"id":"call_3","function":{"name":"h","arguments":"{\"b\":"}}]}"#),
            delta(r#"{"tool_calls":[{"function":{"arguments":"2}"}}]}"#),
            // Two complete calls in one chunk, then one that never gets a name.
            delta(
                r#"{"tool_calls":[{"index":5,"id":"call_4","function":{"name":"i","arguments":"{}"}},{"index":6,"id":"call_5","function":{"name":"j","arguments":""}}]}"#,
            ),
            delta(r#"{"tool_calls":[{"index":7,"function":{"arguments":"{\"z\":0}"}}]}"#),
            finish_chunk("tool_calls"),
            DONE.to_string(),
        ]
        .concat();
        let (out, t) = run(&[upstream.as_bytes()]);
        let (_, msg) = accumulate(&out);
        let calls: Vec<(String, String, Value)> = msg["content"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                assert_eq!(b["type"], "tool_use");
                (
                    b["id"].as_str().unwrap().to_string(),
                    b["name"].as_str().unwrap().to_string(),
                    b["input"].clone(),
                )
            })
            .collect();
        let want = vec![
            ("call_1", "f", json!({"a":1})),
            ("call_2", "g", json!({})),
            ("call_3", "h", json!({"b":2})),
            ("call_4", "i", json!({})),
            ("call_5", "j", json!({})),
            ("toolu_B9a_5", "", json!({"z":0})),
        ];
        let want: Vec<(String, String, Value)> = want
            .into_iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c))
            .collect();
        assert_eq!(calls, want);
        assert_eq!(msg["stop_reason"], "tool_use");
        assert_eq!(t.settle(0, false).outcome, Outcome::Ok);
    }

    #[test]
    fn refusal_and_reasoning_deltas() {
        let upstream = [
            delta(r#"{"role":"assistant","reasoning_content":"thinking..."}"#),
            delta(r#"{"refusal":"I can't."}"#),
            finish_chunk("content_filter"),
            DONE.to_string(),
        ]
        .concat();
        let (out, _) = run(&[upstream.as_bytes()]);
        let (_, msg) = accumulate(&out);
        assert_eq!(msg["content"], json!([{"type":"text","text":"I can't."}]));
        assert_eq!(msg["stop_reason"], "refusal");
    }
}
