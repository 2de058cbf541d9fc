//! What an Anthropic Messages stream or body says about usage (protocol.md §5.4, §6.4, R9.1):
//! the raw `usage` counts, and `AnthropicMeter`, which reads a stream's events for the row.

use serde_json::Value;

use crate::metering::usage::{
    add_tokens, estimate_tokens, token_count, Outcome, Tokens, UsageSource,
};
use crate::protocols::sse::SseEvent;

/// Anthropic's raw token counts, kept apart because they are priced differently (§6.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    /// Overwrites every count present and non-null in `usage`: stream counts are cumulative, so
    /// a later value replaces an earlier one and is never added to it (R9.1).
    pub fn overwrite(&mut self, usage: &Value) {
        let fields = [
            ("input_tokens", &mut self.input_tokens),
            (
                "cache_creation_input_tokens",
                &mut self.cache_creation_input_tokens,
            ),
            ("cache_read_input_tokens", &mut self.cache_read_input_tokens),
            ("output_tokens", &mut self.output_tokens),
        ];
        for (name, slot) in fields {
            if let Some(n) = usage.get(name).and_then(token_count) {
                *slot = n;
            }
        }
    }

    /// Our buckets: `prompt` includes cache reads and writes, as OpenAI's `prompt_tokens` does.
    pub fn tokens(&self) -> Tokens {
        Tokens {
            prompt: add_tokens(
                add_tokens(self.input_tokens, self.cache_creation_input_tokens),
                self.cache_read_input_tokens,
            ),
            completion: self.output_tokens,
            cached: self.cache_read_input_tokens,
            cache_write: self.cache_creation_input_tokens,
            reasoning: 0,
        }
    }
}

/// Reads an Anthropic `usage` object; None when it is absent or lacks `input_tokens`.
pub fn tokens_from_usage(usage: &Value) -> Option<Tokens> {
    token_count(usage.get("input_tokens")?)?;
    let mut u = Usage::default();
    u.overwrite(usage);
    Some(u.tokens())
}

/// What an Anthropic stream taught us, read when the usage row is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnthropicMeter {
    /// `message_stop` arrived: the stream is complete.
    pub saw_stop: bool,
    /// Raw counts from `message_start`, each overwritten by later `message_delta`s (R9.1).
    pub usage: Option<Usage>,
    /// A `message_delta` carried `output_tokens`, so the count is no longer the placeholder
    /// `message_start` holds.
    pub output_final: bool,
    /// Characters of text, tool-input JSON and thinking, for the estimate.
    pub completion_chars: u64,
    pub stop_reason: Option<String>,
    /// `error.type` of an in-band `event: error`.
    pub upstream_error: Option<String>,
    pub events: u64,
}

impl AnthropicMeter {
    pub fn observe(&mut self, ev: &SseEvent) {
        let parsed = serde_json::from_str::<Value>(&ev.data).unwrap_or(Value::Null);
        let kind = event_kind(ev, &parsed).to_string();
        self.observe_parsed(&kind, &parsed);
    }

    /// `observe` for an event the caller has already parsed.
    pub(crate) fn observe_parsed(&mut self, kind: &str, v: &Value) {
        self.events += 1;
        let chars = |s: Option<&Value>| s.and_then(Value::as_str).map_or(0, |s| s.chars().count());
        match kind {
            "message_start" => {
                if let Some(u) = v.get("message").and_then(|m| m.get("usage")) {
                    let mut usage = Usage::default();
                    usage.overwrite(u);
                    self.usage = Some(usage);
                }
            }
            "content_block_start" => {
                let block = v.get("content_block");
                self.completion_chars += chars(block.and_then(|b| b.get("text"))) as u64;
            }
            "content_block_delta" => {
                let d = v.get("delta");
                let n = ["text", "partial_json", "thinking"]
                    .iter()
                    .map(|k| chars(d.and_then(|d| d.get(*k))))
                    .sum::<usize>();
                self.completion_chars += n as u64;
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(r.to_string());
                }
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    self.usage.get_or_insert_with(Usage::default).overwrite(u);
                    self.output_final |= u
                        .get("output_tokens")
                        .and_then(crate::metering::usage::token_count)
                        .is_some();
                }
            }
            "message_stop" => self.saw_stop = true,
            "error" => {
                let kind = v.pointer("/error/type").and_then(Value::as_str);
                self.upstream_error = Some(kind.unwrap_or("error").to_string());
            }
            _ => {}
        }
    }

    /// Outcome and tokens for the row, as `StreamMeter::settle`, with `message_stop` as the
    /// terminal marker. When the stream died before any `message_delta`, the input counts are
    /// still the upstream's but the output is estimated, since `message_start`'s is a placeholder.
    pub fn settle(&self, prompt_chars: u64, cancelled: bool) -> (Outcome, Tokens, UsageSource) {
        let outcome = Outcome::of_stream(self.upstream_error.is_some(), cancelled, self.saw_stop);
        let estimate = estimate_tokens(self.completion_chars);
        match self.usage {
            Some(u) if self.output_final => (outcome, u.tokens(), UsageSource::Upstream),
            Some(u) => {
                let mut t = u.tokens();
                t.completion = t.completion.max(estimate);
                (outcome, t, UsageSource::Estimated)
            }
            None => (
                outcome,
                Tokens::estimated(prompt_chars, self.completion_chars),
                UsageSource::Estimated,
            ),
        }
    }
}

/// The event type: `data.type`, which equals the `event:` name on a well-formed stream.
pub(crate) fn event_kind<'a>(ev: &'a SseEvent, parsed: &'a Value) -> &'a str {
    parsed
        .get("type")
        .and_then(Value::as_str)
        .or(ev.event.as_deref())
        .unwrap_or("")
}
