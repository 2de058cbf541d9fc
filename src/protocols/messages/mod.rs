//! Anthropic Messages, the wire format: its usage counts and stream meter (`meter`), and the
//! metered pass-through of a native Messages stream to an Anthropic client (`passthrough`).

mod meter;
mod passthrough;

pub(crate) use meter::event_kind;
pub use meter::{tokens_from_usage, AnthropicMeter, Usage};
pub use passthrough::{PassThrough, TRUNCATED_TAIL};
