//! The Workers entry point: builds config from `Env`, authenticates, dispatches each route, and
//! renders every error in one place. Every request leaves exactly one usage row: either the
//! handler writes it when the response is complete, or a streamed body's watcher owns it.

mod admin;
mod cache;
mod claude;
mod dashboard;
mod keystore;
mod limits;
mod limits_admin;
mod metered;
mod responses;
mod store;
mod throttle;
mod upstream;

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::stream;
use worker::{console_error, event, Context, Env, Headers, Request, Response};

use crate::config::Config;
use crate::http::error::RelayError;
use crate::http::ids;
use crate::http::routes::{self, Route};
use crate::keys;
use crate::keys::auth;
use crate::metering::pricing::PriceTable;
use crate::metering::usage::{Tokens, UsageRecord, UsageSource};
use crate::protocols::chat;
use crate::protocols::cursor;
use crate::protocols::stream::StreamRelay;
use crate::providers::echo::{self, Echo};
use crate::providers::models::{self, Provider, Target};
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
                rec.outcome = e.outcome();
                rec.error_code = Some(e.code().to_string());
                if rec.usage_source == UsageSource::None && rec.tokens != Tokens::default() {
                    rec.usage_source = UsageSource::Estimated;
                }
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
    if let Some(mut rec) = ctx.record.take() {
        rec.status = response.status_code();
        rec.duration_ms = now_ms().saturating_sub(started_ms);
        wctx.wait_until(async move { store::write_usage(&env, &rec, true).await });
    }
    Ok(response)
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
        Route::ChatCompletions => chat_completions(req, ctx, wctx).await,
        Route::Completions => legacy(req, ctx, wctx, chat::Endpoint::Completions).await,
        Route::Embeddings => legacy(req, ctx, wctx, chat::Endpoint::Embeddings).await,
        Route::Moderations => legacy(req, ctx, wctx, chat::Endpoint::Moderations).await,
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
        rec.key_id = Some(key.id.clone());
        rec.team = Some(key.team.clone());
        rec.user = Some(key.user.clone());
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

async fn chat_completions(
    req: &mut Request,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let body = read_body(req, ctx.config.max_body_bytes).await?;
    let (shape, body) = cursor_normalize(body)?;
    let parsed = chat::parse(&body)?;
    if let Some(rec) = ctx.rec() {
        rec.client_shape = Some(shape.as_str().to_string());
        rec.model_requested = Some(parsed.model.clone());
        rec.stream = parsed.stream;
    }
    let wanted = keys::effective_model(relay_key(ctx)?, &parsed.model)?;
    let targets = models::resolve_all(&ctx.config, &wanted)?;
    let protocol = crate::cache::key::Protocol::Chat;
    if let Some(hit) = cache::lookup(req, ctx, wctx, protocol, &body, &targets).await? {
        return Ok(hit);
    }
    if targets
        .first()
        .is_some_and(|t| t.provider == Provider::Echo)
    {
        if let Some(rec) = ctx.rec() {
            rec.provider = Some("relay".to_string());
            rec.model_upstream = Some(models::ECHO_MODEL.to_string());
        }
        return echo_reply(&parsed, ctx, wctx);
    }
    let plan = OpenAiAttempt {
        body: &body,
        parsed: &parsed,
        path: "/chat/completions",
    };
    limits::check(ctx, &targets, &parsed.model, parsed.prompt_chars, &body).await?;
    let (resp, target) = send_with_fallback(req, &targets, ctx, &plan, &parsed.model).await?;
    served(ctx, parsed.prompt_chars);
    match target.provider {
        Provider::Anthropic => claude::respond(resp, &parsed, ctx, wctx).await,
        _ => relay_upstream(resp, &parsed, target.stream_usage, ctx, wctx).await,
    }
}

/// Cursor's two body shapes (R7.6): a Responses-API body sent to `/chat/completions` becomes a
/// Chat body, and Chat bodies get the fixes upstreams need (`content: []`, flat tools).
fn cursor_normalize(body: Vec<u8>) -> Result<(cursor::Shape, Vec<u8>), RelayError> {
    let n = cursor::normalize_bytes(&body)?;
    if n.dropped_previous_response {
        worker::console_log!("previous_response_id dropped: the relay is stateless (R7.6)");
    }
    Ok((n.shape, n.body.unwrap_or(body)))
}

