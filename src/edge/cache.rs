//! The response cache at the edge (issue 17): looks a request up before its first attempt,
//! answers a hit (a stream through the same metered body as a live one), and stores a complete
//! answer once its outcome is known. Entries live in the `CACHE` KV namespace behind `Store`;
//! every rule comes from `crate::cache`.
//!
//! KV is eventually consistent: an entry stored in one location may be missing in another for
//! up to about 60 s, which costs a miss (a fresh answer) and never a wrong hit, since a read is
//! only trusted if the entry names the key it was stored under and has not expired.

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::stream;
use serde_json::Value;
use worker::{console_warn, Context, Env, Headers, Request, Response, ResponseBody};

use super::relay::stream_response;
use super::{bytes_response, header, now_ms, relay_key, Ctx};
use crate::cache::entry::{self, Meta};
use crate::cache::key::{self, KeyInput, Protocol};
use crate::cache::policy::{self, Answer, Directive, MODE_HEADER, STATUS_HEADER, TTL_HEADER};
use crate::cache::relay::{Capture, Captured, Replay};
use crate::cache::Status;
use crate::http::error::RelayError;
use crate::metering::usage::UsageRecord;
use crate::protocols::stream::Relay;
use crate::providers::models::Target;

/// The KV namespace of cached answers (wrangler.toml); without it caching is off, and a
/// request that asks for it is a `bypass`.
const BINDING: &str = "CACHE";
const SSE_CONTENT_TYPE: &str = "text/event-stream; charset=utf-8";

/// Where entries live: one get and one put with an expiry, so the backend can change (R2 for
/// entries past KV's 25 MiB) without touching the flow.
trait Store {
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, String>;
    async fn put(&self, name: &str, value: &[u8], ttl_s: u64) -> Result<(), String>;
}

struct Kv(super::kv::Kv);

impl Store for Kv {
    async fn get(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
        self.0.bytes(name).await
    }

    async fn put(&self, name: &str, value: &[u8], ttl_s: u64) -> Result<(), String> {
        // KV refuses expirations under 60 s; the settings never go below.
        let ttl_s = ttl_s.max(crate::cache::MIN_TTL_S);
        self.0.put(name, value, Some(ttl_s)).await
    }
}

