//! Deployment settings read from Worker vars and secrets, with their defaults and validation.
//! Built from a lookup function so the rules are tested natively.

use crate::http::error::RelayError;
use crate::providers::output_caps::OutputCaps;
use crate::providers::{self, KeyHeader, Kind, ModelRoute, ProviderSpec};

pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// Claude models route to Anthropic when `ANTHROPIC_API_KEY` is set.
pub const DEFAULT_ANTHROPIC_MODELS: &str =
    "claude-sonnet-4-5,claude-opus-4-1,claude-haiku-4-5,claude-*";
/// Anthropic requires `max_tokens`; OpenAI clients often omit it.
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u64 = 8192;
/// Listed by `/v1/models` and routed to OpenAI when `OPENAI_API_KEY` is set; `*` suffixes route
/// whole families without listing them. OpenAI's embedding and moderation models are in it so
/// `/v1/embeddings` and `/v1/moderations` work with nothing but the key set.
pub const DEFAULT_OPENAI_MODELS: &str = concat!(
    "gpt-4o,gpt-4o-mini,gpt-4.1,gpt-4.1-mini,o3,o4-mini,gpt-*,chatgpt-*,o1*,o3*,o4*,",
    "text-embedding-3-small,text-embedding-3-large,text-embedding-ada-002,text-embedding-*,",
    "omni-moderation-latest,omni-moderation-*,text-moderation-*"
);
/// Shortest `ADMIN_TOKEN` that enables `/admin` and `/dashboard`: 32 characters of a random
/// string are far beyond guessing, even at the throttle's pace (README: "Admin API").
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;
/// 4 MiB of JSON is about a million tokens of text, more than any model's context window, and
/// leaves room for a few inline images. A body costs about four to five times its size while
/// a request is in flight (README, Configuration), and an isolate has 128 MB for all its
/// concurrent requests: 16 MiB bodies did not fit two at a time.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The most `MAX_BODY_BYTES` may be set to: one such body alone takes over half an isolate.
pub const MAX_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
pub const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 120_000;
/// How long a started stream may go unread by the client before its usage row is written
/// provisionally (toolchain.md trap 1: a hang-up does not drop the stream). Well under the
/// 30 s that `wait_until` survives a client that has gone.
pub const DEFAULT_STREAM_IDLE_MS: u64 = 10_000;
/// A provider silent this long mid-stream is given up on, with an in-band error to the client.
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS: u64 = 300_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub openai_api_key: Option<String>,
    pub openai_base_url: String,
    pub openai_models: Vec<String>,
    /// Whether the provider accepts `stream_options.include_usage` (some OpenAI-compatible
    /// servers reject it: Mistral 422, older vLLM and Groq 400). When false the relay does not
    /// ask for the usage chunk and estimates instead.
    pub openai_stream_usage: bool,
    pub anthropic_api_key: Option<String>,
    pub anthropic_base_url: String,
    pub anthropic_models: Vec<String>,
    pub anthropic_max_tokens: u64,
    /// Every provider in resolution order: those declared in `PROVIDERS`, then the built-in
    /// `openai` and `anthropic` (from their own vars).
    pub providers: Vec<ProviderSpec>,
    pub routes: Vec<ModelRoute>,
    /// Set only when long enough; `/admin` and `/dashboard` exist only then.
    pub admin_token: Option<String>,
    /// The length of an `ADMIN_TOKEN` refused as too short, so the edge can say why admin is off.
    pub admin_token_too_short: Option<usize>,
    /// The deployer's price overrides (JSON, same shape as src/metering/prices.json).
    pub prices: Option<String>,
    pub max_body_bytes: usize,
    pub upstream_timeout_ms: u64,
    pub stream_idle_ms: u64,
    pub upstream_idle_timeout_ms: u64,
    /// Output-token caps for translated requests: the shipped table with `MAX_OUTPUT_TOKENS`.
    pub output_caps: OutputCaps,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            openai_api_key: None,
            openai_base_url: DEFAULT_OPENAI_BASE_URL.to_string(),
            openai_models: Vec::new(),
            openai_stream_usage: true,
            anthropic_api_key: None,
            anthropic_base_url: DEFAULT_ANTHROPIC_BASE_URL.to_string(),
            anthropic_models: Vec::new(),
            anthropic_max_tokens: DEFAULT_ANTHROPIC_MAX_TOKENS,
            providers: Vec::new(),
            routes: Vec::new(),
            admin_token: None,
            admin_token_too_short: None,
            prices: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            upstream_timeout_ms: DEFAULT_UPSTREAM_TIMEOUT_MS,
            stream_idle_ms: DEFAULT_STREAM_IDLE_MS,
            upstream_idle_timeout_ms: DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS,
            output_caps: OutputCaps::load(None).unwrap_or_default(),
        }
    }
}

