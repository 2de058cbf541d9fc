//! The provider registry: every upstream the relay can call (OpenAI, Anthropic, and any
//! OpenAI-compatible server declared in `PROVIDERS`), and model routes (`ROUTES`) that map a
//! name to an ordered list of targets for fallback. Parsed and validated from JSON vars.

pub mod echo;
pub mod models;
pub mod output_caps;

use serde_json::{Map, Value};

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    OpenAi,
    Anthropic,
}

/// How the provider wants its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyHeader {
    /// `Authorization: Bearer <key>` (OpenAI and most compatible servers).
    Bearer,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
    /// `api-key: <key>` (Azure OpenAI).
    ApiKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSpec {
    pub id: String,
    pub kind: Kind,
    pub base_url: String,
    /// None when the named secret is not set: the provider is then skipped.
    pub api_key: Option<String>,
    pub key_header: KeyHeader,
    /// Whether it accepts `stream_options.include_usage` (Mistral, older vLLM/Groq do not).
    pub stream_usage: bool,
    /// Models routed here by name (`prefix*` patterns allowed).
    pub models: Vec<String>,
    /// Appended to every request URL, e.g. Azure's `api-version=2024-10-21`.
    pub query: Option<String>,
    /// Time to the response headers before the attempt counts as failed.
    pub ttfb_timeout_ms: Option<u64>,
    /// Longest silence mid-stream before the relay gives up with an in-band error.
    pub idle_timeout_ms: Option<u64>,
    /// Top-level request fields never sent here: strict servers (Mistral, some vLLM builds)
    /// refuse a body with a field they do not know instead of ignoring it.
    pub drop_params: Vec<String>,
    /// When set, `reasoning_effort` goes out only for these models (`prefix*` patterns, `!…`
    /// excludes): Cursor sends it for models that answer it with a 400 (landscape.md §3).
    pub reasoning_models: Option<Vec<String>>,
    /// Serves OpenAI's Responses API (kind `openai`): `/v1/responses` is passed through to it
    /// rather than translated to Chat Completions (R4.1).
    pub responses_api: bool,
}

/// The OpenAI models that take `reasoning_effort`; the others refuse it with "Unrecognized
/// request argument" or "Unsupported parameter".
pub const OPENAI_REASONING_MODELS: &[&str] = &[
    "o1*",
    "!o1-mini*",
    "!o1-preview*",
    "o3*",
    "o4*",
    "gpt-5*",
    "!gpt-5-chat*",
];

/// Whether `model` is in a pattern list where `prefix*` matches by prefix and a leading `!`
/// excludes (exclusions win, so order does not matter).
pub fn listed(patterns: &[String], model: &str) -> bool {
    let hit = |p: &str| match p.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => model == p,
    };
    let excluded = patterns.iter().filter_map(|p| p.strip_prefix('!')).any(hit);
    !excluded && patterns.iter().any(|p| !p.starts_with('!') && hit(p))
}

/// A comma-separated list, blanks dropped.
pub fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl ProviderSpec {
    /// The top-level fields to remove from a chat body sent to `model` here.
    pub fn dropped_params(&self, model: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .drop_params
            .iter()
            .filter(|p| !PINNED.contains(&p.as_str()))
            .cloned()
            .collect();
        if let Some(list) = &self.reasoning_models {
            if !listed(list, model) && !out.iter().any(|p| p == "reasoning_effort") {
                out.push("reasoning_effort".to_string());
            }
        }
        out
    }

    /// The URL for an OpenAI-style path such as `/chat/completions`.
    pub fn url(&self, path: &str) -> String {
        match &self.query {
            Some(q) => format!("{}{path}?{q}", self.base_url),
            None => format!("{}{path}", self.base_url),
        }
    }
}

/// A model route: `name` → ordered `(provider id, upstream model)` targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    pub name: String,
    pub targets: Vec<(String, String)>,
}

/// A field's value, with `null` meaning absent.
fn field<'a>(
    o: &'a Map<String, Value>,
    _id: &str,
    name: &str,
) -> Result<Option<&'a Value>, String> {
    Ok(o.get(name).filter(|v| !v.is_null()))
}

fn string(o: &Map<String, Value>, id: &str, name: &str) -> Result<Option<String>, String> {
    match field(o, id, name)? {
        None => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Some(_) => Err(format!("PROVIDERS.{id}.{name} must be a non-empty string")),
    }
}