thread_local! {
    static MISSING_LOGGED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn kv(env: &Env) -> Option<Kv> {
    let found = super::kv::Kv::of(env, BINDING).ok().map(Kv);
    if found.is_none() && !MISSING_LOGGED.with(|l| l.replace(true)) {
        console_warn!("config: no {BINDING} KV binding, so the response cache is off (requests that ask for it say BYPASS)");
    }
    found
}

/// What the cache is doing for one request.
#[derive(Default)]
pub struct State {
    /// For `x-relay-cache-status`; None when caching is not in play (no header).
    status: Option<Status>,
    pending: Option<Pending>,
}

/// A miss whose answer may be stored once it is known to be complete.
pub struct Pending {
    name: String,
    hash: String,
    ttl_s: u64,
    stream: bool,
    /// The row says `bypass`, not `miss`, if the answer is not stored (`no-cache`).
    looked_up: bool,
    captured: Option<Rc<RefCell<Captured>>>,
}

impl Pending {
    fn unstored(&self) -> Status {
        if self.looked_up {
            Status::Miss
        } else {
            Status::Bypass
        }
    }
}

fn mark(ctx: &mut Ctx, status: Status) {
    ctx.cache.status = Some(status);
    if let Some(rec) = ctx.rec() {
        rec.cache = Some(status);
    }
}

/// Before the first attempt: the stored answer (`Some`), or `None` to go upstream (a miss,
/// noted so the answer can be stored). `body` is the request as the route validated it.
pub async fn lookup(
    req: &Request,
    ctx: &mut Ctx,
    wctx: &Context,
    protocol: Protocol,
    body: &[u8],
    targets: &[Target],
) -> Result<Option<Response>, RelayError> {
    let directive = Directive::from_headers(
        header(req, TTL_HEADER).as_deref(),
        header(req, MODE_HEADER).as_deref(),
    )?;
    let key_rec = relay_key(ctx)?;
    let Some(settings) = policy::settings(key_rec.cache.as_ref(), &directive) else {
        return Ok(None);
    };
    let scope = key::scope_id(settings.scope, key_rec);
    let json: Value = serde_json::from_slice(body).map_err(|_| {
        RelayError::invalid("We could not parse the JSON body of your request.", None)
    })?;
    let (Ok(plan), Some(store)) = (
        policy::plan(&settings, &directive, protocol, &json),
        kv(&ctx.env),
    ) else {
        mark(ctx, Status::Bypass);
        return Ok(None);
    };
    let targets: Vec<String> = targets
        .iter()
        .map(|t| format!("{}:{}", t.provider_id(), t.upstream_model))
        .collect();
    let headers: Vec<Option<String>> = key::KEYED_HEADERS.iter().map(|h| header(req, h)).collect();
    let hash = key::cache_key(&KeyInput {
        scope: &scope,
        protocol,
        targets: &targets,
        headers: &headers,
        body: &json,
    });
    let name = format!("cache:{hash}");
    let stream = json.get("stream") == Some(&Value::Bool(true));
    if plan.lookup {
        match store.get(&name).await {
            Ok(Some(value)) => {
                if let Some((meta, bytes)) = entry::decode(&value, &hash, stream, now_ms()) {
                    return hit(ctx, wctx, meta, bytes).map(Some);
                }
            }
            Ok(None) => {}
            Err(e) => console_warn!(
                "request {}: cache read failed ({e}); answering fresh",
                ctx.request_id
            ),
        }
    }
    let pending = Pending {
        name,
        hash,
        ttl_s: settings.ttl_s,
        stream,
        looked_up: plan.lookup,
        captured: None,
    };
    mark(ctx, pending.unstored());
    if plan.store {
        ctx.cache.pending = Some(pending);
    }
    Ok(None)
}

/// A stored answer as the response: the row gets the original's tokens (priced into
/// `saved_usd`, with `cost_usd` 0 when written) and no provider is called.
fn hit(ctx: &mut Ctx, wctx: &Context, meta: Meta, bytes: Vec<u8>) -> Result<Response, RelayError> {
    mark(ctx, Status::Hit);
    ctx.upstream_answered(None);
    if let Some(rec) = ctx.rec() {
        rec.provider = meta.provider.clone();
        rec.model_upstream = meta.model_upstream.clone();
        rec.tokens = meta.tokens();
        rec.usage_source = meta.usage_source();
        rec.finish_reason = meta.finish_reason.clone();
        rec.attempts = 0;
    }
    if meta.stream {
        let relay = Replay::new(meta.tokens(), meta.usage_source(), meta.finish_reason);
        let body = stream::iter(std::iter::once(Ok(bytes)));
        return stream_response(body, Box::new(relay), 0, Headers::new(), ctx, wctx);
    }
    bytes_response(200, &meta.content_type, bytes, Headers::new())
}

/// A streamed miss: the relay wrapped so the bytes the client is handed are kept for storing.
pub fn capture(relay: Box<dyn Relay>, ctx: &mut Ctx) -> Box<dyn Relay> {
    match ctx.cache.pending.as_mut() {
        Some(p) if p.stream => {
            let (wrapped, kept) = Capture::new(relay);
            p.captured = Some(kept);
            Box::new(wrapped)
        }
        _ => relay,
    }
}

/// The pending store of a stream, for its watcher.
pub fn take_stream(ctx: &mut Ctx) -> Option<Pending> {
    ctx.cache.pending.take_if(|p| p.captured.is_some())
}

fn meta(p: &Pending, rec: &UsageRecord, content_type: &str, now: u64) -> Meta {
    Meta {
        key: p.hash.clone(),
        stream: p.stream,
        content_type: content_type.to_string(),
        stored_at_ms: now,
        expires_at_ms: now.saturating_add(p.ttl_s.saturating_mul(1000)),
        request_id: rec.request_id.clone(),
        provider: rec.provider.clone(),
        model_upstream: rec.model_upstream.clone(),
        finish_reason: rec.finish_reason.clone(),
        tokens: entry::token_array(&rec.tokens),
        usage_source: rec.usage_source.as_str().to_string(),
    }
}

async fn put(env: &Env, name: &str, value: &[u8], ttl_s: u64, request_id: &str) {
    let Some(store) = kv(env) else { return };
    if let Err(e) = store.put(name, value, ttl_s).await {
        // Most often KV's one write per second per name: a concurrent identical miss stored it.
        console_warn!("request {request_id}: cache write failed: {e}");
    }
}

/// The watcher's clean-end hook: a stream taken to its end, complete and within the cap, is
/// stored before the row (which then says `stored`) is written.
pub async fn settle_stream(env: &Env, p: Pending, rec: &mut UsageRecord) {
    let Some(kept) = p.captured.as_ref().map(|k| k.take()) else {
        return;
    };
    let answer = Answer {
        status: rec.status,
        outcome: rec.outcome,
        finish_reason: rec.finish_reason.as_deref(),
        bytes: kept.bytes.len(),
        overflowed: kept.overflowed,
    };
    if policy::storable(&answer).is_err() {
        rec.cache = Some(p.unstored());
        return;
    }
    let value = entry::encode(&meta(&p, rec, SSE_CONTENT_TYPE, now_ms()), &kept.bytes);
    put(env, &p.name, &value, p.ttl_s, &rec.request_id).await;
    rec.cache = Some(Status::Stored);
}

/// Last step of every response: a complete non-stream answer is stored (from `wait_until`),
/// and `x-relay-cache-status` says what happened. A stream's header leaves before its end is
/// known, so a stored stream says `MISS` there and `stored` in its row.
pub fn finish(ctx: &mut Ctx, resp: &mut Response, wctx: &Context) {
    let Some(mut shown) = ctx.cache.status else {
        return;
    };
    let pending = ctx.cache.pending.take().filter(|p| !p.stream);
    if let (Some(p), Some(rec), ResponseBody::Body(bytes)) =
        (pending, ctx.record.as_mut(), resp.body())
    {
        let answer = Answer {
            status: resp.status_code(),
            outcome: rec.outcome,
            finish_reason: rec.finish_reason.as_deref(),
            bytes: bytes.len(),
            overflowed: false,
        };
        if policy::storable(&answer).is_ok() {
            let content_type = resp
                .headers()
                .get("content-type")
                .ok()
                .flatten()
                .unwrap_or_else(|| "application/json".to_string());
            let value = entry::encode(&meta(&p, rec, &content_type, now_ms()), bytes);
            let (env, request_id) = (ctx.env.clone(), rec.request_id.clone());
            wctx.wait_until(async move { put(&env, &p.name, &value, p.ttl_s, &request_id).await });
            rec.cache = Some(Status::Stored);
            shown = Status::Stored;
        } else {
            rec.cache = Some(p.unstored());
        }
    }
    let _ = resp.headers_mut().set(STATUS_HEADER, shown.header());
}
