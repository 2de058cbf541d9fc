//! Where keys live: D1's `keys` table is the admin API's source of truth (list, filter, page),
//! KV holds the copy the request path reads by hash, synced from D1 after every change and
//! every retry of one, and the isolate cache is evicted on every change so a revocation takes
//! effect at once where it was made. Also the audit log and a
//! small helper that runs a D1 query and returns plain JSON rows.

use serde_json::{json, Map, Value};
use worker::js_sys::{Array, ArrayBuffer, Number, Object, Reflect};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{console_warn, Env};

use super::kv::Kv;
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
    let statement = db.prepare(sql).bind(&binds).map_err(internal("D1 bind"))?;
    let result = async { JsFuture::from(statement.inner().all()?).await }
        .await
        .map_err(|e| internal("D1 query")(e.into()))?;
    let rows = Reflect::get(&result, &JsValue::from_str("results"))
        .map_err(|e| internal("D1 rows")(e.into()))?;
    if rows.is_null() || rows.is_undefined() {
        return Ok(Vec::new());
    }
    let rows = rows
        .dyn_into::<Array>()
        .map_err(|e| internal("D1 rows")(e.into()))?;
    let rows = rows
        .iter()
        .map(|row| json_of(&row))
        .collect::<Result<Vec<_>, _>>();
    Ok(rows
        .map_err(internal("D1 rows"))?
        .into_iter()
        .map(integers)
        .collect())
}

/// A D1 row as JSON, read as worker's `results::<Value>()` read it (serde-wasm-bindgen): safe
/// integers as integers, other numbers as floats, objects by their own entries; anything
/// else (a blob, a BigInt) is an error. Walking the JS value here instead keeps that generic
/// deserializer out of the bundle.
fn json_of(v: &JsValue) -> Result<Value, worker::Error> {
    if v.is_null() || v.is_undefined() {
        return Ok(Value::Null);
    }
    if let Some(b) = v.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Some(f) = v.as_f64() {
        return Ok(if Number::is_safe_integer(v) {
            json!(f as i64)
        } else {
            serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
        });
    }
    if let Some(s) = v.as_string() {
        return Ok(Value::String(s));
    }
    if Array::is_array(v) {
        return Array::from(v).iter().map(|x| json_of(&x)).collect();
    }
    if v.is_object()
        && !v.is_function()
        && !ArrayBuffer::is_view(v)
        && !v.is_instance_of::<ArrayBuffer>()
    {
        let mut map = Map::new();
        for entry in Object::entries(v.unchecked_ref()).iter() {
            let pair: Array = entry.unchecked_into();
            let key = pair.get(0).as_string().unwrap_or_default();
            map.insert(key, json_of(&pair.get(1))?);
        }
        return Ok(Value::Object(map));
    }
    Err(worker::Error::RustError("D1 value is not JSON".into()))
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
    serde_json::from_slice(text.as_bytes())
        .map_err(|e| RelayError::Internal(format!("stored key record: {e}")))
}

async fn kv_put(kv: &Kv, name: &str, value: String) -> Result<(), String> {
    // As bytes: KV stores the same UTF-8 either way.
    kv.put(name, value.as_bytes(), None).await
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
async fn kv_copy(kv: &Kv, key: &Stored) -> KvCopy {
    KvCopy {
        record: store::kv_record(kv, &format!("key:{}", key.hash))
            .await
            .ok()
            .flatten(),
        id_hash: kv.text(&format!("id:{}", key.rec.id)).await.ok().flatten(),
    }
}

/// Brings KV (what requests are checked against) in line with D1 for this key, whatever
/// earlier attempts left behind (`keys::kv_repairs`). Every write is tried even after one
/// fails; any failure is `KeySyncFailed`, and the same call retried repairs it. `fresh` skips
/// the reads for a key just minted, which KV cannot hold yet.
pub async fn sync_kv(env: &Env, key: &Stored, fresh: bool) -> Result<(), RelayError> {
    let kv =
        Kv::of(env, KV_BINDING).map_err(|e| RelayError::Internal(format!("KV binding: {e}")))?;
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
        .and_then(|s| serde_json::from_slice::<Vec<String>>(s.as_bytes()).ok())
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
