//! The key lifecycle as data: validated create and change requests, how a change applies to a
//! record (and what it changed, for the audit log), the record's public shape, the per-key
//! model policy (allowed models and aliases), and which KV writes bring the request path's
//! copy of a key in line with D1.

pub mod auth;

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::http::error::RelayError;
use crate::keys::auth::{is_slug, KeyRecord, KeyStatus};
use crate::limits::{self, Limits};
use crate::time::{parse_rfc3339, rfc3339};

const MAX_NAME: usize = 100;
const MAX_LIST: usize = 100;
const MAX_ITEM: usize = 200;
const MAX_META_VALUE: usize = 500;

/// A validated `POST /admin/keys` body.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    pub team: String,
    pub user: String,
    pub env: String,
    pub name: Option<String>,
    pub expires_at: Option<String>,
    pub models: Option<Vec<String>>,
    pub aliases: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
    pub limits: Limits,
    pub cache: Option<crate::cache::KeyCache>,
}

/// A validated `PATCH /admin/keys/{id}` body; `Some(None)` clears a field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyChange {
    pub name: Option<Option<String>>,
    pub expires_at: Option<Option<String>>,
    pub models: Option<Option<Vec<String>>>,
    pub aliases: Option<BTreeMap<String, String>>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub status: Option<KeyStatus>,
    /// `Some(None)`: `"limits": null`, which clears them all; otherwise merged field by field.
    pub limits: Option<Option<limits::Patch>>,
    pub cache: Option<Option<crate::cache::KeyCache>>,
}

fn object(body: &[u8], allowed: &[&str]) -> Result<Map<String, Value>, RelayError> {
    // `Value` keeps the last of a repeated key; refuse the ambiguity rather than guess.
    crate::http::json::refuse_duplicate_keys(body)?;
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        RelayError::invalid("We could not parse the JSON body of your request.", None)
    })?;
    let Value::Object(map) = v else {
        return Err(RelayError::invalid(
            "The request body must be a JSON object.",
            None,
        ));
    };
    if let Some(unknown) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(RelayError::invalid(
            format!("Unrecognized request argument supplied: {unknown}"),
            Some(unknown),
        ));
    }
    Ok(map)
}

fn string(v: &Value, param: &str, max: usize) -> Result<String, RelayError> {
    match v {
        Value::String(s) if !s.trim().is_empty() && s.chars().count() <= max => {
            Ok(s.trim().to_string())
        }
        Value::String(_) => Err(RelayError::invalid(
            format!("'{param}' must be 1-{max} characters."),
            Some(param),
        )),
        _ => Err(RelayError::invalid(
            format!("'{param}' must be a string."),
            Some(param),
        )),
    }
}

fn slug(map: &Map<String, Value>, name: &str, default: Option<&str>) -> Result<String, RelayError> {
    let value = match (map.get(name), default) {
        (Some(v), _) => string(v, name, 32)?,
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(RelayError::invalid(
                format!("Missing required parameter: '{name}'."),
                Some(name),
            ))
        }
    };
    if is_slug(&value) {
        Ok(value)
    } else {
        Err(RelayError::invalid(
            format!("'{name}' must be 1-32 characters of a-z, 0-9 and '-'."),
            Some(name),
        ))
    }
}

/// `null` clears; otherwise an RFC 3339 UTC instant (or a date), stored in the one text form
/// that compares correctly.
fn expiry(v: &Value) -> Result<Option<String>, RelayError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => parse_rfc3339(s).map(|ms| Some(rfc3339(ms))).ok_or_else(|| {
            RelayError::invalid(
                "'expires_at' must be an RFC 3339 UTC time such as 2026-12-31T23:59:59Z.",
                Some("expires_at"),
            )
        }),
        _ => Err(RelayError::invalid(
            "'expires_at' must be a string or null.",
            Some("expires_at"),
        )),
    }
}

fn models(v: &Value) -> Result<Option<Vec<String>>, RelayError> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) if items.len() <= MAX_LIST => items
            .iter()
            .enumerate()
            .map(|(i, item)| string(item, &format!("models[{i}]"), MAX_ITEM))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        _ => Err(RelayError::invalid(
            format!("'models' must be an array of at most {MAX_LIST} model names or patterns (a trailing * matches a prefix), or null."),
            Some("models"),
        )),
    }
}

