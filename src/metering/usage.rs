//! The usage record (one per request, protocol.md §9.2), token buckets read from OpenAI `usage`
//! objects, and the chars/4 estimate used when no authoritative count arrives (§9.3).

use serde::Serialize;
use serde_json::Value;

use crate::http::error::RelayError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    UpstreamError,
    RelayError,
    ClientCancelled,
    Truncated,
    /// Refused by a spend or rate limit (`limit_scope`, `limit_name` say which); costs nothing.
    Limited,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::UpstreamError => "upstream_error",
            Outcome::RelayError => "relay_error",
            Outcome::ClientCancelled => "client_cancelled",
            Outcome::Truncated => "truncated",
            Outcome::Limited => "limited",
        }
    }

    /// A stream's outcome for its row. An upstream error wins; then a client that did not take
    /// the stream to its end, even if the upstream's end was seen (the relay reads ahead of the
    /// client, so that says nothing about what the client received); then whether the stream
    /// reached its protocol's end.
    pub fn of_stream(upstream_error: bool, cancelled: bool, complete: bool) -> Outcome {
        if upstream_error {
            Outcome::UpstreamError
        } else if cancelled {
            Outcome::ClientCancelled
        } else if complete {
            Outcome::Ok
        } else {
            Outcome::Truncated
        }
    }

    /// Which side failed, for the usage row of a request that ended in `e`. Here rather than
    /// on `RelayError`, so errors know nothing of metering.
    pub fn of_error(e: &RelayError) -> Outcome {
        match e {
            RelayError::UpstreamRejected { .. }
            | RelayError::UpstreamAuth
            | RelayError::UpstreamUnavailable(_)
            | RelayError::UpstreamExhausted { .. }
            | RelayError::UpstreamTimeout => Outcome::UpstreamError,
            RelayError::UpstreamStreamEnded => Outcome::Truncated,
            RelayError::Limited(_) => Outcome::Limited,
            _ => Outcome::RelayError,
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

/// The largest token count the relay records for one bucket of one request; a provider's
/// number above it (or a float, or one past `u64`) is clamped to it. 2^32 is hundreds of times
/// any context window, and D1's 10 GB cannot hold enough rows for a column's `SUM` of capped
/// values to reach `i64::MAX` (SQLite's SUM fails with "integer overflow" there).
pub const MAX_TOKENS: u64 = 1 << 32;

/// A provider's token count as the relay trusts it: a non-negative JSON number, clamped to
/// `MAX_TOKENS` (negative counts are 0). None when the value is not a number.
pub fn token_count(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n.min(MAX_TOKENS));
    }
    let f = v.as_f64()?;
    Some(if f.is_nan() || f <= 0.0 {
        0
    } else if f >= MAX_TOKENS as f64 {
        MAX_TOKENS
    } else {
        f as u64
    })
}

/// `a + b` for token counts, clamped like every count.
pub fn add_tokens(a: u64, b: u64) -> u64 {
    a.saturating_add(b).min(MAX_TOKENS)
}

