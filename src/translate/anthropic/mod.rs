//! The Anthropic Messages family (protocol.md §5–§6): the O→A request mapping, the A→O response,
//! usage and error mappings, and the stream meter and stream translator for Anthropic upstreams.
//! `reverse` is the other way round: Anthropic clients on OpenAI-compatible upstreams (§6.6).

pub mod count;
pub mod custom;
pub mod errors;
mod request;
pub mod reverse;
mod stream;
pub mod structured;

use serde_json::{json, Map, Value};

use crate::http::error::RelayError;
use crate::metering::usage::Tokens;

pub use crate::protocols::messages::{tokens_from_usage, AnthropicMeter, Usage};
pub use reverse::{to_chat_request, to_message, ReverseTranslator};
pub use stream::{ChatRelay, StreamTranslator};

/// The O→A request (§6.1): the field-by-field mapping, then `response_format` as the forced
/// answer tool (structured.rs), since Messages has no field that says what the answer must be.
pub fn to_messages_request(
    openai_body: &Value,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Value, RelayError> {
    let mut out = request::to_messages_request(openai_body, upstream_model, default_max_tokens)?;
    structured::apply(openai_body, &mut out)?;
    Ok(out)
}

/// A request body as the object both request translators read; anything else is a 400.
pub(crate) fn body_object(body: &Value) -> Result<&Map<String, Value>, RelayError> {
    body.as_object()
        .ok_or_else(|| RelayError::invalid("The body must be a JSON object.", None))
}

/// `body[name]`, with `null` read as absent (both APIs treat them alike).
pub(crate) fn field<'a>(body: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    body.get(name).filter(|v| !v.is_null())
}

/// A JSON value's kind as both translators' wrong-type errors name it (numbers are not split
/// into integer and decimal, unlike OpenAI's own wording in `chat::type_name`).
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// OpenAI `usage` for the client (§6.4); the usage row keeps the raw fields instead.
pub fn openai_usage(t: &Tokens) -> Value {
    json!({
        "prompt_tokens": t.prompt,
        "completion_tokens": t.completion,
        "total_tokens": t.total(),
        "prompt_tokens_details": {"cached_tokens": t.cached, "cache_write_tokens": t.cache_write},
    })
}

/// `stop_reason` → `finish_reason` (§6.3). Raw Anthropic values are never passed on: OpenAI
/// SDK types allow only their five values.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// A non-stream Anthropic message as an OpenAI chat completion (§6.2). The Anthropic `msg_…` id
/// is reused when present (§6.2 [DECISION]); `id` is the fallback. `model` is the relay alias
/// the client asked for. Thinking and server-tool blocks are dropped.
pub fn to_chat_completion(
    anthropic_body: &Value,
    id: &str,
    created: u64,
    model: &str,
    custom_tools: &[String],
) -> Value {
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    let blocks = anthropic_body.get("content").and_then(Value::as_array);
    for block in blocks.into_iter().flatten() {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let t = block.get("text").and_then(Value::as_str).unwrap_or("");
                text.get_or_insert_with(String::new).push_str(t);
            }
            Some("tool_use")
                if custom_tools
                    .iter()
                    .any(|n| Some(n.as_str()) == block.get("name").and_then(Value::as_str)) =>
            {
                calls.push(json!({
                    "id": block.get("id").cloned().unwrap_or(Value::Null),
                    "type": "custom",
                    "custom": {
                        "name": block.get("name").cloned().unwrap_or(Value::Null),
                        "input": custom::input_of(block.get("input")),
                    },
                }))
            }
            Some("tool_use") => calls.push(json!({
                "id": block.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": block.get("input").map_or_else(|| "{}".to_string(), Value::to_string),
                },
            })),
            _ => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert("content".into(), json!(text));
    message.insert("refusal".into(), Value::Null);
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let stop = anthropic_body.get("stop_reason").and_then(Value::as_str);
    let id = anthropic_body
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or(id);
    let mut out = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null,
                     "finish_reason": finish_reason(stop)}],
    });
    if let (Some(t), Some(obj)) = (
        anthropic_body.get("usage").and_then(tokens_from_usage),
        out.as_object_mut(),
    ) {
        obj.insert("usage".into(), openai_usage(&t));
    }
    out
}

/// OpenAI error `type` for an Anthropic error type, for in-band stream errors (§6.7).
pub fn openai_error_type(anthropic_type: &str) -> &'static str {
    match anthropic_type {
        "invalid_request_error" | "not_found_error" | "request_too_large" => {
            "invalid_request_error"
        }
        "rate_limit_error" => "requests",
        _ => "server_error",
    }
}

