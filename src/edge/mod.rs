//! The Workers entry point: builds config from `Env`, authenticates, dispatches each route, and
//! renders every error in one place. Every request leaves exactly one usage row: either the
//! handler writes it when the response is complete, or a streamed body's watcher owns it.

mod admin;
mod cache;
mod chat;
mod claude;
mod dashboard;
mod keystore;
mod kv;
mod limits;
mod limits_admin;
mod metered;
mod pump;
mod relay;
mod responses;
mod store;
mod throttle;
mod upstream;

use std::cell::RefCell;
use std::rc::Rc;

use worker::{console_error, event, Context, Env, Headers, Request, Response};

use crate::config::Config;
use crate::flow::row;
use crate::http::error::RelayError;
use crate::http::ids;
use crate::http::routes::{self, Route};
use crate::keys::auth;
use crate::metering::pricing::PriceTable;
use crate::metering::usage::UsageRecord;
use crate::protocols::chat::Endpoint;
use crate::providers::models;
use crate::time::rfc3339;

pub fn now_ms() -> u64 {
    worker::js_sys::Date::now() as u64
}

thread_local! {
    static REQUESTS_SEEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// `req_` + 24 base62 characters (~142 bits): unique without coordination. Should the RNG
/// fail, the id falls back to time, this isolate's request count and `Math.random`, and the
/// failure is logged.
fn new_request_id() -> String {
    let mut buf = [0u8; 64];
    let seq = REQUESTS_SEEN.with(|n| {
        n.set(n.get().wrapping_add(1));
        n.get()
    });
    let random = match getrandom::fill(&mut buf) {
        Ok(()) => Some(&buf[..]),
        Err(e) => {
            console_error!("getrandom failed ({e}); request id from the fallback");
            None
        }
    };
    let fallback = ids::Fallback {
        now_ms: now_ms(),
        seq,
        noise: (worker::js_sys::Math::random() * 9_007_199_254_740_992.0) as u64,
    };
    ids::request_id(random, fallback)
}

/// The request as the flow sees it, plus the row it will leave behind.
pub struct Ctx {
    pub env: Env,
    pub config: Config,
    pub started_ms: u64,
    pub request_id: String,
    /// `None` once a streamed body's watcher has taken over writing the row.
    pub record: Option<UsageRecord>,
    /// The relay key's record, once authenticated.
    pub key: Option<auth::KeyRecord>,
    /// The serving provider's mid-stream silence limit, when it sets its own.
    pub idle_timeout_ms: Option<u64>,
    pub cache: cache::State,
}

impl Ctx {
    /// Notes that the provider's headers arrived: time to first byte and its request id.
    pub fn upstream_answered(&mut self, upstream_id: Option<String>) {
        let ttfb = now_ms().saturating_sub(self.started_ms);
        if let Some(rec) = self.record.as_mut() {
            rec.ttfb_ms = Some(ttfb);
            if upstream_id.is_some() {
                rec.upstream_request_id = upstream_id;
            }
        }
    }

    pub fn rec(&mut self) -> Option<&mut UsageRecord> {
        self.record.as_mut()
    }
}

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, wctx: Context) -> worker::Result<Response> {
    let started_ms = now_ms();
    let request_id = new_request_id();
    let method = req.method().to_string();
    let path = req.path();
    let record = UsageRecord::begin(&request_id, &method, &path, rfc3339(started_ms));
    let anthropic_errors = header(&req, "anthropic-version").is_some()
        || routes::route(req.method().as_ref(), &path).is_ok_and(|r| r.is_anthropic());
    let origin = header(&req, "origin");
    let ip = throttle::client_ip(&req);

    let config = cached_config(&env);
    let mut ctx = Ctx {
        env: env.clone(),
        config: Config::default(),
        started_ms,
        request_id: request_id.clone(),
        record: Some(record),
        key: None,
        idle_timeout_ms: None,
        cache: cache::State::default(),
    };
    let (result, refused) = match config {
        Ok(c) => {
            ctx.config = c;
            guarded(&mut req, &mut ctx, &wctx, &ip).await
        }
        Err(e) => (Err(e), None),
    };
    let response = match result {
        Ok(resp) => resp,
        Err(e) => {
            if let Some(detail) = e.detail() {
                console_error!("request {request_id}: {detail}");
            }
            if let Some(rec) = ctx.rec() {
                row::failed(rec, &e);
            }
            render_error(&e, anthropic_errors)
        }
    };
    let same_origin_only = routes::is_admin_surface(&path);
    let mut response = finish_headers(response, &request_id, origin.as_deref(), same_origin_only);
    cache::finish(&mut ctx, &mut response, &wctx);
    limits::decorate(&request_id, response.headers_mut());
    if crate::dashboard::is_dashboard_path(&path) {
        dashboard::secure(&mut response);
    }
    if let Some(reason) = refused {
        // Throttled: tallied in `refused` instead of a usage row (README: "Usage rows").
        ctx.record = None;
        throttle::count(&env, &wctx, reason);
    }
    settle(&mut ctx, response.status_code(), &wctx);
    Ok(response)
}