impl Tokens {
    /// Reads an OpenAI `usage` object; None when it is absent, null or lacks the required counts.
    pub fn from_openai(usage: &Value) -> Option<Tokens> {
        let prompt = token_count(usage.get("prompt_tokens")?)?;
        let completion = usage
            .get("completion_tokens")
            .and_then(token_count)
            .unwrap_or(0);
        let detail = |outer: &str, inner: &str| {
            usage
                .get(outer)
                .and_then(|d| d.get(inner))
                .and_then(token_count)
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

    /// Every bucket clamped to `MAX_TOKENS`, as a row stores them.
    pub fn capped(self) -> Tokens {
        Tokens {
            prompt: self.prompt.min(MAX_TOKENS),
            completion: self.completion.min(MAX_TOKENS),
            cached: self.cached.min(MAX_TOKENS),
            cache_write: self.cache_write.min(MAX_TOKENS),
            reasoning: self.reasoning.min(MAX_TOKENS),
        }
    }

    /// `prompt + completion`, for the `total_tokens` a client is shown.
    pub fn total(&self) -> u64 {
        add_tokens(self.prompt, self.completion)
    }
}

/// The upstream's counts when it sent them, else the chars/4 estimate (§9.3).
pub fn counted_or_estimated(
    usage: Option<Tokens>,
    prompt_chars: u64,
    completion_chars: u64,
) -> (Tokens, UsageSource) {
    match usage {
        Some(tokens) => (tokens, UsageSource::Upstream),
        None => (
            Tokens::estimated(prompt_chars, completion_chars),
            UsageSource::Estimated,
        ),
    }
}

/// ceil(chars / 4): the documented heuristic of §9.3, in Unicode scalar values.
pub fn estimate_tokens(chars: u64) -> u64 {
    chars.div_ceil(4).min(MAX_TOKENS)
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
    /// The OpenAI response this request created (`resp_…`), which only this row's key may then
    /// retrieve, cancel or delete (`responses::owner`).
    pub response_id: Option<String>,
    /// For an `outcome = limited` row: the scope (`key`/`user`/`team`) and the limit
    /// (`budget`, `rpm`, `tpm`, `max_parallel`, `unpriced`, `unavailable`) that refused it.
    pub limit_scope: Option<String>,
    pub limit_name: Option<String>,
    pub started_at: String,
    pub ttfb_ms: Option<u64>,
    pub duration_ms: u64,
    /// What the response cache did; None when caching was not in play (issue 17).
    pub cache: Option<crate::cache::Status>,
    /// On a hit: what the answer would have cost (its `cost_usd` is 0). Set when written.
    pub saved_usd: Option<f64>,
}

/// Longest path the row keeps: every real route is far shorter, and the rest of a long
/// (possibly unauthenticated) path says nothing a prefix does not.
pub const MAX_ROUTE_CHARS: usize = 512;
/// Longest value of any other text column. Client-chosen values are refused or clipped before
/// this (`model` at 256); this bounds the provider's and config's strings too, so no row can
/// grow past a few kilobytes whatever the request or the answer held.
pub const MAX_TEXT_CHARS: usize = 256;
const MAX_METHOD_CHARS: usize = 16;

/// `s` cut to at most `max` characters, on a character boundary.
fn clip(s: &mut String, max: usize) {
    if let Some((at, _)) = s.char_indices().nth(max) {
        s.truncate(at);
    }
}

impl UsageRecord {
    /// A row for a request that has not reached any provider yet; the flow fills in the rest.
    pub fn begin(request_id: &str, method: &str, route: &str, started_at: String) -> Self {
        let (mut method, mut route) = (method.to_string(), route.to_string());
        clip(&mut method, MAX_METHOD_CHARS);
        clip(&mut route, MAX_ROUTE_CHARS);
        UsageRecord {
            request_id: request_id.to_string(),
            key_id: None,
            team: None,
            user: None,
            method,
            route,
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
            response_id: None,
            limit_scope: None,
            limit_name: None,
            started_at,
            ttfb_ms: None,
            duration_ms: 0,
            cache: None,
            saved_usd: None,
        }
    }

    /// The record with every text column within its cap, as it is written to the table.
    pub fn bounded(mut self) -> Self {
        clip(&mut self.method, MAX_METHOD_CHARS);
        clip(&mut self.route, MAX_ROUTE_CHARS);
        for text in [
            &mut self.key_id,
            &mut self.team,
            &mut self.user,
            &mut self.model_requested,
            &mut self.model_upstream,
            &mut self.provider,
            &mut self.error_code,
            &mut self.finish_reason,
            &mut self.upstream_request_id,
            &mut self.client_shape,
            &mut self.response_id,
            &mut self.limit_scope,
            &mut self.limit_name,
        ]
        .into_iter()
        .flatten()
        {
            clip(text, MAX_TEXT_CHARS);
        }
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_error_is_counted_against_the_side_that_failed() {
        // Moved from http::error's upstream_auth_is_502_not_401.
        assert_eq!(
            Outcome::of_error(&RelayError::UpstreamAuth),
            Outcome::UpstreamError
        );
        assert_eq!(
            Outcome::of_error(&RelayError::UpstreamStreamEnded),
            Outcome::Truncated
        );
        assert_eq!(
            Outcome::of_error(&RelayError::Internal("x".into())),
            Outcome::RelayError
        );
        let refused = crate::limits::answer::unavailable(&crate::limits::Scope::Team("t".into()));
        assert_eq!(
            Outcome::of_error(&RelayError::Limited(Box::new(refused))),
            Outcome::Limited
        );
        assert_eq!(Outcome::Limited.as_str(), "limited");
    }

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
    fn provider_counts_are_clamped_not_trusted() {
        let huge = json!({"prompt_tokens": u64::MAX, "completion_tokens": 1e300,
            "prompt_tokens_details": {"cached_tokens": 18446744073709551616.0_f64},
            "completion_tokens_details": {"reasoning_tokens": -5}});
        let t = Tokens::from_openai(&huge).unwrap();
        assert_eq!(
            t,
            Tokens {
                prompt: MAX_TOKENS,
                completion: MAX_TOKENS,
                cached: MAX_TOKENS,
                cache_write: 0,
                reasoning: 0
            }
        );
        assert_eq!(t.total(), MAX_TOKENS);
        let t =
            Tokens::from_openai(&json!({"prompt_tokens": 12.0, "completion_tokens": 3})).unwrap();
        assert_eq!((t.prompt, t.completion), (12, 3));
        assert_eq!(Tokens::from_openai(&json!({"prompt_tokens": "12"})), None);
        assert_eq!(estimate_tokens(u64::MAX), MAX_TOKENS);
        // D1 stores i64 and sums them: 10 GB of rows (each far over 100 bytes) of capped
        // counts cannot reach i64::MAX.
        let max_rows = 10u64 * 1024 * 1024 * 1024 / 100;
        assert!(max_rows.checked_mul(MAX_TOKENS).unwrap() < i64::MAX as u64);
    }

    #[test]
    fn every_text_column_is_bounded() {
        let long_path = format!("/v1/{}", "p".repeat(8000));
        let rec = UsageRecord::begin("req_1", &"M".repeat(100), &long_path, "t".to_string());
        assert_eq!(rec.route.chars().count(), MAX_ROUTE_CHARS);
        assert!(rec.route.starts_with("/v1/ppp"));
        assert_eq!(rec.method.len(), MAX_METHOD_CHARS);
        let mut rec = rec;
        rec.model_requested = Some("é".repeat(5000));
        rec.finish_reason = Some("x".repeat(5000));
        rec.upstream_request_id = Some("r".repeat(5000));
        rec.route = "/v1/".repeat(1000);
        let b = rec.bounded();
        assert_eq!(b.route.chars().count(), MAX_ROUTE_CHARS);
        // Cut on a character boundary, never inside a multibyte one.
        assert_eq!(
            b.model_requested.as_deref(),
            Some("é".repeat(MAX_TEXT_CHARS).as_str())
        );
        assert_eq!(b.finish_reason.map(|s| s.len()), Some(MAX_TEXT_CHARS));
        assert_eq!(b.upstream_request_id.map(|s| s.len()), Some(MAX_TEXT_CHARS));
        let short = UsageRecord::begin("req_2", "POST", "/v1/chat/completions", "t".into());
        assert_eq!(short.clone().bounded(), short);
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
