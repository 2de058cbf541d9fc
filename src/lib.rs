//! llm-relay: an OpenAI-compatible relay for Cloudflare Workers. The folders below are the pure
//! core (no `worker` import, tested natively with `cargo test`); `edge` is the thin glue that
//! touches the Workers runtime and is compiled only for wasm32. README "Architecture" names
//! each folder's one job.
pub mod cache;
pub mod config;
pub mod dashboard;
pub mod flow;
pub mod http;
pub mod keys;
pub mod limits;
pub mod metering;
pub mod protocols;
pub mod providers;
pub mod time;
pub mod translate;
pub mod ttl_cache;

#[cfg(target_arch = "wasm32")]
mod edge;
