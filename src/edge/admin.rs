//! Admin routes, enabled only when the `ADMIN_TOKEN` secret is set (404 otherwise, so a relay
//! without one does not even reveal that they exist). The token is compared in constant time.

use worker::Request;

use super::{header, json_response, now_ms, store, Ctx};
use crate::auth::{self, CreateKey, KeyRecord, KeyStatus};
use crate::error::RelayError;
use crate::time::rfc3339;

/// Admin bodies are tiny; anything larger is a mistake.
const MAX_ADMIN_BODY: usize = 64 * 1024;

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

/// `POST /admin/keys`: mints a key, stores only its hash, and shows the key this once.
pub async fn create_key(req: &mut Request, ctx: &mut Ctx) -> Result<worker::Response, RelayError> {
    check_admin(req, ctx)?;
    let body = super::read_body(req, MAX_ADMIN_BODY).await?;
    let input = CreateKey::parse(&body)?;
    let minted = auth::mint_key(
        &input.env,
        &input.team,
        &input.user,
        &random(auth::random_budget(auth::SECRET_LEN))?,
    )
    .ok_or_else(|| RelayError::Internal("not enough randomness for a key".to_string()))?;
    let id = auth::base62(&random(64)?, 16)
        .map(|s| format!("key_{s}"))
        .ok_or_else(|| RelayError::Internal("not enough randomness for an id".to_string()))?;
    let record = KeyRecord {
        id,
        team: input.team,
        user: input.user,
        env: input.env,
        created_at: rfc3339(now_ms()),
        status: KeyStatus::Active,
        expires_at: None,
    };
    store::put_key(&ctx.env, &minted, &record).await?;
    if let Some(rec) = ctx.record.as_mut() {
        rec.team = Some(record.team.clone());
        rec.user = Some(record.user.clone());
        rec.key_id = Some(record.id.clone());
    }
    json_response(
        201,
        &serde_json::json!({
            "id": record.id,
            "key": minted,
            "team": record.team,
            "user": record.user,
            "env": record.env,
            "created_at": record.created_at,
            "status": "active",
        }),
    )
}
