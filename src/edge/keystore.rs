//! Where keys live: D1's `keys` table is the admin API's source of truth (list, filter, page),
//! KV holds the copy the request path reads by hash, and the isolate cache is evicted on every
//! change so a revocation takes effect at once where it was made. Also the audit log and a
//! small helper that runs a D1 query and returns plain JSON rows.

use serde_json::{json, Map, Value};
use worker::wasm_bindgen::JsValue;
use worker::Env;

use super::store;
use crate::auth::{self, KeyRecord};
use crate::error::RelayError;

const KV_BINDING: &str = "KEYS";
const D1_BINDING: &str = "DB";

fn internal(what: &str) -> impl Fn(worker::Error) -> RelayError + '_ {
    move |e| RelayError::Internal(format!("{what}: {e}"))
}

/// Runs one statement with text/number parameters and returns its rows as JSON objects, with
/// whole numbers as integers (D1 hands every number over as a double).
pub async fn query(env: &Env, sql: &str, params: &[Value]) -> Result<Vec<Value>, RelayError> {
    let db = env.d1(D1_BINDING).map_err(internal("D1 binding"))?;
    let binds: Vec<JsValue> = params
        .iter()
        .map(|p| match p {
            Value::Null => JsValue::NULL,
            Value::Number(n) => JsValue::from_f64(n.as_f64().unwrap_or(0.0)),
            Value::String(s) => JsValue::from_str(s),
            other => JsValue::from_str(&other.to_string()),
        })
        .collect();
    let result = db
        .prepare(sql)
        .bind(&binds)
        .map_err(internal("D1 bind"))?
        .all()
        .await
        .map_err(internal("D1 query"))?;
    let rows: Vec<Value> = result.results().map_err(internal("D1 rows"))?;
    Ok(rows.into_iter().map(integers).collect())
}

fn integers(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => json!(f as i64),
            _ => Value::Number(n),
        },
        Value::Object(m) => Value::Object(m.into_iter().map(|(k, v)| (k, integers(v))).collect()),
        Value::Array(a) => Value::Array(a.into_iter().map(integers).collect()),
        other => other,
    }
}

fn record_of(row: &Value) -> Result<KeyRecord, RelayError> {
    let text = row.get("record").and_then(Value::as_str).unwrap_or("");
    serde_json::from_str(text).map_err(|e| RelayError::Internal(format!("stored key record: {e}")))
}

async fn kv_put(env: &Env, name: &str, value: String) -> Result<(), RelayError> {
    let kv = env.kv(KV_BINDING).map_err(internal("KV binding"))?;
    kv.put(name, value)
        .map_err(|e| RelayError::Internal(format!("KV put: {e}")))?
        .execute()
        .await
        .map_err(|e| RelayError::Internal(format!("KV put: {e}")))
}

/// Writes the record everywhere it lives: D1 (by id), KV (by hash), and drops any cached copy.
pub async fn save(env: &Env, hash: &str, rec: &KeyRecord) -> Result<(), RelayError> {
    let record = serde_json::to_string(rec).map_err(|e| RelayError::Internal(e.to_string()))?;
    let status = serde_json::to_value(rec.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    query(
        env,
        "INSERT INTO keys (id, hash, team, user, status, created_at, record) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT(id) DO UPDATE SET hash = excluded.hash, status = excluded.status, record = excluded.record",
        &[
            json!(rec.id),
            json!(hash),
            json!(rec.team),
            json!(rec.user),
            json!(status),
            json!(rec.created_at),
            json!(record),
        ],
    )
    .await?;
    kv_put(env, &format!("key:{hash}"), record).await?;
    kv_put(env, &format!("id:{}", rec.id), hash.to_string()).await?;
    store::forget_key(hash);
    Ok(())
}

/// The record and its hash, or 404.
pub async fn load(env: &Env, id: &str) -> Result<(KeyRecord, String), RelayError> {
    let rows = query(
        env,
        "SELECT hash, record FROM keys WHERE id = ?1",
        &[json!(id)],
    )
    .await?;
    let row = rows.first().ok_or_else(|| RelayError::NotFound {
        what: "key",
        id: id.to_string(),
    })?;
    let hash = row
        .get("hash")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok((record_of(row)?, hash))
}

/// Swaps the key's hash after a rotation: the old secret stops working at once.
pub async fn rehash(
    env: &Env,
    old_hash: &str,
    new_hash: &str,
    rec: &KeyRecord,
) -> Result<(), RelayError> {
    save(env, new_hash, rec).await?;
    let kv = env.kv(KV_BINDING).map_err(internal("KV binding"))?;
    kv.delete(&format!("key:{old_hash}"))
        .await
        .map_err(|e| RelayError::Internal(format!("KV delete: {e}")))?;
    store::forget_key(old_hash);
    Ok(())
}

pub struct Page {
    pub records: Vec<KeyRecord>,
    pub next_cursor: Option<String>,
}

/// Keys in creation order, filtered, one page at a time; the cursor is the last id seen.
pub async fn list(
    env: &Env,
    filters: &[(&'static str, String)],
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page, RelayError> {
    let mut conds = Vec::new();
    let mut params = Vec::new();
    for (col, v) in filters {
        params.push(json!(v));
        conds.push(format!("{col} = ?{}", params.len()));
    }
    if let Some(c) = cursor {
        params.push(json!(c));
        let n = params.len();
        conds.push(format!(
            "(created_at, id) > (SELECT created_at, id FROM keys WHERE id = ?{n})"
        ));
    }
    params.push(json!(limit + 1));
    let sql = format!(
        "SELECT record FROM keys{} ORDER BY created_at, id LIMIT ?{}",
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        },
        params.len()
    );
    let rows = query(env, &sql, &params).await?;
    let mut records = rows.iter().map(record_of).collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if records.len() > limit {
        records.truncate(limit);
        records.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(Page {
        records,
        next_cursor,
    })
}

/// One audit entry; `changes` never holds a secret or a hash.
pub async fn audit(
    env: &Env,
    at: &str,
    action: &str,
    key_id: &str,
    changes: Map<String, Value>,
) -> Result<(), RelayError> {
    query(
        env,
        "INSERT INTO audit (at, action, key_id, changes) VALUES (?1, ?2, ?3, ?4)",
        &[
            json!(at),
            json!(action),
            json!(key_id),
            json!(Value::Object(changes).to_string()),
        ],
    )
    .await
    .map(|_| ())
}

pub fn hash_of(key: &str) -> String {
    auth::hash_key(key)
}
