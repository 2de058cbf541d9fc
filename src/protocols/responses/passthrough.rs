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
use crate::metering::usage::{Outcome, Tokens, UsageSource};
use crate::protocols::sse::{SseDecoder, SseEvent};
use crate::protocols::stream::{Relay, Settled};

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
        let outcome = if self.upstream_error.is_some() {
            Outcome::UpstreamError
        } else if cancelled {
            Outcome::ClientCancelled
        } else if self.terminal.is_some() {
            Outcome::Ok
        } else {
            Outcome::Truncated
        };
        match self.usage {
            Some(tokens) => (outcome, tokens, UsageSource::Upstream),
            None => (
                outcome,
                Tokens::estimated(prompt_chars, self.completion_chars),
                UsageSource::Estimated,
            ),
        }
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

#[derive(Debug, Default)]
pub struct PassThrough {
    decoder: SseDecoder,
    meter: Meter,
    ended: bool,
    truncated: bool,
    /// The client already has the first bytes of an unfinished event.
    open_event: bool,
    /// Write the usage row as soon as the response id is known, not only at the end.
    early_row: bool,
}

impl PassThrough {
    pub fn new() -> Self {
        Self::default()
    }

    /// For a background stream, whose response is meant to be retrieved or cancelled while it
    /// runs: the stored-response routes find its owner only once a row names it, so that row
    /// is written when `response.created` arrives (one extra write, for background streams
    /// only). Other streams' rows are written at the end, as every stream's is.
    pub fn early_row(mut self, early: bool) -> Self {
        self.early_row = early;
        self
    }

    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    fn tail(&mut self, error: RelayError) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        self.truncated = true;
        let mut out = Vec::new();
        if self.open_event {
            out.extend_from_slice(b"\n\n");
        }
        let body = serde_json::from_slice::<Value>(&error.openai_body()).unwrap_or(Value::Null);
        let (code, message) = error_fields(&body);
        let response = self.meter.created.clone().unwrap_or_else(|| {
            obj(vec![
                ("id", Value::Null),
                ("object", "response".into()),
                ("output", Value::Array(Vec::new())),
                ("usage", Value::Null),
            ])
        });
        out.extend(failure_tail(response, &code, &message, self.meter.events));
        out
    }
}

impl Relay for PassThrough {
    fn feed(&mut self, chunk: Vec<u8>) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        match self.decoder.feed(&chunk) {
            Ok(events) => {
                for ev in &events {
                    self.meter.observe(ev);
                }
                self.open_event = self.decoder.mid_event();
                chunk
            }
            Err(_) => self.abort(),
        }
    }

    /// Upstream EOF: complete after a terminal event (a trailing `[DONE]`, which some servers
    /// add, passes as it came); otherwise the failure tail.
    fn finish(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        if let Some(ev) = self.decoder.finish() {
            self.meter.observe(&ev);
        }
        if self.meter.terminal.is_some() {
            self.ended = true;
            return Vec::new();
        }
        self.tail(RelayError::UpstreamStreamEnded)
    }

    fn abort(&mut self) -> Vec<u8> {
        self.tail(RelayError::UpstreamStreamEnded)
    }

    fn timeout(&mut self) -> Vec<u8> {
        self.tail(RelayError::UpstreamTimeout)
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn response_id(&self) -> Option<&str> {
        self.meter.response_id.as_deref()
    }

    fn take_early_row(&mut self) -> bool {
        let due = self.early_row && self.meter.response_id.is_some();
        if due {
            self.early_row = false;
        }
        due
    }

    fn settle(&self, prompt_chars: u64, cancelled: bool) -> Settled {
        let (mut outcome, tokens, source) = self.meter.settle(prompt_chars, cancelled);
        if self.truncated && outcome == Outcome::Ok {
            outcome = Outcome::Truncated;
        }
        Settled {
            outcome,
            tokens,
            source,
            finish_reason: self.meter.terminal.clone(),
            upstream_error: self.meter.upstream_error.clone(),
        }
    }
}
