//! Limits at the edge: the `LimitsObject` Durable Object (one per scope, SQLite-backed, running
//! the core `Ledger`), and the request path's three calls around it: `reserve` before the first
//! upstream attempt, `settle` when the usage row is written, and `decorate` for the headers.
//! A request whose key, user and team have no limits makes no Durable Object call at all.
//!
//! Where limits come from: a key's are in its record (KV, cached like every key record); a
//! user's and a team's are in D1 (the admin API's source of truth) with a copy in KV under
//! `limits:user:{team}/{user}` and `limits:team:{team}`, which the isolate caches for
//! `SCOPE_CACHE_TTL_MS` — absent entries too, so unlimited users cost one KV read per isolate
//! per TTL. A change therefore reaches every isolate within KV's propagation (up to ~60 s)
//! plus that TTL; where it was made, at once. The spend itself is never cached: it lives only
//! in the scope's object, which serialises every check and settlement.

use std::cell::RefCell;

use futures_util::future::join3;
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, console_warn, durable_object, DurableObject, Env, Headers, Method, Request,
    Response, State,
};

use super::{now_ms, price_table, relay_key, Ctx};
use crate::http::error::RelayError;
use crate::limits::answer::{self, Seen};
use crate::limits::estimate::Estimate;
use crate::limits::ledger::{Call, Ledger, LimitName, Refusal, Reply};
use crate::limits::period::day_of;
use crate::limits::{Limits, Scope, Settings};
use crate::metering::usage::UsageRecord;
use crate::providers::models::Target;

/// The Durable Object namespace binding (wrangler.toml `[[durable_objects.bindings]]`).
pub const BINDING: &str = "LIMITS";
const KV_BINDING: &str = "KEYS";
const SCOPE_CACHE_TTL_MS: u64 = 10_000;
const SCOPE_CACHE_CAPACITY: usize = 256;
/// Admitted requests an isolate tracks at once; far above what one isolate serves concurrently.
const MAX_PENDING: usize = 4096;

/// The KV name of a user's or team's limits.
pub fn kv_name(scope: &Scope) -> String {
    format!("limits:{}", scope.name())
}

thread_local! {
    /// (scope name, its limits, when read). A short list scanned in order: the few teams and
    /// users an isolate sees, without a second map type in the bundle.
    static SCOPE_LIMITS: RefCell<Vec<(String, Limits, u64)>> = const { RefCell::new(Vec::new()) };
    /// Admitted requests of this isolate awaiting settlement, by request id. The usage row is
    /// written by this isolate (the handler or its stream's watcher), so the entry is found
    /// there; should the isolate die first, the reservation's lease frees it.
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
    static SETTINGS: RefCell<Option<Settings>> = const { RefCell::new(None) };
}

struct Pending {
    request_id: String,
    /// Names of the scopes holding a reservation for the request.
    holds: Vec<String>,
    headers: Vec<(&'static str, String)>,
}

/// This isolate's limits settings, read once from the vars (bad values are logged once).
pub fn settings(env: &Env) -> Settings {
    if let Some(s) = SETTINGS.with(|s| *s.borrow()) {
        return s;
    }
    let (s, warnings) = Settings::from_lookup(|name| env.var(name).ok().map(|v| v.to_string()));
    for w in warnings {
        console_warn!("config: {w}");
    }
    SETTINGS.with(|slot| *slot.borrow_mut() = Some(s));
    s
}

/// Forgets this isolate's copy of a scope's limits, so a change made here applies at once.
pub fn forget(scope: &Scope) {
    let name = scope.name();
    SCOPE_LIMITS.with(|c| c.borrow_mut().retain(|(n, _, _)| *n != name));
}

/// A user's or team's limits as the request path sees them (KV's copy, cached).
async fn scope_limits(env: &Env, scope: &Scope) -> Result<Limits, RelayError> {
    let now = now_ms();
    let name = scope.name();
    let hit = SCOPE_LIMITS.with(|c| {
        let mut c = c.borrow_mut();
        c.retain(|(_, _, at)| now.saturating_sub(*at) < SCOPE_CACHE_TTL_MS);
        c.iter().find(|(n, _, _)| *n == name).map(|(_, l, _)| *l)
    });
    if let Some(hit) = hit {
        return Ok(hit);
    }
    let kv = super::kv::Kv::of(env, KV_BINDING)
        .map_err(|e| RelayError::Internal(format!("KV binding {KV_BINDING}: {e}")))?;
    let text = kv
        .text(&kv_name(scope))
        .await
        .map_err(|e| RelayError::Internal(format!("KV read {}: {e}", kv_name(scope))))?;
    let limits = match text {
        Some(t) => serde_json::from_slice(t.as_bytes())
            .map_err(|e| RelayError::Internal(format!("KV {}: {e}", kv_name(scope))))?,
        None => Limits::default(),
    };
    SCOPE_LIMITS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= SCOPE_CACHE_CAPACITY {
            c.remove(0);
        }
        c.push((name, limits, now));
    });
    Ok(limits)
}

