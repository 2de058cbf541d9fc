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

use futures_util::Stream;
use worker::{Delay, Env};

use super::{now_ms, store};
use crate::metering::usage::UsageRecord;
use crate::protocols::stream::Relay;

/// Longest a watcher keeps waiting for a stream; bounds the loop (Workers caps a request's
/// wall time long before this for most plans).
const MAX_WATCH_MS: u64 = 30 * 60 * 1000;
/// Longest wait between the end of a stream and its usage write.
const MAX_TICK_MS: u64 = 250;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Upstream finished (or failed), the tail was handed over, and the client asked for more:
    /// it has the whole stream.
    Finished,
    /// The body was dropped before it finished: the client went away.
    Dropped,
}

type Upstream = Pin<Box<dyn Stream<Item = worker::Result<Vec<u8>>>>>;

struct Shared {
    /// Held here, not in the body, so the watcher can drop it (cancelling the upstream fetch)
    /// when the client has stopped reading but workerd never cancels the body.
    upstream: Option<Upstream>,
    relay: Box<dyn Relay>,
    end: Option<End>,
    last_progress_ms: u64,
    /// The body is waiting on the upstream, not on the client.
    awaiting_upstream: bool,
    first_byte_ms: Option<u64>,
    /// The body's waker while it waits on the upstream, so a timed-out wait can be ended.
    body_waker: Option<Waker>,
    /// The upstream went quiet for too long mid-stream; the body ends with an in-band error.
    timed_out: bool,
}

impl Shared {
    fn finish(&mut self, end: End) {
        if self.end.is_none() {
            self.end = Some(end);
        }
    }
}

/// Feeds one upstream item (a chunk, an error, or the end) to the relay and records progress.
/// Returns the bytes for the client and whether the stream is over.
fn on_item(shared: &RefCell<Shared>, item: Option<worker::Result<Vec<u8>>>) -> (Vec<u8>, bool) {
    let mut s = shared.borrow_mut();
    let out = match item {
        Some(Ok(chunk)) => s.relay.feed(chunk),
        Some(Err(_)) => s.relay.abort(),
        None => s.relay.finish(),
    };
    let now = now_ms();
    s.awaiting_upstream = false;
    s.last_progress_ms = now;
    s.first_byte_ms.get_or_insert(now);
    (out, s.relay.ended())
}

pub struct MeteredBody {
    shared: Rc<RefCell<Shared>>,
    done: bool,
}

impl Stream for MeteredBody {
    type Item = worker::Result<Vec<u8>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // Bounded: each turn consumes one upstream chunk; empty outputs (a held-back partial
        // event) just move on to the next chunk.
        loop {
            if self.done {
                // Only a pull after the tail proves the client took it: the relay may have seen
                // the terminal event (and even the upstream's end) while the client was gone.
                self.shared.borrow_mut().finish(End::Finished);
                return Poll::Ready(None);
            }
            let polled = self
                .shared
                .borrow_mut()
                .upstream
                .as_mut()
                .map(|upstream| upstream.as_mut().poll_next(cx));
            let Some(polled) = polled else {
                // The watcher dropped the upstream: after an idle timeout the client still
                // gets the in-band error; after a hang-up nobody is reading.
                self.done = true;
                let mut shared = self.shared.borrow_mut();
                if shared.timed_out {
                    let tail = shared.relay.timeout();
                    return Poll::Ready(Some(Ok(tail)));
                }
                return Poll::Ready(None);
            };
            let item = match polled {
                Poll::Pending => {
                    let mut shared = self.shared.borrow_mut();
                    shared.awaiting_upstream = true;
                    shared.body_waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Poll::Ready(item) => item,
            };
            let (out, ended) = on_item(&self.shared, item);
            self.done = ended;
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(out)));
            }
        }
    }
}

impl Drop for MeteredBody {
    fn drop(&mut self) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            shared.finish(End::Dropped);
        }
    }
}

pub struct Metering {
    pub record: UsageRecord,
    pub prompt_chars: u64,
    pub started_ms: u64,
    pub idle_ms: u64,
    /// Longest silence from the provider mid-stream before the relay gives up on it.
    pub idle_timeout_ms: u64,
    /// A cache miss to store if the stream ends complete.
    pub cache: Option<super::cache::Pending>,
}

/// Wraps `upstream` for the client and returns the watcher future to hand to `wait_until`.
pub fn meter<S>(
    upstream: S,
    relay: Box<dyn Relay>,
    m: Metering,
    env: Env,
) -> (MeteredBody, impl Future<Output = ()>)
where
    S: Stream<Item = worker::Result<Vec<u8>>> + 'static,
{
    let shared = new_shared(Box::pin(upstream), relay, m.started_ms);
    let body = MeteredBody {
        shared: shared.clone(),
        done: false,
    };
    (body, watch(shared, m, env))
}

