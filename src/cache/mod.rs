//! The response cache's rules (issue 17), as pure logic the edge performs: a key's `cache`
//! setting, the request's `x-relay-cache*` headers, which requests may be cached and under which
//! key (`key`), whether an answer may be stored (`policy`), the stored entry (`entry`) and the
//! stream relays that capture a live answer and replay a stored one (`relay`).

pub mod entry;
pub mod key;
pub mod policy;
pub mod relay;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::error::RelayError;

/// KV's shortest expiration: an entry cannot live less than this.
pub const MIN_TTL_S: u64 = 60;
/// 30 days: longer than any prompt stays worth replaying, short enough that a price or model
/// change is eventually seen.
pub const MAX_TTL_S: u64 = 2_592_000;
/// The largest answer stored, body and SSE bytes alike. A capture is held in the isolate's
/// 128 MB while the answer streams, so this stays far under KV's 25 MiB value limit.
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

/// Whose answers a cached entry may answer: one tenant never sees another's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Scope {
    #[default]
    Key,
    User,
    Team,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::User => "user",
            Scope::Team => "team",
        }
    }
}

/// A key record's `cache` setting (CONTRACT.md): caching is on for every request of the key.
/// KV's and D1's copies are read back through `parse_key_cache`, the admin API's own check,
/// via `Value` (no derived visitor of its own in the bundle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct KeyCache {
    pub ttl_s: u64,
    pub scope: Scope,
    /// Also cache sampled requests (`temperature` absent or above 0), which turns a sampled
    /// answer into a fixed one: the deployer's choice, never the client's.
    pub sampled: bool,
}

impl TryFrom<Value> for KeyCache {
    type Error = String;

    fn try_from(v: Value) -> Result<Self, String> {
        match parse_key_cache(&v) {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err("cache: null".into()),
            Err(e) => Err(format!("cache: {e:?}")),
        }
    }
}

impl From<KeyCache> for Value {
    fn from(c: KeyCache) -> Value {
        public(Some(&c))
    }
}

/// What a usage row's `cache` column says, and `x-relay-cache-status` in upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Answered from the cache; no provider was called.
    Hit,
    /// Looked up, not found (or not stored: incomplete, oversize, `no-store`).
    Miss,
    /// Caching was in play but this request did not use it (not cacheable, or `no-cache`
    /// whose answer was not stored).
    Bypass,
    /// The answer was stored.
    Stored,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Hit => "hit",
            Status::Miss => "miss",
            Status::Bypass => "bypass",
            Status::Stored => "stored",
        }
    }

    pub fn header(self) -> &'static str {
        match self {
            Status::Hit => "HIT",
            Status::Miss => "MISS",
            Status::Bypass => "BYPASS",
            Status::Stored => "STORED",
        }
    }
}

fn bad(field: &str, message: String) -> RelayError {
    RelayError::invalid(message, Some(&format!("cache.{field}")))
}

/// `ttl_s` as an integer in the range KV accepts and the relay allows.
pub fn ttl(v: &Value, param: &str) -> Result<u64, RelayError> {
    v.as_u64()
        .filter(|n| (MIN_TTL_S..=MAX_TTL_S).contains(n))
        .ok_or_else(|| {
            RelayError::invalid(
                format!("'{param}' must be an integer from {MIN_TTL_S} to {MAX_TTL_S} (seconds)."),
                Some(param),
            )
        })
}