/// `/v1/completions`, `/v1/embeddings` and `/v1/moderations`: passed through to OpenAI-format
/// providers only (R3.1), with the same fallback and metering as chat; embeddings keep their
/// encoding (R3.2). A moderation answer carries no usage, so its row holds the estimate.
async fn legacy(
    req: &mut Request,
    ctx: &mut Ctx,
    wctx: &Context,
    endpoint: chat::Endpoint,
) -> Result<Response, RelayError> {
    let path = match endpoint {
        chat::Endpoint::Embeddings => "/embeddings",
        chat::Endpoint::Moderations => "/moderations",
        _ => "/completions",
    };
    let body = read_body(req, ctx.config.max_body_bytes).await?;
    let parsed = chat::parse_for(&body, endpoint)?;
    if let Some(rec) = ctx.rec() {
        rec.model_requested = Some(parsed.model.clone());
        rec.stream = parsed.stream;
    }
    let wanted = keys::effective_model(relay_key(ctx)?, &parsed.model)?;
    let targets: Vec<models::Target> = models::resolve_all(&ctx.config, &wanted)?
        .into_iter()
        .filter(|t| t.provider == Provider::OpenAi)
        .collect();
    if targets.is_empty() {
        return Err(RelayError::UnsupportedEndpoint {
            model: parsed.model.clone(),
            path: format!("/v1{path}"),
        });
    }
    let plan = OpenAiAttempt {
        body: &body,
        parsed: &parsed,
        path,
    };
    limits::check(ctx, &targets, &parsed.model, parsed.prompt_chars, &body).await?;
    let (resp, target) = send_with_fallback(req, &targets, ctx, &plan, &parsed.model).await?;
    served(ctx, parsed.prompt_chars);
    relay_upstream(resp, &parsed, target.stream_usage, ctx, wctx).await
}

/// A provider accepted the request: from here on it is billed, so until the provider reports
/// its count the prompt estimate stands. Refusals before this point (by the relay or the
/// provider) keep zero tokens and cost nothing, unless the provider reported usage.
pub fn served(ctx: &mut Ctx, prompt_chars: u64) {
    if let Some(rec) = ctx.rec() {
        rec.tokens = Tokens::estimated(prompt_chars, 0);
        rec.usage_source = UsageSource::None;
    }
}

fn reset_tokens(ctx: &mut Ctx) {
    if let Some(rec) = ctx.rec() {
        rec.tokens = Tokens::default();
    }
}

/// Usage a provider reported in an error body, which it bills as it reports.
fn reported_usage(ctx: &mut Ctx, body: &[u8]) {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let tokens = json.get("usage").and_then(|u| {
        Tokens::from_openai(u).or_else(|| crate::translate::anthropic::tokens_from_usage(u))
    });
    if let (Some(tokens), Some(rec)) = (tokens, ctx.rec()) {
        rec.tokens = tokens;
        rec.usage_source = UsageSource::Upstream;
    }
}

/// Attempts per target before moving to the next, and in all: each attempt is a subrequest,
/// and the free plan allows 50 per request (KV and D1 calls included).
const ATTEMPTS_PER_TARGET: u32 = 2;
const MAX_ATTEMPTS: u32 = 4;
/// Longest `retry-after` the relay waits out before its one retry; longer ones fall through.
const MAX_RETRY_WAIT_MS: u64 = 2_000;

/// Failures another attempt may fix: rate limits, the provider's 5xx, no connection, timeouts.
/// (A 5xx is an `UpstreamRejected` only where it is passed through, as to Anthropic clients.)
fn retryable(e: &RelayError) -> bool {
    matches!(
        e,
        RelayError::UpstreamUnavailable(_)
            | RelayError::UpstreamExhausted { quota: false }
            | RelayError::UpstreamTimeout
            | RelayError::UpstreamRejected {
                status: 429 | 500..=599,
                ..
            }
    )
}

/// Failures of the relay's own provider account: no point retrying that provider, but the
/// next target may well answer.
fn skip_target(e: &RelayError) -> bool {
    matches!(
        e,
        RelayError::UpstreamAuth | RelayError::UpstreamExhausted { quota: true }
    )
}

/// What trying one target means for an endpoint: the body and path to send it, and how its
/// error answers read. Chat, legacy and Messages differ only in these.
pub trait Attempt {
    fn request(&self, target: &Target, ctx: &Ctx) -> Result<(Vec<u8>, &'static str), RelayError>;

    /// The client-facing error for an upstream answer of `status` (at least 400).
    fn failure(
        &self,
        target: &Target,
        status: u16,
        body: Vec<u8>,
        retry_after: Option<String>,
    ) -> RelayError {
        match target.provider {
            Provider::Anthropic => {
                match crate::translate::anthropic::error_from_anthropic(status, &body) {
                    RelayError::UpstreamRejected { status, body, .. } => {
                        RelayError::UpstreamRejected {
                            status,
                            body,
                            retry_after,
                        }
                    }
                    other => other,
                }
            }
            _ => RelayError::from_upstream_status(status, body, retry_after),
        }
    }
}

/// An OpenAI-format request (chat, completions, embeddings): passed through to OpenAI-format
/// targets, translated for Claude ones.
struct OpenAiAttempt<'a> {
    body: &'a [u8],
    parsed: &'a chat::ChatRequest<'a>,
    path: &'static str,
}