/// The end-of-request hook for a row the handler writes (a stream's watcher writes its own,
/// in `metered`): closed by the flow, written from `wait_until` so the answer is not held up.
fn settle(ctx: &mut Ctx, status: u16, wctx: &Context) {
    if let Some(mut rec) = ctx.record.take() {
        row::close(&mut rec, status, now_ms().saturating_sub(ctx.started_ms));
        let env = ctx.env.clone();
        wctx.wait_until(async move { store::write_usage(&env, &rec, true).await });
    }
}

/// The request behind the failed-authentication throttle: an address blocked for wrong admin
/// tokens is refused before the token is compared (a right guess there is not recognised),
/// and a failure that counts against the address may become a 429. The reason is set when
/// the answer is such a 429.
async fn guarded(
    req: &mut Request,
    ctx: &mut Ctx,
    wctx: &Context,
    ip: &str,
) -> (
    Result<Response, RelayError>,
    Option<crate::metering::refused::Reason>,
) {
    if let Some(throttled) = admin_blocked(req, ctx, ip) {
        return (
            Err(throttled),
            Some(crate::metering::refused::Reason::InvalidAdminToken),
        );
    }
    match dispatch(req, ctx, wctx).await {
        Ok(resp) => (Ok(resp), None),
        Err(e) => {
            let (e, reason) = throttle::judge(&ctx.env, ip, e).await;
            (Err(e), reason)
        }
    }
}

/// An admin route from an address blocked for wrong admin tokens (only while admin is on).
fn admin_blocked(req: &Request, ctx: &Ctx, ip: &str) -> Option<RelayError> {
    let admin = routes::route(req.method().as_ref(), &req.path()).is_ok_and(|r| r.is_admin());
    if admin && ctx.config.admin_token.is_some() {
        throttle::blocked(crate::metering::refused::Reason::InvalidAdminToken, ip)
    } else {
        None
    }
}

thread_local! {
    static CONFIG: RefCell<Option<Config>> = const { RefCell::new(None) };
    static PRICES: RefCell<Option<Rc<PriceTable>>> = const { RefCell::new(None) };
}

/// The price table of this isolate, once config has been read.
pub fn price_table() -> Option<Rc<PriceTable>> {
    PRICES.with(|p| p.borrow().clone())
}