/// Sends one call to the scope's object. Any failure (no binding, an exception in the
/// object, a non-200) is an error the caller turns into fail-closed or fail-open.
pub async fn call(env: &Env, scope_name: &str, call: &Call) -> Result<Reply, String> {
    let ns = env.durable_object(BINDING).map_err(|e| e.to_string())?;
    let stub = ns
        .id_from_name(scope_name)
        .and_then(|id| id.get_stub())
        .map_err(|e| e.to_string())?;
    let body = call.to_json().to_string();
    let req = super::upstream::new_request(
        "https://limits.internal/call",
        &Method::Post,
        &worker::Headers::new(),
        Some(&JsValue::from_str(&body)),
    )
    .map_err(|e| e.to_string())?;
    let mut resp = stub
        .fetch_with_request(req)
        .await
        .map_err(|e| e.to_string())?;
    let text = resp.text().await.map_err(|e| e.to_string())?;
    if resp.status_code() != 200 {
        return Err(format!("status {}: {text}", resp.status_code()));
    }
    serde_json::from_slice(text.as_bytes())
        .ok()
        .and_then(|v| Reply::from_json(&v))
        .ok_or_else(|| format!("not a limits reply: {text}"))
}

/// `calls[i]` to scope `names[i]`, all at once (each scope's object is its own). One generic
/// instance for every use, so the bundle holds one copy of the joining code.
async fn call_all(env: &Env, names: &[String], calls: &[Call]) -> Vec<Result<Reply, String>> {
    // A request meets at most three scopes (key, user, team): joined as three slots, which
    // costs the bundle far less than `join_all`'s general machinery.
    let mut out = Vec::with_capacity(names.len());
    for (names, calls) in names.chunks(3).zip(calls.chunks(3)) {
        let mut jobs = names.iter().zip(calls);
        let (a, b, c) = join3(
            maybe_call(env, jobs.next()),
            maybe_call(env, jobs.next()),
            maybe_call(env, jobs.next()),
        )
        .await;
        out.extend([a, b, c].into_iter().flatten());
    }
    out
}

async fn maybe_call(env: &Env, job: Option<(&String, &Call)>) -> Option<Result<Reply, String>> {
    match job {
        Some((name, c)) => Some(call(env, name, c).await),
        None => None,
    }
}

/// The scopes of the authenticated key that have limits, in the order refusals prefer.
async fn applicable(ctx: &Ctx) -> Result<Vec<(Scope, Limits)>, RelayError> {
    let key = relay_key(ctx)?;
    let user = Scope::User {
        team: key.team.clone(),
        user: key.user.clone(),
    };
    let team = Scope::Team(key.team.clone());
    let key_scope = (Scope::Key(key.id.clone()), key.limits);
    // One after the other: both are almost always in this isolate's cache.
    let user_limits = scope_limits(&ctx.env, &user).await?;
    let team_limits = scope_limits(&ctx.env, &team).await?;
    Ok([key_scope, (user, user_limits), (team, team_limits)]
        .into_iter()
        .filter(|(_, l)| !l.is_empty())
        .collect())
}

/// What the request asks for, for the reservation.
pub struct Ask<'a> {
    pub targets: &'a [Target],
    /// The model the client named (for the refusal's message and for pricing by alias).
    pub model: &'a str,
    pub prompt_chars: u64,
    /// The output cap the client named.
    pub cap: Option<u64>,
}

fn refuse(ctx: &mut Ctx, refused: answer::Refused) -> RelayError {
    if let Some(rec) = ctx.rec() {
        // Refused before any provider saw it: no tokens (the Responses route counts its
        // prompt estimate up front), no cost.
        rec.tokens = crate::metering::usage::Tokens::default();
        rec.limit_scope = Some(refused.scope.to_string());
        rec.limit_name = Some(refused.limit.as_str().to_string());
    }
    RelayError::Limited(Box::new(refused))
}

