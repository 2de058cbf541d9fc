//! Which models a key may use and where each one goes: the built-in `relay-echo`, and OpenAI
//! when its key is configured. Also renders the OpenAI `/v1/models` shapes (§3.3).

use serde_json::{json, Value};

use crate::config::Config;
use crate::error::RelayError;

pub const ECHO_MODEL: &str = "relay-echo";
/// A fixed `created` so the list is stable between calls (clients cache it).
const CREATED: u64 = 1_767_225_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Answers inside the worker; spends no tokens.
    Echo,
    OpenAi,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Echo => "relay",
            Provider::OpenAi => "openai",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub provider: Provider,
    pub upstream_model: String,
    /// Whether the provider accepts `stream_options.include_usage` (R2.3).
    pub stream_usage: bool,
}

fn matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => pattern == model,
    }
}

/// Resolves a requested model name, or 404 `model_not_found`.
pub fn resolve(config: &Config, model: &str) -> Result<Target, RelayError> {
    if model == ECHO_MODEL {
        return Ok(Target {
            provider: Provider::Echo,
            upstream_model: ECHO_MODEL.to_string(),
            stream_usage: true,
        });
    }
    if config.openai_api_key.is_some() && config.openai_models.iter().any(|p| matches(p, model)) {
        return Ok(Target {
            provider: Provider::OpenAi,
            upstream_model: model.to_string(),
            stream_usage: config.openai_stream_usage,
        });
    }
    Err(RelayError::ModelNotFound(model.to_string()))
}

/// The concrete model ids a key may use, in config order, echo first.
pub fn available(config: &Config) -> Vec<(String, &'static str)> {
    let mut out = vec![(ECHO_MODEL.to_string(), "relay")];
    if config.openai_api_key.is_some() {
        for m in &config.openai_models {
            if !m.ends_with('*') && !out.iter().any(|(id, _)| id == m) {
                out.push((m.clone(), "openai"));
            }
        }
    }
    out
}

fn model_object(id: &str, owned_by: &str) -> Value {
    json!({"id": id, "object": "model", "created": CREATED, "owned_by": owned_by})
}

pub fn list_body(config: &Config) -> Value {
    let data: Vec<Value> = available(config)
        .iter()
        .map(|(id, owner)| model_object(id, owner))
        .collect();
    json!({"object": "list", "data": data})
}

/// `GET /v1/models/{id}`: any model the key could route to, listed or matched by a pattern.
pub fn one_body(config: &Config, id: &str) -> Result<Value, RelayError> {
    let target = resolve(config, id)?;
    Ok(model_object(id, target.provider.name()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn config(key: bool) -> Config {
        Config::from_lookup(|k| match k {
            "OPENAI_API_KEY" if key => Some("sk".into()),
            "OPENAI_MODELS" => Some("gpt-4o,mock-*".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn echo_always_there() {
        let c = config(false);
        assert_eq!(resolve(&c, "relay-echo").unwrap().provider, Provider::Echo);
        assert_eq!(
            resolve(&c, "gpt-4o"),
            Err(RelayError::ModelNotFound("gpt-4o".into()))
        );
        assert_eq!(
            list_body(&c),
            json!({"object":"list","data":[{"id":"relay-echo","object":"model","created":CREATED,"owned_by":"relay"}]})
        );
    }

    #[test]
    fn openai_routes_by_pattern() {
        let c = config(true);
        assert_eq!(resolve(&c, "mock-ok").unwrap().provider, Provider::OpenAi);
        assert_eq!(resolve(&c, "gpt-4o").unwrap().upstream_model, "gpt-4o");
        assert!(resolve(&c, "gpt-4o-mini").is_err());
        let ids: Vec<String> = available(&c).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec!["relay-echo", "gpt-4o"]);
        assert_eq!(one_body(&c, "mock-x").unwrap()["owned_by"], "openai");
        assert!(one_body(&c, "nope").is_err());
    }
}
