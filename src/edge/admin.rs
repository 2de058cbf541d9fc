//! Admin routes: the key lifecycle, usage reports, the per-request listing and the audit log.
//! Enabled only when the `ADMIN_TOKEN` secret is set and at least 32 characters long (404
//! otherwise, so a relay without one does not even reveal that they exist); the token is
//! compared in constant time, and addresses that keep failing are throttled (`throttle`).

use serde_json::{json, Map, Value};
use worker::{Headers, Request, Response};

use super::{header, json_response, keystore, now_ms, read_body, Ctx};
use crate::http::error::RelayError;
use crate::http::routes::{self, Route};
use crate::keys::auth::{self, KeyRecord, KeyStatus};
use crate::keys::{self, KeyChange};
use crate::metering::refused;
use crate::metering::report::{self, UsageQuery};
use crate::metering::request_log::RequestsQuery;
use crate::providers::models;
use crate::time::rfc3339;

/// Admin bodies are tiny; anything larger is a mistake.
const MAX_ADMIN_BODY: usize = 64 * 1024;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;

fn check_admin(req: &Request, ctx: &Ctx) -> Result<(), RelayError> {
    let Some(token) = ctx.config.admin_token.as_deref() else {
        return Err(RelayError::RouteNotFound {
            method: req.method().to_string(),
            path: req.path(),
        });
    };
    let authz = header(req, "authorization");
    let presented = auth::bearer(authz.as_deref()).unwrap_or("");
    if auth::constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(RelayError::AdminUnauthorized)
    }
}

fn random(n: usize) -> Result<Vec<u8>, RelayError> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| RelayError::Internal(format!("getrandom: {e}")))?;
    Ok(buf)
}

fn mint(rec: &KeyRecord) -> Result<String, RelayError> {
    auth::mint_key(
        &rec.env,
        &rec.team,
        &rec.user,
        &random(auth::random_budget(auth::SECRET_LEN))?,
    )
    .ok_or_else(|| RelayError::Internal("not enough randomness for a key".to_string()))
}

fn query_pairs(req: &Request) -> Vec<(String, String)> {
    routes::query_pairs(&req.inner().url())
}

fn with_key(key: &str, rec: &KeyRecord) -> Value {
    let mut v = with_warnings(rec);
    if let Some(m) = v.as_object_mut() {
        m.insert("key".to_string(), json!(key));
    }
    v
}

/// The public record, plus `warnings` when an alias is a name Cursor would intercept.
fn with_warnings(rec: &KeyRecord) -> Value {
    let mut v = keys::public(rec);
    let warnings = models::cursor_warnings(rec.aliases.keys().map(String::as_str));
    if let (false, Some(m)) = (warnings.is_empty(), v.as_object_mut()) {
        m.insert("warnings".to_string(), json!(warnings));
    }
    v
}

pub async fn handle(
    route: Route,
    req: &mut Request,
    ctx: &mut Ctx,
) -> Result<Response, RelayError> {
    check_admin(req, ctx)?;
    match route {
        Route::CreateKey => create(req, ctx).await,
        Route::ListKeys => list(req, ctx).await,
        Route::GetKey(id) => {
            let stored = keystore::load(&ctx.env, &id).await?;
            json_response(200, &keys::public(&stored.rec))
        }
        Route::UpdateKey(id) => {
            let body = read_body(req, MAX_ADMIN_BODY).await?;
            let change = keys::parse_change(&body)?;
            change_key(ctx, &id, &change, "update").await
        }
        Route::RevokeKey(id) => {
            let change = KeyChange {
                status: Some(KeyStatus::Revoked),
                ..KeyChange::default()
            };
            change_key(ctx, &id, &change, "revoke").await
        }
        Route::RotateKey(id) => rotate(ctx, &id).await,
        Route::Usage => usage(req, ctx).await,
        Route::UsageExport => export(req, ctx).await,
        Route::Requests => requests(req, ctx).await,
        Route::Audit => audit_log(req, ctx).await,
        Route::KeyLimits(id) => super::limits_admin::key(ctx, &id).await,
        Route::ListLimits => super::limits_admin::list(ctx).await,
        Route::ScopeLimits { method, team, user } => {
            super::limits_admin::scope(req, ctx, method, &team, user.as_deref()).await
        }
        _ => Err(RelayError::Internal("not an admin route".to_string())),
    }
}

