//! Anthropic Messages request → OpenAI Chat request (protocol.md §6.6): every block is checked
//! and mapped, or refused with a 400 whose `param` names it.

use serde_json::{json, Map, Value};

use crate::http::error::RelayError;
use crate::http::ids::sha256_hex;
use crate::translate::anthropic::{body_object, field, json_kind};

/// Builds the OpenAI `POST /v1/chat/completions` body for an Anthropic request routed to an
/// OpenAI-compatible model. `include_usage` says whether the provider accepts
/// `stream_options.include_usage`; without it the stream's usage is estimated (§6.6).
pub fn to_chat_request(
    messages_body: &Value,
    upstream_model: &str,
    include_usage: bool,
) -> Result<Value, RelayError> {
    let body = body_object(messages_body)?;
    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    out.insert("messages".into(), Value::Array(chat_messages(body)?));
    map_sampling(body, &mut out)?;
    map_stream(body, include_usage, &mut out)?;
    map_tool_fields(body, &mut out)?;
    // Everything else (thinking, top_k, service_tier, container, cache_control, unknown fields)
    // is dropped: Chat has no equivalent, and strict providers refuse unknown fields.
    Ok(Value::Object(out))
}

/// `system` and `messages` as Chat messages.
fn chat_messages(body: &Map<String, Value>) -> Result<Vec<Value>, RelayError> {
    let messages = field(body, "messages").ok_or_else(|| missing("messages"))?;
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
    if let Some(system) = field(body, "system") {
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
    Ok(chat)
}

/// `max_tokens`, `temperature`, `top_p`, `stop_sequences` and `metadata.user_id`.
fn map_sampling(body: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), RelayError> {
    if let Some(v) = field(body, "max_tokens") {
        let n = v
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| wrong_type("max_tokens", "a positive integer", v))?;
        // `max_tokens` is deprecated on OpenAI and refused by its reasoning models.
        out.insert("max_completion_tokens".into(), json!(n));
    }
    for name in ["temperature", "top_p"] {
        if let Some(v) = field(body, name) {
            if !v.is_number() {
                return Err(wrong_type(name, "a number", v));
            }
            out.insert(name.into(), v.clone());
        }
    }
    if let Some(v) = field(body, "stop_sequences") {
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
    if let Some(user) = field(body, "metadata").and_then(|m| m.get("user_id")) {
        if let Some(user) = user.as_str().filter(|u| !u.is_empty()) {
            // A hash, as in the O→A direction: stable per user, never the raw value, and short
            // enough for providers that cap `user` (Claude Code's ids run past 150 chars).
            out.insert("user".into(), json!(sha256_hex(user)));
        } else if !user.is_null() {
            return Err(wrong_type("metadata.user_id", "a string", user));
        }
    }
    Ok(())
}

fn map_stream(
    body: &Map<String, Value>,
    include_usage: bool,
    out: &mut Map<String, Value>,
) -> Result<(), RelayError> {
    if let Some(stream) = field(body, "stream") {
        let on = stream
            .as_bool()
            .ok_or_else(|| wrong_type("stream", "a boolean", stream))?;
        out.insert("stream".into(), json!(on));
        if on && include_usage {
            out.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    Ok(())
}

/// `tools` and `tool_choice`.
fn map_tool_fields(
    body: &Map<String, Value>,
    out: &mut Map<String, Value>,
) -> Result<(), RelayError> {
    let tools = match field(body, "tools") {
        Some(t) => map_tools(t)?,
        None => Vec::new(),
    };
    let choice = field(body, "tool_choice")
        .map(map_tool_choice)
        .transpose()?;
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
    Ok(())
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> RelayError {
    let got = json_kind(got);
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
