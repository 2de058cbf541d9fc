//! Which models a key may use and where each one goes: the built-in `relay-echo`, `ROUTES`
//! with their fallback targets, and keyed providers by model pattern. Also renders the OpenAI
//! `/v1/models` shapes (§3.3).

use serde_json::{json, Value};

use crate::config::Config;
use crate::http::error::RelayError;
use crate::keys;
use crate::keys::auth::KeyRecord;
use crate::providers::{Kind, ProviderSpec};

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
    /// The wire format to speak.
    pub provider: Provider,
    /// Where and how to call it; None for the built-in echo.
    pub spec: Option<ProviderSpec>,
    pub upstream_model: String,
    /// Whether the provider accepts `stream_options.include_usage` (R2.3).
    pub stream_usage: bool,
    /// Top-level fields this provider refuses for this model (ProviderSpec::dropped_params).
    pub drop_params: Vec<String>,
}

impl Target {
    /// The provider's id, as usage rows record it.
    pub fn provider_id(&self) -> &str {
        self.spec.as_ref().map_or("relay", |s| s.id.as_str())
    }

    fn at(spec: &ProviderSpec, model: &str) -> Target {
        Target {
            provider: match spec.kind {
                Kind::OpenAi => Provider::OpenAi,
                Kind::Anthropic => Provider::Anthropic,
            },
            spec: Some(spec.clone()),
            upstream_model: model.to_string(),
            stream_usage: spec.stream_usage,
            drop_params: spec.dropped_params(model),
        }
    }
}

fn matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => pattern == model,
    }
}

/// Every target for a model, in the order to try them: a `ROUTES` entry gives its list (minus
/// providers without a key); otherwise the first keyed provider whose models match. 404
/// `model_not_found` when nothing can serve it.
pub fn resolve_all(config: &Config, model: &str) -> Result<Vec<Target>, RelayError> {
    if model == ECHO_MODEL {
        return Ok(vec![Target {
            provider: Provider::Echo,
            spec: None,
            upstream_model: ECHO_MODEL.to_string(),
            stream_usage: true,
            drop_params: Vec::new(),
        }]);
    }
    let keyed = |id: &str| {
        config
            .providers
            .iter()
            .find(|p| p.id == id && p.api_key.is_some())
    };
    if let Some(route) = config.routes.iter().find(|r| r.name == model) {
        let targets: Vec<Target> = route
            .targets
            .iter()
            .filter_map(|(id, m)| keyed(id).map(|spec| Target::at(spec, m)))
            .collect();
        return if targets.is_empty() {
            Err(RelayError::ModelNotFound(model.to_string()))
        } else {
            Ok(targets)
        };
    }
    config
        .providers
        .iter()
        .find(|p| p.api_key.is_some() && p.models.iter().any(|m| matches(m, model)))
        .map(|spec| vec![Target::at(spec, model)])
        .ok_or_else(|| RelayError::ModelNotFound(model.to_string()))
}

/// The first target for a model.
pub fn resolve(config: &Config, model: &str) -> Result<Target, RelayError> {
    resolve_all(config, model)?
        .into_iter()
        .next()
        .ok_or_else(|| RelayError::ModelNotFound(model.to_string()))
}

/// The concrete model ids a key may use: echo, routes, then each keyed provider's listed models.
pub fn available(config: &Config) -> Vec<(String, String)> {
    let mut out = vec![(ECHO_MODEL.to_string(), "relay".to_string())];
    let mut push = |id: &str, owner: &str| {
        if !out.iter().any(|(x, _)| x == id) {
            out.push((id.to_string(), owner.to_string()));
        }
    };
    for route in &config.routes {
        if let Ok(t) = resolve(config, &route.name) {
            push(&route.name, t.provider_id());
        }
    }
    for p in config.providers.iter().filter(|p| p.api_key.is_some()) {
        for m in p.models.iter().filter(|m| !m.ends_with('*')) {
            push(m, &p.id);
        }
    }
    out
}

/// Names Cursor takes over instead of sending to a custom base URL (protocol.md R7.7): a
/// Cursor-facing alias or route containing one never reaches the relay.
pub fn cursor_intercepts(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["gpt", "claude", "gemini"].iter().any(|w| n.contains(w))
        || ["o1", "o3", "o4"].iter().any(|p| n.starts_with(p))
}

/// Warnings for names that Cursor would intercept, for config lint and admin answers.
pub fn cursor_warnings<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| cursor_intercepts(n))
        .map(|n| {
            format!("'{n}' contains a name Cursor intercepts (gpt, claude, gemini, o1/o3/o4); Cursor users should get a neutral alias such as 'relay-sonnet'")
        })
        .collect()
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
            data.push(model_object(alias, t.provider_id()));
        }
    }
    json!({"object": "list", "data": data})
}

/// `GET /v1/models/{id}`: any model the key could route to, listed or matched by a pattern.
pub fn one_body(config: &Config, key: &KeyRecord, id: &str) -> Result<Value, RelayError> {
    let effective = keys::effective_model(key, id)?;
    let target = resolve(config, &effective)?;
    Ok(model_object(id, target.provider_id()))
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
        let c = Config::from_lookup(|k| match k {
            "OPENAI_API_KEY" => Some("sk".into()),
            "ANTHROPIC_API_KEY" => Some("sk-ant".into()),
            "OPENAI_MODELS" => Some("gpt-4o,mock-*".into()),
            "ANTHROPIC_MODELS" => Some("claude-x,claude-*".into()),
            _ => None,
        })
        .unwrap();
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
    fn cursor_lint() {
        assert!(
            cursor_intercepts("gpt-4o")
                && cursor_intercepts("my-Claude")
                && cursor_intercepts("o3-mini")
        );
        assert!(!cursor_intercepts("relay-sonnet") && !cursor_intercepts("foo3"));
        assert_eq!(cursor_warnings(["relay-fast", "gpt-fast"]).len(), 1);
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
    fn default_openai_models_route_embeddings_and_moderation() {
        let c = Config::from_lookup(|k| (k == "OPENAI_API_KEY").then(|| "sk".into())).unwrap();
        for model in [
            "gpt-4o",
            "text-embedding-3-small",
            "text-embedding-3-large",
            "text-embedding-ada-002",
            "text-embedding-4-future",
            "omni-moderation-latest",
            "omni-moderation-2024-09-26",
            "text-moderation-stable",
        ] {
            let t = resolve(&c, model).unwrap();
            assert_eq!(
                (t.provider, t.upstream_model.as_str()),
                (Provider::OpenAi, model)
            );
        }
        let ids: Vec<String> = available(&c).into_iter().map(|(id, _)| id).collect();
        for listed in [
            "text-embedding-3-small",
            "text-embedding-3-large",
            "text-embedding-ada-002",
            "omni-moderation-latest",
        ] {
            assert!(ids.iter().any(|id| id == listed), "{listed} not in {ids:?}");
        }
        assert!(
            !ids.iter().any(|id| id.ends_with('*')),
            "patterns are not listed"
        );
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
