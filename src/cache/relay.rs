//! The two stream relays of the cache. `Capture` wraps any relay and keeps a copy of exactly
//! the bytes the client was handed, up to the entry cap; `Replay` hands a stored answer to the
//! client through the same metered body as a live stream, and meters it with the original's
//! tokens.

use std::cell::RefCell;
use std::rc::Rc;

use super::MAX_ENTRY_BYTES;
use crate::metering::usage::{Outcome, Tokens, UsageSource};
use crate::protocols::stream::{Relay, Settled};

/// The client bytes a `Capture` kept; shared with the code that stores them once the stream's
/// outcome is known.
#[derive(Debug, Default)]
pub struct Captured {
    pub bytes: Vec<u8>,
    /// The answer outgrew the cap: the copy was dropped and nothing will be stored.
    pub overflowed: bool,
}

impl Captured {
    fn keep(&mut self, out: &[u8], cap: usize) {
        if self.overflowed || out.is_empty() {
            return;
        }
        if self.bytes.len() + out.len() > cap {
            self.overflowed = true;
            self.bytes = Vec::new();
            return;
        }
        self.bytes.extend_from_slice(out);
    }
}

pub struct Capture {
    inner: Box<dyn Relay>,
    kept: Rc<RefCell<Captured>>,
    cap: usize,
}

impl Capture {
    pub fn new(inner: Box<dyn Relay>) -> (Self, Rc<RefCell<Captured>>) {
        Self::with_cap(inner, MAX_ENTRY_BYTES)
    }

    pub fn with_cap(inner: Box<dyn Relay>, cap: usize) -> (Self, Rc<RefCell<Captured>>) {
        let kept = Rc::new(RefCell::new(Captured::default()));
        (
            Capture {
                inner,
                kept: kept.clone(),
                cap,
            },
            kept,
        )
    }

    fn keep(&self, out: Vec<u8>) -> Vec<u8> {
        if let Ok(mut k) = self.kept.try_borrow_mut() {
            k.keep(&out, self.cap);
        }
        out
    }
}

impl Relay for Capture {
    fn feed(&mut self, chunk: Vec<u8>) -> Vec<u8> {
        let out = self.inner.feed(chunk);
        self.keep(out)
    }
    fn finish(&mut self) -> Vec<u8> {
        let out = self.inner.finish();
        self.keep(out)
    }
    fn abort(&mut self) -> Vec<u8> {
        let out = self.inner.abort();
        self.keep(out)
    }
    fn timeout(&mut self) -> Vec<u8> {
        let out = self.inner.timeout();
        self.keep(out)
    }
    fn ended(&self) -> bool {
        self.inner.ended()
    }
    fn settle(&self, prompt_chars: u64, cancelled: bool) -> Settled {
        self.inner.settle(prompt_chars, cancelled)
    }
    fn response_id(&self) -> Option<&str> {
        self.inner.response_id()
    }
    fn take_early_row(&mut self) -> bool {
        self.inner.take_early_row()
    }
}

/// A stored answer played back: its bytes go out unchanged, and the row gets the original's
/// tokens and finish reason. The outcome is still the client's: one that leaves mid-replay is
/// `client_cancelled`, as on a live stream.
pub struct Replay {
    tokens: Tokens,
    source: UsageSource,
    finish_reason: Option<String>,
    ended: bool,
}

impl Replay {
    pub fn new(tokens: Tokens, source: UsageSource, finish_reason: Option<String>) -> Self {
        Replay {
            tokens,
            source,
            finish_reason,
            ended: false,
        }
    }
}

impl Relay for Replay {
    fn feed(&mut self, chunk: Vec<u8>) -> Vec<u8> {
        chunk
    }
    fn finish(&mut self) -> Vec<u8> {
        self.ended = true;
        Vec::new()
    }
    fn abort(&mut self) -> Vec<u8> {
        self.ended = true;
        Vec::new()
    }
    fn ended(&self) -> bool {
        self.ended
    }
    fn settle(&self, _prompt_chars: u64, cancelled: bool) -> Settled {
        Settled {
            outcome: if cancelled {
                Outcome::ClientCancelled
            } else {
                Outcome::Ok
            },
            tokens: self.tokens,
            source: self.source,
            finish_reason: self.finish_reason.clone(),
            upstream_error: None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::protocols::messages::PassThrough;
    use crate::protocols::stream::StreamRelay;

    const CHAT: &[u8] = b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\ndata: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";

    fn run(relay: &mut dyn Relay, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out: Vec<u8> = chunks.iter().flat_map(|c| relay.feed(c.to_vec())).collect();
        out.extend(relay.finish());
        out
    }

    #[test]
    fn capture_keeps_exactly_what_the_client_got() {
        // The relay strips the usage chunk the client never asked for: the copy must too.
        let (mut cap, kept) = Capture::new(Box::new(StreamRelay::new(true)));
        let (a, b) = CHAT.split_at(37);
        let out = run(&mut cap, &[a, b]);
        assert!(!out.is_empty());
        assert_eq!(kept.borrow().bytes, out);
        assert!(!String::from_utf8_lossy(&out).contains("usage"));
        let s = cap.settle(0, false);
        assert_eq!(
            (s.outcome, s.finish_reason.as_deref()),
            (Outcome::Ok, Some("stop"))
        );
    }

    #[test]
    fn capture_of_a_truncated_stream_holds_the_error_tail_and_settles_truncated() {
        let (mut cap, kept) = Capture::new(Box::new(StreamRelay::new(false)));
        let out = run(&mut cap, &[&CHAT[..60]]);
        assert_eq!(kept.borrow().bytes, out);
        assert_eq!(cap.settle(0, false).outcome, Outcome::Truncated);
    }

    #[test]
    fn capture_past_the_cap_keeps_nothing() {
        let (mut cap, kept) = Capture::with_cap(Box::new(PassThrough::new()), 10);
        cap.feed(b"event: ping\ndata: {\"type\":\"ping\"}\n\n".to_vec());
        assert!(kept.borrow().overflowed);
        assert!(kept.borrow().bytes.is_empty());
        cap.feed(b"x".to_vec());
        assert!(kept.borrow().bytes.is_empty());
    }

    #[test]
    fn replay_passes_bytes_and_the_original_tokens() {
        let tokens = Tokens {
            prompt: 12,
            completion: 4,
            ..Tokens::default()
        };
        let mut r = Replay::new(tokens, UsageSource::Upstream, Some("stop".into()));
        assert_eq!(run(&mut r, &[CHAT]), CHAT);
        assert!(r.ended());
        let s = r.settle(999, false);
        assert_eq!(
            (s.outcome, s.tokens, s.source),
            (Outcome::Ok, tokens, UsageSource::Upstream)
        );
        assert_eq!(r.settle(0, true).outcome, Outcome::ClientCancelled);
    }
}
