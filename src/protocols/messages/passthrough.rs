//! Native Anthropic Messages streams relayed to Anthropic clients (the shared
//! `protocols::passthrough`, with the Anthropic meter): a stream that stops before
//! `message_stop` gets one Anthropic `event: error` at the end.

use super::AnthropicMeter;
use crate::http::error::RelayError;
use crate::protocols::passthrough::StreamMeter;
use crate::protocols::sse::SseEvent;
use crate::protocols::stream::Settled;

/// The tail for a truncated Anthropic stream (R8.16): the SDK raises on `event: error`.
pub const TRUNCATED_TAIL: &[u8] = b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Upstream stream ended unexpectedly.\"}}\n\n";

/// A native Messages stream to an Anthropic client, metered by `AnthropicMeter`.
pub type PassThrough = crate::protocols::passthrough::PassThrough<AnthropicMeter>;

impl StreamMeter for AnthropicMeter {
    fn observe_event(&mut self, ev: &SseEvent) {
        self.observe(ev);
    }

    fn complete(&self) -> bool {
        self.saw_stop
    }

    /// The same tail whatever went wrong: the SDK only needs an `event: error` to raise.
    fn tail(&self, _error: &RelayError) -> Vec<u8> {
        TRUNCATED_TAIL.to_vec()
    }

    fn settled(&self, prompt_chars: u64, cancelled: bool) -> Settled {
        let (outcome, tokens, source) = self.settle(prompt_chars, cancelled);
        Settled {
            outcome,
            tokens,
            source,
            finish_reason: self.stop_reason.clone(),
            upstream_error: self.upstream_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocols::stream::Relay;

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
