//! Where keys live: D1's `keys` table is the admin API's source of truth (list, filter, page),
//! KV holds the copy the request path reads by hash, synced from D1 after every change and
//! every retry of one, and the isolate cache is evicted on every change so a revocation takes
//! effect at once where it was made. Also the audit log and a
//! small helper that runs a D1 query and returns plain JSON rows.

use serde_json::{json, Map, Value};
use worker::wasm_bindgen::JsValue;
use worker::{console_warn, Env};

use super::store;
use crate::http::error::RelayError;
use crate::keys::auth::{self, KeyRecord};
use crate::keys::{self, KvCopy, KvWrite};

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

async fn kv_put(kv: &worker::kv::KvStore, name: &str, value: String) -> Result<(), String> {
    kv.put(name, value)
        .map_err(|e| e.to_string())?
        .execute()
        .await
        .map_err(|e| e.to_string())
}

/// A key as D1 holds it: the record, the hash of its current secret, and the hashes of
/// earlier secrets that KV may still hold (a rotation's KV delete that has not succeeded yet).
pub struct Stored {
    pub rec: KeyRecord,
    pub hash: String,
    pub retired: Vec<String>,
}

/// Writes the key to D1, the source of truth. KV follows in `sync_kv`.
pub async fn save(env: &Env, key: &Stored) -> Result<(), RelayError> {
    let rec = &key.rec;
    let record = serde_json::to_string(rec).map_err(|e| RelayError::Internal(e.to_string()))?;
    let status = serde_json::to_value(rec.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    query(
        env,
        "INSERT INTO keys (id, hash, team, user, status, created_at, record, retired_hashes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT(id) DO UPDATE SET hash = excluded.hash, status = excluded.status, record = excluded.record, retired_hashes = excluded.retired_hashes",
        &[
            json!(rec.id),
            json!(key.hash),
            json!(rec.team),
            json!(rec.user),
            json!(status),
            json!(rec.created_at),
            json!(record),
            json!(json!(key.retired).to_string()),
        ],
    )
    .await?;
    Ok(())
}

/// What KV holds for the key now; a failed read counts as "not there", so it gets written.
async fn kv_copy(kv: &worker::kv::KvStore, key: &Stored) -> KvCopy {
    KvCopy {
        record: store::kv_record(kv, &format!("key:{}", key.hash))
            .await
            .ok()
            .flatten(),
        id_hash: kv
            .get(&format!("id:{}", key.rec.id))
            .text()
            .await
            .ok()
            .flatten(),
    }
}

/// Brings KV (what requests are checked against) in line with D1 for this key, whatever
/// earlier attempts left behind (`keys::kv_repairs`). Every write is tried even after one
/// fails; any failure is `KeySyncFailed`, and the same call retried repairs it. `fresh` skips
/// the reads for a key just minted, which KV cannot hold yet.
pub async fn sync_kv(env: &Env, key: &Stored, fresh: bool) -> Result<(), RelayError> {
    let kv = env.kv(KV_BINDING).map_err(internal("KV binding"))?;
    let now = if fresh {
        KvCopy::default()
    } else {
        kv_copy(&kv, key).await
    };
    let mut failures = Vec::new();
    for write in keys::kv_repairs(&key.rec, &key.hash, &key.retired, &now) {
        let done = match &write {
            KvWrite::Retire(old) => kv
                .delete(&format!("key:{old}"))
                .await
                .map_err(|e| format!("KV delete key:{old}: {e}")),
            KvWrite::PutRecord => match serde_json::to_string(&key.rec) {
                Ok(json) => kv_put(&kv, &format!("key:{}", key.hash), json)
                    .await
                    .map_err(|e| format!("KV put key:{}: {e}", key.hash)),
                Err(e) => Err(e.to_string()),
            },
            KvWrite::PutIdHash => kv_put(&kv, &format!("id:{}", key.rec.id), key.hash.clone())
                .await
                .map_err(|e| format!("KV put id:{}: {e}", key.rec.id)),
        };
        if let Err(e) = done {
            failures.push(e);
        }
    }
    store::forget_key(&key.hash);
    for old in &key.retired {
        store::forget_key(old);
    }
    if !failures.is_empty() {
        return Err(RelayError::KeySyncFailed(format!(
            "key {}: {}",
            key.rec.id,
            failures.join("; ")
        )));
    }
    if !key.retired.is_empty() {
        // KV no longer holds them. Should this fail, the next sync deletes them once more.
        let cleared = query(
            env,
            "UPDATE keys SET retired_hashes = '[]' WHERE id = ?1 AND hash = ?2",
            &[json!(key.rec.id), json!(key.hash)],
        )
        .await;
        if let Err(e) = cleared {
            console_warn!("key {}: retired hashes not cleared: {e:?}", key.rec.id);
        }
    }
    Ok(())
}

/// The key as D1 holds it, or 404.
pub async fn load(env: &Env, id: &str) -> Result<Stored, RelayError> {
    let rows = query(
        env,
        "SELECT hash, record, retired_hashes FROM keys WHERE id = ?1",
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
    let retired = row
        .get("retired_hashes")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Vec<String>>(s).ok())
        .unwrap_or_default();
    Ok(Stored {
        rec: record_of(row)?,
        hash,
        retired,
    })
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