fn string_map(
    v: &Value,
    param: &str,
    max_value: usize,
) -> Result<BTreeMap<String, String>, RelayError> {
    let bad = || {
        RelayError::invalid(
            format!("'{param}' must be an object of at most {MAX_LIST} string values."),
            Some(param),
        )
    };
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) if m.len() <= MAX_LIST => m
            .iter()
            .map(|(k, v)| {
                if k.is_empty() || k.chars().count() > MAX_ITEM {
                    return Err(bad());
                }
                Ok((k.clone(), string(v, &format!("{param}.{k}"), max_value)?))
            })
            .collect(),
        _ => Err(bad()),
    }
}

pub fn parse_new(body: &[u8]) -> Result<NewKey, RelayError> {
    let map = object(
        body,
        &[
            "team",
            "user",
            "env",
            "name",
            "expires_at",
            "models",
            "aliases",
            "metadata",
            "limits",
            "cache",
        ],
    )?;
    let null = Value::Null;
    Ok(NewKey {
        env: slug(&map, "env", Some("prod"))?,
        team: slug(&map, "team", None)?,
        user: slug(&map, "user", None)?,
        name: match map.get("name") {
            None | Some(Value::Null) => None,
            Some(v) => Some(string(v, "name", MAX_NAME)?),
        },
        expires_at: expiry(map.get("expires_at").unwrap_or(&null))?,
        models: models(map.get("models").unwrap_or(&null))?,
        aliases: string_map(map.get("aliases").unwrap_or(&null), "aliases", MAX_ITEM)?,
        metadata: string_map(
            map.get("metadata").unwrap_or(&null),
            "metadata",
            MAX_META_VALUE,
        )?,
        limits: match map.get("limits") {
            None | Some(Value::Null) => Limits::default(),
            Some(v) => Limits::default().merged(&limits::parse_patch(v, "limits.")?),
        },
        cache: crate::cache::parse_key_cache(map.get("cache").unwrap_or(&null))?,
    })
}

pub fn parse_change(body: &[u8]) -> Result<KeyChange, RelayError> {
    let map = object(
        body,
        &[
            "name",
            "expires_at",
            "models",
            "aliases",
            "metadata",
            "status",
            "limits",
            "cache",
        ],
    )?;
    let mut change = KeyChange::default();
    if let Some(v) = map.get("name") {
        change.name = Some(match v {
            Value::Null => None,
            v => Some(string(v, "name", MAX_NAME)?),
        });
    }
    if let Some(v) = map.get("expires_at") {
        change.expires_at = Some(expiry(v)?);
    }
    if let Some(v) = map.get("models") {
        change.models = Some(models(v)?);
    }
    if let Some(v) = map.get("aliases") {
        change.aliases = Some(string_map(v, "aliases", MAX_ITEM)?);
    }
    if let Some(v) = map.get("metadata") {
        change.metadata = Some(string_map(v, "metadata", MAX_META_VALUE)?);
    }
    if let Some(v) = map.get("status") {
        change.status = Some(match v.as_str() {
            Some("active") => KeyStatus::Active,
            Some("revoked") => KeyStatus::Revoked,
            _ => {
                return Err(RelayError::invalid(
                    "'status' must be \"active\" or \"revoked\".",
                    Some("status"),
                ))
            }
        });
    }
    if let Some(v) = map.get("limits") {
        change.limits = Some(match v {
            Value::Null => None,
            v => Some(limits::parse_patch(v, "limits.")?),
        });
    }
    if let Some(v) = map.get("cache") {
        change.cache = Some(crate::cache::parse_key_cache(v)?);
    }
    if change == KeyChange::default() {
        return Err(RelayError::invalid(
            "Nothing to change: give at least one field.",
            None,
        ));
    }
    Ok(change)
}

/// A record for a key minted now.
pub fn record(input: NewKey, id: String, now: &str) -> KeyRecord {
    KeyRecord {
        id,
        team: input.team,
        user: input.user,
        env: input.env,
        created_at: now.to_string(),
        status: KeyStatus::Active,
        expires_at: input.expires_at,
        name: input.name,
        updated_at: Some(now.to_string()),
        models: input.models,
        aliases: input.aliases,
        metadata: input.metadata,
        limits: input.limits,
        cache: input.cache,
    }
}

