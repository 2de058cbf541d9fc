//! The provider registry: every upstream the relay can call (OpenAI, Anthropic, and any
//! OpenAI-compatible server declared in `PROVIDERS`), and model routes (`ROUTES`) that map a
//! name to an ordered list of targets for fallback. Parsed and validated from JSON vars.

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
}

impl ProviderSpec {
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
];

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
        let o = v
            .as_object()
            .ok_or_else(|| format!("PROVIDERS.{id} must be an object"))?;
        if let Some(unknown) = o.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(format!(
                "PROVIDERS.{id}: unknown field {unknown:?} (known: {})",
                FIELDS.join(", ")
            ));
        }
        let kind = match string(o, id, "kind")?.as_deref() {
            Some("openai") | Some("openai-compatible") => Kind::OpenAi,
            Some("anthropic") => Kind::Anthropic,
            Some(other) => {
                return Err(format!(
                "PROVIDERS.{id}.kind must be openai, openai-compatible or anthropic, got {other:?}"
            ))
            }
            None => return Err(format!("PROVIDERS.{id}.kind is required")),
        };
        let base_url = string(o, id, "base_url")?
            .ok_or_else(|| format!("PROVIDERS.{id}.base_url is required"))?
            .trim_end_matches('/')
            .to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(format!("PROVIDERS.{id}.base_url must be an http(s) URL"));
        }
        let key_secret = string(o, id, "key_secret")?.ok_or_else(|| {
            format!(
                "PROVIDERS.{id}.key_secret (the name of the secret holding its key) is required"
            )
        })?;
        let key_header = match string(o, id, "key_header")?.as_deref() {
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
        };
        let stream_usage = match field(o, id, "stream_usage")? {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(format!("PROVIDERS.{id}.stream_usage must be true or false")),
        };
        let models = match field(o, id, "models")? {
            None => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|m| {
                    m.as_str()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .ok_or_else(|| format!("PROVIDERS.{id}.models must be strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(format!("PROVIDERS.{id}.models must be an array")),
        };
        let query = string(o, id, "api_version")?.map(|v| format!("api-version={v}"));
        let millis = |name: &str| -> Result<Option<u64>, String> {
            match field(o, id, name)? {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| format!("PROVIDERS.{id}.{name} must be a positive integer")),
            }
        };
        let ttfb_timeout_ms = millis("ttfb_timeout_ms")?;
        let idle_timeout_ms = millis("idle_timeout_ms")?;
        out.push(ProviderSpec {
            id: id.clone(),
            kind,
            base_url,
            api_key: secret(&key_secret),
            key_header,
            stream_usage,
            models,
            query,
            ttfb_timeout_ms,
            idle_timeout_ms,
        });
    }
    Ok(out)
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
            (r#"{"x": {"kind": "openai", "base_url": "https://a", "key_secret": "K", "timeout": 5}}"#, "PROVIDERS.x: unknown field \"timeout\" (known: kind, base_url, key_secret, key_header, stream_usage, models, api_version, ttfb_timeout_ms, idle_timeout_ms)"),
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
}
