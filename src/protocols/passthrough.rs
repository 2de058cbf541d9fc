//! A native stream relayed to a client of the same protocol: every upstream byte passes
//! unchanged (`event:` lines included, R5.1) while a parsed copy feeds that protocol's meter,
//! and a stream the relay has to cut short gets the protocol's in-band error tail. Messages
//! (`messages::PassThrough`) and Responses (`responses::passthrough::PassThrough`) differ only
//! in their meter.

use crate::http::error::RelayError;
use crate::metering::usage::Outcome;
use crate::protocols::sse::{SseDecoder, SseEvent};
use crate::protocols::stream::{Relay, Settled};

/// What a pass-through needs from a protocol's stream meter.
pub trait StreamMeter: Default {
    fn observe_event(&mut self, ev: &SseEvent);
    /// The protocol's terminal event arrived, so upstream EOF now is a clean end.
    fn complete(&self) -> bool;
    /// The in-band tail that ends a stream the relay cuts short for `error`.
    fn tail(&self, error: &RelayError) -> Vec<u8>;
    fn settled(&self, prompt_chars: u64, cancelled: bool) -> Settled;
    /// The stored response the stream creates, once known (OpenAI's Responses only).
    fn response_id(&self) -> Option<&str> {
        None
    }
}

#[derive(Debug, Default)]
pub struct PassThrough<M> {
    decoder: SseDecoder,
    meter: M,
    ended: bool,
    truncated: bool,
    /// The client already has the first bytes of an unfinished event.
    open_event: bool,
    /// Write the usage row as soon as the response id is known, not only at the end.
    early_row: bool,
}

impl<M: StreamMeter> PassThrough<M> {
    pub fn new() -> Self {
        Self::default()
    }

    /// For a background Responses stream, whose response is meant to be retrieved or
    /// cancelled while it runs: the stored-response routes find its owner only once a row
    /// names it, so that row is written when the meter learns the id (one extra write, for
    /// background streams only). Other streams' rows are written at the end, as every
    /// stream's is.
    pub fn early_row(mut self, early: bool) -> Self {
        self.early_row = early;
        self
    }

    pub fn meter(&self) -> &M {
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
        out.extend(self.meter.tail(&error));
        out
    }
}

impl<M: StreamMeter> Relay for PassThrough<M> {
    fn feed(&mut self, chunk: Vec<u8>) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        match self.decoder.feed(&chunk) {
            Ok(events) => {
                for ev in &events {
                    self.meter.observe_event(ev);
                }
                self.open_event = self.decoder.mid_event();
                chunk
            }
            Err(_) => self.abort(),
        }
    }

    /// Upstream EOF: complete after a terminal event (anything after it, such as a trailing
    /// `[DONE]` some servers add, passed as it came); otherwise the failure tail.
    fn finish(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        if let Some(ev) = self.decoder.finish() {
            self.meter.observe_event(&ev);
        }
        if self.meter.complete() {
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
        self.meter.response_id()
    }

    fn take_early_row(&mut self) -> bool {
        let due = self.early_row && self.meter.response_id().is_some();
        if due {
            self.early_row = false;
        }
        due
    }

    fn settle(&self, prompt_chars: u64, cancelled: bool) -> Settled {
        let mut settled = self.meter.settled(prompt_chars, cancelled);
        if self.truncated && settled.outcome == Outcome::Ok {
            settled.outcome = Outcome::Truncated;
        }
        settled
    }
}
