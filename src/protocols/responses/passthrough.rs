//! Native Responses streams from OpenAI relayed to the client byte for byte (R4.1, `event:`
//! lines kept) while a parsed copy is metered: usage from the terminal event's
//! `response.usage`, the outcome from which terminal event came. A stream that stops before one
//! gets an `error` event and `response.failed` at the end (protocol.md §4), numbered after the
//! upstream's last event.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::{error_fields, failure_tail, obj, owner, tokens_from_usage};
use crate::http::error::RelayError;
use crate::metering::usage::{counted_or_estimated, Outcome, Tokens, UsageSource};
use crate::protocols::passthrough::StreamMeter;
use crate::protocols::sse::SseEvent;
use crate::protocols::stream::Settled;

/// What a Responses stream taught us, read when the usage row is written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meter {
    /// The terminal event's `response.status` (`completed`, `incomplete`, `failed`).
    pub terminal: Option<String>,
    pub usage: Option<Tokens>,
    pub completion_chars: u64,
    pub upstream_error: Option<String>,
    pub events: u64,
    /// The `response` of `response.created`: what a relay-written `response.failed` repeats.
    pub created: Option<Value>,
    /// The id of the response being created, from `response.created` (else the terminal
    /// event): the usage row records it as the response's owner (`owner`).
    pub response_id: Option<String>,
}

impl Meter {
    pub fn observe(&mut self, ev: &SseEvent) {
        self.events += 1;
        let name = ev.event.as_deref();
        // Deltas are the bulk of a stream and carry no usage: their text is counted for the
        // estimate without parsing them. An event without an `event:` line is parsed in full.
        if matches!(name, Some(n) if n.ends_with(".delta")) {
            if let Ok(d) = serde_json::from_str::<Delta<'_>>(&ev.data) {
                let chars = d.delta.map_or(0, |t| t.chars().count() as u64);
                self.completion_chars = self.completion_chars.saturating_add(chars);
            }
            return;
        }
        if name.is_some_and(|n| !is_read(n)) {
            return;
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "response.created" => {
                self.created = v.get("response").cloned();
                if self.response_id.is_none() {
                    self.response_id = v.get("response").and_then(owner::response_id);
                }
            }
            "error" => {
                let (code, _) = error_fields(&v);
                self.upstream_error.get_or_insert(code);
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let r = v.get("response");
                if self.response_id.is_none() {
                    self.response_id = r.and_then(owner::response_id);
                }
                if let Some(tokens) = r.and_then(|r| r.get("usage")).and_then(tokens_from_usage) {
                    self.usage = Some(tokens);
                }
                let status = r.and_then(|r| r.get("status")).and_then(Value::as_str);
                self.terminal = Some(
                    status
                        .unwrap_or(kind.trim_start_matches("response."))
                        .to_string(),
                );
                if kind == "response.failed" {
                    let code = r
                        .and_then(|r| r.get("error"))
                        .filter(|e| !e.is_null())
                        .map(|e| error_fields(e).0)
                        .unwrap_or_else(|| "response_failed".to_string());
                    self.upstream_error = Some(code);
                }
            }
            _ => {}
        }
    }

    pub fn settle(&self, prompt_chars: u64, cancelled: bool) -> (Outcome, Tokens, UsageSource) {
        // As on Chat, a client that did not take the stream to its end wins over the terminal
        // event: the relay reads ahead of the client.
        let outcome = Outcome::of_stream(
            self.upstream_error.is_some(),
            cancelled,
            self.terminal.is_some(),
        );
        let (tokens, source) =
            counted_or_estimated(self.usage, prompt_chars, self.completion_chars);
        (outcome, tokens, source)
    }
}

/// A delta event, read as JSON for its text only (escapes decoded, nothing else kept).
#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    delta: Option<Cow<'a, str>>,
}

/// Events the meter parses: the lifecycle ones and errors.
fn is_read(name: &str) -> bool {
    matches!(
        name,
        "response.created"
            | "response.completed"
            | "response.incomplete"
            | "response.failed"
            | "error"
    )
}

/// OpenAI's Responses stream to a Responses client, metered by `Meter`.
pub type PassThrough = crate::protocols::passthrough::PassThrough<Meter>;

impl StreamMeter for Meter {
    fn observe_event(&mut self, ev: &SseEvent) {
        self.observe(ev);
    }

    fn complete(&self) -> bool {
        self.terminal.is_some()
    }

    /// `error` and `response.failed`, numbered after the upstream's last event, repeating the
    /// `response.created` object when there was one.
    fn tail(&self, error: &RelayError) -> Vec<u8> {
        let body = serde_json::from_slice::<Value>(&error.openai_body()).unwrap_or(Value::Null);
        let (code, message) = error_fields(&body);
        let response = self.created.clone().unwrap_or_else(|| {
            obj(vec![
                ("id", Value::Null),
                ("object", "response".into()),
                ("output", Value::Array(Vec::new())),
                ("usage", Value::Null),
            ])
        });
        failure_tail(response, &code, &message, self.events)
    }

    fn settled(&self, prompt_chars: u64, cancelled: bool) -> Settled {
        let (outcome, tokens, source) = self.settle(prompt_chars, cancelled);
        Settled {
            outcome,
            tokens,
            source,
            finish_reason: self.terminal.clone(),
            upstream_error: self.upstream_error.clone(),
        }
    }

    fn response_id(&self) -> Option<&str> {
        self.response_id.as_deref()
    }
}
