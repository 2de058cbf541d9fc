//! `POST /v1/responses` on every provider kind, and OpenAI's stored-response routes. OpenAI
//! (kind `openai`) gets the client's bytes and its SSE comes back unchanged; Chat-only providers,
//! the echo and Claude get a Chat request (Claude's then translated to Messages) and their answer
//! comes back as a Response through the core's translators. All I/O, no protocol logic.

use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::stream;
use serde_json::Value;
use worker::{
    AbortController, Context, Delay, Fetch, Headers, Method, Request, RequestInit, Response,
};

use super::{
    bytes_response, claude, copy_headers, now_ms, read_body, read_json, relay_body, relay_key,
    send_with_fallback, store, stream_response, Attempt, Ctx,
};
use crate::http::error::RelayError;
use crate::keys;
use crate::metering::usage::{Tokens, UsageSource};
use crate::protocols::chat;
use crate::protocols::responses::answer::{self, Skeleton};
use crate::protocols::responses::owner::{self, Access};
use crate::protocols::responses::passthrough::PassThrough;
use crate::protocols::responses::translate::ChatToResponses;
use crate::protocols::responses::{self, Request as ResponsesRequest};
use crate::protocols::stream::{Relay, StreamRelay};
use crate::providers::echo::{self, Echo};
use crate::providers::models::{self, Provider, Target};
use crate::providers::{KeyHeader, ProviderSpec};
use crate::translate::anthropic::{self, ChatRelay, StreamTranslator};

/// How a target hears a Responses request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    /// OpenAI's own Responses API: byte for byte.
    Native,
    /// Chat Completions (OpenAI-compatible servers).
    Chat,
    /// Chat, then Messages (Claude).
    Claude,
}

fn way(target: &Target) -> Way {
    match target.provider {
        Provider::Anthropic => Way::Claude,
        Provider::OpenAi if target.spec.as_ref().is_some_and(|s| s.responses_api) => Way::Native,
        _ => Way::Chat,
    }
}

pub async fn create(
    req: &mut Request,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let body = read_body(req, ctx.config.max_body_bytes).await?;
    let parsed = responses::parse(&body)?;
    if let Some(rec) = ctx.rec() {
        rec.client_shape = Some("responses".to_string());
        rec.model_requested = Some(parsed.model.clone());
        rec.stream = parsed.stream;
        rec.tokens = Tokens::estimated(parsed.prompt_chars, 0);
    }
    let wanted = keys::effective_model(relay_key(ctx)?, &parsed.model)?;
    let mut targets = models::resolve_all(&ctx.config, &wanted)?;
    let skeleton = Skeleton::new(
        ctx.request_id.trim_start_matches("req_"),
        now_ms() / 1000,
        &parsed,
    );
    if targets
        .first()
        .is_some_and(|t| t.provider == Provider::Echo)
    {
        if let Some(rec) = ctx.rec() {
            rec.provider = Some("relay".to_string());
            rec.model_upstream = Some(models::ECHO_MODEL.to_string());
        }
        return echo_reply(&parsed, skeleton, ctx, wctx);
    }
    // State lives on OpenAI only: a stateful request never falls back to a translated target.
    if parsed.refuse_state().is_err() && targets.iter().any(|t| way(t) == Way::Native) {
        targets.retain(|t| way(t) == Way::Native);
    }
    if let Some(prev) = owner::previous(&parsed.body) {
        if targets.iter().any(|t| way(t) == Way::Native) {
            refuse_foreign_previous(ctx, prev).await?;
        }
    }
    let protocol = crate::cache::key::Protocol::Responses;
    if let Some(hit) = super::cache::lookup(req, ctx, wctx, protocol, &body, &targets).await? {
        return Ok(hit);
    }
    let plan = ResponsesAttempt {
        body: &body,
        parsed: &parsed,
    };
    super::limits::check(ctx, &targets, &parsed.model, parsed.prompt_chars, &body).await?;
    let (resp, target) = send_with_fallback(req, &targets, ctx, &plan, &parsed.model).await?;
    match way(target) {
        Way::Native => native(resp, &parsed, ctx, wctx).await,
        w => translated(resp, w, &parsed, skeleton, ctx, wctx).await,
    }
}

