//! The client-facing body of a streamed chat response: wraps the upstream byte stream around
//! the core `StreamRelay`, and the `wait_until` watcher that writes the stream's one usage row.
//!
//! A client hang-up does not reliably drop this stream on workerd (toolchain.md trap 1), so the
//! watcher does not wait for `Drop` alone: it also writes a provisional row once the stream has
//! made no progress for `idle_ms`, and the final tally, if it ever comes, replaces that row.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::Stream;
use worker::{Delay, Env};

use super::{now_ms, store};
use crate::stream::StreamRelay;
use crate::usage::UsageRecord;

/// Longest a watcher keeps waiting for a stream; bounds the loop (Workers caps a request's
/// wall time long before this for most plans).
const MAX_WATCH_MS: u64 = 30 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Upstream finished (or failed) and the tail was handed to the client.
    Finished,
    /// The body was dropped before it finished: the client went away.
    Dropped,
}

struct Shared {
    relay: StreamRelay,
    end: Option<End>,
    last_progress_ms: u64,
    /// The body is waiting on the upstream, not on the client.
    awaiting_upstream: bool,
    first_byte_ms: Option<u64>,
    waker: Option<Waker>,
}

impl Shared {
    fn finish(&mut self, end: End) {
        if self.end.is_none() {
            self.end = Some(end);
        }
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

pub struct MeteredBody<S> {
    upstream: Pin<Box<S>>,
    shared: Rc<RefCell<Shared>>,
    done: bool,
}

impl<S> Stream for MeteredBody<S>
where
    S: Stream<Item = worker::Result<Vec<u8>>>,
{
    type Item = worker::Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Bounded: each turn consumes one upstream chunk; empty outputs (a held-back partial
        // event) just move on to the next chunk.
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let polled = self.upstream.as_mut().poll_next(cx);
            let mut shared = self.shared.borrow_mut();
            let now = now_ms();
            let out = match polled {
                Poll::Pending => {
                    shared.awaiting_upstream = true;
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(chunk))) => shared.relay.feed(chunk),
                Poll::Ready(Some(Err(_))) => shared.relay.abort(),
                Poll::Ready(None) => shared.relay.finish(),
            };
            shared.awaiting_upstream = false;
            shared.last_progress_ms = now;
            shared.first_byte_ms.get_or_insert(now);
            let ended = shared.relay.ended();
            if ended {
                shared.finish(End::Finished);
            }
            drop(shared);
            if ended {
                self.done = true;
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out)));
            }
        }
    }
}

impl<S> Drop for MeteredBody<S> {
    fn drop(&mut self) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            shared.finish(End::Dropped);
        }
    }
}

/// Resolves when the body has ended one way or the other.
struct Ended(Rc<RefCell<Shared>>);

impl Future for Ended {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut shared = self.0.borrow_mut();
        if shared.end.is_some() {
            Poll::Ready(())
        } else {
            shared.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

pub struct Metering {
    pub record: UsageRecord,
    pub prompt_chars: u64,
    pub started_ms: u64,
    pub idle_ms: u64,
}

/// Wraps `upstream` for the client and returns the watcher future to hand to `wait_until`.
pub fn meter<S>(
    upstream: S,
    relay: StreamRelay,
    m: Metering,
    env: Env,
) -> (MeteredBody<S>, impl Future<Output = ()>)
where
    S: Stream<Item = worker::Result<Vec<u8>>> + 'static,
{
    let shared = Rc::new(RefCell::new(Shared {
        relay,
        end: None,
        last_progress_ms: m.started_ms,
        awaiting_upstream: true,
        first_byte_ms: None,
        waker: None,
    }));
    let body = MeteredBody {
        upstream: Box::pin(upstream),
        shared: shared.clone(),
        done: false,
    };
    (body, watch(shared, m, env))
}

fn snapshot(shared: &Shared, m: &Metering, now: u64, cancelled: bool) -> UsageRecord {
    let (outcome, tokens, source) = shared.relay.meter().settle(m.prompt_chars, cancelled);
    let mut rec = m.record.clone();
    rec.outcome = outcome;
    rec.tokens = tokens;
    rec.usage_source = source;
    rec.finish_reason = shared.relay.meter().finish_reason.clone();
    rec.error_code =
        shared.relay.meter().upstream_error.clone().or_else(|| {
            (outcome != crate::usage::Outcome::Ok).then(|| outcome.as_str().to_string())
        });
    rec.duration_ms = now.saturating_sub(m.started_ms);
    rec.ttfb_ms = rec
        .ttfb_ms
        .or(shared.first_byte_ms.map(|t| t.saturating_sub(m.started_ms)));
    rec
}

async fn watch(shared: Rc<RefCell<Shared>>, m: Metering, env: Env) {
    let tick = Duration::from_millis((m.idle_ms / 2).max(50));
    let max_ticks = MAX_WATCH_MS / (tick.as_millis() as u64).max(1);
    let mut provisional_at: Option<u64> = None;
    for _ in 0..max_ticks {
        let ended = Box::pin(Ended(shared.clone()));
        let timer = Delay::from(tick);
        if let Either::Left(_) = select(ended, timer).await {
            break;
        }
        let now = now_ms();
        let (idle_since, client_side) = {
            let s = shared.borrow();
            (s.last_progress_ms, !s.awaiting_upstream)
        };
        if now.saturating_sub(idle_since) >= m.idle_ms && provisional_at != Some(idle_since) {
            // No progress: either the client stopped reading (it left) or the upstream stalled.
            let rec = snapshot(&shared.borrow(), &m, now, client_side);
            store::write_usage(&env, &rec, false).await;
            provisional_at = Some(idle_since);
        }
    }
    let now = now_ms();
    let rec = {
        let s = shared.borrow();
        let cancelled = s.end != Some(End::Finished);
        snapshot(&s, &m, now, cancelled)
    };
    store::write_usage(&env, &rec, true).await;
}
