//! Which models a key may use and where each one goes: the built-in `relay-echo`, and OpenAI
//! when its key is configured. Also renders the OpenAI `/v1/models` shapes (§3.3).

use serde_json::{json, Value};

use crate::auth::KeyRecord;
use crate::config::Config;
use crate::error::RelayError;
use crate::keys;

pub const ECHO_MODEL: &str = "relay-echo";
/// A fixed `created` so the list is stable between calls (clients cache it).
const CREATED: u64 = 1_767_225_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Answers inside the worker; spends no tokens.
    Echo,
    OpenAi,
    /// Claude, through the Messages API: translated for OpenAI-format clients.
    Anthropic,
}

impl Provider {
    pub fn name(self) -> &'static str {
        match self {
            Provider::Echo => "relay",
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
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
    if config.anthropic_api_key.is_some()
        && config.anthropic_models.iter().any(|p| matches(p, model))
    {
        return Ok(Target {
            provider: Provider::Anthropic,
            upstream_model: model.to_string(),
            stream_usage: true,
        });
    }
    Err(RelayError::ModelNotFound(model.to_string()))
}

/// The concrete model ids a key may use, in config order, echo first.
pub fn available(config: &Config) -> Vec<(String, &'static str)> {
    let mut out = vec![(ECHO_MODEL.to_string(), "relay")];
    let providers = [
        (
            config.openai_api_key.is_some(),
            &config.openai_models,
            "openai",
        ),
        (
            config.anthropic_api_key.is_some(),
            &config.anthropic_models,
            "anthropic",
        ),
    ];
    for (enabled, models, owner) in providers {
        if !enabled {
            continue;
        }
        for m in models {
            if !m.ends_with('*') && !out.iter().any(|(id, _)| id == m) {
                out.push((m.clone(), owner));
            }
        }
    }
    out
}

fn model_object(id: &str, owned_by: &str) -> Value {
    json!({"id": id, "object": "model", "created": CREATED, "owned_by": owned_by})
}

/// `GET /v1/models`: what this key may use — the relay's models its policy allows, then its
/// aliases whose targets resolve (R3.3: 200 even when the list is empty).
pub fn list_body(config: &Config, key: &KeyRecord) -> Value {
    let mut data: Vec<Value> = available(config)
        .iter()
        .filter(|(id, _)| keys::allows(key, id))
        .map(|(id, owner)| model_object(id, owner))
        .collect();
    for (alias, target) in &key.aliases {
        if let Ok(t) = resolve(config, target) {
            data.push(model_object(alias, t.provider.name()));
        }
    }
    json!({"object": "list", "data": data})
}

/// `GET /v1/models/{id}`: any model the key could route to, listed or matched by a pattern.
pub fn one_body(config: &Config, key: &KeyRecord, id: &str) -> Result<Value, RelayError> {
    let effective = keys::effective_model(key, id)?;
    let target = resolve(config, &effective)?;
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
            "ANTHROPIC_MODELS" => Some("claude-x,claude-*".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn claude_routes_to_anthropic_when_keyed() {
        let none = config(false);
        assert!(resolve(&none, "claude-x").is_err());
        let c = Config {
            anthropic_api_key: Some("sk-ant".into()),
            ..config(true)
        };
        assert_eq!(
            resolve(&c, "claude-sonnet-9").unwrap().provider,
            Provider::Anthropic
        );
        assert_eq!(resolve(&c, "mock-ok").unwrap().provider, Provider::OpenAi);
        let ids: Vec<String> = available(&c).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, vec!["relay-echo", "gpt-4o", "claude-x"]);
    }

    fn open_key() -> KeyRecord {
        serde_json::from_value(json!({"id":"key_1","team":"t","user":"u","env":"prod","created_at":"x","status":"active"})).unwrap()
    }

    #[test]
    fn echo_always_there() {
        let c = config(false);
        let k = open_key();
        assert_eq!(resolve(&c, "relay-echo").unwrap().provider, Provider::Echo);
        assert_eq!(
            resolve(&c, "gpt-4o"),
            Err(RelayError::ModelNotFound("gpt-4o".into()))
        );
        assert_eq!(
            list_body(&c, &k),
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
        let k = open_key();
        assert_eq!(one_body(&c, &k, "mock-x").unwrap()["owned_by"], "openai");
        assert!(one_body(&c, &k, "nope").is_err());
    }

    #[test]
    fn lists_follow_the_key_policy() {
        let c = config(true);
        let mut k = open_key();
        k.models = Some(vec!["gpt-4o".into()]);
        k.aliases.insert("fast".into(), "mock-ok".into());
        k.aliases.insert("broken".into(), "no-such-model".into());
        let ids: Vec<String> = list_body(&c, &k)["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            ids,
            vec!["gpt-4o", "fast"],
            "relay-echo not allowed; unresolvable alias hidden"
        );
        assert_eq!(one_body(&c, &k, "fast").unwrap()["owned_by"], "openai");
        assert_eq!(
            one_body(&c, &k, "relay-echo"),
            Err(RelayError::ModelNotAllowed("relay-echo".into()))
        );
        k.models = Some(vec![]);
        k.aliases.clear();
        assert_eq!(list_body(&c, &k), json!({"object":"list","data":[]}));
    }
}
