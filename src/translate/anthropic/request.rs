//! O→A request mapping (protocol.md §6.1): an OpenAI Chat Completions body becomes an Anthropic
//! Messages body. Fields Anthropic cannot honour are dropped, or refused with a 400 naming them.
//! This file maps the top-level fields and tools; `messages` maps the conversation.

mod messages;

use serde_json::{json, Map, Value};

use super::{body_object, custom, field, json_kind};
use crate::http::error::RelayError;
use crate::http::ids::sha256_hex;
use crate::protocols::chat::missing;
use messages::map_messages;

/// Builds the Anthropic `POST /v1/messages` body for an OpenAI chat request routed to an
/// Anthropic model. `default_max_tokens` is the model's output limit, used when the client set
/// none, since Anthropic requires `max_tokens`.
pub fn to_messages_request(
    openai_body: &Value,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Value, RelayError> {
    let body = body_object(openai_body)?;
    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));
    map_limits(body, default_max_tokens, &mut out)?;
    map_sampling(body, &mut out)?;
    map_user_and_stream(body, &mut out)?;
    map_tool_fields(body, &mut out)?;
    map_messages_field(body, &mut out)?;
    // Everything else (reasoning_effort, logprobs, seed, penalties, metadata, store,
    // service_tier, stream_options, unknown fields) is dropped: Anthropic rejects unknown
    // top-level fields and the compat layer ignores these [S36]. `response_format` is not
    // dropped: structured.rs turns it into a forced tool after this mapping.
    Ok(Value::Object(out))
}

type Body = Map<String, Value>;

/// `n` (only 1) and `max_tokens`, which Anthropic requires.
fn map_limits(body: &Body, default_max_tokens: u64, out: &mut Body) -> Result<(), RelayError> {
    if let Some(n) = field(body, "n") {
        if n.as_u64() != Some(1) {
            return Err(RelayError::invalid(
                "Invalid 'n': Anthropic models return exactly one choice, so 'n' must be 1.",
                Some("n"),
            ));
        }
    }

    let max_tokens = match field(body, "max_completion_tokens")
        .map(|v| ("max_completion_tokens", v))
        .or_else(|| field(body, "max_tokens").map(|v| ("max_tokens", v)))
    {
        None => default_max_tokens,
        Some((name, v)) => v
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| wrong_type(name, "a positive integer", v))?,
    };
    out.insert("max_tokens".into(), json!(max_tokens));
    Ok(())
}

/// `temperature` (clamped to Anthropic's range), `top_p` and `stop`.
fn map_sampling(body: &Body, out: &mut Body) -> Result<(), RelayError> {
    if let Some(t) = field(body, "temperature") {
        let x = t
            .as_f64()
            .ok_or_else(|| wrong_type("temperature", "a number", t))?;
        // Anthropic accepts 0..=1 while OpenAI allows up to 2; the compat layer caps at 1 [S36].
        let clamped = if x > 1.0 {
            json!(1)
        } else if x < 0.0 {
            json!(0)
        } else {
            t.clone()
        };
        out.insert("temperature".into(), clamped);
    }
    if let Some(p) = field(body, "top_p") {
        if !p.is_number() {
            return Err(wrong_type("top_p", "a number", p));
        }
        out.insert("top_p".into(), p.clone());
    }
    if let Some(stop) = field(body, "stop") {
        let seqs = stop_sequences(stop)?;
        if !seqs.is_empty() {
            out.insert("stop_sequences".into(), json!(seqs));
        }
    }
    Ok(())
}

fn map_user_and_stream(body: &Body, out: &mut Body) -> Result<(), RelayError> {
    if let Some(user) = field(body, "user") {
        let user = user
            .as_str()
            .ok_or_else(|| wrong_type("user", "a string", user))?;
        if !user.is_empty() {
            // A hash, not the raw value: clients put e-mail addresses here (§6.1 [DECISION]).
            out.insert("metadata".into(), json!({"user_id": sha256_hex(user)}));
        }
    }
    if let Some(stream) = field(body, "stream") {
        if !stream.is_boolean() {
            return Err(wrong_type("stream", "a boolean", stream));
        }
        out.insert("stream".into(), stream.clone());
    }
    Ok(())
}

