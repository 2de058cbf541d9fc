//! Target resolution: from the model a client named, through its key's aliases and policy, to
//! the ordered targets that may serve each endpoint (the first that answers wins).

use crate::config::Config;
use crate::http::error::RelayError;
use crate::keys::{self, auth::KeyRecord};
use crate::providers::models::{self, Provider, Target};

/// Every target for the model, in fallback order, after the key's aliases and model policy.
pub fn resolve(config: &Config, key: &KeyRecord, model: &str) -> Result<Vec<Target>, RelayError> {
    let wanted = keys::effective_model(key, model)?;
    models::resolve_all(config, &wanted)
}

/// Whether the model is the built-in echo (it then has no other target).
pub fn is_echo(targets: &[Target]) -> bool {
    targets
        .first()
        .is_some_and(|t| t.provider == Provider::Echo)
}

/// `/v1/completions`, `/v1/embeddings`, `/v1/moderations`: OpenAI-format providers only (R3.1).
pub fn legacy(targets: Vec<Target>, model: &str, path: &str) -> Result<Vec<Target>, RelayError> {
    let targets: Vec<Target> = targets
        .into_iter()
        .filter(|t| t.provider == Provider::OpenAi)
        .collect();
    if targets.is_empty() {
        return Err(RelayError::UnsupportedEndpoint {
            model: model.to_string(),
            path: format!("/v1{path}"),
        });
    }
    Ok(targets)
}

/// What `/v1/messages` (or `count_tokens`) does with the resolved targets.
#[derive(Debug, Clone, PartialEq)]
pub enum Messages {
    /// `count_tokens` for a model first served by an OpenAI-format provider, which cannot
    /// count: the relay answers its own estimate, naming this target in the row.
    Estimate(Box<Target>),
    Send(Vec<Target>),
}

/// relay-echo speaks OpenAI only; counting goes to Claude targets only.
pub fn messages(
    targets: Vec<Target>,
    model: &str,
    count_tokens: bool,
) -> Result<Messages, RelayError> {
    if count_tokens {
        if let Some(first) = targets.first().filter(|t| t.provider == Provider::OpenAi) {
            return Ok(Messages::Estimate(Box::new(first.clone())));
        }
    }
    let targets: Vec<Target> = targets
        .into_iter()
        .filter(|t| match t.provider {
            Provider::Anthropic => true,
            Provider::OpenAi => !count_tokens,
            Provider::Echo => false,
        })
        .collect();
    if targets.is_empty() {
        return Err(RelayError::ModelNotFound(model.to_string()));
    }
    Ok(Messages::Send(targets))
}

/// How a target hears a Responses request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// OpenAI's own Responses API: byte for byte.
    Native,
    /// Chat Completions (OpenAI-compatible servers).
    Chat,
    /// Chat, then Messages (Claude).
    Claude,
}

pub fn way(target: &Target) -> Way {
    match target.provider {
        Provider::Anthropic => Way::Claude,
        Provider::OpenAi if target.spec.as_ref().is_some_and(|s| s.responses_api) => Way::Native,
        _ => Way::Chat,
    }
}

/// State lives on OpenAI only: a stateful Responses request never falls back to a translated
/// target (while a native one is there to serve it).
pub fn responses(mut targets: Vec<Target>, stateful: bool) -> Vec<Target> {
    if stateful && targets.iter().any(|t| way(t) == Way::Native) {
        targets.retain(|t| way(t) == Way::Native);
    }
    targets
}

/// Whether a `previous_response_id` must be checked against its owner: only OpenAI would
/// continue from it.
pub fn any_native(targets: &[Target]) -> bool {
    targets.iter().any(|t| way(t) == Way::Native)
}