/// `POST /admin/keys`: mints a key, stores only its hash, and shows the key this once.
async fn create(req: &mut Request, ctx: &mut Ctx) -> Result<Response, RelayError> {
    let body = read_body(req, MAX_ADMIN_BODY).await?;
    let input = keys::parse_new(&body)?;
    let id = auth::base62(&random(64)?, 16)
        .map(|s| format!("key_{s}"))
        .ok_or_else(|| RelayError::Internal("not enough randomness for an id".to_string()))?;
    let now = rfc3339(now_ms());
    let rec = keys::record(input, id, &now);
    let key = mint(&rec)?;
    let stored = keystore::Stored {
        rec,
        hash: keystore::hash_of(&key),
        retired: Vec::new(),
    };
    keystore::save(&ctx.env, &stored).await?;
    let created = keys::public(&stored.rec)
        .as_object()
        .cloned()
        .unwrap_or_default();
    keystore::audit(&ctx.env, &now, "create", &stored.rec.id, created).await?;
    keystore::sync_kv(&ctx.env, &stored, true).await?;
    json_response(201, &with_key(&key, &stored.rec))
}

async fn change_key(
    ctx: &mut Ctx,
    id: &str,
    change: &KeyChange,
    action: &str,
) -> Result<Response, RelayError> {
    let mut stored = keystore::load(&ctx.env, id).await?;
    let now = rfc3339(now_ms());
    let diff = keys::apply(&mut stored.rec, change, &now);
    if !diff.is_empty() {
        keystore::save(&ctx.env, &stored).await?;
        keystore::audit(&ctx.env, &now, action, &stored.rec.id, diff).await?;
    }
    // Also when D1 already had the change: an earlier attempt may have stopped before KV.
    keystore::sync_kv(&ctx.env, &stored, false).await?;
    json_response(200, &with_warnings(&stored.rec))
}

/// New secret, same identity and history: usage rows stay under the same key id. The old
/// secret's hash is kept in D1 until KV has dropped it, so a rotation whose KV writes failed
/// is finished by the next attempt (which mints yet another secret: this one was never shown).
async fn rotate(ctx: &mut Ctx, id: &str) -> Result<Response, RelayError> {
    let mut stored = keystore::load(&ctx.env, id).await?;
    let now = rfc3339(now_ms());
    let key = mint(&stored.rec)?;
    let new_hash = keystore::hash_of(&key);
    stored.retired = keys::retire(&stored.retired, &stored.hash, &new_hash);
    stored.hash = new_hash;
    stored.rec.updated_at = Some(now.clone());
    keystore::save(&ctx.env, &stored).await?;
    let mut changes = Map::new();
    changes.insert("secret".to_string(), json!("rotated"));
    keystore::audit(&ctx.env, &now, "rotate", &stored.rec.id, changes).await?;
    keystore::sync_kv(&ctx.env, &stored, false).await?;
    json_response(200, &with_key(&key, &stored.rec))
}

async fn list(req: &Request, ctx: &mut Ctx) -> Result<Response, RelayError> {
    let mut filters: Vec<(&'static str, String)> = Vec::new();
    let mut cursor = None;
    let mut limit = DEFAULT_PAGE;
    for (k, v) in query_pairs(req) {
        match k.as_str() {
            "team" => filters.push(("team", v)),
            "user" => filters.push(("user", v)),
            "status" if v == "active" || v == "revoked" => filters.push(("status", v)),
            "status" => {
                return Err(RelayError::invalid(
                    "'status' must be active or revoked.",
                    Some("status"),
                ))
            }
            "cursor" => cursor = Some(v),
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        RelayError::invalid(format!("'limit' must be 1-{MAX_PAGE}."), Some("limit"))
                    })?
            }
            other => {
                return Err(RelayError::invalid(
                    format!("Unknown query parameter: '{other}'."),
                    Some(other),
                ))
            }
        }
    }
    let page = keystore::list(&ctx.env, &filters, cursor.as_deref(), limit).await?;
    let data: Vec<Value> = page.records.iter().map(keys::public).collect();
    json_response(
        200,
        &json!({"object": "list", "data": data, "next_cursor": page.next_cursor}),
    )
}

async fn report_rows(ctx: &Ctx, q: &UsageQuery) -> Result<Vec<Value>, RelayError> {
    let (sql, params) = q.sql();
    let params: Vec<Value> = params.into_iter().map(Value::String).collect();
    keystore::query(&ctx.env, &sql, &params).await
}