/// The one call a route makes before its first upstream attempt (see `reserve`).
pub async fn check(
    ctx: &mut Ctx,
    targets: &[Target],
    model: &str,
    prompt_chars: u64,
    cap: Option<u64>,
) -> Result<(), RelayError> {
    let ask = Ask {
        targets,
        model,
        prompt_chars,
        cap,
    };
    reserve(ctx, &ask).await
}

/// Before the first upstream attempt: reserves the request's worst case in every scope with
/// limits, or refuses it. Nothing happens (and no object is called) when no scope has limits.
pub async fn reserve(ctx: &mut Ctx, ask: &Ask<'_>) -> Result<(), RelayError> {
    let scopes = applicable(ctx).await?;
    if scopes.is_empty() {
        return Ok(());
    }
    let settings = settings(&ctx.env);
    let estimate = Estimate::new(ask.prompt_chars, ask.cap);
    let pairs: Vec<[&str; 2]> = ask
        .targets
        .iter()
        .map(|t| [t.upstream_model.as_str(), ask.model])
        .collect();
    let usd = price_table().and_then(|t| estimate.worst_usd(&t, &pairs));
    let now = now_ms();
    if usd.is_none() {
        if let Some((scope, limits)) = scopes.iter().find(|(_, l)| l.has_budget()) {
            // No object call: an unpriced model can never be reserved against a budget.
            let state = Ledger::default().state(limits, now);
            let seen = Seen {
                scope,
                limits,
                state: &state,
            };
            let refusal = Refusal {
                limit: LimitName::Unpriced,
                retry_after_s: None,
                ask_usd: None,
            };
            let refused = answer::refused(seen, &refusal, ask.model, Vec::new());
            return Err(refuse(ctx, refused));
        }
    }
    let id = ctx.request_id.clone();
    let calls: Vec<Call> = scopes
        .iter()
        .map(|(_, limits)| Call::Reserve {
            id: id.clone(),
            limits: *limits,
            usd,
            tokens: estimate.rate_tokens(),
            lease_ms: settings.lease_ms,
        })
        .collect();
    let env = ctx.env.clone();
    let names: Vec<String> = scopes.iter().map(|(s, _)| s.name()).collect();
    let replies = call_all(&env, &names, &calls).await;
    let mut seen_states = Vec::new();
    let mut admitted = Vec::new();
    let mut refusal: Option<(usize, Refusal)> = None;
    let mut unreachable: Option<&Scope> = None;
    for (i, ((scope, limits), reply)) in scopes.iter().zip(replies).enumerate() {
        match reply {
            Ok(reply) => {
                match reply.refusal {
                    // A budget refusal wins over a rate one: it is the one retrying cannot fix.
                    Some(r)
                        if refusal.is_none_or(|(_, old)| {
                            old.limit != LimitName::Budget && r.limit == LimitName::Budget
                        }) =>
                    {
                        refusal = Some((i, r))
                    }
                    Some(_) => {}
                    None => admitted.push(scope.name()),
                }
                seen_states.push((i, reply.state));
            }
            Err(e) => {
                let closed = limits.has_budget() && !settings.fail_open;
                console_error!(
                    "limits: the object of {} could not be reached ({e}); request {id} {}",
                    scope.name(),
                    if closed {
                        "refused (503, fail closed: the scope has a budget)"
                    } else {
                        "admitted without this scope's check"
                    }
                );
                if closed && unreachable.is_none() {
                    unreachable = Some(scope);
                }
            }
        }
    }
    let seen: Vec<Seen<'_>> = seen_states
        .iter()
        .map(|(i, state)| Seen {
            scope: &scopes[*i].0,
            limits: &scopes[*i].1,
            state,
        })
        .collect();
    let headers = answer::headers(&seen);
    let refused = match (refusal, unreachable) {
        (Some((i, r)), _) => seen
            .iter()
            .find(|s| std::ptr::eq(s.scope, &scopes[i].0))
            .map(|s| answer::refused(*s, &r, ask.model, headers.clone())),
        (None, Some(scope)) => Some(answer::unavailable(scope)),
        (None, None) => None,
    };
    if let Some(refused) = refused {
        // Scopes that admitted it must not keep a hold (nor count it) for a request that never runs.
        let releases = vec![Call::Release { id: id.clone() }; admitted.len()];
        let done = call_all(&env, &admitted, &releases).await;
        for e in done.into_iter().filter_map(Result::err) {
            console_warn!("limits: release of {id} failed ({e}); its lease frees it");
        }
        return Err(refuse(ctx, refused));
    }
    if !admitted.is_empty() || !headers.is_empty() {
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() >= MAX_PENDING {
                // A row that was never written leaves its entry behind; its lease frees the
                // reservation, and this bound keeps the isolate's list from growing with it.
                p.remove(0);
            }
            p.push(Pending {
                request_id: id,
                holds: admitted,
                headers,
            })
        });
    }
    Ok(())
}