fn new_shared(upstream: Upstream, relay: Box<dyn Relay>, started_ms: u64) -> Rc<RefCell<Shared>> {
    Rc::new(RefCell::new(Shared {
        upstream: Some(upstream),
        relay,
        end: None,
        last_progress_ms: started_ms,
        awaiting_upstream: true,
        first_byte_ms: None,
        body_waker: None,
        timed_out: false,
    }))
}

fn snapshot(shared: &Shared, m: &Metering, now: u64, cancelled: bool) -> UsageRecord {
    let settled = shared.relay.settle(m.prompt_chars, cancelled);
    let mut rec = m.record.clone();
    rec.outcome = settled.outcome;
    rec.tokens = settled.tokens;
    rec.usage_source = settled.source;
    rec.finish_reason = settled.finish_reason;
    rec.error_code = settled.upstream_error.or_else(|| {
        (settled.outcome != crate::metering::usage::Outcome::Ok)
            .then(|| settled.outcome.as_str().to_string())
    });
    if let Some(id) = shared.relay.response_id() {
        rec.response_id = Some(id.to_string());
    }
    rec.duration_ms = now.saturating_sub(m.started_ms);
    rec.ttfb_ms = rec
        .ttfb_ms
        .or(shared.first_byte_ms.map(|t| t.saturating_sub(m.started_ms)));
    rec
}

/// The watcher polls on its own timer rather than being woken by the body: the body is pumped
/// by workerd outside the request's context, and a future woken from there that then drops a
/// pending timer calls `clearTimeout` in global scope, which throws and traps the wasm instance
/// (seen under concurrent streams). A timer that has fired is dropped without `clearTimeout`.
async fn watch(shared: Rc<RefCell<Shared>>, mut m: Metering, env: Env) {
    // Ticks fine enough for the shorter of the two limits, so neither is overshot by much.
    let shortest = m.idle_ms.min(m.idle_timeout_ms);
    let tick = Duration::from_millis((shortest / 2).clamp(50, MAX_TICK_MS));
    let max_ticks = MAX_WATCH_MS / (tick.as_millis() as u64).max(1);
    let mut provisional_at: Option<u64> = None;
    for _ in 0..max_ticks {
        Delay::from(tick).await;
        if shared.borrow().end.is_some() {
            break;
        }
        let now = now_ms();
        let early = shared.borrow_mut().relay.take_early_row();
        if early {
            // The response can be asked for while it runs (background mode): its owner must
            // be on record now, not only at the end.
            let rec = snapshot(&shared.borrow(), &m, now, false);
            store::write_usage(&env, &rec, false).await;
        }
        let (idle_since, client_side) = {
            let s = shared.borrow();
            (s.last_progress_ms, !s.awaiting_upstream)
        };
        let silent = now.saturating_sub(idle_since);
        // The provider's own limit is checked on its own: a provider timeout shorter than
        // `idle_ms` must not wait for it.
        let limit = if client_side {
            m.idle_ms
        } else {
            m.idle_ms.min(m.idle_timeout_ms)
        };
        if silent < limit {
            continue;
        }
        if client_side {
            // Upstream data was handed over and nobody asked for more for `idle_ms`: the client
            // has gone even though workerd never cancelled the body. Stop the provider too.
            let mut s = shared.borrow_mut();
            drop(s.upstream.take());
            s.finish(End::Dropped);
            break;
        }
        if silent >= m.idle_timeout_ms {
            // The provider went silent: cancel it and let the body end with the error event.
            let waker = {
                let mut s = shared.borrow_mut();
                drop(s.upstream.take());
                s.timed_out = true;
                s.body_waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
            continue;
        }
        if provisional_at != Some(idle_since) {
            // The provider has stalled: record what is known now; the final tally replaces it.
            let rec = snapshot(&shared.borrow(), &m, now, false);
            store::write_usage(&env, &rec, false).await;
            provisional_at = Some(idle_since);
        }
    }
    let now = now_ms();
    let mut rec = {
        let s = shared.borrow();
        let cancelled = s.end != Some(End::Finished);
        snapshot(&s, &m, now, cancelled)
    };
    if let Some(pending) = m.cache.take() {
        super::cache::settle_stream(&env, pending, &mut rec).await;
    }
    store::write_usage(&env, &rec, true).await;
}
