//! Native Anthropic Messages streams relayed to Anthropic clients: every upstream byte passes
//! unchanged (`event:` lines included, R5.1) while a parsed copy feeds the Anthropic meter, and
//! a stream that stops before `message_stop` gets one Anthropic `event: error` at the end.

use crate::protocols::sse::SseDecoder;
use crate::protocols::stream::{Relay, Settled};
use crate::translate::anthropic::AnthropicMeter;

/// The tail for a truncated Anthropic stream (R8.16): the SDK raises on `event: error`.
pub const TRUNCATED_TAIL: &[u8] = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Upstream stream ended unexpectedly.\"}}\n\n";

#[derive(Debug, Default)]
pub struct PassThrough {
    decoder: SseDecoder,
    meter: AnthropicMeter,
    ended: bool,
    truncated: bool,
    /// The client already has the first bytes of an unfinished event.
    open_event: bool,
}

impl PassThrough {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn meter(&self) -> &AnthropicMeter {
        &self.meter
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

    fn finish(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        if let Some(ev) = self.decoder.finish() {
            self.meter.observe(&ev);
        }
        if self.meter.saw_stop {
            self.ended = true;
            return Vec::new();
        }
        self.abort()
    }

    fn abort(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        self.truncated = true;
        let mut out = Vec::new();
        if self.open_event {
            out.extend_from_slice(b"\n\n");
        }
        out.extend_from_slice(TRUNCATED_TAIL);
        out
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn settle(&self, prompt_chars: u64, cancelled: bool) -> Settled {
        let (mut outcome, tokens, source) = self.meter.settle(prompt_chars, cancelled);
        if self.truncated && outcome == crate::metering::usage::Outcome::Ok {
            outcome = crate::metering::usage::Outcome::Truncated;
        }
        Settled {
            outcome,
            tokens,
            source,
            finish_reason: self.meter.stop_reason.clone(),
            upstream_error: self.meter.upstream_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_tail_does_not_depend_on_a_cut_crlf() {
        // Found by tests/fuzz, as for the chat relay: a CRLF cut after its CR is no open event.
        let run = |chunks: &[&[u8]]| {
            let mut r = PassThrough::new();
            let mut out: Vec<u8> = chunks.iter().flat_map(|c| r.feed(c.to_vec())).collect();
            out.extend(r.finish());
            out
        };
        let ping: &[u8] = b"event: ping\r\ndata: {\"type\":\"ping\"}\r\n\r\n";
        let whole = run(&[ping]);
        assert_eq!(run(&[&ping[..ping.len() - 1], b"\n"]), whole);
        assert_eq!(whole, [ping, TRUNCATED_TAIL].concat());
    }
}