/// The remaining-budget and remaining-rate headers of an admitted request, on its response.
pub fn decorate(request_id: &str, headers: &mut Headers) {
    PENDING.with(|p| {
        if let Some(pending) = p.borrow().iter().find(|x| x.request_id == request_id) {
            for (name, value) in &pending.headers {
                let _ = headers.set(name, value);
            }
        }
    });
}

/// When the request's final usage row is written (success, error, hang-up, truncation), from
/// `wait_until`: releases its reservations and counts what it really cost. `rec` is the row as
/// written, priced.
pub async fn settle(env: &Env, rec: &UsageRecord) {
    let pending = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let at = p.iter().position(|x| x.request_id == rec.request_id)?;
        Some(p.swap_remove(at))
    });
    let Some(pending) = pending else {
        return;
    };
    if pending.holds.is_empty() {
        return;
    }
    let started = crate::time::parse_rfc3339(&rec.started_at).unwrap_or_else(now_ms);
    let settle = Call::Settle {
        id: rec.request_id.clone(),
        cost_usd: rec.cost_usd.unwrap_or(0.0),
        tokens: rec.tokens.total(),
        day: day_of(started),
    };
    let settles = vec![settle; pending.holds.len()];
    let done = call_all(env, &pending.holds, &settles).await;
    for (name, result) in pending.holds.iter().zip(done) {
        if let Err(e) = result {
            console_error!(
                "limits: settlement of {} in {name} failed ({e}); its reservation expires with its lease and the cost ({} USD) is not counted",
                rec.request_id,
                crate::limits::answer::fixed(rec.cost_usd.unwrap_or(0.0), 6)
            );
        }
    }
}

/// One scope's limits object. Its whole ledger is one row of its own SQLite database, read on
/// first use and rewritten after every call; SQL storage calls are synchronous, so a call is
/// applied and stored before the object takes the next.
#[durable_object(fetch)]
pub struct LimitsObject {
    state: State,
    /// The ledger and the text last stored for it: a call that changed nothing (a view, a
    /// repeated reservation) writes nothing, so it does not wait for storage to confirm.
    ledger: RefCell<Option<(Ledger, String)>>,
}

fn load(sql: &worker::SqlStorage) -> worker::Result<(Ledger, String)> {
    sql.exec(
        "CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, state TEXT NOT NULL)",
        None,
    )?;
    // Raw rows, not `to_array`: that would link a second deserializer (over JS values).
    let stored = sql
        .exec("SELECT state FROM ledger WHERE id = 1", None)?
        .raw()
        .next()
        .transpose()?
        .and_then(|row| match row.into_iter().next() {
            Some(worker::SqlStorageValue::String(text)) => Some(text),
            _ => None,
        });
    match stored {
        Some(text) => serde_json::from_slice(text.as_bytes())
            .ok()
            .and_then(|v| Ledger::from_json(&v))
            .map(|l| (l, text))
            .ok_or_else(|| worker::Error::RustError("stored ledger is not a ledger".into())),
        None => Ok((Ledger::default(), String::new())),
    }
}

fn store(sql: &worker::SqlStorage, text: &str) -> worker::Result<()> {
    sql.exec(
        "INSERT INTO ledger (id, state) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state",
        vec![text.into()],
    )?;
    Ok(())
}

impl LimitsObject {
    fn apply(&self, call: Call) -> worker::Result<Reply> {
        let sql = self.state.storage().sql();
        let mut slot = self.ledger.borrow_mut();
        let (mut ledger, stored) = match slot.take() {
            Some(l) => l,
            None => load(&sql)?,
        };
        let reply = ledger.handle(call, now_ms());
        let text = ledger.to_json().to_string();
        if text != stored {
            // Kept in memory only once stored: a failed write leaves the next call to reload.
            store(&sql, &text)?;
        }
        *slot = Some((ledger, text));
        Ok(reply)
    }
}

impl DurableObject for LimitsObject {
    fn new(state: State, _env: Env) -> Self {
        LimitsObject {
            state,
            ledger: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        let body = req.text().await?;
        let parsed = serde_json::from_slice(body.as_bytes()).ok();
        let Some(call) = parsed.as_ref().and_then(Call::from_json) else {
            return Response::error("not a limits call", 400);
        };
        let reply = self.apply(call)?;
        Response::ok(reply.to_json().to_string())
    }
}
