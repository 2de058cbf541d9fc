//! The OpenAI Responses API (`POST /v1/responses`, protocol.md §4), the relay's third protocol
//! beside Chat and Messages. Chat is the hub: a Responses request for a provider without the
//! Responses API becomes a Chat request (`to_chat`, whose item mapping is `cursor`'s), and the
//! Chat answer comes back as a Response (`answer`) or as Responses stream events (`translate`).
//! Claude goes through the existing Chat ⇄ Messages translation (`anthropic::ChatRelay` feeding
//! `translate`), so this protocol costs two translators, not one per provider. OpenAI's own upstreams get the body byte for
//! byte and are only metered (`passthrough`).

pub mod answer;
pub mod owner;
pub mod passthrough;
pub mod translate;

use serde_json::{Map, Value};

use crate::http::error::RelayError;
use crate::metering::usage::Tokens;
use crate::protocols::chat::wrong_type;
use crate::protocols::cursor;

/// The single parser of `/v1/responses` bodies, so the pass-through and the translation read
/// the same: a key repeated anywhere is refused first (json.rs), since the relay and OpenAI
/// would otherwise disagree on which `model` (or `tools`) the request names.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, RelayError> {
    crate::http::json::refuse_duplicate_keys(body)?;
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
        Some(Value::String(s)) if s.chars().count() > crate::protocols::chat::MAX_MODEL_CHARS => {
            return Err(RelayError::invalid(
                format!(
                    "'model' must be at most {} characters.",
                    crate::protocols::chat::MAX_MODEL_CHARS
                ),
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
        // The mapping sees the body without what Chat has no use for. Hosted tools stand in as
        // placeholders so that an error in a later tool still names that tool's own index, and
        // are taken out of the result; with no other tool, `tools` goes (some servers refuse an
        // empty array).
        let mut body = Map::new();
        let mut hosted = Vec::new();
        for (k, v) in &self.body {
            match (k.as_str(), v) {
                (k, _) if DROPPED_FOR_CHAT.contains(&k) => {}
                ("tools", Value::Array(tools)) => {
                    let mut mapped = Vec::with_capacity(tools.len());
                    for (i, tool) in tools.iter().enumerate() {
                        if is_hosted(tool) {
                            hosted.push(i);
                            mapped.push(obj(vec![
                                ("type", "function".into()),
                                ("name", "hosted".into()),
                            ]));
                        } else {
                            mapped.push(tool.clone());
                        }
                    }
                    if hosted.len() < tools.len() {
                        body.insert(k.to_string(), Value::Array(mapped));
                    } else {
                        hosted.clear();
                    }
                }
                _ => {
                    body.insert(k.to_string(), v.clone());
                }
            }
        }
        let mut chat = cursor::from_responses(&body)?;
        if let Some(Value::Array(tools)) = chat.get_mut("tools") {
            let kept = std::mem::take(tools)
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !hosted.contains(i))
                .map(|(_, t)| t)
                .collect();
            *tools = kept;
        }
        // Every Chat server knows `system`; not all know `developer`.
        if let Some(Value::Array(messages)) = chat.get_mut("messages") {
            for m in messages.iter_mut() {
                if let Some(m) = m.as_object_mut() {
                    if m.get("role").and_then(Value::as_str) == Some("developer") {
                        m.insert("role".into(), "system".into());
                    }
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
    obj(vec![
        ("input_tokens", t.prompt.into()),
        (
            "input_tokens_details",
            obj(vec![("cached_tokens", t.cached.into())]),
        ),
        ("output_tokens", t.completion.into()),
        (
            "output_tokens_details",
            obj(vec![("reasoning_tokens", t.reasoning.into())]),
        ),
        ("total_tokens", t.prompt.saturating_add(t.completion).into()),
    ])
}

/// A JSON object from `(key, value)` pairs. Built in one loop rather than with `json!`, whose
/// per-key inlined inserts cost the Worker bundle kilobytes across the many Responses shapes.
pub fn obj(fields: Vec<(&str, Value)>) -> Value {
    let mut map = Map::new();
    for (k, v) in fields {
        map.insert(k.to_string(), v);
    }
    Value::Object(map)
}

/// One Responses stream event: both an `event:` and a `data:` line, `type` equal to the name.
pub fn event(name: &str, mut fields: Vec<(&str, Value)>, sequence_number: u64) -> Vec<u8> {
    fields.push(("type", name.into()));
    fields.push(("sequence_number", sequence_number.into()));
    format!("event: {name}\ndata: {}\n\n", obj(fields)).into_bytes()
}

/// The end of a stream that failed after its first byte: an `error` event, then
/// `response.failed` carrying `response` (status and error filled in) — never a silent end.
pub fn failure_tail(mut response: Value, code: &str, message: &str, seq: u64) -> Vec<u8> {
    let fields = vec![("code", code.into()), ("message", message.into())];
    let mut with_param = fields.clone();
    with_param.push(("param", Value::Null));
    let mut out = event("error", with_param, seq);
    if let Some(r) = response.as_object_mut() {
        r.insert("status".into(), "failed".into());
        r.insert("error".into(), obj(fields));
    }
    out.extend(event(
        "response.failed",
        vec![("response", response)],
        seq + 1,
    ));
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
