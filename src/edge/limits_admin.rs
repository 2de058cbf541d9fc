//! Admin routes for limits (CONTRACT.md): user and team limits set, read and deleted under
//! `/admin/limits/teams/{team}[/users/{user}]`, their list, and a key's view. D1's `limits`
//! table is the source of truth; after each change KV's copy (what requests read) follows and
//! this isolate forgets its cached one. Every view carries the scope object's live state.

use serde_json::{json, Map, Value};
use worker::{Env, Request, Response};

use super::limits::{self as edge_limits, kv_name};
use super::{json_response, keystore, now_ms, read_body, Ctx};
use crate::http::error::RelayError;
use crate::http::routes::LimitsMethod;
use crate::keys::auth::is_slug;
use crate::limits::ledger::{Call, State};
use crate::limits::{self, Limits, Scope};
use crate::time::rfc3339;

const MAX_BODY: usize = 16 * 1024;

fn scope_of(team: &str, user: Option<&str>) -> Result<Scope, RelayError> {
    if !is_slug(team) {
        return Err(RelayError::invalid(
            "'team' must be 1-32 characters of a-z, 0-9 and '-'.",
            Some("team"),
        ));
    }
    match user {
        Some(u) if !is_slug(u) => Err(RelayError::invalid(
            "'user' must be 1-32 characters of a-z, 0-9 and '-'.",
            Some("user"),
        )),
        Some(u) => Ok(Scope::User {
            team: team.to_string(),
            user: u.to_string(),
        }),
        None => Ok(Scope::Team(team.to_string())),
    }
}

/// The live state of a scope's object. The admin API reads it even for a scope without
/// limits: spend is kept after its limits are deleted.
async fn live_state(env: &Env, scope: &Scope, limits: &Limits) -> Result<State, RelayError> {
    edge_limits::call(env, &scope.name(), &Call::View { limits: *limits })
        .await
        .map(|r| r.state)
        .map_err(|e| RelayError::Internal(format!("limits object {}: {e}", scope.name())))
}

async fn stored(env: &Env, scope: &Scope) -> Result<Limits, RelayError> {
    let rows = keystore::query(
        env,
        "SELECT limits FROM limits WHERE scope = ?1",
        &[json!(scope.name())],
    )
    .await?;
    match rows
        .first()
        .and_then(|r| r.get("limits"))
        .and_then(Value::as_str)
    {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| RelayError::Internal(format!("stored limits {}: {e}", scope.name()))),
        None => Ok(Limits::default()),
    }
}

/// D1 first (the source of truth), then KV, then this isolate's cache. A KV failure is
/// reported; the same call retried brings KV in line.
async fn save(env: &Env, scope: &Scope, limits: &Limits, now: &str) -> Result<(), RelayError> {
    let (team, user) = match scope {
        Scope::User { team, user } => (team.clone(), Some(user.clone())),
        Scope::Team(team) => (team.clone(), None),
        Scope::Key(_) => return Err(RelayError::Internal("key limits live on the key".into())),
    };
    if limits.is_empty() {
        keystore::query(
            env,
            "DELETE FROM limits WHERE scope = ?1",
            &[json!(scope.name())],
        )
        .await?;
    } else {
        keystore::query(
            env,
            "INSERT INTO limits (scope, kind, team, user, limits, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT(scope) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at",
            &[
                json!(scope.name()),
                json!(scope.kind()),
                json!(team),
                json!(user),
                json!(limits.public().to_string()),
                json!(now),
            ],
        )
        .await?;
    }
    let kv = super::kv::Kv::of(env, "KEYS")
        .map_err(|e| RelayError::Internal(format!("KV binding: {e}")))?;
    let name = kv_name(scope);
    let synced = if limits.is_empty() {
        kv.delete(&name).await
    } else {
        kv.put(&name, limits.public().to_string().as_bytes(), None)
            .await
    };
    edge_limits::forget(scope);
    synced.map_err(|e| {
        RelayError::Internal(format!(
            "limits of {} saved in D1 but not in KV ({e}); retry the same call",
            scope.name()
        ))
    })
}

async fn view(env: &Env, scope: &Scope, limits: &Limits) -> Result<Response, RelayError> {
    let state = live_state(env, scope, limits).await?;
    json_response(200, &limits::scope_view(scope, None, limits, &state))
}

/// `PUT`, `GET` and `DELETE` on a user's or a team's limits.
pub async fn scope(
    req: &mut Request,
    ctx: &mut Ctx,
    method: LimitsMethod,
    team: &str,
    user: Option<&str>,
) -> Result<Response, RelayError> {
    let scope = scope_of(team, user)?;
    let env = &ctx.env;
    let limits = match method {
        LimitsMethod::Get => stored(env, &scope).await?,
        LimitsMethod::Put | LimitsMethod::Delete => {
            let new = if method == LimitsMethod::Put {
                limits::parse_replacement(&read_body(req, MAX_BODY).await?)?
            } else {
                Limits::default()
            };
            let old = stored(env, &scope).await?;
            let now = rfc3339(now_ms());
            save(env, &scope, &new, &now).await?;
            if old != new || method == LimitsMethod::Delete {
                let mut changes = Map::new();
                changes.insert("target".into(), json!(scope.name()));
                changes.insert(
                    "limits".into(),
                    json!({"from": old.public(), "to": new.public()}),
                );
                let action = if method == LimitsMethod::Put {
                    "limits.set"
                } else {
                    "limits.delete"
                };
                keystore::audit(env, &now, action, &scope.name(), changes).await?;
            }
            new
        }
    };
    view(env, &scope, &limits).await
}

/// `GET /admin/limits`: every user and team scope with limits, by team then user.
pub async fn list(ctx: &Ctx) -> Result<Response, RelayError> {
    let rows = keystore::query(
        &ctx.env,
        "SELECT kind, team, user, limits FROM limits ORDER BY team, user IS NOT NULL, user",
        &[],
    )
    .await?;
    let data: Vec<Value> = rows
        .iter()
        .filter_map(|r| {
            let limits: Limits = serde_json::from_str(r.get("limits")?.as_str()?).ok()?;
            let mut m = Map::new();
            m.insert("scope".into(), r.get("kind")?.clone());
            m.insert("team".into(), r.get("team")?.clone());
            if let Some(u) = r.get("user").filter(|u| u.is_string()) {
                m.insert("user".into(), u.clone());
            }
            m.insert("limits".into(), limits.public());
            Some(Value::Object(m))
        })
        .collect();
    json_response(200, &json!({"data": data}))
}

/// `GET /admin/keys/{id}/limits`: the key's own scope (its user's and team's are theirs).
pub async fn key(ctx: &Ctx, id: &str) -> Result<Response, RelayError> {
    let stored = keystore::load(&ctx.env, id).await?;
    let rec = &stored.rec;
    let scope = Scope::Key(rec.id.clone());
    let state = live_state(&ctx.env, &scope, &rec.limits).await?;
    json_response(
        200,
        &limits::scope_view(&scope, Some((&rec.team, &rec.user)), &rec.limits, &state),
    )
}
