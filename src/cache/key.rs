//! The cache key: SHA-256 over the scope, the protocol, the resolved targets, the headers that
//! shape the answer and the request body in canonical form (object keys sorted, no
//! insignificant whitespace) minus the fields that do not change the answer.

use serde_json::{Map, Value};

use super::Scope;
use crate::keys::auth::KeyRecord;

/// Which client protocol asked: the same body means different answers on different routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Chat,
    Messages,
    Responses,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Chat => "chat",
            Protocol::Messages => "messages",
            Protocol::Responses => "responses",
        }
    }
}

/// Top-level fields that never change a Chat or Messages answer: bookkeeping for the provider
/// or the client. `stream_options` is reduced to `include_usage` instead (below), since that
/// changes the bytes a stream client receives. A Response object echoes `metadata`, `user`,
/// `store` and `prompt_cache_key` back, so on Responses they change the answer and stay keyed.
pub const EXCLUDED_FIELDS: &[&str] = &[
    "stream_options",
    "user",
    "metadata",
    "store",
    "prompt_cache_key",
];

fn excluded(protocol: Protocol, field: &str) -> bool {
    match protocol {
        Protocol::Responses => field == "stream_options",
        _ => EXCLUDED_FIELDS.contains(&field),
    }
}

/// Request headers the relay forwards that change the answer (beta features, API version).
pub const KEYED_HEADERS: &[&str] = &["anthropic-version", "anthropic-beta", "openai-beta"];

/// The tenant an entry belongs to, as key material. Slugs hold no `:` or `/`, so the three
/// forms cannot collide.
pub fn scope_id(scope: Scope, key: &KeyRecord) -> String {
    match scope {
        Scope::Key => format!("key:{}", key.id),
        Scope::User => format!("user:{}/{}", key.team, key.user),
        Scope::Team => format!("team:{}", key.team),
    }
}

