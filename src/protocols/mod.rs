//! The wire formats clients and providers speak, each parsed, validated, built and metered on
//! its own terms: OpenAI Chat (with Cursor's dialect and legacy completions' stream chunks),
//! Anthropic Messages streams, the Responses API, the SSE framing they share, and the metered
//! byte-for-byte pass-through of a native stream.
pub mod chat;
pub mod chunk;
pub mod cursor;
pub mod messages;
pub mod passthrough;
pub mod responses;
pub mod sse;
pub mod stream;