impl Config {
    /// `get(name)` returns a var or secret, or None when unset. Empty strings count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, RelayError> {
        let get = |name: &str| {
            get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let openai_base_url = base_url(&get, "OPENAI_BASE_URL", DEFAULT_OPENAI_BASE_URL)?;
        let openai_models = list(&get, "OPENAI_MODELS", DEFAULT_OPENAI_MODELS);
        let anthropic_base_url = base_url(&get, "ANTHROPIC_BASE_URL", DEFAULT_ANTHROPIC_BASE_URL)?;
        let anthropic_models = list(&get, "ANTHROPIC_MODELS", DEFAULT_ANTHROPIC_MODELS);
        let mut registry = match get("PROVIDERS") {
            Some(json) => providers::parse_providers(&json, &|name| get(name))
                .map_err(RelayError::Internal)?,
            None => Vec::new(),
        };
        if registry
            .iter()
            .any(|p| p.id == "openai" || p.id == "anthropic" || p.id == "relay")
        {
            return Err(RelayError::Internal(
                "PROVIDERS: openai, anthropic and relay are built in; configure them with OPENAI_*/ANTHROPIC_* vars".to_string(),
            ));
        }
        registry.push(builtin_openai(&get, &openai_base_url, &openai_models)?);
        registry.push(builtin_anthropic(
            &get,
            &anthropic_base_url,
            &anthropic_models,
        ));
        let admin_token = get("ADMIN_TOKEN");
        let ids: Vec<&str> = registry.iter().map(|p| p.id.as_str()).collect();
        let routes = match get("ROUTES") {
            Some(json) => providers::parse_routes(&json, &ids).map_err(RelayError::Internal)?,
            None => Vec::new(),
        };
        Ok(Config {
            providers: registry,
            routes,
            openai_api_key: get("OPENAI_API_KEY"),
            openai_base_url,
            openai_models,
            openai_stream_usage: flag(&get, "OPENAI_STREAM_USAGE", true)?,
            anthropic_api_key: get("ANTHROPIC_API_KEY"),
            anthropic_base_url,
            anthropic_models,
            anthropic_max_tokens: number(
                &get,
                "ANTHROPIC_MAX_TOKENS",
                DEFAULT_ANTHROPIC_MAX_TOKENS,
            )?,
            admin_token: admin_token
                .clone()
                .filter(|t| t.chars().count() >= MIN_ADMIN_TOKEN_CHARS),
            admin_token_too_short: admin_token
                .map(|t| t.chars().count())
                .filter(|n| *n < MIN_ADMIN_TOKEN_CHARS),
            prices: get("PRICES"),
            max_body_bytes: body_limit(&get)?,
            upstream_timeout_ms: number(&get, "UPSTREAM_TIMEOUT_MS", DEFAULT_UPSTREAM_TIMEOUT_MS)?,
            stream_idle_ms: number(&get, "STREAM_IDLE_MS", DEFAULT_STREAM_IDLE_MS)?,
            upstream_idle_timeout_ms: number(
                &get,
                "UPSTREAM_IDLE_TIMEOUT_MS",
                DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS,
            )?,
            output_caps: OutputCaps::load(get("MAX_OUTPUT_TOKENS").as_deref())
                .map_err(RelayError::Internal)?,
        })
    }
}

