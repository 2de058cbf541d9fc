//! One request as decisions without I/O: the core says what to do next, the edge
//! (`src/edge/`) does it and reports back. The phases, in order:
//!
//! 1. **authenticate** — `keys::auth::authorize`; the row learns the key (`row::authenticated`).
//! 2. **resolve** — `targets`: the model, through the key's aliases and policy, to the ordered
//!    targets each endpoint may use.
//! 3. **attempts** — `attempts::Attempts`: each `Step` is call this target with this body, wait
//!    N ms, or give up with this error; the row notes every call (`row::attempting`) and every
//!    refusal (`row::rejected`).
//! 4. **relay** — the serving target's answer goes to the client; a non-stream answer's usage
//!    is read by `row::Answer`, a stream's by its meter (`protocols::stream`).
//! 5. **settle** — `row::failed` maps an error to the row, `row::close` ends a row the handler
//!    writes; a stream's watcher writes its own.
//!
//! Limits and a response cache slot in at two points each. Before the first attempt: the cache
//! looks up after **resolve** and before the driver starts the plan (`edge/cache.rs`; a hit
//! is the edge's own answer and ends the request without a step, so it never reserves), then
//! limits reserve in the driver (`edge::relay::send`) ahead of `Attempts::start`, sized by
//! `Plan::reservation`, and a refusal ends the request before any call. At the end: one call
//! where the row is closed — `row::close` in the handler's end hook, and the stream watcher's
//! final row — to store a clean answer, and `edge::store::write_usage` (every settled row is
//! written there) settles the reservation.

pub mod attempts;
pub mod row;
pub mod targets;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