/// The admin API's `cache` field: `null` turns caching off; an object replaces the setting
/// whole (`ttl_s` required, `scope` defaulting to `key`, `sampled` to false).
pub fn parse_key_cache(v: &Value) -> Result<Option<KeyCache>, RelayError> {
    let map =
        match v {
            Value::Null => return Ok(None),
            Value::Object(m) => m,
            _ => return Err(RelayError::invalid(
                "'cache' must be an object such as {\"ttl_s\": 300, \"scope\": \"key\"}, or null.",
                Some("cache"),
            )),
        };
    if let Some(unknown) = map
        .keys()
        .find(|k| !["ttl_s", "scope", "sampled"].contains(&k.as_str()))
    {
        return Err(bad(
            unknown,
            format!("Unrecognized cache setting: {unknown} (known: ttl_s, scope, sampled)."),
        ));
    }
    let ttl_s = match map.get("ttl_s") {
        Some(v) => ttl(v, "cache.ttl_s")?,
        None => {
            return Err(bad(
                "ttl_s",
                "Missing required parameter: 'cache.ttl_s'.".into(),
            ))
        }
    };
    let scope = match map.get("scope").unwrap_or(&Value::Null) {
        Value::Null => Scope::Key,
        Value::String(s) if s == "key" => Scope::Key,
        Value::String(s) if s == "user" => Scope::User,
        Value::String(s) if s == "team" => Scope::Team,
        _ => {
            return Err(bad(
                "scope",
                "'cache.scope' must be \"key\", \"user\" or \"team\".".into(),
            ))
        }
    };
    let sampled = match map.get("sampled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("sampled", "'cache.sampled' must be a boolean.".into())),
    };
    Ok(Some(KeyCache {
        ttl_s,
        scope,
        sampled,
    }))
}

/// The setting as key records show it: every field, or `null` when caching is off.
pub fn public(c: Option<&KeyCache>) -> Value {
    match c {
        None => Value::Null,
        Some(c) => json!({"ttl_s": c.ttl_s, "scope": c.scope.as_str(), "sampled": c.sampled}),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn param(e: RelayError) -> Option<String> {
        match e {
            RelayError::InvalidRequest { param, .. } => param,
            _ => None,
        }
    }

    #[test]
    fn key_setting_defaults_and_round_trip() {
        let c = parse_key_cache(&json!({"ttl_s": 300})).unwrap().unwrap();
        assert_eq!(
            c,
            KeyCache {
                ttl_s: 300,
                scope: Scope::Key,
                sampled: false
            }
        );
        assert_eq!(
            public(Some(&c)),
            json!({"ttl_s": 300, "scope": "key", "sampled": false})
        );
        let t = parse_key_cache(&json!({"ttl_s": 60, "scope": "team", "sampled": true}))
            .unwrap()
            .unwrap();
        assert_eq!((t.scope, t.sampled), (Scope::Team, true));
        assert_eq!(parse_key_cache(&Value::Null).unwrap(), None);
        assert_eq!(public(None), Value::Null);
        // What KV and D1 hold reads back the same.
        let stored: KeyCache = serde_json::from_str(r#"{"ttl_s":90,"scope":null}"#).unwrap();
        assert_eq!(stored.scope, Scope::Key);
        let text = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<KeyCache>(&text).unwrap(), t);
        // A stored copy is held to the admin API's rules.
        assert!(serde_json::from_str::<KeyCache>(r#"{"ttl_s":1}"#).is_err());
    }

    #[test]
    fn key_setting_refusals_name_the_field() {
        for (v, p) in [
            (json!({"ttl_s": 59}), "cache.ttl_s"),
            (json!({"ttl_s": 2_592_001}), "cache.ttl_s"),
            (json!({"ttl_s": 300.5}), "cache.ttl_s"),
            (json!({"ttl_s": "300"}), "cache.ttl_s"),
            (json!({}), "cache.ttl_s"),
            (json!({"ttl_s": 300, "scope": "org"}), "cache.scope"),
            (json!({"ttl_s": 300, "sampled": "yes"}), "cache.sampled"),
            (json!({"ttl_s": 300, "size": 1}), "cache.size"),
            (json!(300), "cache"),
        ] {
            assert_eq!(
                param(parse_key_cache(&v).unwrap_err()).as_deref(),
                Some(p),
                "{v}"
            );
        }
    }
}
