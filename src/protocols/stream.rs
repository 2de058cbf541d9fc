//! The per-chunk logic of an OpenAI chat stream: forward upstream bytes, meter a parsed copy,
//! drop the usage chunk the relay injected (R2.3, event-aligned per R8.12), and close a
//! truncated stream with one in-band error and `[DONE]` (R2.7). No I/O: the edge glue drives it.

use serde_json::Value;

use crate::http::error::RelayError;
use crate::metering::usage::{counted_or_estimated, Outcome, Tokens, UsageSource};
use crate::protocols::sse::{SseDecoder, SseEvent};

/// What the stream taught us, read when the usage row is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamMeter {
    pub saw_done: bool,
    pub usage: Option<Tokens>,
    /// Characters of content, refusal and tool-argument text, for the estimate.
    pub completion_chars: u64,
    pub finish_reason: Option<String>,
    /// Code (or message) of an in-band error event from the upstream.
    pub upstream_error: Option<String>,
    pub events: u64,
    /// The relay ended the stream itself (truncation or an oversize event).
    pub truncated: bool,
}

impl StreamMeter {
    /// Outcome and tokens for the row; `cancelled` when the client did not take the stream to
    /// its end. That wins over `[DONE]`: the relay reads ahead of the client, so having seen
    /// the end upstream says nothing about what the client received.
    pub fn settle(&self, prompt_chars: u64, cancelled: bool) -> (Outcome, Tokens, UsageSource) {
        let outcome = Outcome::of_stream(
            self.upstream_error.is_some(),
            cancelled,
            self.saw_done && !self.truncated,
        );
        let (tokens, source) =
            counted_or_estimated(self.usage, prompt_chars, self.completion_chars);
        (outcome, tokens, source)
    }
}

/// How a stream ended up, for its usage row.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub outcome: Outcome,
    pub tokens: Tokens,
    pub source: UsageSource,
    pub finish_reason: Option<String>,
    pub upstream_error: Option<String>,
}

/// The per-chunk work of one kind of relayed stream (pass-through, usage stripping, format
/// translation); the edge drives any of them the same way.
pub trait Relay {
    /// Bytes for the client for one upstream chunk (possibly none).
    fn feed(&mut self, chunk: Vec<u8>) -> Vec<u8>;
    /// Upstream reached EOF: the tail for the client (an in-band error if it was truncated).
    fn finish(&mut self) -> Vec<u8>;
    /// Upstream failed: the in-band error tail.
    fn abort(&mut self) -> Vec<u8>;
    fn ended(&self) -> bool;
    fn settle(&self, prompt_chars: u64, cancelled: bool) -> Settled;
    /// The provider went silent mid-stream: the tail for the client.
    fn timeout(&mut self) -> Vec<u8> {
        self.abort()
    }
    /// The stored OpenAI response this stream creates, once its id is known (OpenAI's own
    /// Responses stream only), for the row's `response_id`.
    fn response_id(&self) -> Option<&str> {
        None
    }
    /// True once, when the row should be written before the stream ends because the stream's
    /// response may be asked for while it runs.
    fn take_early_row(&mut self) -> bool {
        false
    }
}

#[derive(Debug)]
pub struct StreamRelay {
    decoder: SseDecoder,
    /// Drop the usage-only chunk because the client never asked for it.
    strip_usage: bool,
    /// Strip mode only: bytes of the segment still in progress, starting at `pending_start`.
    pending: Vec<u8>,
    pending_start: u64,
    meter: StreamMeter,
    ended: bool,
    /// Pass-through only: the client already has the first bytes of an unfinished event.
    open_event: bool,
    /// Strip mode only: where the last dropped event ended, so the LF of its CRLF is dropped
    /// with it when that LF comes in the next chunk.
    dropped_until: Option<u64>,
}

impl StreamRelay {
    pub fn new(strip_usage: bool) -> Self {
        Self::with_decoder(strip_usage, SseDecoder::new())
    }

    pub fn with_decoder(strip_usage: bool, decoder: SseDecoder) -> Self {
        StreamRelay {
            decoder,
            strip_usage,
            pending: Vec::new(),
            pending_start: 0,
            meter: StreamMeter::default(),
            ended: false,
            open_event: false,
            dropped_until: None,
        }
    }