/// A non-stream Anthropic error response as the relay's error (§6.7). 401/403 concern the
/// relay's provider key and billing its account (R2.4); overload and 5xx are upstream outages;
/// other 4xx are about the request and reach the client as an OpenAI-shaped body.
pub fn error_from_anthropic(status: u16, body: &[u8]) -> RelayError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let kind = err
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string);
    match (status, kind) {
        (401 | 403, _) | (_, "authentication_error" | "permission_error") => {
            RelayError::UpstreamAuth
        }
        (402, _) | (_, "billing_error") => RelayError::UpstreamExhausted { quota: true },
        (529, _) | (_, "overloaded_error") => RelayError::UpstreamExhausted { quota: false },
        (504, _) | (_, "timeout_error") => RelayError::UpstreamTimeout,
        (400..=499, _) => {
            let message = message.unwrap_or_else(|| {
                format!("The upstream provider rejected the request with status {status}.")
            });
            let (kind, code) = match status {
                429 => ("requests", json!("rate_limit_exceeded")),
                413 => ("invalid_request_error", json!("request_too_large")),
                404 if message.to_ascii_lowercase().contains("model") => {
                    ("invalid_request_error", json!("model_not_found"))
                }
                _ => ("invalid_request_error", Value::Null),
            };
            let body =
                json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
            RelayError::UpstreamRejected {
                status,
                body: Some(body.to_string().into_bytes()),
                retry_after: None,
            }
        }
        _ => RelayError::UpstreamUnavailable(format!(
            "anthropic status {status}: {}",
            message.as_deref().unwrap_or("no message")
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::metering::usage::MAX_TOKENS;

    #[test]
    fn t26_usage_mapping() {
        let usage = json!({"input_tokens":400,"cache_creation_input_tokens":12,
            "cache_read_input_tokens":60,"output_tokens":89});
        let t = tokens_from_usage(&usage).unwrap();
        assert_eq!(
            t,
            Tokens {
                prompt: 472,
                completion: 89,
                cached: 60,
                cache_write: 12,
                reasoning: 0
            }
        );
        // Record buckets {input_uncached, cache_read, cache_write, output} = {400, 60, 12, 89}.
        assert_eq!(
            (
                t.prompt - t.cached - t.cache_write,
                t.cached,
                t.cache_write,
                t.completion
            ),
            (400, 60, 12, 89)
        );
        assert_eq!(
            openai_usage(&t),
            json!({"prompt_tokens":472,"completion_tokens":89,"total_tokens":561,
                "prompt_tokens_details":{"cached_tokens":60,"cache_write_tokens":12}})
        );
        // Missing or null cache fields count as 0; no input_tokens means no usage.
        let t = tokens_from_usage(
            &json!({"input_tokens":5,"cache_read_input_tokens":null,"output_tokens":1}),
        );
        assert_eq!(t.map(|t| (t.prompt, t.cached)), Some((5, 0)));
        assert_eq!(tokens_from_usage(&json!({"output_tokens":3})), None);
        assert_eq!(tokens_from_usage(&Value::Null), None);
    }

    #[test]
    fn huge_anthropic_counts_saturate() {
        // Panicked with overflow checks on, wrapped silently in release.
        let t = tokens_from_usage(
            &json!({"input_tokens": 1u64 << 63, "output_tokens": 1u64 << 63,
            "cache_read_input_tokens": u64::MAX, "cache_creation_input_tokens": 7}),
        )
        .unwrap();
        assert_eq!(
            t,
            Tokens {
                prompt: MAX_TOKENS,
                completion: MAX_TOKENS,
                cached: MAX_TOKENS,
                cache_write: 7,
                reasoning: 0
            }
        );
        assert_eq!(openai_usage(&t)["total_tokens"], MAX_TOKENS);
    }

    #[test]
    fn t27_finish_reason_table() {
        let rows = [
            (Some("end_turn"), "stop"),
            (Some("stop_sequence"), "stop"),
            (Some("max_tokens"), "length"),
            (Some("tool_use"), "tool_calls"),
            (Some("refusal"), "content_filter"),
            (Some("pause_turn"), "stop"),
            (Some("model_context_window_exceeded"), "length"),
            (None, "stop"),
            (Some("something_new"), "stop"),
        ];
        for (stop, want) in rows {
            assert_eq!(finish_reason(stop), want, "{stop:?}");
            let body = json!({"content":[],"stop_reason":stop});
            assert_eq!(
                to_chat_completion(&body, "x", 1, "m", &[])["choices"][0]["finish_reason"],
                want
            );
        }
    }

    #[test]
    fn non_stream_custom_tool_use_is_a_custom_call() {
        let body = json!({"id":"msg_1","content":[
            {"type":"text","text":"Patching."},
            {"type":"tool_use","id":"toolu_1","name":"ApplyPatch","input":{"input":"*** Begin Patch"}},
            {"type":"tool_use","id":"toolu_2","name":"f","input":{"a":1}}],
            "stop_reason":"tool_use","usage":{"input_tokens":3,"output_tokens":4}});
        let out = to_chat_completion(&body, "x", 1, "m", &["ApplyPatch".to_string()]);
        assert_eq!(
            out["choices"][0]["message"]["tool_calls"],
            json!([{"id":"toolu_1","type":"custom","custom":{"name":"ApplyPatch","input":"*** Begin Patch"}},
                   {"id":"toolu_2","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}])
        );
    }

    #[test]
    fn non_stream_response_section_6_2() {
        let anthropic = json!({"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant",
            "model":"claude-sonnet-4-5",
            "content":[
                {"type":"thinking","thinking":"hmm","signature":"s"},
                {"type":"text","text":"Okay, let's check the weather for San Francisco, CA:"},
                {"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather",
                 "input":{"location":"San Francisco, CA","unit":"fahrenheit"}}],
            "stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,
                     "output_tokens":89,"service_tier":"standard"}});
        let want = json!({"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion",
            "created":1741570283,"model":"relay-sonnet",
            "choices":[{"index":0,"logprobs":null,"finish_reason":"tool_calls",
                "message":{"role":"assistant","content":"Okay, let's check the weather for San Francisco, CA:","refusal":null,
                    "tool_calls":[{"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function",
                        "function":{"name":"get_weather","arguments":"{\"location\":\"San Francisco, CA\",\"unit\":\"fahrenheit\"}"}}]}}],
            "usage":{"prompt_tokens":472,"completion_tokens":89,"total_tokens":561,
                "prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":0}}});
        assert_eq!(
            to_chat_completion(&anthropic, "rly_1", 1741570283, "relay-sonnet", &[]),
            want
        );
        // No text blocks: content null, no tool_calls key; no Anthropic id: ours.
        let bare = json!({"content":[],"stop_reason":"end_turn"});
        let out = to_chat_completion(&bare, "rly_1", 5, "m", &[]);
        assert_eq!(out["id"], "rly_1");
        assert_eq!(
            out["choices"][0]["message"],
            json!({"role":"assistant","content":null,"refusal":null})
        );
        assert_eq!(out.get("usage"), None);
    }

    fn rejected_body(e: &RelayError) -> Value {
        serde_json::from_slice(&e.openai_body()).unwrap()
    }

    #[test]
    fn error_mapping_section_6_7() {
        let body = |t: &str, m: &str| {
            json!({"type":"error","error":{"type":t,"message":m},"request_id":"req_1"})
                .to_string()
                .into_bytes()
        };
        let e = error_from_anthropic(
            400,
            &body("invalid_request_error", "max_tokens: Field required"),
        );
        assert_eq!(e.status(), 400);
        assert_eq!(
            rejected_body(&e),
            json!({"error":{"message":"max_tokens: Field required","type":"invalid_request_error","param":null,"code":null}})
        );
        assert_eq!(
            error_from_anthropic(401, &body("authentication_error", "invalid x-api-key")),
            RelayError::UpstreamAuth
        );
        assert_eq!(
            error_from_anthropic(403, &body("permission_error", "no")),
            RelayError::UpstreamAuth
        );
        let e = error_from_anthropic(404, &body("not_found_error", "model: claude-x"));
        assert_eq!(
            rejected_body(&e),
            json!({"error":{"message":"model: claude-x","type":"invalid_request_error","param":null,"code":"model_not_found"}})
        );
        let e = error_from_anthropic(413, b"<html>too large</html>");
        assert_eq!(
            rejected_body(&e),
            json!({"error":{"message":"The upstream provider rejected the request with status 413.","type":"invalid_request_error","param":null,"code":"request_too_large"}})
        );
        let e = error_from_anthropic(429, &body("rate_limit_error", "slow down"));
        assert_eq!(e.status(), 429);
        assert_eq!(rejected_body(&e)["error"]["type"], "requests");
        assert_eq!(rejected_body(&e)["error"]["code"], "rate_limit_exceeded");
        let e = error_from_anthropic(529, &body("overloaded_error", "Overloaded"));
        assert_eq!((e.status(), e.code()), (503, "overloaded"));
        let e = error_from_anthropic(402, &body("billing_error", "pay"));
        assert_eq!((e.status(), e.code()), (503, "upstream_unavailable"));
        assert_eq!(
            error_from_anthropic(504, &body("timeout_error", "t")),
            RelayError::UpstreamTimeout
        );
        assert!(matches!(
            error_from_anthropic(500, &body("api_error", "boom")),
            RelayError::UpstreamUnavailable(_)
        ));
    }
}