impl Attempt for OpenAiAttempt<'_> {
    fn request(&self, target: &Target, ctx: &Ctx) -> Result<(Vec<u8>, &'static str), RelayError> {
        Ok(match target.provider {
            Provider::Anthropic => (
                claude::translate_request(self.body, target, ctx)?,
                "/v1/messages",
            ),
            _ => (
                self.parsed.upstream_body(
                    self.body,
                    &target.upstream_model,
                    target.stream_usage,
                    &target.drop_params,
                ),
                self.path,
            ),
        })
    }
}

/// Sends to each target in turn, retrying retryable failures with backoff, until one answers
/// with status below 400. All of this happens before the client sees a byte, so a failover is
/// invisible to it; the row records the target that served and how many attempts it took.
pub async fn send_with_fallback<'t>(
    req: &Request,
    targets: &'t [Target],
    ctx: &mut Ctx,
    plan: &dyn Attempt,
    model: &str,
) -> Result<(Response, &'t Target), RelayError> {
    let mut attempts = 0u32;
    let mut last = RelayError::ModelNotFound(model.to_string());
    for target in targets {
        let (upstream_body, path) = plan.request(target, ctx)?;
        for retry in 0..ATTEMPTS_PER_TARGET {
            if attempts >= MAX_ATTEMPTS {
                return Err(last);
            }
            attempts += 1;
            if let Some(rec) = ctx.rec() {
                rec.provider = Some(target.provider_id().to_string());
                rec.model_upstream = Some(target.upstream_model.clone());
                rec.attempts = attempts;
            }
            let call = upstream::call(target, req, path, upstream_body.clone(), ctx);
            let result = match upstream::send(call).await {
                Ok(resp) if resp.status_code() < 400 => {
                    ctx.idle_timeout_ms = target.spec.as_ref().and_then(|s| s.idle_timeout_ms);
                    return Ok((resp, target));
                }
                Ok(mut resp) => {
                    let status = resp.status_code();
                    let retry_after = resp.headers().get("retry-after").ok().flatten();
                    if let Some(rec) = ctx.rec() {
                        rec.upstream_request_id = resp
                            .headers()
                            .get("x-request-id")
                            .ok()
                            .flatten()
                            .or_else(|| resp.headers().get("request-id").ok().flatten());
                    }
                    let bytes = resp.bytes().await.unwrap_or_default();
                    reported_usage(ctx, &bytes);
                    plan.failure(target, status, bytes, retry_after)
                }
                Err(e) => e,
            };
            if !retryable(&result) && !skip_target(&result) {
                // The request itself is at fault (400, 404, 413, 422…): no other target will differ.
                return Err(result);
            }
            let wait = match &result {
                RelayError::UpstreamRejected {
                    retry_after: Some(v),
                    ..
                } => v.trim().parse::<u64>().ok().map(|s| s * 1000),
                _ => None,
            };
            let again = retryable(&result)
                && retry + 1 < ATTEMPTS_PER_TARGET
                && wait.is_none_or(|w| w <= MAX_RETRY_WAIT_MS);
            last = result;
            if !again {
                break;
            }
            let backoff = wait.unwrap_or(100 << (retry * 2));
            worker::Delay::from(std::time::Duration::from_millis(backoff)).await;
        }
    }
    Err(last)
}

fn echo_reply(
    parsed: &chat::ChatRequest<'_>,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let reply = echo::reply(&parsed.last_user_text);
    let id = format!("chatcmpl-{}", ctx.request_id.trim_start_matches("req_"));
    let e = Echo {
        id: &id,
        created: now_ms() / 1000,
        reply: &reply,
        tokens: echo::tokens(parsed.prompt_chars, &reply),
    };
    ctx.upstream_answered(None);
    if parsed.stream {
        let chunks = e.stream_chunks().into_iter().map(Ok);
        let relay = Box::new(StreamRelay::new(!parsed.client_wants_usage));
        return stream_response(
            stream::iter(chunks),
            relay,
            parsed.prompt_chars,
            Headers::new(),
            ctx,
            wctx,
        );
    }
    if let Some(rec) = ctx.rec() {
        rec.tokens = e.tokens;
        rec.usage_source = UsageSource::Upstream;
        rec.finish_reason = Some("stop".to_string());
    }
    bytes_response(200, "application/json", e.completion(), Headers::new())
}

