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
//! Limits and a response cache slot in at two points each. Before the first attempt: limits
//! reserve in the driver (`edge::relay::send`) ahead of `Attempts::start`, sized by
//! `Plan::reservation`, and a refusal ends the request before any call. At the end: where the
//! final row is written (`edge::store::write_usage` for a settled row — the handler's end hook
//! and the stream watcher's final row both write there) the reservation is settled.

pub mod attempts;
pub mod row;
pub mod targets;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests;