const FIELDS: &[&str] = &[
    "kind",
    "base_url",
    "key_secret",
    "key_header",
    "stream_usage",
    "models",
    "api_version",
    "ttfb_timeout_ms",
    "idle_timeout_ms",
    "drop_params",
    "reasoning_models",
];

/// Fields a request cannot go without, so no drop list may name them.
const PINNED: &[&str] = &["model", "messages", "prompt", "input", "stream"];

/// Parses `PROVIDERS`: `{"<id>": {kind, base_url, key_secret, …}}`; `secret(name)` reads the
/// named secret so keys never live in config text.
pub fn parse_providers(
    json: &str,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<ProviderSpec>, String> {
    let doc: Value =
        serde_json::from_str(json).map_err(|e| format!("PROVIDERS: invalid JSON: {e}"))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| "PROVIDERS must be an object of providers by id".to_string())?;
    let mut out = Vec::new();
    for (id, v) in obj {
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!(
                "PROVIDERS: provider id {id:?} must be a-z, 0-9 and '-'"
            ));
        }
        out.push(parse_provider(id, v, secret)?);
    }
    Ok(out)
}

/// One entry of `PROVIDERS`, its fields checked in the order the errors name them.
fn parse_provider(
    id: &str,
    v: &Value,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<ProviderSpec, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("PROVIDERS.{id} must be an object"))?;
    if let Some(unknown) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(format!(
            "PROVIDERS.{id}: unknown field {unknown:?} (known: {})",
            FIELDS.join(", ")
        ));
    }
    let kind_name = string(o, id, "kind")?;
    let kind = provider_kind(id, kind_name.as_deref())?;
    let base_url = string(o, id, "base_url")?
        .ok_or_else(|| format!("PROVIDERS.{id}.base_url is required"))?
        .trim_end_matches('/')
        .to_string();
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        return Err(format!("PROVIDERS.{id}.base_url must be an http(s) URL"));
    }
    let key_secret = string(o, id, "key_secret")?.ok_or_else(|| {
        format!("PROVIDERS.{id}.key_secret (the name of the secret holding its key) is required")
    })?;
    let key_header = key_header(id, kind, string(o, id, "key_header")?.as_deref())?;
    let stream_usage = match field(o, id, "stream_usage")? {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(format!("PROVIDERS.{id}.stream_usage must be true or false")),
    };
    let models = strings(o, id, "models")?.unwrap_or_default();
    let drop_params = strings(o, id, "drop_params")?.unwrap_or_default();
    if let Some(p) = drop_params.iter().find(|p| PINNED.contains(&p.as_str())) {
        return Err(format!(
            "PROVIDERS.{id}.drop_params cannot drop {p:?}: the request needs it"
        ));
    }
    let reasoning_models = strings(o, id, "reasoning_models")?;
    let query = string(o, id, "api_version")?.map(|v| format!("api-version={v}"));
    let ttfb_timeout_ms = millis(o, id, "ttfb_timeout_ms")?;
    let idle_timeout_ms = millis(o, id, "idle_timeout_ms")?;
    // An Azure base URL of one deployment (`…/openai/deployments/<name>`) serves Chat under
    // it, but Azure serves the Responses API elsewhere (`/openai/v1/responses`, model = the
    // deployment): such a provider gets Responses translated through Chat, which it serves.
    let per_deployment = base_url.contains("/openai/deployments/");
    Ok(ProviderSpec {
        id: id.to_string(),
        kind,
        base_url,
        api_key: secret(&key_secret),
        key_header,
        stream_usage,
        models,
        query,
        ttfb_timeout_ms,
        idle_timeout_ms,
        drop_params,
        reasoning_models,
        responses_api: kind_name.as_deref() == Some("openai") && !per_deployment,
    })
}

fn provider_kind(id: &str, kind_name: Option<&str>) -> Result<Kind, String> {
    Ok(match kind_name {
        Some("openai") | Some("openai-compatible") => Kind::OpenAi,
        Some("anthropic") => Kind::Anthropic,
        Some(other) => {
            return Err(format!(
                "PROVIDERS.{id}.kind must be openai, openai-compatible or anthropic, got {other:?}"
            ))
        }
        None => return Err(format!("PROVIDERS.{id}.kind is required")),
    })
}

