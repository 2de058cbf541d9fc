//! A→O translation (protocol.md §6.3, §6.4, §6.6, §6.7): an Anthropic SDK client on a model whose
//! upstream is OpenAI-compatible, split by direction of travel: `request` turns the Messages
//! request into a Chat request, `answer` turns a non-stream chat completion back into a Message,
//! and `stream` (`ReverseTranslator`) turns the upstream's chat SSE into Anthropic events.
//! What both answers share — ids, the stop reason and the usage split — lives here.

mod answer;
mod request;
mod stream;

use crate::metering::usage::Tokens;

pub use answer::to_message;
pub use request::to_chat_request;
pub use stream::ReverseTranslator;

/// Used when the upstream gives no chunk id, so the client still gets a `msg_…` id.
const FALLBACK_ID: &str = "msg_relay";

/// `finish_reason` → `stop_reason` (§6.3). `stop` never becomes `stop_sequence`: OpenAI does not
/// say which sequence matched, and Anthropic pairs that reason with the matched string.
pub fn stop_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

/// `chatcmpl-XYZ` → `msg_XYZ`, so clients that check the prefix are satisfied; other ids are
/// kept as given.
fn message_id(id: Option<&str>) -> String {
    match id.filter(|s| !s.is_empty()) {
        None => FALLBACK_ID.to_string(),
        Some(id) => match id.strip_prefix("chatcmpl-") {
            Some(tail) if !tail.is_empty() => format!("msg_{tail}"),
            _ => id.to_string(),
        },
    }
}

/// An id for a tool call the upstream sent without one: the client needs it to answer with a
/// `tool_result`, and the message id keeps it unique across turns.
fn fallback_tool_id(message_id: &str, k: usize) -> String {
    format!(
        "toolu_{}_{k}",
        message_id.strip_prefix("msg_").unwrap_or(message_id)
    )
}

/// (input, cache_creation, cache_read, output) per §6.4. Cache writes are taken out of
/// `input_tokens` as well as reads, so the three input fields add up to `prompt_tokens`, as the
/// A→O direction assumes.
fn anthropic_counts(t: &Tokens) -> (u64, u64, u64, u64) {
    let input = t
        .prompt
        .saturating_sub(t.cached)
        .saturating_sub(t.cache_write);
    (input, t.cache_write, t.cached, t.completion)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