/// The built-in `openai` provider, from the OPENAI_* vars.
fn builtin_openai(
    get: &impl Fn(&str) -> Option<String>,
    base_url: &str,
    models: &[String],
) -> Result<ProviderSpec, RelayError> {
    Ok(ProviderSpec {
        id: "openai".to_string(),
        kind: Kind::OpenAi,
        base_url: base_url.to_string(),
        api_key: get("OPENAI_API_KEY"),
        key_header: KeyHeader::Bearer,
        stream_usage: flag(get, "OPENAI_STREAM_USAGE", true)?,
        models: models.to_vec(),
        query: None,
        ttfb_timeout_ms: None,
        idle_timeout_ms: None,
        drop_params: get("OPENAI_DROP_PARAMS")
            .map(|v| providers::comma_list(&v))
            .unwrap_or_default(),
        reasoning_models: Some(match get("OPENAI_REASONING_MODELS") {
            Some(v) => providers::comma_list(&v),
            None => providers::OPENAI_REASONING_MODELS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }),
        responses_api: true,
    })
}

/// The built-in `anthropic` provider, from the ANTHROPIC_* vars.
fn builtin_anthropic(
    get: &impl Fn(&str) -> Option<String>,
    base_url: &str,
    models: &[String],
) -> ProviderSpec {
    ProviderSpec {
        id: "anthropic".to_string(),
        kind: Kind::Anthropic,
        base_url: base_url.to_string(),
        api_key: get("ANTHROPIC_API_KEY"),
        key_header: KeyHeader::XApiKey,
        stream_usage: true,
        models: models.to_vec(),
        query: None,
        ttfb_timeout_ms: None,
        idle_timeout_ms: None,
        // The O→A translation already keeps only what Messages takes.
        drop_params: Vec::new(),
        reasoning_models: None,
        responses_api: false,
    }
}

fn base_url(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: &str,
) -> Result<String, RelayError> {
    let url = get(name)
        .unwrap_or_else(|| default.to_string())
        .trim_end_matches('/')
        .to_string();
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(url)
    } else {
        Err(RelayError::Internal(format!(
            "{name} must be an http(s) URL, got {url:?}"
        )))
    }
}