async fn relay_upstream(
    mut resp: Response,
    parsed: &chat::ChatRequest<'_>,
    asked_usage: bool,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let status = resp.status_code();
    let upstream_headers = resp.headers().clone();
    let upstream_id = upstream_headers.get("x-request-id").ok().flatten();
    ctx.upstream_answered(upstream_id);
    if status >= 400 {
        let body = resp.bytes().await.unwrap_or_default();
        reset_tokens(ctx);
        reported_usage(ctx, &body);
        let retry_after = upstream_headers.get("retry-after").ok().flatten();
        return Err(RelayError::from_upstream_status(status, body, retry_after));
    }
    let copied = copy_headers(&upstream_headers);
    let is_sse = upstream_headers
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if parsed.stream && is_sse {
        let strip = asked_usage && !parsed.client_wants_usage;
        let relay = Box::new(StreamRelay::new(strip));
        return relay_body(&mut resp, relay, parsed.prompt_chars, copied, ctx, wctx);
    }
    let (body, json) = read_json(&mut resp).await?;
    if json.get("error").is_some_and(|e| e.is_object()) {
        // Some OpenAI-compatible providers answer errors with 200 + JSON (R8.15): a rejection,
        // billed only as far as it reports usage.
        reset_tokens(ctx);
        reported_usage(ctx, &body);
        return Err(RelayError::UpstreamUnavailable(
            "upstream answered 200 with an error body".to_string(),
        ));
    }
    if parsed.stream {
        return Err(RelayError::UpstreamUnavailable(
            "upstream answered a stream request with a non-stream body".to_string(),
        ));
    }
    if let Some(rec) = ctx.rec() {
        match json.get("usage").and_then(Tokens::from_openai) {
            Some(tokens) => {
                rec.tokens = tokens;
                rec.usage_source = UsageSource::Upstream;
            }
            None => {
                let chars = json
                    .pointer("/choices/0/message")
                    .map_or(0, crate::protocols::chunk::message_chars);
                rec.tokens = Tokens::estimated(parsed.prompt_chars, chars);
                rec.usage_source = UsageSource::Estimated;
            }
        }
        rec.finish_reason = json
            .pointer("/choices/0/finish_reason")
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
    let content_type = upstream_headers
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_else(|| "application/json".to_string());
    bytes_response(status, &content_type, body, copied)
}

fn metering(ctx: &mut Ctx, prompt_chars: u64) -> Result<metered::Metering, RelayError> {
    let mut record = ctx
        .record
        .take()
        .ok_or_else(|| RelayError::Internal("usage record already taken".to_string()))?;
    record.status = 200;
    Ok(metered::Metering {
        record,
        prompt_chars,
        started_ms: ctx.started_ms,
        idle_ms: ctx.config.stream_idle_ms,
        idle_timeout_ms: ctx
            .idle_timeout_ms
            .unwrap_or(ctx.config.upstream_idle_timeout_ms),
        cache: cache::take_stream(ctx),
    })
}

fn sse_headers(headers: Headers) -> Result<Headers, RelayError> {
    let internal = |e: worker::Error| RelayError::Internal(e.to_string());
    headers
        .set("content-type", "text/event-stream; charset=utf-8")
        .map_err(internal)?;
    headers
        .set("cache-control", "no-cache, no-transform")
        .map_err(internal)?;
    Ok(headers)
}

/// Reads a provider's non-stream answer: its bytes, and the JSON they must be.
pub async fn read_json(resp: &mut Response) -> Result<(Vec<u8>, serde_json::Value), RelayError> {
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| RelayError::UpstreamUnavailable(format!("reading upstream body: {e}")))?;
    let json = serde_json::from_slice(&bytes)
        .map_err(|_| RelayError::UpstreamUnavailable("upstream sent invalid JSON".to_string()))?;
    Ok((bytes, json))
}

/// Hands the row to the stream's watcher and returns the SSE response.
/// A provider's streamed answer relayed to the client through `relay`, metered.
pub fn relay_body(
    resp: &mut Response,
    relay: Box<dyn crate::protocols::stream::Relay>,
    prompt_chars: u64,
    headers: Headers,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let body = resp
        .stream()
        .map_err(|e| RelayError::UpstreamUnavailable(format!("upstream body: {e}")))?;
    stream_response(body, relay, prompt_chars, headers, ctx, wctx)
}

pub fn stream_response<S>(
    body: S,
    relay: Box<dyn crate::protocols::stream::Relay>,
    prompt_chars: u64,
    headers: Headers,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError>
where
    S: futures_util::Stream<Item = worker::Result<Vec<u8>>> + 'static,
{
    let relay = cache::capture(relay, ctx);
    let m = metering(ctx, prompt_chars)?;
    let (metered, watcher) = metered::meter(body, relay, m, ctx.env.clone());
    wctx.wait_until(watcher);
    let internal = |e: worker::Error| RelayError::Internal(e.to_string());
    Ok(Response::from_stream(metered)
        .map_err(internal)?
        .with_headers(sse_headers(headers)?))
}

pub fn copy_headers(from: &Headers) -> Headers {
    let out = Headers::new();
    for (name, value) in from.entries() {
        if crate::http::headers::return_to_client(&name) {
            let _ = out.append(&name, &value);
        }
    }
    out
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