/// Applies `change` and returns what changed as `{field: {"from": …, "to": …}}` (empty when
/// nothing did), which is exactly what the audit log keeps.
pub fn apply(rec: &mut KeyRecord, change: &KeyChange, now: &str) -> Map<String, Value> {
    let before = public(rec);
    if let Some(v) = &change.name {
        rec.name = v.clone();
    }
    if let Some(v) = &change.expires_at {
        rec.expires_at = v.clone();
    }
    if let Some(v) = &change.models {
        rec.models = v.clone();
    }
    if let Some(v) = &change.aliases {
        rec.aliases = v.clone();
    }
    if let Some(v) = &change.metadata {
        rec.metadata = v.clone();
    }
    if let Some(v) = change.status {
        rec.status = v;
    }
    match &change.limits {
        Some(Some(patch)) => rec.limits = rec.limits.merged(patch),
        Some(None) => rec.limits = Limits::default(),
        None => {}
    }
    if let Some(v) = change.cache {
        rec.cache = v;
    }
    let after = public(rec);
    let diff = diff(&before, &after);
    if !diff.is_empty() {
        rec.updated_at = Some(now.to_string());
    }
    diff
}

fn diff(before: &Value, after: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    if let (Some(b), Some(a)) = (before.as_object(), after.as_object()) {
        for (k, av) in a {
            let bv = b.get(k).unwrap_or(&Value::Null);
            if bv != av && k != "updated_at" {
                out.insert(k.clone(), json!({"from": bv, "to": av}));
            }
        }
    }
    out
}

/// The record as the admin API shows it: every field present, null when unset, never the key.
pub fn public(rec: &KeyRecord) -> Value {
    json!({
        "id": rec.id,
        "team": rec.team,
        "user": rec.user,
        "env": rec.env,
        "name": rec.name,
        "status": rec.status,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
        "expires_at": rec.expires_at,
        "models": rec.models,
        "aliases": rec.aliases,
        "metadata": rec.metadata,
        "limits": rec.limits.public(),
        "cache": crate::cache::public(rec.cache.as_ref()),
    })
}

fn matches(pattern: &str, model: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => pattern == model,
    }
}

/// Whether the key may call `model` directly (no list means every model).
pub fn allows(rec: &KeyRecord, model: &str) -> bool {
    rec.models
        .as_ref()
        .is_none_or(|list| list.iter().any(|p| matches(p, model)))
}

/// The model a request from this key is for: an alias resolves to its target (aliases are
/// grants in themselves); any other name must be allowed, or it is 403 `model_not_allowed`.
pub fn effective_model(rec: &KeyRecord, requested: &str) -> Result<String, RelayError> {
    if let Some(target) = rec.aliases.get(requested) {
        return Ok(target.clone());
    }
    if allows(rec, requested) {
        Ok(requested.to_string())
    } else {
        Err(RelayError::ModelNotAllowed(requested.to_string()))
    }
}

/// What KV holds for one key, read just before a sync. `None` also stands for "could not be
/// read", which makes the sync write: a write too many is harmless, one too few is not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KvCopy {
    /// The record under `key:<hash>`.
    pub record: Option<KeyRecord>,
    /// The hash under `id:<id>`.
    pub id_hash: Option<String>,
}

/// One KV write of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvWrite {
    /// Delete `key:<hash>`: a secret rotated away must stop working.
    Retire(String),
    /// Put D1's record under `key:<hash>` (where a revocation takes effect).
    PutRecord,
    /// Put the hash under `id:<id>`.
    PutIdHash,
}

/// The writes that make KV agree with D1, the source of truth, given what KV holds now.
///
/// Admin changes write D1 first and KV second, and a KV write can fail (one write per second
/// per key, or an outage). So every change, and every retry of one, runs this against the
/// stored state rather than against what the request changed: a retried revoke whose D1
/// write already happened still finds KV active and rewrites it, and a rotation's earlier
/// secrets (`retired`, kept in D1 until KV has dropped them) are deleted on every attempt.
/// Retirements come first: they are what stops a leaked secret.
pub fn kv_repairs(rec: &KeyRecord, hash: &str, retired: &[String], kv: &KvCopy) -> Vec<KvWrite> {
    let mut out: Vec<KvWrite> = retired
        .iter()
        .filter(|h| h.as_str() != hash)
        .map(|h| KvWrite::Retire(h.clone()))
        .collect();
    if kv.record.as_ref() != Some(rec) {
        out.push(KvWrite::PutRecord);
    }
    if kv.id_hash.as_deref() != Some(hash) {
        out.push(KvWrite::PutIdHash);
    }
    out
}

/// The hashes still to delete from KV after rotating away from `old`: what was pending plus
/// `old`, minus the hash now in use.
pub fn retire(pending: &[String], old: &str, new: &str) -> Vec<String> {
    let mut out: Vec<String> = pending.iter().filter(|h| *h != new).cloned().collect();
    if old != new && !out.iter().any(|h| h == old) {
        out.push(old.to_string());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