fn list(get: &impl Fn(&str) -> Option<String>, name: &str, default: &str) -> Vec<String> {
    get(name)
        .unwrap_or_else(|| default.to_string())
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn flag(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: bool,
) -> Result<bool, RelayError> {
    match get(name).as_deref() {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(v) => Err(RelayError::Internal(format!(
            "{name} must be true or false, got {v:?}"
        ))),
    }
}

/// `MAX_BODY_BYTES`, read as a u64 and range-checked before it becomes a `usize`, which is
/// 32 bits on wasm32: a cast would turn 4294967297 into a 1-byte limit.
fn body_limit(get: &impl Fn(&str) -> Option<String>) -> Result<usize, RelayError> {
    let n = number(get, "MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES as u64)?;
    if n > MAX_MAX_BODY_BYTES {
        return Err(RelayError::Internal(format!(
            "MAX_BODY_BYTES must be at most {MAX_MAX_BODY_BYTES} (16 MiB), got {n}"
        )));
    }
    usize::try_from(n).map_err(|_| RelayError::Internal(format!("MAX_BODY_BYTES {n} too large")))
}

fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: u64,
) -> Result<u64, RelayError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            RelayError::Internal(format!("{name} must be a positive integer, got {v:?}"))
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, RelayError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn wrangler_vars_match_the_built_in_openai_models() {
        // A deploy reads wrangler.toml's [vars], so its list must be the documented default.
        let toml = include_str!("../wrangler.toml");
        let line = toml
            .lines()
            .find_map(|l| l.strip_prefix("OPENAI_MODELS = "))
            .unwrap();
        assert_eq!(line.trim_matches('"'), DEFAULT_OPENAI_MODELS);
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.openai_base_url, DEFAULT_OPENAI_BASE_URL);
        assert_eq!(c.openai_api_key, None);
        assert_eq!(c.admin_token, None);
        assert!(c.openai_models.contains(&"gpt-*".to_string()));
        assert!(c.openai_models.contains(&"text-embedding-*".to_string()));
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert!(c.openai_stream_usage);
        assert_eq!(c.anthropic_base_url, DEFAULT_ANTHROPIC_BASE_URL);
        assert!(c.anthropic_models.contains(&"claude-*".to_string()));
        assert_eq!(c.anthropic_max_tokens, DEFAULT_ANTHROPIC_MAX_TOKENS);
        let api = |id: &str| c.providers.iter().any(|p| p.id == id && p.responses_api);
        assert!(api("openai") && !api("anthropic"));
    }

    #[test]
    fn overrides_and_errors() {
        let c = cfg(&[
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
            ("OPENAI_MODELS", " mock-*, gpt-4o ,"),
            ("OPENAI_API_KEY", "sk"),
            ("ADMIN_TOKEN", "  "),
            ("MAX_BODY_BYTES", "100"),
        ])
        .unwrap();
        assert_eq!(c.openai_base_url, "http://127.0.0.1:9/v1");
        assert_eq!(c.openai_models, vec!["mock-*", "gpt-4o"]);
        assert_eq!(c.admin_token, None);
        assert_eq!(c.max_body_bytes, 100);
        assert!(cfg(&[("OPENAI_BASE_URL", "ftp://x")]).is_err());
        assert!(cfg(&[("ANTHROPIC_BASE_URL", "api.anthropic.com")]).is_err());
        let with_routes = cfg(&[
            ("PROVIDERS", r#"{"groq": {"kind": "openai-compatible", "base_url": "https://g/v1", "key_secret": "GROQ_API_KEY"}}"#),
            ("GROQ_API_KEY", "gk"),
            ("ROUTES", r#"{"relay-fast": ["groq:llama", "openai:gpt-4o-mini"]}"#),
        ])
        .unwrap();
        let ids: Vec<&str> = with_routes
            .providers
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        assert_eq!(ids, vec!["groq", "openai", "anthropic"]);
        assert_eq!(with_routes.routes.len(), 1);
        assert!(cfg(&[("ROUTES", r#"{"x": ["groq:m"]}"#)]).is_err());
        assert!(cfg(&[(
            "PROVIDERS",
            r#"{"openai": {"kind": "openai", "base_url": "https://a", "key_secret": "K"}}"#
        )])
        .is_err());
        assert!(cfg(&[("UPSTREAM_TIMEOUT_MS", "soon")]).is_err());
        assert_eq!(
            cfg(&[("MAX_BODY_BYTES", "16777216")])
                .unwrap()
                .max_body_bytes,
            16 * 1024 * 1024
        );
        // 2^32 + 1 would be a 1-byte limit on wasm32 after an `as usize`: refused everywhere.
        for v in [
            "16777217",
            "4294967297",
            "18446744073709551616",
            "-1",
            "0",
            "4MiB",
        ] {
            assert!(cfg(&[("MAX_BODY_BYTES", v)]).is_err(), "MAX_BODY_BYTES={v}");
        }
        assert_eq!(
            cfg(&[("MAX_BODY_BYTES", "4294967297")]).unwrap_err(),
            RelayError::Internal(
                "MAX_BODY_BYTES must be at most 16777216 (16 MiB), got 4294967297".to_string()
            )
        );
        assert!(cfg(&[("STREAM_IDLE_MS", "0")]).is_err());
        assert!(
            !cfg(&[("OPENAI_STREAM_USAGE", "false")])
                .unwrap()
                .openai_stream_usage
        );
        assert!(cfg(&[("OPENAI_STREAM_USAGE", "maybe")]).is_err());
        let caps = cfg(&[("MAX_OUTPUT_TOKENS", r#"{"gpt-4o-mini*": 1000}"#)]).unwrap();
        assert_eq!(caps.output_caps.cap("gpt-4o-mini"), Some(1000));
        assert_eq!(
            cfg(&[]).unwrap().output_caps.cap("gpt-4o-mini"),
            Some(16_384)
        );
        assert!(cfg(&[("MAX_OUTPUT_TOKENS", "[]")]).is_err());
    }

    #[test]
    fn a_short_admin_token_leaves_admin_off() {
        let short = cfg(&[("ADMIN_TOKEN", &"x".repeat(31))]).unwrap();
        assert_eq!(short.admin_token, None);
        assert_eq!(short.admin_token_too_short, Some(31));
        let long = "y".repeat(MIN_ADMIN_TOKEN_CHARS);
        let ok = cfg(&[("ADMIN_TOKEN", &format!(" {long} "))]).unwrap();
        assert_eq!(ok.admin_token.as_deref(), Some(long.as_str()));
        assert_eq!(ok.admin_token_too_short, None);
        assert_eq!(cfg(&[]).unwrap().admin_token_too_short, None);
    }
}