/// Vars and secrets are fixed for an isolate's lifetime (a change deploys new isolates), so
/// they are read and validated once per isolate rather than on every request.
fn cached_config(env: &Env) -> Result<Config, RelayError> {
    if let Some(c) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(c);
    }
    let config = Config::from_lookup(|name| {
        env.secret(name)
            .map(|s| s.to_string())
            .or_else(|_| env.var(name).map(|v| v.to_string()))
            .ok()
    })?;
    let prices = PriceTable::load(config.prices.as_deref()).map_err(RelayError::Internal)?;
    if let Some(n) = config.admin_token_too_short {
        console_error!(
            "config: ADMIN_TOKEN is {n} characters, under the {} required: /admin and /dashboard are disabled (404) until it is replaced by a longer random string",
            crate::config::MIN_ADMIN_TOKEN_CHARS
        );
    }
    for warning in models::cursor_warnings(config.routes.iter().map(|r| r.name.as_str())) {
        worker::console_warn!("config lint: ROUTES {warning}");
    }
    PRICES.with(|p| *p.borrow_mut() = Some(Rc::new(prices)));
    CONFIG.with(|c| *c.borrow_mut() = Some(config.clone()));
    Ok(config)
}

pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

async fn dispatch(
    req: &mut Request,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let route = routes::route(req.method().as_ref(), &req.path())?;
    if route == Route::Preflight {
        return preflight(req);
    }
    if route.needs_relay_key() {
        authenticate(req, ctx, route.is_anthropic()).await?;
    }
    match route {
        Route::Preflight => preflight(req),
        Route::Health => json_response(
            200,
            &serde_json::json!({
                "status": "ok",
                "service": "llm-relay",
                "version": env!("CARGO_PKG_VERSION"),
                "usage_write_failures": store::write_failures(&ctx.env).await,
            }),
        ),
        Route::Models => json_response(200, &models::list_body(&ctx.config, relay_key(ctx)?)),
        Route::Model(id) => {
            json_response(200, &models::one_body(&ctx.config, relay_key(ctx)?, &id)?)
        }
        Route::ChatCompletions => chat::completions(req, ctx, wctx).await,
        Route::Completions => chat::legacy(req, ctx, wctx, Endpoint::Completions).await,
        Route::Embeddings => chat::legacy(req, ctx, wctx, Endpoint::Embeddings).await,
        Route::Moderations => chat::legacy(req, ctx, wctx, Endpoint::Moderations).await,
        Route::Messages => claude::messages(req, ctx, wctx, false).await,
        Route::CountTokens => claude::messages(req, ctx, wctx, true).await,
        Route::Responses => responses::create(req, ctx, wctx).await,
        Route::StoredResponse { id, action } => responses::stored(req, ctx, &id, action).await,
        Route::Dashboard(file) => dashboard::serve(&file, req, ctx).await,
        admin_route => admin::handle(admin_route, req, ctx).await,
    }
}

pub fn relay_key(ctx: &Ctx) -> Result<&auth::KeyRecord, RelayError> {
    ctx.key
        .as_ref()
        .ok_or_else(|| RelayError::Internal("route needs an authenticated key".to_string()))
}

/// Relay keys come as `Authorization: Bearer` (R1.5), or as `x-api-key` on Anthropic routes,
/// which is what Anthropic's SDKs send by default (R1.6).
async fn authenticate(req: &Request, ctx: &mut Ctx, anthropic: bool) -> Result<(), RelayError> {
    let authz = header(req, "authorization");
    let x_api_key = if anthropic {
        header(req, "x-api-key")
    } else {
        None
    };
    let presented = auth::bearer(authz.as_deref()).or(x_api_key.as_deref().map(str::trim));
    let record = match presented {
        Some(key) if auth::well_formed(key) => store::find_key(&ctx.env, key).await?,
        _ => None,
    };
    let key = auth::authorize(presented, record, &rfc3339(now_ms()))?;
    if let Some(rec) = ctx.rec() {
        row::authenticated(rec, &key);
    }
    ctx.key = Some(key);
    Ok(())
}

