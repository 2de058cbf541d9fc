//! The OpenAI Responses API (`POST /v1/responses`, protocol.md §4), the relay's third protocol
//! beside Chat and Messages. Chat is the hub: a Responses request for a provider without the
//! Responses API becomes a Chat request (`to_chat`, whose item mapping is `cursor`'s), and the
//! Chat answer comes back as a Response (`answer`) or as Responses stream events (`translate`).
//! Claude goes through the existing Chat ⇄ Messages translation (`claude`), so this protocol
//! costs two translators, not one per provider. OpenAI's own upstreams get the body byte for
//! byte and are only metered (`passthrough`).

pub mod answer;
pub mod claude;
pub mod passthrough;
pub mod translate;

use serde_json::{json, Map, Value};

use crate::cursor;
use crate::error::RelayError;
use crate::usage::Tokens;

/// The single parser of `/v1/responses` bodies: every check on the raw JSON (such as a
/// duplicate-key guard) belongs here, so the pass-through and the translation read the same.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, RelayError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(RelayError::invalid(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            None,
        )),
    }
}

/// A `/v1/responses` request: the parsed body plus what the relay reads from it.
#[derive(Debug, Clone)]
pub struct Request {
    pub body: Map<String, Value>,
    pub model: String,
    pub stream: bool,
    /// Characters of instructions and input text, for the estimate when no usage arrives.
    pub prompt_chars: u64,
    /// Text of the last user message, which `relay-echo` answers with.
    pub last_user_text: String,
}

/// Responses fields that only the Responses API's own state or hosting can honour; a
/// translated request drops them (R4.2) rather than passing names a Chat server may refuse.
const DROPPED_FOR_CHAT: &[&str] = &[
    "prompt_cache_key",
    "service_tier",
    "max_tool_calls",
    "top_logprobs",
    "stream_options",
    "context_management",
    "client_metadata",
];

/// Parameters that need state the relay does not keep: refused on translated routes (R4.2).
const STATEFUL: &[(&str, &str)] = &[
    ("previous_response_id", "previous responses"),
    ("conversation", "conversations"),
    ("prompt", "stored prompts"),
];

pub fn parse(body: &[u8]) -> Result<Request, RelayError> {
    let body = parse_body(body)?;
    let model = match body.get("model") {
        None | Some(Value::Null) => {
            return Err(RelayError::invalid(
                "Missing required parameter: 'model'.",
                Some("model"),
            ))
        }
        Some(Value::String(s)) if s.is_empty() => {
            return Err(RelayError::invalid(
                "'model' must not be empty.",
                Some("model"),
            ))
        }
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(wrong_type("model", "a string", other)),
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(wrong_type("stream", "a boolean", other)),
    };
    let mut prompt_chars = 0u64;
    let mut last_user_text = String::new();
    if let Some(Value::String(s)) = body.get("instructions") {
        prompt_chars += chars(s);
    }
    match body.get("input") {
        Some(Value::String(s)) => {
            prompt_chars += chars(s);
            last_user_text = s.clone();
        }
        Some(Value::Array(items)) => {
            for item in items {
                let text = item_text(item);
                prompt_chars += chars(&text);
                if item.get("role").and_then(Value::as_str) == Some("user") {
                    last_user_text = text;
                }
            }
        }
        _ => {}
    }
    Ok(Request {
        body,
        model,
        stream,
        prompt_chars,
        last_user_text,
    })
}

fn chars(s: &str) -> u64 {
    s.chars().count() as u64
}