    pub fn meter(&self) -> &StreamMeter {
        &self.meter
    }

    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Takes one upstream chunk and returns the bytes to send on. In pass-through mode that is
    /// the chunk itself, as it arrived.
    pub fn feed(&mut self, chunk: Vec<u8>) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        let events = match self.decoder.feed(&chunk) {
            Ok(events) => events,
            Err(_) => return self.abort(),
        };
        let mut drop_spans = Vec::new();
        for ev in &events {
            if self.observe(ev) && self.strip_usage {
                drop_spans.push((ev.start, ev.end));
            }
        }
        if !self.strip_usage {
            self.open_event = self.decoder.mid_event();
            return chunk;
        }
        self.pending.extend_from_slice(&chunk);
        // A joined LF goes out (or is dropped) now and with the event it ends, even though the
        // decoder counts it into the next event's span.
        let joined_lf = self.decoder.joined_lf();
        let boundary = self
            .decoder
            .boundary()
            .max(joined_lf.map_or(0, |at| at + 1));
        let mut out = Vec::with_capacity(self.pending.len());
        let mut cursor = self.pending_start;
        if let Some(at) = joined_lf {
            if self.dropped_until != Some(at) {
                out.extend_from_slice(self.slice(cursor, at + 1));
            }
            cursor = cursor.max(at + 1);
        }
        for (start, end) in drop_spans {
            out.extend_from_slice(self.slice(cursor, start));
            cursor = cursor.max(end);
            self.dropped_until = Some(end);
        }
        out.extend_from_slice(self.slice(cursor, boundary));
        let keep_from = usize::try_from(boundary.saturating_sub(self.pending_start)).unwrap_or(0);
        self.pending.drain(..keep_from.min(self.pending.len()));
        self.pending_start = boundary.max(self.pending_start);
        out
    }

    /// Bytes of `pending` between two absolute offsets (empty when out of range).
    fn slice(&self, from: u64, to: u64) -> &[u8] {
        let a = usize::try_from(from.saturating_sub(self.pending_start)).unwrap_or(usize::MAX);
        let b = usize::try_from(to.saturating_sub(self.pending_start)).unwrap_or(usize::MAX);
        self.pending
            .get(a..b.min(self.pending.len()))
            .unwrap_or(&[])
    }

    /// Upstream reached EOF. Returns the tail to send: nothing after `[DONE]`, otherwise the
    /// R2.7 error event and `[DONE]`.
    pub fn finish(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        if let Some(ev) = self.decoder.finish() {
            // A final event with no blank line (V10) still counts for accounting.
            self.observe(&ev);
        }
        if self.meter.saw_done {
            self.ended = true;
            return if self.strip_usage {
                std::mem::take(&mut self.pending)
            } else {
                Vec::new()
            };
        }
        self.abort()
    }

    /// The upstream failed or sent an event too large to hold: end the client stream in-band.
    pub fn abort(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        self.meter.truncated = true;
        let mut out = Vec::new();
        // In pass-through a half-sent event is already downstream; close it so the error event
        // that follows is read as its own event.
        if self.open_event {
            out.extend_from_slice(b"\n\n");
        }
        self.pending.clear();
        out.extend_from_slice(&RelayError::UpstreamStreamEnded.openai_stream_tail());
        out
    }

    /// Meters one event; true when it is a usage-only chunk (`"choices":[]` with a usage).
    /// Every event is read as JSON, so any spelling of it meters alike (chunk.rs).
    fn observe(&mut self, ev: &SseEvent) -> bool {
        self.meter.events += 1;
        let data = ev.data.as_str();
        if data.starts_with("[DONE]") {
            self.meter.saw_done = true;
            return false;
        }
        let Some(chunk) = crate::protocols::chunk::read(data) else {
            return false;
        };
        self.meter.completion_chars = self.meter.completion_chars.saturating_add(chunk.text_chars);
        if chunk.finish_reason.is_some() {
            self.meter.finish_reason = chunk.finish_reason;
        }
        if let Some(err) = chunk.error {
            let err: Value = serde_json::from_str(err.get()).unwrap_or(Value::Null);
            let code = err
                .get("code")
                .and_then(Value::as_str)
                .or_else(|| err.get("type").and_then(Value::as_str))
                .unwrap_or("error");
            self.meter.upstream_error = Some(code.to_string());
            return false;
        }
        let usage = chunk
            .usage
            .and_then(|raw| serde_json::from_str::<Value>(raw.get()).ok());
        if let Some(tokens) = usage.as_ref().and_then(Tokens::from_openai) {
            self.meter.usage = Some(tokens);
            return chunk.choices == Some(0);
        }
        false
    }
}