/// Reads the body as it arrives and stops at the cap: a declared length over it is refused
/// before a byte is read, and a chunked upload is refused at the chunk that crosses it, so the
/// isolate never holds more than about `limit` of a body. Dropping the stream cancels the
/// rest of the upload.
pub async fn read_body(req: &mut Request, limit: usize) -> Result<Vec<u8>, RelayError> {
    use futures_util::StreamExt;
    let declared = header(req, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(RelayError::PayloadTooLarge { limit });
    }
    if req.inner().body().is_none() {
        return Ok(Vec::new());
    }
    let mut stream = req
        .stream()
        .map_err(|e| RelayError::invalid(format!("Could not read the request body: {e}"), None))?;
    let expected = declared.map_or(0, |n| n as usize);
    let mut body = Vec::with_capacity(expected.min(limit));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            RelayError::invalid(format!("Could not read the request body: {e}"), None)
        })?;
        if chunk.len() > limit - body.len() {
            return Err(RelayError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

pub fn bytes_response(
    status: u16,
    content_type: &str,
    body: Vec<u8>,
    headers: Headers,
) -> Result<Response, RelayError> {
    headers
        .set("content-type", content_type)
        .map_err(|e| RelayError::Internal(e.to_string()))?;
    Ok(Response::builder()
        .with_status(status)
        .with_headers(headers)
        .fixed(body))
}

pub fn json_response(status: u16, value: &serde_json::Value) -> Result<Response, RelayError> {
    bytes_response(
        status,
        "application/json",
        value.to_string().into_bytes(),
        Headers::new(),
    )
}

fn preflight(req: &Request) -> Result<Response, RelayError> {
    let headers = Headers::new();
    let allow_headers = header(req, "access-control-request-headers").unwrap_or_else(|| {
        "authorization, content-type, x-api-key, anthropic-version, anthropic-beta".to_string()
    });
    let internal = |e: worker::Error| RelayError::Internal(e.to_string());
    headers
        .set("access-control-allow-methods", "GET, POST, OPTIONS")
        .map_err(internal)?;
    headers
        .set("access-control-allow-headers", &allow_headers)
        .map_err(internal)?;
    headers
        .set("access-control-max-age", "86400")
        .map_err(internal)?;
    Ok(Response::builder()
        .with_status(204)
        .with_headers(headers)
        .empty())
}

/// The single place an error becomes an HTTP response.
fn render_error(e: &RelayError, anthropic: bool) -> Response {
    let body = if anthropic {
        e.anthropic_body()
    } else {
        e.openai_body()
    };
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json");
    for (name, value) in e.headers() {
        let _ = headers.set(name, &value);
    }
    Response::builder()
        .with_status(e.status())
        .with_headers(headers)
        .fixed(body)
}

/// Headers every response carries: the relay's request id, and CORS on the API routes
/// (R1.11, R1.13). `/admin` and `/dashboard` get no CORS headers at all: the dashboard calls
/// the admin API from its own origin, which needs none, and a page on any other origin must
/// not be able to read admin answers (nor probe tokens) from a browser.
fn finish_headers(
    mut resp: Response,
    request_id: &str,
    origin: Option<&str>,
    same_origin_only: bool,
) -> Response {
    let headers = resp.headers_mut();
    let _ = headers.set("x-request-id", request_id);
    // Anthropic's convention (R1.11); its SDK reports this one.
    let _ = headers.set("request-id", request_id);
    if same_origin_only {
        for name in [
            "access-control-allow-origin",
            "access-control-allow-methods",
            "access-control-allow-headers",
            "access-control-max-age",
        ] {
            let _ = headers.delete(name);
        }
        return resp;
    }
    let _ = headers.set("access-control-allow-origin", origin.unwrap_or("*"));
    let _ = headers.set(
        "access-control-expose-headers",
        &format!(
            "x-request-id, request-id, x-relay-estimate, x-relay-cache-status, {}",
            crate::limits::answer::EXPOSED
        ),
    );
    let _ = headers.set("vary", "Origin");
    resp
}
