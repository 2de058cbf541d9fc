//! KV (key records) and D1 (usage rows) access. The usage write is an upsert keyed by request
//! id, retried with backoff; a row that still cannot be written is logged whole for replay.

use std::cell::RefCell;
use std::time::Duration;

use worker::wasm_bindgen::JsValue;
use worker::{console_error, console_warn, Delay, Env};

use super::now_ms;
use crate::http::error::RelayError;
use crate::keys::auth::{self, KeyRecord};
use crate::metering::columns::{self, Cell, Row};
use crate::metering::usage::UsageRecord;
use crate::ttl_cache::TtlCache;

const KV_BINDING: &str = "KEYS";
const D1_BINDING: &str = "DB";
const WRITE_ATTEMPTS: u32 = 3;

/// How long an isolate reuses a key record before asking KV again. KV itself takes up to ~60 s
/// to propagate a change between locations, so this adds little to that bound.
const KEY_CACHE_TTL_MS: u64 = 10_000;
const KEY_CACHE_CAPACITY: usize = 1024;

thread_local! {
    static KEY_CACHE: RefCell<TtlCache<KeyRecord>> =
        RefCell::new(TtlCache::new(KEY_CACHE_CAPACITY, KEY_CACHE_TTL_MS));
}

/// The record for a presented key, from the isolate's cache or KV. Unknown keys are not cached,
/// so a key minted a moment ago works at once.
pub async fn find_key(env: &Env, key: &str) -> Result<Option<KeyRecord>, RelayError> {
    let name = auth::kv_name(key);
    let now = now_ms();
    if let Some(hit) = KEY_CACHE.with(|c| c.borrow_mut().get(&name, now)) {
        return Ok(Some(hit));
    }
    let kv = super::kv::Kv::of(env, KV_BINDING)
        .map_err(|e| RelayError::Internal(format!("KV binding {KV_BINDING}: {e}")))?;
    let found = kv_record(&kv, &name).await?;
    if let Some(record) = &found {
        KEY_CACHE.with(|c| c.borrow_mut().insert(name, record.clone(), now));
    }
    Ok(found)
}

/// The key record KV holds under `name`, read as text and parsed with serde_json: the same
/// `Deserialize` code as D1's copy (keystore's `record_of`), where `.json()` would build a second
/// one over JS values (~3 KiB of the gzip bundle), and one string crossing instead of one per field.
pub async fn kv_record(kv: &super::kv::Kv, name: &str) -> Result<Option<KeyRecord>, RelayError> {
    let text = kv
        .text(name)
        .await
        .map_err(|e| RelayError::Internal(format!("KV read: {e}")))?;
    text.map(|t| serde_json::from_slice(t.as_bytes()))
        .transpose()
        .map_err(|e| RelayError::Internal(format!("KV read: {e}")))
}

/// Drops this isolate's cached copy of a key record, so a change made here applies at once.
pub fn forget_key(hash: &str) {
    KEY_CACHE.with(|c| c.borrow_mut().remove(&format!("key:{hash}")));
}

/// D1 rejects BigInt, so every integer is bound as a double (toolchain.md trap 9).
fn bind(cell: Cell<'_>) -> JsValue {
    match cell {
        Cell::Text(v) => v.map_or(JsValue::NULL, JsValue::from_str),
        Cell::Int(n) => n.map_or(JsValue::NULL, |n| JsValue::from_f64(n as f64)),
        Cell::Real(x) => x.map_or(JsValue::NULL, JsValue::from_f64),
    }
}

fn bindings(record: &UsageRecord, settled: bool) -> Vec<JsValue> {
    columns::values(&Row { record, settled })
        .into_iter()
        .map(bind)
        .collect()
}

/// Key ids of the rows that record creating response `id`: at most two, as one owner is all the
/// check needs and a second says the record conflicts (`responses::owner::access`).
pub async fn response_owners(env: &Env, id: &str) -> Result<Vec<Option<String>>, RelayError> {
    let rows = super::keystore::query(
        env,
        "SELECT DISTINCT key_id FROM usage WHERE response_id = ?1 LIMIT 2",
        &[serde_json::Value::String(id.to_string())],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            r.get("key_id")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string)
        })
        .collect())
}

/// The record with its cost from the isolate's price table; a missing price is logged, and
/// the cost stays NULL rather than guessed.
fn priced(r: &UsageRecord) -> UsageRecord {
    let mut out = r.clone();
    // Every path already clamps provider counts; this keeps any new one from storing more.
    out.tokens = r.tokens.capped();
    let models: Vec<&str> = [&r.model_upstream, &r.model_requested]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    out.cost_usd = super::price_table().and_then(|t| t.cost(&models, &out.tokens));
    if out.cache == Some(crate::cache::Status::Hit) {
        // A hit called no provider: it costs nothing, and saved what the answer costs.
        out.saved_usd = out.cost_usd;
        out.cost_usd = Some(0.0);
    }
    if r.outcome == crate::metering::usage::Outcome::Limited {
        // Refused before any provider saw it, whatever the model: it cost nothing.
        out.cost_usd = Some(0.0);
    }
    if out.cost_usd.is_none() {
        console_warn!(
            "no price for model {:?}; cost_usd left NULL for request {}",
            models.first().copied().unwrap_or(""),
            r.request_id
        );
    }
    out
}

async fn write_once(env: &Env, r: &UsageRecord, settled: bool) -> Result<(), String> {
    let db = env.d1(D1_BINDING).map_err(|e| e.to_string())?;
    db.prepare(columns::upsert_sql())
        .bind(&bindings(r, settled))
        .map_err(|e| e.to_string())?
        .run()
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Writes (or replaces) the row for `r`. `settled` is false for a provisional row written while
/// a stream's fate is unknown; the final write replaces it.
pub async fn write_usage(env: &Env, r: &UsageRecord, settled: bool) {
    let r = &priced(r).bounded();
    if settled {
        // The same moment as the final row, whatever ended the request (README: "Limits").
        super::limits::settle(env, r).await;
    }
    let mut last_err = String::new();
    for attempt in 0..WRITE_ATTEMPTS {
        match write_once(env, r, settled).await {
            Ok(()) => return,
            Err(e) => {
                console_warn!("usage write attempt {} failed: {e}", attempt + 1);
                last_err = e;
                Delay::from(Duration::from_millis(100 << (attempt * 2))).await;
            }
        }
    }
    // One line an operator can replay into D1 by hand, and a count the operator can watch.
    let failures = count_write_failure(env).await;
    let json = serde_json::to_string(r).unwrap_or_default();
    console_error!("usage_write_failed failures_total={failures} error={last_err:?} record={json}");
}

/// KV name of the running count of usage rows that could not be written to D1.
pub const WRITE_FAILURES_KEY: &str = "stats:usage_write_failures";

/// Best effort: KV has no atomic increment, so concurrent failures may undercount; the log
/// line is the record of truth, this is the alarm.
async fn count_write_failure(env: &Env) -> u64 {
    let next = write_failures(env).await + 1;
    if let Ok(kv) = super::kv::Kv::of(env, KV_BINDING) {
        let _ = kv
            .put(WRITE_FAILURES_KEY, next.to_string().as_bytes(), None)
            .await;
    }
    next
}

/// The count, for `/health`.
pub async fn write_failures(env: &Env) -> u64 {
    let Ok(kv) = super::kv::Kv::of(env, KV_BINDING) else {
        return 0;
    };
    kv.text(WRITE_FAILURES_KEY)
        .await
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0)
}