fn key_header(id: &str, kind: Kind, name: Option<&str>) -> Result<KeyHeader, String> {
    Ok(match name {
        None => match kind {
            Kind::OpenAi => KeyHeader::Bearer,
            Kind::Anthropic => KeyHeader::XApiKey,
        },
        Some("authorization") | Some("bearer") => KeyHeader::Bearer,
        Some("x-api-key") => KeyHeader::XApiKey,
        Some("api-key") => KeyHeader::ApiKey,
        Some(other) => {
            return Err(format!(
            "PROVIDERS.{id}.key_header must be authorization, x-api-key or api-key, got {other:?}"
        ))
        }
    })
}

fn strings(o: &Map<String, Value>, id: &str, name: &str) -> Result<Option<Vec<String>>, String> {
    match field(o, id, name)? {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|m| {
                m.as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| format!("PROVIDERS.{id}.{name} must be strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(format!("PROVIDERS.{id}.{name} must be an array")),
    }
}

fn millis(o: &Map<String, Value>, id: &str, name: &str) -> Result<Option<u64>, String> {
    match field(o, id, name)? {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| format!("PROVIDERS.{id}.{name} must be a positive integer")),
    }
}

/// Parses `ROUTES`: `{"<name>": ["<provider id>:<upstream model>", …]}`, checking every provider
/// id against `known`.
pub fn parse_routes(json: &str, known: &[&str]) -> Result<Vec<ModelRoute>, String> {
    let doc: Value =
        serde_json::from_str(json).map_err(|e| format!("ROUTES: invalid JSON: {e}"))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| "ROUTES must be an object of model names".to_string())?;
    let mut out = Vec::new();
    for (name, v) in obj {
        let items = v.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
            format!("ROUTES.{name} must be a non-empty array of \"provider:model\"")
        })?;
        let mut targets = Vec::new();
        for item in items {
            let (provider, model) = item
                .as_str()
                .and_then(|s| s.split_once(':'))
                .filter(|(p, m)| !p.is_empty() && !m.is_empty())
                .ok_or_else(|| format!("ROUTES.{name}: {item} is not \"provider:model\""))?;
            if !known.contains(&provider) {
                return Err(format!(
                    "ROUTES.{name}: unknown provider {provider:?} (known: {})",
                    known.join(", ")
                ));
            }
            targets.push((provider.to_string(), model.to_string()));
        }
        out.push(ModelRoute {
            name: name.clone(),
            targets,
        });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn secrets(name: &str) -> Option<String> {
        (name == "GROQ_API_KEY" || name == "AZURE_KEY").then(|| format!("key-{name}"))
    }

    #[test]
    fn providers_parse_with_defaults_and_quirks() {
        let json = r#"{
            "groq": {"kind": "openai-compatible", "base_url": "https://api.groq.com/openai/v1/", "key_secret": "GROQ_API_KEY", "stream_usage": false, "models": ["llama-*"]},
            "azure": {"kind": "openai", "base_url": "https://x.openai.azure.com/openai/deployments/gpt4o", "key_secret": "AZURE_KEY", "key_header": "api-key", "api_version": "2024-10-21"},
            "mistral": {"kind": "openai-compatible", "base_url": "https://api.mistral.ai/v1", "key_secret": "MISTRAL_API_KEY", "stream_usage": false}
        }"#;
        let p = parse_providers(json, &secrets).unwrap();
        assert_eq!(p.len(), 3);
        let azure = p.iter().find(|s| s.id == "azure").unwrap();
        assert_eq!(azure.key_header, KeyHeader::ApiKey);
        assert_eq!(azure.url("/chat/completions"), "https://x.openai.azure.com/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21");
        let groq = p.iter().find(|s| s.id == "groq").unwrap();
        assert_eq!(groq.base_url, "https://api.groq.com/openai/v1");
        assert!(!groq.stream_usage);
        assert_eq!(groq.api_key.as_deref(), Some("key-GROQ_API_KEY"));
        // Only kind `openai` serves the Responses API; compatible servers, and an Azure base URL
        // of one deployment (Chat only under it), get it translated.
        assert!(!azure.responses_api && !groq.responses_api);
        let v1 = parse_providers(
            r#"{"azure-v1": {"kind": "openai", "base_url": "https://x.openai.azure.com/openai/v1", "key_secret": "AZURE_KEY", "key_header": "api-key"},
                "openai": {"kind": "openai", "base_url": "https://api.openai.com/v1", "key_secret": "K"}}"#,
            &secrets,
        )
        .unwrap();
        assert!(v1.iter().all(|s| s.responses_api));
        assert_eq!(
            p.iter().find(|s| s.id == "mistral").unwrap().api_key,
            None,
            "secret not set"
        );
    }

    #[test]
    fn provider_errors_are_precise() {
        let cases = [
            ("[]", "PROVIDERS must be an object of providers by id"),
            (r#"{"x": {"base_url": "https://a", "key_secret": "K"}}"#, "PROVIDERS.x.kind is required"),
            (r#"{"x": {"kind": "cohere", "base_url": "https://a", "key_secret": "K"}}"#, "PROVIDERS.x.kind must be openai, openai-compatible or anthropic, got \"cohere\""),
            (r#"{"x": {"kind": "openai", "base_url": "a.example", "key_secret": "K"}}"#, "PROVIDERS.x.base_url must be an http(s) URL"),
            (r#"{"x": {"kind": "openai", "base_url": "https://a", "key_secret": "K", "timeout": 5}}"#, "PROVIDERS.x: unknown field \"timeout\" (known: kind, base_url, key_secret, key_header, stream_usage, models, api_version, ttfb_timeout_ms, idle_timeout_ms, drop_params, reasoning_models)"),
            (r#"{"X": {}}"#, "PROVIDERS: provider id \"X\" must be a-z, 0-9 and '-'"),
        ];
        for (json, message) in cases {
            assert_eq!(
                parse_providers(json, &secrets).unwrap_err(),
                message,
                "{json}"
            );
        }
    }

    #[test]
    fn routes_parse_and_check_providers() {
        let r = parse_routes(
            r#"{"relay-fast": ["groq:llama-3.3-70b", "openai:gpt-4o-mini"]}"#,
            &["openai", "groq"],
        )
        .unwrap();
        assert_eq!(
            r[0].targets,
            vec![
                ("groq".to_string(), "llama-3.3-70b".to_string()),
                ("openai".to_string(), "gpt-4o-mini".to_string())
            ]
        );
        assert_eq!(
            parse_routes(r#"{"x": ["nope:m"]}"#, &["openai"]).unwrap_err(),
            "ROUTES.x: unknown provider \"nope\" (known: openai)"
        );
        assert!(parse_routes(r#"{"x": []}"#, &["openai"]).is_err());
        assert!(parse_routes(r#"{"x": ["openai"]}"#, &["openai"]).is_err());
    }

    #[test]
    fn reasoning_effort_goes_only_to_models_that_take_it() {
        let list: Vec<String> = OPENAI_REASONING_MODELS
            .iter()
            .map(|s| s.to_string())
            .collect();
        for m in [
            "o1",
            "o1-2024-12-17",
            "o3-mini",
            "o4-mini",
            "gpt-5",
            "gpt-5-mini",
        ] {
            assert!(listed(&list, m), "{m}");
        }
        for m in [
            "gpt-4o",
            "gpt-4.1-mini",
            "o1-mini",
            "o1-preview",
            "gpt-5-chat-latest",
            "mock-ok",
        ] {
            assert!(!listed(&list, m), "{m}");
        }
        let json = r#"{
            "strict": {"kind": "openai-compatible", "base_url": "http://h/v1", "key_secret": "K",
                       "drop_params": ["reasoning_effort", "store", "model"], "reasoning_models": ["r1*"]},
            "lax": {"kind": "openai-compatible", "base_url": "http://h/v1", "key_secret": "K",
                    "reasoning_models": ["qwen3*"]},
            "open": {"kind": "openai-compatible", "base_url": "http://h/v1", "key_secret": "K"}
        }"#;
        let err = parse_providers(json, &secrets).unwrap_err();
        assert!(err.contains("cannot drop \"model\""), "{err}");
        let json = json.replace(", \"model\"]", "]");
        let p = parse_providers(&json, &secrets).unwrap();
        let get = |id: &str| p.iter().find(|s| s.id == id).unwrap();
        // Dropped for every model, listed or not, and never twice.
        assert_eq!(
            get("strict").dropped_params("r1-large"),
            ["reasoning_effort", "store"]
        );
        assert_eq!(
            get("strict").dropped_params("other"),
            ["reasoning_effort", "store"]
        );
        assert!(get("lax").dropped_params("qwen3-32b").is_empty());
        assert_eq!(get("lax").dropped_params("llama-3"), ["reasoning_effort"]);
        // No list: everything passes through, as OpenAI-compatible servers mostly ignore it.
        assert!(get("open").dropped_params("anything").is_empty());
        assert_eq!(comma_list(" a, ,b "), ["a", "b"]);
    }
}