impl Relay for StreamRelay {
    fn feed(&mut self, chunk: Vec<u8>) -> Vec<u8> {
        StreamRelay::feed(self, chunk)
    }
    fn finish(&mut self) -> Vec<u8> {
        StreamRelay::finish(self)
    }
    fn abort(&mut self) -> Vec<u8> {
        StreamRelay::abort(self)
    }
    fn ended(&self) -> bool {
        StreamRelay::ended(self)
    }
    fn timeout(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.ended {
            self.ended = true;
            self.meter.truncated = true;
            if self.open_event {
                out.extend_from_slice(b"\n\n");
            }
            self.pending.clear();
            out.extend_from_slice(&RelayError::UpstreamTimeout.openai_stream_tail());
        }
        out
    }
    fn settle(&self, prompt_chars: u64, cancelled: bool) -> Settled {
        let (outcome, tokens, source) = self.meter.settle(prompt_chars, cancelled);
        Settled {
            outcome,
            tokens,
            source,
            finish_reason: self.meter.finish_reason.clone(),
            upstream_error: self.meter.upstream_error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client bytes for `chunks` and the upstream's end.
    fn relay_all(strip: bool, chunks: &[&[u8]]) -> Vec<u8> {
        let mut r = StreamRelay::new(strip);
        let mut out: Vec<u8> = chunks.iter().flat_map(|c| r.feed(c.to_vec())).collect();
        out.extend(r.finish());
        out
    }

    #[test]
    fn strip_mode_does_not_depend_on_a_cut_crlf() {
        // Found by tests/fuzz: the LF of a CRLF blank line cut into the next chunk was held
        // back (and lost by a truncation), or sent on although its usage event was dropped.
        let run = |chunks: &[&[u8]]| relay_all(true, chunks);
        assert_eq!(run(&[b"\r", b"\n"]), run(&[b"\r\n"]));
        let usage: &[u8] = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\r\n\r\n";
        let stream = [usage, b"data: [DONE]\r\n\r\n"].concat();
        let whole = run(&[&stream]);
        assert_eq!(whole, b"data: [DONE]\r\n\r\n");
        assert_eq!(
            run(&[&stream[..usage.len() - 1], &stream[usage.len() - 1..]]),
            whole
        );
        // The LF of a blank line that is kept, ahead of a usage event that is dropped.
        let lead = [b"\r\n" as &[u8], usage].concat();
        let tail = RelayError::UpstreamStreamEnded.openai_stream_tail();
        assert_eq!(run(&[&lead]), [b"\r\n" as &[u8], &tail].concat());
        assert_eq!(run(&[&lead[..1], &lead[1..]]), run(&[&lead]));
    }

    #[test]
    fn truncation_tail_does_not_depend_on_a_cut_crlf() {
        // Found by tests/fuzz: with the blank line's LF in the next chunk, the pass-through
        // relay closed a "half-sent event" that does not exist with an extra "\n\n".
        let run = |chunks: &[&[u8]]| relay_all(false, chunks);
        let whole = run(&[b"data: {}\r\n\r\n"]);
        assert_eq!(run(&[b"data: {}\r\n\r", b"\n"]), whole);
        assert_eq!(
            whole,
            [
                b"data: {}\r\n\r\n" as &[u8],
                &RelayError::UpstreamStreamEnded.openai_stream_tail()
            ]
            .concat()
        );
    }

    #[test]
    fn a_client_that_left_is_cancelled_even_after_done_upstream() {
        let m = StreamMeter {
            saw_done: true,
            usage: Some(Tokens::estimated(8, 8)),
            ..StreamMeter::default()
        };
        assert_eq!(m.settle(0, false).0, Outcome::Ok);
        assert_eq!(m.settle(0, true).0, Outcome::ClientCancelled);
        // The provider's count is still the row's: it billed the whole answer.
        assert_eq!(m.settle(0, true).2, UsageSource::Upstream);
    }
}
