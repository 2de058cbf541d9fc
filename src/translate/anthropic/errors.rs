//! Provider errors on the A→O path (protocol.md §6.7): an OpenAI-format provider refuses a
//! translated Messages request, and the Anthropic client gets that refusal in its own shape with
//! the provider's own words — "max_tokens is too large: …" tells a user what to change, "the
//! upstream rejected the request with status 400" does not.

use serde_json::Value;

use crate::http::error::RelayError;

/// Longest provider message passed on: provider bytes are untrusted, and a message is a sentence,
/// not a document.
const MAX_MESSAGE_CHARS: usize = 2_000;

/// The human-readable message of a provider's error body, in the shapes OpenAI-compatible
/// servers use: `{"error":{"message"}}` (OpenAI), `{"error":"…"}`, and a top-level `message`
/// or `detail` (vLLM, FastAPI-based servers). None when the body is not JSON or has none.
pub fn provider_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    fn text(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str).map(str::trim)
    }
    let err = v.get("error");
    let message = text(err.and_then(|e| e.get("message")))
        .or_else(|| text(err))
        .or_else(|| text(v.get("message")))
        .or_else(|| text(v.get("detail")))
        .filter(|m| !m.is_empty())?;
    Some(message.chars().take(MAX_MESSAGE_CHARS).collect())
}

/// An OpenAI-format provider's error answer, as Anthropic clients must see it. Status rules are
/// those of every route (R2.4: the relay's own key and quota are never the client's business);
/// what changes is the body, which is Anthropic's shape with the provider's message. A 503 is
/// Anthropic's 529 `overloaded_error`, which Anthropic SDKs retry.
pub fn from_openai_provider(status: u16, body: Vec<u8>, retry_after: Option<String>) -> RelayError {
    let message = provider_message(&body);
    if status == 503 {
        return RelayError::UpstreamRejected {
            status: 529,
            body: Some(anthropic_error(
                "overloaded_error",
                message
                    .as_deref()
                    .unwrap_or("The upstream provider is overloaded."),
            )),
            retry_after,
        };
    }
    match RelayError::from_upstream_status(status, body, retry_after) {
        RelayError::UpstreamRejected {
            status,
            retry_after,
            ..
        } => RelayError::UpstreamRejected {
            status,
            body: message.map(|m| anthropic_error(anthropic_type(status), &m)),
            retry_after,
        },
        other => other,
    }
}

/// §6.7's OpenAI status → Anthropic `type` for the 4xx that reach the client.
fn anthropic_type(status: u16) -> &'static str {
    match status {
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        _ => "invalid_request_error",
    }
}

fn anthropic_error(kind: &str, message: &str) -> Vec<u8> {
    // `kind` is one of the fixed names above; the message is quoted as a JSON string.
    format!(
        "{{\"type\":\"error\",\"error\":{{\"type\":\"{kind}\",\"message\":{}}}}}",
        Value::String(message.to_string())
    )
    .into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn anthropic(e: &RelayError) -> Value {
        serde_json::from_slice(&e.anthropic_body()).unwrap()
    }

    const TOO_LARGE: &str = "max_tokens is too large: 32000. This model supports at most 16384 completion tokens, whereas you provided 32000.";

    #[test]
    fn openai_400_keeps_the_providers_words() {
        let body = json!({"error":{"message":TOO_LARGE,"type":"invalid_request_error",
            "param":"max_tokens","code":"invalid_value"}});
        let e = from_openai_provider(400, body.to_string().into_bytes(), None);
        assert_eq!(e.status(), 400);
        assert_eq!(
            anthropic(&e),
            json!({"type":"error","error":{"type":"invalid_request_error","message":TOO_LARGE}})
        );
    }

    #[test]
    fn statuses_and_types_follow_section_6_7() {
        let body = |m: &str| json!({"error":{"message":m,"type":"x","param":null,"code":null}});
        let rows = [
            (404, 404, "not_found_error"),
            (413, 413, "request_too_large"),
            (422, 422, "invalid_request_error"),
            (429, 429, "rate_limit_error"),
            (503, 529, "overloaded_error"),
        ];
        for (from, to, kind) in rows {
            let e = from_openai_provider(from, body("said so").to_string().into_bytes(), None);
            assert_eq!(e.status(), to, "{from}");
            assert_eq!(
                anthropic(&e),
                json!({"type":"error","error":{"type":kind,"message":"said so"}}),
                "{from}"
            );
        }
        // The relay's own provider key and quota stay the relay's business (R2.4).
        let auth = from_openai_provider(
            401,
            body("Incorrect API key").to_string().into_bytes(),
            None,
        );
        assert_eq!(auth, RelayError::UpstreamAuth);
        let quota = json!({"error":{"message":"q","type":"insufficient_quota","code":"insufficient_quota"}});
        assert_eq!(
            from_openai_provider(429, quota.to_string().into_bytes(), None).status(),
            503
        );
        let retry =
            from_openai_provider(429, body("slow").to_string().into_bytes(), Some("2".into()));
        assert_eq!(retry.headers(), vec![("retry-after", "2".to_string())]);
    }

    #[test]
    fn other_provider_shapes_and_non_json() {
        let rows: [(&[u8], Option<&str>); 6] = [
            (br#"{"error":"model gpt-x not loaded"}"#, Some("model gpt-x not loaded")),
            (br#"{"object":"error","message":"bad role","type":"BadRequestError","param":null,"code":400}"#, Some("bad role")),
            (br#"{"detail":"Field required: messages"}"#, Some("Field required: messages")),
            (br#"{"error":{"message":"  "}}"#, None),
            (b"<html>Bad Request</html>", None),
            (b"", None),
        ];
        for (body, want) in rows {
            assert_eq!(provider_message(body).as_deref(), want);
        }
        // No message: the relay's generic words, still in Anthropic's shape.
        let e = from_openai_provider(400, b"<html>".to_vec(), None);
        assert_eq!(anthropic(&e)["error"]["type"], "invalid_request_error");
        assert_eq!(
            anthropic(&e)["error"]["message"],
            "The upstream provider rejected the request with status 400."
        );
        let long = json!({"error":{"message":"x".repeat(5000)}}).to_string();
        assert_eq!(
            provider_message(long.as_bytes()).map(|m| m.chars().count()),
            Some(MAX_MESSAGE_CHARS)
        );
    }
}