/// The text of one input item: message parts, a tool call's arguments or a tool's output.
fn item_text(item: &Value) -> String {
    let text_of_parts = |parts: &Vec<Value>| {
        parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match item.get("content").or_else(|| item.get("output")) {
        Some(Value::String(s)) => return s.clone(),
        Some(Value::Array(parts)) => return text_of_parts(parts),
        _ => {}
    }
    ["arguments", "input"]
        .iter()
        .find_map(|k| item.get(*k).and_then(Value::as_str))
        .unwrap_or("")
        .to_string()
}

impl Request {
    /// Refuses what only a stateful Responses API can do, for a provider that is not OpenAI.
    pub fn refuse_state(&self) -> Result<(), RelayError> {
        for (param, what) in STATEFUL {
            if self.body.get(*param).is_some_and(|v| !v.is_null()) {
                return Err(RelayError::invalid(
                    format!(
                        "'{param}' is not supported for model '{}': the relay keeps no {what} \
                         for providers other than OpenAI. Send the full conversation in 'input'.",
                        self.model
                    ),
                    Some(param),
                ));
            }
        }
        if self.body.get("background") == Some(&Value::Bool(true)) {
            return Err(RelayError::invalid(
                format!(
                    "'background' is not supported for model '{}': background responses need \
                     stored state, which only OpenAI models have through the relay.",
                    self.model
                ),
                Some("background"),
            ));
        }
        Ok(())
    }

    /// The Chat Completions body for this request (R4.2). Hosted tools (`web_search`,
    /// `image_generation`, tool `namespace`s, …) run on OpenAI's side only: they are left out,
    /// so a client that offers them by default (Codex offers `web_search`) still works, with
    /// the model simply not seeing them. Naming one in `tool_choice` is still a 400.
    pub fn to_chat(&self) -> Result<Value, RelayError> {
        self.refuse_state()?;
        if matches!(self.body.get("input"), Some(Value::Array(items)) if items.is_empty()) {
            return Err(RelayError::invalid(
                "'input' must contain at least one item.",
                Some("input"),
            ));
        }
        let mut body = self.body.clone();
        if let Some(Value::Array(tools)) = body.get_mut("tools") {
            tools.retain(|t| !is_hosted(t));
        }
        let mut chat = cursor::from_responses(&body)?;
        if chat
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            chat.remove("tools");
        }
        for key in DROPPED_FOR_CHAT {
            chat.remove(*key);
        }
        // Every Chat server knows `system`; not all know `developer`.
        if let Some(Value::Array(messages)) = chat.get_mut("messages") {
            for m in messages.iter_mut() {
                if m.get("role").and_then(Value::as_str) == Some("developer") {
                    m["role"] = json!("system");
                }
            }
        }
        Ok(Value::Object(chat))
    }
}

/// A tool the provider would have to run itself: anything but a function or a custom tool.
/// A tool without a string `type` is left for the mapping to report.
fn is_hosted(tool: &Value) -> bool {
    matches!(tool.get("type").and_then(Value::as_str), Some(t) if t != "function" && t != "custom")
}

/// Reads a Responses `usage` object (protocol.md §4 "Usage"); None without `input_tokens`.
pub fn tokens_from_usage(usage: &Value) -> Option<Tokens> {
    let prompt = usage.get("input_tokens")?.as_u64()?;
    let detail = |outer: &str, inner: &str| {
        usage
            .get(outer)
            .and_then(|d| d.get(inner))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    Some(Tokens {
        prompt,
        completion: usage
            .get("output_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        cached: detail("input_tokens_details", "cached_tokens"),
        cache_write: detail("input_tokens_details", "cache_write_tokens"),
        reasoning: detail("output_tokens_details", "reasoning_tokens"),
    })
}

/// Our tokens as a Responses `usage` object, for translated answers.
pub fn usage_json(t: &Tokens) -> Value {
    json!({
        "input_tokens": t.prompt,
        "input_tokens_details": {"cached_tokens": t.cached},
        "output_tokens": t.completion,
        "output_tokens_details": {"reasoning_tokens": t.reasoning},
        "total_tokens": t.prompt.saturating_add(t.completion),
    })
}

/// One Responses stream event: both an `event:` and a `data:` line, `type` equal to the name.
pub fn event(name: &str, mut payload: Map<String, Value>, sequence_number: u64) -> Vec<u8> {
    payload.insert("type".into(), json!(name));
    payload.insert("sequence_number".into(), json!(sequence_number));
    format!("event: {name}\ndata: {}\n\n", Value::Object(payload)).into_bytes()
}

/// The end of a stream that failed after its first byte: an `error` event, then
/// `response.failed` carrying `response` (status and error filled in) — never a silent end.
pub fn failure_tail(mut response: Value, code: &str, message: &str, seq: u64) -> Vec<u8> {
    let mut err = Map::new();
    err.insert("code".into(), json!(code));
    err.insert("message".into(), json!(message));
    err.insert("param".into(), Value::Null);
    let mut out = event("error", err, seq);
    if let Some(r) = response.as_object_mut() {
        r.insert("status".into(), json!("failed"));
        r.insert("error".into(), json!({"code": code, "message": message}));
    }
    let mut failed = Map::new();
    failed.insert("response".into(), response);
    out.extend(event("response.failed", failed, seq + 1));
    out
}

/// Code and message of an OpenAI error body (`{"error":{…}}`), as the failure tail carries them.
pub fn error_fields(error: &Value) -> (String, String) {
    let e = error.get("error").unwrap_or(error);
    let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    (
        s("code")
            .or_else(|| s("type"))
            .unwrap_or_else(|| "upstream_error".to_string()),
        s("message").unwrap_or_else(|| "Upstream provider error.".to_string()),
    )
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> RelayError {
    let name = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    RelayError::invalid(
        format!("Invalid type for '{param}': expected {expected}, but got {name} instead."),
        Some(param),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