async fn usage(req: &Request, ctx: &mut Ctx) -> Result<Response, RelayError> {
    let q = UsageQuery::parse(&query_pairs(req), &[])?;
    let rows = report_rows(ctx, &q).await?;
    let group_by: Vec<&str> = q
        .columns()
        .into_iter()
        .take_while(|c| !report::MEASURES.contains(c))
        .collect();
    let refused = refused_totals(ctx, q.scope.from.as_deref(), q.scope.to.as_deref()).await?;
    json_response(
        200,
        &json!({"object": "list", "from": q.scope.from, "to": q.scope.to, "group_by": group_by, "data": rows, "refused": refused}),
    )
}

/// Requests throttled in the range, by reason (`{"invalid_api_key": 120, …}`): they have no
/// usage row, so no key, team or model either, and only the range applies to them.
async fn refused_totals(
    ctx: &Ctx,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Map<String, Value>, RelayError> {
    let rows = keystore::query(&ctx.env, refused::TOTALS_SQL, &[json!(from), json!(to)]).await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let reason = r.get("reason")?.as_str()?.to_string();
            Some((reason, r.get("count").cloned().unwrap_or(json!(0))))
        })
        .collect())
}

/// `GET /admin/requests`: usage rows one by one, newest first, a page at a time.
async fn requests(req: &Request, ctx: &mut Ctx) -> Result<Response, RelayError> {
    let q = RequestsQuery::parse(&query_pairs(req))?;
    let (sql, params) = q.sql();
    let rows = keystore::query(&ctx.env, &sql, &params).await?;
    let (data, next_cursor) = q.page(rows);
    json_response(
        200,
        &json!({"object": "list", "from": q.scope.from, "to": q.scope.to, "data": data, "next_cursor": next_cursor}),
    )
}

async fn export(req: &Request, ctx: &mut Ctx) -> Result<Response, RelayError> {
    let pairs = query_pairs(req);
    if let Some((_, f)) = pairs.iter().find(|(k, _)| k == "format") {
        if f != "csv" {
            return Err(RelayError::invalid("'format' must be csv.", Some("format")));
        }
    }
    let q = UsageQuery::parse(&pairs, &["format"])?;
    let rows = report_rows(ctx, &q).await?;
    let body = report::csv(&q.columns(), &rows);
    let headers = Headers::new();
    let internal = |e: worker::Error| RelayError::Internal(e.to_string());
    headers
        .set("content-type", "text/csv; charset=utf-8")
        .map_err(internal)?;
    headers
        .set("content-disposition", "attachment; filename=\"usage.csv\"")
        .map_err(internal)?;
    Ok(Response::builder()
        .with_status(200)
        .with_headers(headers)
        .fixed(body.into_bytes()))
}

async fn audit_log(req: &Request, ctx: &mut Ctx) -> Result<Response, RelayError> {
    let mut key = None;
    let mut limit = 100usize;
    for (k, v) in query_pairs(req) {
        match k.as_str() {
            "key" => key = Some(v),
            "limit" => {
                limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| RelayError::invalid("'limit' must be 1-1000.", Some("limit")))?
            }
            other => {
                return Err(RelayError::invalid(
                    format!("Unknown query parameter: '{other}'."),
                    Some(other),
                ))
            }
        }
    }
    let (sql, params) = match key {
        Some(k) => (
            "SELECT at, action, key_id, changes FROM audit WHERE key_id = ?1 ORDER BY id DESC LIMIT ?2",
            vec![json!(k), json!(limit)],
        ),
        None => (
            "SELECT at, action, key_id, changes FROM audit ORDER BY id DESC LIMIT ?1",
            vec![json!(limit)],
        ),
    };
    let rows = keystore::query(&ctx.env, sql, &params).await?;
    let data: Vec<Value> = rows
        .into_iter()
        .map(|mut r| {
            if let Some(m) = r.as_object_mut() {
                let parsed = m
                    .get("changes")
                    .and_then(Value::as_str)
                    .and_then(|s| serde_json::from_slice::<Value>(s.as_bytes()).ok())
                    .unwrap_or(Value::Null);
                m.insert("changes".to_string(), parsed);
            }
            r
        })
        .collect();
    json_response(200, &json!({"object": "list", "data": data}))
}
