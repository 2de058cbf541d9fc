//! The usage row's bookkeeping at each step of the flow: who asked, which target was tried,
//! what the provider reported, and how the request ended. Every request leaves exactly one row;
//! these functions decide what it says, the edge writes it.

use serde_json::Value;

use crate::http::error::RelayError;
use crate::keys::auth::KeyRecord;
use crate::metering::usage::{Outcome, Tokens, UsageRecord, UsageSource};
use crate::protocols::responses;
use crate::providers::models::{self, Target};
use crate::translate::anthropic;

/// The relay key that made the request.
pub fn authenticated(rec: &mut UsageRecord, key: &KeyRecord) {
    rec.key_id = Some(key.id.clone());
    rec.team = Some(key.team.clone());
    rec.user = Some(key.user.clone());
}

/// The model the client named and whether it asked for a stream.
pub fn requested(rec: &mut UsageRecord, model: &str, stream: bool) {
    rec.model_requested = Some(model.to_string());
    rec.stream = stream;
}

/// `relay-echo` answers inside the worker.
pub fn echoed(rec: &mut UsageRecord) {
    rec.provider = Some("relay".to_string());
    rec.model_upstream = Some(models::ECHO_MODEL.to_string());
}

/// relay-echo's answer, counted by the echo itself.
pub fn echo_answered(rec: &mut UsageRecord, tokens: Tokens) {
    rec.tokens = tokens;
    rec.usage_source = UsageSource::Upstream;
    rec.finish_reason = Some("stop".to_string());
}

/// The target about to be called, and how many calls that makes.
pub fn attempting(rec: &mut UsageRecord, target: &Target, attempt: u32) {
    rec.provider = Some(target.provider_id().to_string());
    rec.model_upstream = Some(target.upstream_model.clone());
    rec.attempts = attempt;
}

/// A provider refused (status 400 or more): its request id, and any usage its error body
/// reports, which it bills as it reports.
pub fn rejected(rec: &mut UsageRecord, upstream_id: Option<String>, body: &[u8]) {
    rec.upstream_request_id = upstream_id;
    reported_usage(rec, body);
}

/// A provider accepted the request: from here on it is billed, so until the provider reports
/// its count the prompt estimate stands. Refusals before this point (by the relay or the
/// provider) keep zero tokens and cost nothing, unless the provider reported usage.
pub fn served(rec: &mut UsageRecord, prompt_chars: u64) {
    rec.tokens = Tokens::estimated(prompt_chars, 0);
    rec.usage_source = UsageSource::None;
}

/// The provider's own count, when its answer has one.
pub fn upstream_usage(rec: &mut UsageRecord, tokens: Option<Tokens>) {
    if let Some(tokens) = tokens {
        rec.tokens = tokens;
        rec.usage_source = UsageSource::Upstream;
    }
}

/// The finish reason at `pointer` in `json`, in the vocabulary the client was given.
pub fn finished(rec: &mut UsageRecord, json: &Value, pointer: &str) {
    rec.finish_reason = json
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string);
}

fn reported_usage(rec: &mut UsageRecord, body: &[u8]) {
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        upstream_usage(rec, reported(&json));
    }
}

/// Usage in either provider vocabulary.
fn reported(json: &Value) -> Option<Tokens> {
    json.get("usage")
        .and_then(|u| Tokens::from_openai(u).or_else(|| anthropic::tokens_from_usage(u)))
}

/// Some OpenAI-compatible providers answer errors with 200 + JSON (R8.15).
fn no_error_body(json: &Value) -> Result<(), RelayError> {
    if json.get("error").is_some_and(Value::is_object) {
        return Err(RelayError::UpstreamUnavailable(
            "upstream answered 200 with an error body".to_string(),
        ));
    }
    Ok(())
}