/// The body as keyed: excluded fields gone, `stream_options` down to whether usage was asked.
pub fn keyed_body(body: &Value, protocol: Protocol) -> Value {
    let Value::Object(map) = body else {
        return body.clone();
    };
    let mut out: Map<String, Value> = map
        .iter()
        .filter(|(k, _)| !excluded(protocol, k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let include_usage = map
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if include_usage {
        out.insert("stream_options.include_usage".into(), Value::Bool(true));
    }
    Value::Object(out)
}

/// `v` written with object keys in byte order and no whitespace. Written out here rather than
/// relying on `serde_json`'s map order, which a `preserve_order` feature anywhere in the build
/// would silently change. Strings and numbers use serde_json's own (deterministic) spelling.
pub fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_string(k, out);
                out.push(':');
                if let Some(value) = map.get(k) {
                    canonical(value, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => push_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn push_string(s: &str, out: &mut String) {
    out.push_str(&Value::String(s.to_string()).to_string());
}

/// Everything the key is made of.
pub struct KeyInput<'a> {
    pub scope: &'a str,
    pub protocol: Protocol,
    /// `provider:upstream_model` of each resolved target, in order.
    pub targets: &'a [String],
    /// `KEYED_HEADERS` values, as sent (None when absent).
    pub headers: &'a [Option<String>],
    pub body: &'a Value,
}

/// Lowercase hex SHA-256 of the canonical key material. The parts go in as one canonical JSON
/// array, so no choice of values can make two different inputs spell the same bytes.
pub fn cache_key(input: &KeyInput<'_>) -> String {
    let material = Value::Array(vec![
        Value::String("llm-relay cache v1".into()),
        Value::String(input.scope.to_string()),
        Value::String(input.protocol.as_str().into()),
        Value::Array(input.targets.iter().cloned().map(Value::String).collect()),
        Value::Array(
            input
                .headers
                .iter()
                .map(|h| {
                    h.as_deref()
                        .map_or(Value::Null, |s| Value::String(s.trim().into()))
                })
                .collect(),
        ),
        keyed_body(input.body, input.protocol),
    ]);
    let mut text = String::new();
    canonical(&material, &mut text);
    crate::http::ids::sha256_hex(&text)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::keys::auth::KeyStatus;
    use serde_json::json;

    fn key_of(body: &str) -> String {
        key_with("key:key_1", Protocol::Chat, body)
    }

    fn key_with(scope: &str, protocol: Protocol, body: &str) -> String {
        let v: Value = serde_json::from_str(body).unwrap();
        cache_key(&KeyInput {
            scope,
            protocol,
            targets: &["openai:gpt-4o-mini".to_string()],
            headers: &[None, None, None],
            body: &v,
        })
    }

    #[test]
    fn canonical_form_sorts_keys_at_every_depth_and_drops_whitespace() {
        let v: Value = serde_json::from_str(
            r#"{ "b" : [ {"z":1, "a":"x\u00e9"} ], "a": {"y": null, "c": true} }"#,
        )
        .unwrap();
        let mut s = String::new();
        canonical(&v, &mut s);
        assert_eq!(s, r#"{"a":{"c":true,"y":null},"b":[{"a":"xé","z":1}]}"#);
    }

    #[test]
    fn key_order_and_whitespace_do_not_change_the_key() {
        let a =
            key_of(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}"#);
        let b = key_of(
            "{\n  \"temperature\": 0,\n  \"messages\": [ { \"content\": \"hi\", \"role\": \"user\" } ],\n  \"model\": \"m\"\n}",
        );
        let escaped = key_of(
            r#"{"model":"m","messages":[{"role":"user","content":"\u0068i"}],"temperature":0}"#,
        );
        assert_eq!(a, b);
        assert_eq!(a, escaped);
        assert_eq!(a.len(), 64);
        // Array order is meaning: the conversation's turns.
        let swapped = key_of(
            r#"{"model":"m","messages":[{"role":"user","content":"a"},{"role":"user","content":"b"}]}"#,
        );
        let unswapped = key_of(
            r#"{"model":"m","messages":[{"role":"user","content":"b"},{"role":"user","content":"a"}]}"#,
        );
        assert_ne!(swapped, unswapped);
    }

    #[test]
    fn excluded_fields_do_not_change_the_key_and_the_rest_do() {
        let base = key_of(r#"{"model":"m","messages":[],"stream":true}"#);
        let noisy = key_of(
            r#"{"model":"m","messages":[],"stream":true,"user":"u1","metadata":{"a":"b"},"store":true,"prompt_cache_key":"p","stream_options":{"include_obfuscation":false}}"#,
        );
        assert_eq!(base, noisy);
        // Usage in the stream changes the bytes the client gets; `stream` changes the shape.
        let usage = key_of(
            r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
        );
        assert_ne!(base, usage);
        assert_ne!(base, key_of(r#"{"model":"m","messages":[]}"#));
        assert_ne!(
            base,
            key_of(r#"{"model":"m","messages":[],"stream":true,"temperature":0}"#)
        );
        // A Response echoes these back, so there they are part of the answer.
        let responses = |b: &str| key_with("key:key_1", Protocol::Responses, b);
        assert_ne!(
            responses(r#"{"model":"m","input":"x"}"#),
            responses(r#"{"model":"m","input":"x","metadata":{"a":"b"}}"#)
        );
        assert_ne!(
            responses(r#"{"model":"m","input":"x","store":false}"#),
            responses(r#"{"model":"m","input":"x","store":true}"#)
        );
        assert_eq!(
            responses(r#"{"model":"m","input":"x"}"#),
            responses(
                r#"{"model":"m","input":"x","stream_options":{"include_obfuscation":false}}"#
            )
        );
        // An excluded name only counts at the top: nested, it is part of the content.
        assert_ne!(
            key_of(r#"{"model":"m","messages":[{"role":"user","content":"x","user":"a"}]}"#),
            key_of(r#"{"model":"m","messages":[{"role":"user","content":"x","user":"b"}]}"#)
        );
    }

    #[test]
    fn scope_protocol_targets_and_headers_separate_entries() {
        let body = r#"{"model":"m","messages":[]}"#;
        let k = key_with("key:key_1", Protocol::Chat, body);
        assert_ne!(k, key_with("key:key_2", Protocol::Chat, body));
        assert_ne!(k, key_with("team:team-a", Protocol::Chat, body));
        assert_ne!(k, key_with("key:key_1", Protocol::Messages, body));
        assert_ne!(k, key_with("key:key_1", Protocol::Responses, body));
        let v: Value = serde_json::from_str(body).unwrap();
        let with = |targets: &[String], headers: &[Option<String>]| {
            cache_key(&KeyInput {
                scope: "key:key_1",
                protocol: Protocol::Chat,
                targets,
                headers,
                body: &v,
            })
        };
        let one = ["openai:gpt-4o-mini".to_string()];
        assert_eq!(k, with(&one, &[None, None, None]));
        assert_ne!(k, with(&["openai:gpt-4o".to_string()], &[None, None, None]));
        assert_ne!(
            k,
            with(&["groq:gpt-4o-mini".to_string()], &[None, None, None])
        );
        assert_ne!(k, with(&one, &[None, Some("beta-1".into()), None]));
    }

    #[test]
    fn scopes_name_the_tenant() {
        let rec = KeyRecord {
            id: "key_1".into(),
            team: "platform".into(),
            user: "ann".into(),
            env: "prod".into(),
            created_at: "t".into(),
            status: KeyStatus::Active,
            expires_at: None,
            name: None,
            updated_at: None,
            models: None,
            aliases: Default::default(),
            metadata: Default::default(),
            limits: Default::default(),
            cache: None,
        };
        assert_eq!(scope_id(Scope::Key, &rec), "key:key_1");
        assert_eq!(scope_id(Scope::User, &rec), "user:platform/ann");
        assert_eq!(scope_id(Scope::Team, &rec), "team:platform");
        assert_eq!(keyed_body(&json!([1]), Protocol::Chat), json!([1]));
    }
}