/// `tools`, `tool_choice` and `parallel_tool_calls`.
fn map_tool_fields(body: &Body, out: &mut Body) -> Result<(), RelayError> {
    let tools = match field(body, "tools") {
        Some(t) => map_tools(t)?,
        None => Vec::new(),
    };
    let choice = map_tool_choice(field(body, "tool_choice"))?;
    // A tool_choice without tools is refused by Anthropic and means nothing; drop it.
    if !tools.is_empty() {
        let parallel_off = field(body, "parallel_tool_calls") == Some(&Value::Bool(false));
        let choice = choice.or_else(|| parallel_off.then(|| json!({"type": "auto"})));
        if let Some(mut choice) = choice {
            if parallel_off && choice.get("type") != Some(&json!("none")) {
                if let Some(obj) = choice.as_object_mut() {
                    obj.insert("disable_parallel_tool_use".into(), json!(true));
                }
            }
            out.insert("tool_choice".into(), choice);
        }
        out.insert("tools".into(), Value::Array(tools));
    }
    Ok(())
}

/// `messages` as Anthropic's `system` and turns.
fn map_messages_field(body: &Body, out: &mut Body) -> Result<(), RelayError> {
    let messages = field(body, "messages")
        .ok_or_else(|| {
            RelayError::invalid("Missing required parameter: 'messages'.", Some("messages"))
        })?
        .as_array()
        .ok_or_else(|| RelayError::invalid("'messages' must be an array.", Some("messages")))?;
    let (system, turns) = map_messages(messages)?;
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(turns));
    Ok(())
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> RelayError {
    let got = json_kind(got);
    RelayError::invalid(
        format!("Invalid type for '{param}': expected {expected}, but got {got} instead."),
        Some(param),
    )
}

/// `stop` as a list; whitespace-only sequences are dropped because Anthropic refuses them.
fn stop_sequences(stop: &Value) -> Result<Vec<String>, RelayError> {
    let all = match stop {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| wrong_type(&format!("stop[{i}]"), "a string", s))
            })
            .collect::<Result<_, _>>()?,
        other => return Err(wrong_type("stop", "a string or an array", other)),
    };
    Ok(all.into_iter().filter(|s| !s.trim().is_empty()).collect())
}

fn map_tools(tools: &Value) -> Result<Vec<Value>, RelayError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| wrong_type("tools", "an array", tools))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str);
        if kind == Some("custom") {
            let c = tool
                .get("custom")
                .and_then(Value::as_object)
                .ok_or_else(|| missing(&format!("tools[{i}].custom")))?;
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| missing(&format!("tools[{i}].custom.name")))?;
            out.push(custom::anthropic_tool(c, name));
            continue;
        }
        if kind != Some("function") {
            return Err(RelayError::invalid(
                format!(
                    "Invalid value: '{}'. Supported values are: 'function' and 'custom'.",
                    kind.unwrap_or("")
                ),
                Some(&format!("tools[{i}].type")),
            ));
        }
        let f = tool
            .get("function")
            .filter(|f| f.is_object())
            .ok_or_else(|| missing(&format!("tools[{i}].function")))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&format!("tools[{i}].function.name")))?;
        let mut t = Map::new();
        t.insert("name".into(), json!(name));
        if let Some(d) = f.get("description").filter(|d| d.is_string()) {
            t.insert("description".into(), d.clone());
        }
        let schema = f
            .get("parameters")
            .filter(|p| p.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        t.insert("input_schema".into(), schema);
        if let Some(cc) = tool.get("cache_control").filter(|c| c.is_object()) {
            t.insert("cache_control".into(), cc.clone());
        }
        out.push(Value::Object(t));
    }
    Ok(out)
}

fn map_tool_choice(choice: Option<&Value>) -> Result<Option<Value>, RelayError> {
    let Some(choice) = choice else {
        return Ok(None);
    };
    let mapped =
        match choice {
            Value::String(s) if s == "none" => json!({"type": "none"}),
            Value::String(s) if s == "auto" => json!({"type": "auto"}),
            Value::String(s) if s == "required" => json!({"type": "any"}),
            Value::Object(o) if o.get("type") == Some(&json!("function")) => {
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing("tool_choice.function.name"))?;
                json!({"type": "tool", "name": name})
            }
            Value::Object(o) if o.get("type") == Some(&json!("custom")) => {
                let name = o
                    .get("custom")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing("tool_choice.custom.name"))?;
                json!({"type": "tool", "name": name})
            }
            _ => return Err(RelayError::invalid(
                "Invalid 'tool_choice': expected 'none', 'auto', 'required', or a function or custom choice.",
                Some("tool_choice"),
            )),
        };
    Ok(Some(mapped))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