struct ResponsesAttempt<'a> {
    body: &'a [u8],
    parsed: &'a ResponsesRequest,
}

impl Attempt for ResponsesAttempt<'_> {
    fn request(&self, target: &Target, ctx: &Ctx) -> Result<(Vec<u8>, &'static str), RelayError> {
        let way = way(target);
        if way == Way::Native {
            let body = if target.upstream_model == self.parsed.model {
                self.body.to_vec()
            } else {
                let mut renamed = self.parsed.body.clone();
                renamed.insert("model".into(), Value::String(target.upstream_model.clone()));
                Value::Object(renamed).to_string().into_bytes()
            };
            return Ok((body, "/responses"));
        }
        let chat_body = self.parsed.to_chat()?.to_string().into_bytes();
        if way == Way::Claude {
            return Ok((
                claude::translate_request(&chat_body, target, ctx)?,
                "/v1/messages",
            ));
        }
        let chat = chat::parse(&chat_body)?;
        Ok((
            chat.upstream_body(
                &chat_body,
                &target.upstream_model,
                target.stream_usage,
                &target.drop_params,
            ),
            "/chat/completions",
        ))
    }
}

fn is_sse(headers: &Headers) -> bool {
    headers
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|ct| ct.starts_with("text/event-stream"))
}

/// OpenAI's answer, relayed as it came; only the meter reads it.
async fn native(
    mut resp: Response,
    parsed: &ResponsesRequest,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let upstream_headers = resp.headers().clone();
    ctx.upstream_answered(upstream_headers.get("x-request-id").ok().flatten());
    let copied = copy_headers(&upstream_headers);
    if parsed.stream && is_sse(&upstream_headers) {
        let background = parsed.body.get("background") == Some(&Value::Bool(true));
        let relay = Box::new(PassThrough::new().early_row(background));
        return relay_body(&mut resp, relay, parsed.prompt_chars, copied, ctx, wctx);
    }
    let (bytes, json) = read_json(&mut resp).await?;
    let created = (200..300).contains(&resp.status_code());
    if let Some(rec) = ctx.rec() {
        if created {
            rec.response_id = owner::response_id(&json);
        }
        match json.get("usage").and_then(responses::tokens_from_usage) {
            Some(tokens) => {
                rec.tokens = tokens;
                rec.usage_source = UsageSource::Upstream;
            }
            None => rec.usage_source = UsageSource::Estimated,
        }
        rec.finish_reason = json
            .get("status")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    let content_type = upstream_headers
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_else(|| "application/json".to_string());
    bytes_response(resp.status_code(), &content_type, bytes, copied)
}

/// A Chat or Messages answer, back as a Response or Responses events.
async fn translated(
    mut resp: Response,
    way: Way,
    parsed: &ResponsesRequest,
    skeleton: Skeleton,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let upstream_headers = resp.headers().clone();
    let id_header = if way == Way::Claude {
        "request-id"
    } else {
        "x-request-id"
    };
    ctx.upstream_answered(upstream_headers.get(id_header).ok().flatten());
    let chat_id = format!("chatcmpl-{}", skeleton.base);
    let custom_tools = if way == Way::Claude {
        anthropic::custom::tool_names(parsed.to_chat()?.get("tools"))
    } else {
        Vec::new()
    };
    if parsed.stream {
        if !is_sse(&upstream_headers) {
            return Err(RelayError::UpstreamUnavailable(
                "upstream answered a stream request with a non-stream body".to_string(),
            ));
        }
        let inner: Box<dyn Relay> = if way == Way::Claude {
            let translator =
                StreamTranslator::new(chat_id, skeleton.created_at, parsed.model.clone(), true)
                    .with_custom_tools(custom_tools);
            Box::new(ChatRelay::new(translator))
        } else {
            Box::new(StreamRelay::new(false))
        };
        let relay = Box::new(ChatToResponses::new(inner, skeleton));
        return relay_body(
            &mut resp,
            relay,
            parsed.prompt_chars,
            Headers::new(),
            ctx,
            wctx,
        );
    }
    let (_, json) = read_json(&mut resp).await?;
    let completion = if way == Way::Claude {
        if let Some(rec) = ctx.rec() {
            if let Some(tokens) = json.get("usage").and_then(anthropic::tokens_from_usage) {
                rec.tokens = tokens;
                rec.usage_source = UsageSource::Upstream;
            }
            rec.finish_reason = json
                .get("stop_reason")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        anthropic::to_chat_completion(
            &json,
            &chat_id,
            skeleton.created_at,
            &parsed.model,
            &custom_tools,
        )
    } else {
        if json.get("error").is_some_and(Value::is_object) {
            // Some OpenAI-compatible providers answer errors with 200 + JSON (R8.15).
            return Err(RelayError::UpstreamUnavailable(
                "upstream answered 200 with an error body".to_string(),
            ));
        }
        if let Some(rec) = ctx.rec() {
            match json.get("usage").and_then(Tokens::from_openai) {
                Some(tokens) => {
                    rec.tokens = tokens;
                    rec.usage_source = UsageSource::Upstream;
                }
                None => rec.usage_source = UsageSource::Estimated,
            }
            rec.finish_reason = json
                .pointer("/choices/0/finish_reason")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        json
    };
    let out = answer::from_chat(&completion, &skeleton);
    bytes_response(
        200,
        "application/json",
        out.to_string().into_bytes(),
        Headers::new(),
    )
}

/// `relay-echo` through the same Chat→Responses translation as a Chat-only provider.
fn echo_reply(
    parsed: &ResponsesRequest,
    skeleton: Skeleton,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    parsed.to_chat()?;
    let reply = echo::reply(&parsed.last_user_text);
    let id = format!("chatcmpl-{}", skeleton.base);
    let e = Echo {
        id: &id,
        created: skeleton.created_at,
        reply: &reply,
        tokens: echo::tokens(parsed.prompt_chars, &reply),
    };
    ctx.upstream_answered(None);
    if parsed.stream {
        let chunks = e.stream_chunks().into_iter().map(Ok);
        let relay = Box::new(ChatToResponses::new(
            Box::new(StreamRelay::new(false)),
            skeleton,
        ));
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
    let completion: Value = serde_json::from_slice(&e.completion())
        .map_err(|e| RelayError::Internal(format!("echo completion: {e}")))?;
    let out = answer::from_chat(&completion, &skeleton);
    bytes_response(
        200,
        "application/json",
        out.to_string().into_bytes(),
        Headers::new(),
    )
}

/// The provider that holds stored responses: OpenAI's built-in entry first, else the first
/// configured kind-`openai` provider with a key.
fn stored_provider(ctx: &Ctx) -> Option<&ProviderSpec> {
    let keyed = |p: &&ProviderSpec| p.responses_api && p.api_key.is_some();
    let providers = &ctx.config.providers;
    providers
        .iter()
        .filter(keyed)
        .find(|p| p.id == "openai")
        .or_else(|| providers.iter().find(keyed))
}

/// Waits before each new look for a response's row. A create's row is written from
/// `wait_until` after its answer (a stream's after the stream ends, within a watcher tick), so
/// a retrieve sent the moment an answer arrives can beat it; ~1.5 s in all covers that, and
/// bounds what probing unknown ids costs (five indexed reads).
const OWNER_RECHECK_MS: [u64; 4] = [100, 200, 400, 800];

/// Whether the usage table records `caller` as the creator of response `id`.
async fn access(ctx: &Ctx, id: &str, caller: &str) -> Result<Access, RelayError> {
    let mut access = owner::access(&store::response_owners(&ctx.env, id).await?, caller);
    for wait in OWNER_RECHECK_MS {
        if access != Access::Unknown {
            break;
        }
        Delay::from(Duration::from_millis(wait)).await;
        access = owner::access(&store::response_owners(&ctx.env, id).await?, caller);
    }
    Ok(access)
}

/// OpenAI continues from any stored response it holds, whoever asks: only the key that created
/// `prev` may build on it; anyone else gets OpenAI's own 400 for an unknown previous response.
async fn refuse_foreign_previous(ctx: &Ctx, prev: &str) -> Result<(), RelayError> {
    let refused = || {
        let mut shown = prev.to_string();
        if let Some((at, _)) = shown
            .char_indices()
            .nth(crate::metering::usage::MAX_TEXT_CHARS)
        {
            shown.truncate(at);
        }
        RelayError::PreviousResponseNotFound(shown)
    };
    if !owner::routable(prev) {
        return Err(refused());
    }
    let caller = relay_key(ctx)?.id.clone();
    if access(ctx, prev, &caller).await? != Access::Owner {
        return Err(refused());
    }
    Ok(())
}

/// `GET`/`DELETE /v1/responses/{id}`, `POST …/cancel`, `GET …/input_items`: for the key that
/// created the response only (`responses::owner`), passed to OpenAI with its key, the client's
/// query string and the headers the allow-list lets through.
pub async fn stored(
    req: &Request,
    ctx: &mut Ctx,
    id: &str,
    action: Option<&str>,
) -> Result<Response, RelayError> {
    let not_found = || RelayError::ResponseNotFound(id.to_string());
    let caller = relay_key(ctx)?.id.clone();
    if access(ctx, id, &caller).await? != Access::Owner {
        return Err(not_found());
    }
    let spec = stored_provider(ctx).cloned().ok_or_else(not_found)?;
    let path = match action {
        Some(a) => format!("/responses/{id}/{a}"),
        None => format!("/responses/{id}"),
    };
    let mut url = spec.url(&path);
    // The raw query, still percent-encoded; read from the string so the URL crate (and its
    // Unicode tables) stays out of the bundle.
    let full = req.inner().url();
    let query = full
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(""))
        .unwrap_or("");
    if !query.is_empty() {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(query);
    }
    if let Some(rec) = ctx.rec() {
        rec.provider = Some(spec.id.clone());
        rec.attempts = 1;
    }
    let method = match req.method() {
        Method::Delete => Method::Delete,
        Method::Post => Method::Post,
        _ => Method::Get,
    };
    let internal =
        |e: worker::Error| RelayError::Internal(format!("building upstream request: {e}"));
    // The same allow-list as every provider call (headers.rs), and the relay's user-agent.
    let headers = Headers::new();
    let client: Vec<(String, String)> = req.headers().entries().collect();
    let allowed = crate::http::headers::provider_headers(
        spec.kind,
        client.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    );
    for (name, value) in &allowed {
        headers.set(name, value).map_err(internal)?;
    }
    headers
        .set("user-agent", crate::http::headers::USER_AGENT)
        .map_err(internal)?;
    let key = spec.api_key.clone().unwrap_or_default();
    match spec.key_header {
        KeyHeader::Bearer => headers.set("authorization", &format!("Bearer {key}")),
        KeyHeader::XApiKey => headers.set("x-api-key", &key),
        KeyHeader::ApiKey => headers.set("api-key", &key),
    }
    .map_err(internal)?;
    headers
        .set("accept", "application/json")
        .map_err(internal)?;
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(headers);
    let request = Request::new_with_init(&url, &init).map_err(internal)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let answered = {
        let sent = Box::pin(fetch.send_with_signal(&signal));
        let timer = Delay::from(Duration::from_millis(
            spec.ttfb_timeout_ms
                .unwrap_or(ctx.config.upstream_timeout_ms),
        ));
        match select(sent, timer).await {
            Either::Left((result, _)) => Some(result),
            Either::Right(_) => None,
        }
    };
    let mut resp = match answered {
        Some(Ok(resp)) => resp,
        Some(Err(e)) => {
            return Err(RelayError::UpstreamUnavailable(format!(
                "fetch failed: {e}"
            )))
        }
        None => {
            controller.abort();
            return Err(RelayError::UpstreamTimeout);
        }
    };
    let status = resp.status_code();
    let upstream_headers = resp.headers().clone();
    ctx.upstream_answered(upstream_headers.get("x-request-id").ok().flatten());
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| RelayError::UpstreamUnavailable(format!("reading upstream body: {e}")))?;
    if status >= 400 {
        let retry_after = upstream_headers.get("retry-after").ok().flatten();
        return Err(RelayError::from_upstream_status(status, bytes, retry_after));
    }
    if let Some(rec) = ctx.rec() {
        rec.tokens = Tokens::default();
    }
    let content_type = upstream_headers
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_else(|| "application/json".to_string());
    bytes_response(
        status,
        &content_type,
        bytes,
        copy_headers(&upstream_headers),
    )
}
