//! The usage record (one per request, protocol.md §9.2), token buckets read from OpenAI `usage`
//! objects, and the chars/4 estimate used when no authoritative count arrives (§9.3).

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    UpstreamError,
    RelayError,
    ClientCancelled,
    Truncated,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::RelayError => "relay_error",
            Outcome::ClientCancelled => "client_cancelled",
            Outcome::Truncated => "truncated",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    Upstream,
    Estimated,
    None,
}

impl UsageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSource::Upstream => "upstream",
            UsageSource::Estimated => "estimated",
            UsageSource::None => "none",
        }
    }
}

/// Token counts as the provider reports them; cached and reasoning are subsets kept apart
/// (cached ⊂ prompt, reasoning ⊂ completion) so billing can price them separately.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    pub cached: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

impl Tokens {
    /// Reads an OpenAI `usage` object; None when it is absent, null or lacks the required counts.
    pub fn from_openai(usage: &Value) -> Option<Tokens> {
        let prompt = usage.get("prompt_tokens")?.as_u64()?;
        let completion = usage
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let detail = |outer: &str, inner: &str| {
            usage
                .get(outer)
                .and_then(|d| d.get(inner))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        Some(Tokens {
            prompt,
            completion,
            cached: detail("prompt_tokens_details", "cached_tokens"),
            cache_write: detail("prompt_tokens_details", "cache_write_tokens"),
            reasoning: detail("completion_tokens_details", "reasoning_tokens"),
        })
    }

    /// Tokens for text we saw but the provider did not count for us.
    pub fn estimated(prompt_chars: u64, completion_chars: u64) -> Tokens {
        Tokens {
            prompt: estimate_tokens(prompt_chars),
            completion: estimate_tokens(completion_chars),
            ..Tokens::default()
        }
    }
}

/// ceil(chars / 4): the documented heuristic of §9.3, in Unicode scalar values.
pub fn estimate_tokens(chars: u64) -> u64 {
    chars.div_ceil(4)
}

/// One row of the `usage` table. Fields are plain so the D1 glue binds them in one place.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRecord {
    pub request_id: String,
    pub key_id: Option<String>,
    pub team: Option<String>,
    pub user: Option<String>,
    pub method: String,
    pub route: String,
    pub model_requested: Option<String>,
    pub model_upstream: Option<String>,
    pub provider: Option<String>,
    pub stream: bool,
    pub status: u16,
    pub outcome: Outcome,
    pub error_code: Option<String>,
    pub finish_reason: Option<String>,
    pub tokens: Tokens,
    pub usage_source: UsageSource,
    /// Set when the row is written, from the price table; None when the model has no price.
    pub cost_usd: Option<f64>,
    pub upstream_request_id: Option<String>,
    /// Upstream attempts made (retries and fallbacks); 0 when no provider was called.
    pub attempts: u32,
    /// The body's shape: `chat` / `responses_in_chat` on Chat, `responses` on `/v1/responses`.
    pub client_shape: Option<String>,
    pub started_at: String,
    pub ttfb_ms: Option<u64>,
    pub duration_ms: u64,
}

impl UsageRecord {
    /// A row for a request that has not reached any provider yet; the flow fills in the rest.
    pub fn begin(request_id: &str, method: &str, route: &str, started_at: String) -> Self {
        UsageRecord {
            request_id: request_id.to_string(),
            key_id: None,
            team: None,
            user: None,
            method: method.to_string(),
            route: route.to_string(),
            model_requested: None,
            model_upstream: None,
            provider: None,
            stream: false,
            status: 0,
            outcome: Outcome::Ok,
            error_code: None,
            finish_reason: None,
            tokens: Tokens::default(),
            usage_source: UsageSource::None,
            cost_usd: None,
            upstream_request_id: None,
            attempts: 0,
            client_shape: None,
            started_at,
            ttfb_ms: None,
            duration_ms: 0,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_all_openai_buckets() {
        let u = json!({"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,
            "prompt_tokens_details":{"cached_tokens":64,"cache_write_tokens":3},
            "completion_tokens_details":{"reasoning_tokens":5}});
        assert_eq!(
            Tokens::from_openai(&u),
            Some(Tokens {
                prompt: 82,
                completion: 17,
                cached: 64,
                cache_write: 3,
                reasoning: 5
            })
        );
    }

    #[test]
    fn null_or_partial_usage_is_none() {
        assert_eq!(Tokens::from_openai(&Value::Null), None);
        assert_eq!(Tokens::from_openai(&json!({"total_tokens":3})), None);
        let embeddings = Tokens::from_openai(&json!({"prompt_tokens":8,"total_tokens":8})).unwrap();
        assert_eq!(embeddings.completion, 0);
    }

    #[test]
    fn estimate_rounds_up() {
        assert_eq!(estimate_tokens(0), 0);
        assert_eq!(estimate_tokens(1), 1);
        assert_eq!(estimate_tokens(8), 2);
        assert_eq!(estimate_tokens(9), 3);
        assert_eq!(Tokens::estimated(9, 4).completion, 1);
    }
}
