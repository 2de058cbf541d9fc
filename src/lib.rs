//! llm-relay: an OpenAI-compatible relay for Cloudflare Workers. The modules below are the pure
//! core (no `worker` import, tested natively with `cargo test`); `edge` is the thin glue that
//! touches the Workers runtime and is compiled only for wasm32.
pub mod anthropic;
pub mod auth;
pub mod cache;
pub mod chat;
pub mod chunk;
pub mod config;
pub mod cursor;
pub mod dashboard;
pub mod echo;
pub mod error;
pub mod headers;
pub mod ids;
pub mod json;
pub mod keys;
pub mod limits;
pub mod messages;
pub mod models;
pub mod output_caps;
pub mod pricing;
pub mod providers;
pub mod refused;
pub mod report;
pub mod request_log;
pub mod responses;
pub mod routes;
pub mod sse;
pub mod stream;
pub mod time;
pub mod usage;

#[cfg(target_arch = "wasm32")]
mod edge;