/// A Chat answer the relay rebuilds for the client (as a Response): its usage, or the estimate
/// already in the row, and its finish reason.
pub fn chat_answer(json: &Value, rec: &mut UsageRecord) -> Result<(), RelayError> {
    no_error_body(json)?;
    estimated_unless(rec, json.get("usage").and_then(Tokens::from_openai));
    finished(rec, json, "/choices/0/finish_reason");
    Ok(())
}

/// A provider's non-stream answer relayed to the client as it came: what the row learns from
/// it, by wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Chat Completions (and legacy endpoints). `stream`: the client asked for one.
    Chat { prompt_chars: u64, stream: bool },
    /// Anthropic Messages; counting tokens is free.
    Messages { count_tokens: bool },
    /// OpenAI's Responses; `created` when the status was 2xx (the row then owns the id).
    Responses { created: bool },
}

impl Answer {
    /// Records the answer's usage and finish reason; an answer the client must not get is an
    /// error (a Chat provider's 200 with an error body, or a stream request answered without
    /// one).
    pub fn read(self, json: &Value, rec: &mut UsageRecord) -> Result<(), RelayError> {
        match self {
            Answer::Chat {
                prompt_chars,
                stream,
            } => chat(json, rec, prompt_chars, stream),
            Answer::Messages { count_tokens: true } => {
                // Counting tokens is free: the row records the call, not spend.
                rec.tokens = Tokens::default();
                Ok(())
            }
            Answer::Messages {
                count_tokens: false,
            } => {
                estimated_unless(
                    rec,
                    json.get("usage").and_then(anthropic::tokens_from_usage),
                );
                finished(rec, json, "/stop_reason");
                Ok(())
            }
            Answer::Responses { created } => {
                if created {
                    rec.response_id = responses::owner::response_id(json);
                }
                estimated_unless(
                    rec,
                    json.get("usage").and_then(responses::tokens_from_usage),
                );
                finished(rec, json, "/status");
                Ok(())
            }
        }
    }
}

fn chat(
    json: &Value,
    rec: &mut UsageRecord,
    prompt_chars: u64,
    stream: bool,
) -> Result<(), RelayError> {
    if let Err(e) = no_error_body(json) {
        // A rejection, billed only as far as it reports usage.
        rec.tokens = Tokens::default();
        upstream_usage(rec, reported(json));
        return Err(e);
    }
    if stream {
        return Err(RelayError::UpstreamUnavailable(
            "upstream answered a stream request with a non-stream body".to_string(),
        ));
    }
    match json.get("usage").and_then(Tokens::from_openai) {
        Some(tokens) => upstream_usage(rec, Some(tokens)),
        None => {
            let chars = json
                .pointer("/choices/0/message")
                .map_or(0, crate::protocols::chunk::message_chars);
            rec.tokens = Tokens::estimated(prompt_chars, chars);
            rec.usage_source = UsageSource::Estimated;
        }
    }
    finished(rec, json, "/choices/0/finish_reason");
    Ok(())
}

/// The provider's count, or the estimate already in the row, said to be one.
pub fn estimated_unless(rec: &mut UsageRecord, tokens: Option<Tokens>) {
    match tokens {
        Some(_) => upstream_usage(rec, tokens),
        None => rec.usage_source = UsageSource::Estimated,
    }
}

/// The error→row mapping: how a request that ended in `e` is recorded. Tokens a provider
/// billed but did not report stand as an estimate.
pub fn failed(rec: &mut UsageRecord, e: &RelayError) {
    rec.outcome = Outcome::of_error(e);
    rec.error_code = Some(e.code().to_string());
    if rec.usage_source == UsageSource::None && rec.tokens != Tokens::default() {
        rec.usage_source = UsageSource::Estimated;
    }
}

/// The end of a request whose row the handler writes (not a stream's watcher): its status and
/// duration. The one place such a row is closed, just before it is written.
pub fn close(rec: &mut UsageRecord, status: u16, duration_ms: u64) {
    rec.status = status;
    rec.duration_ms = duration_ms;
}
