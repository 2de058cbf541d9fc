//! Claude: native `POST /v1/messages` (and `count_tokens`) forwarded byte-faithfully to
//! Anthropic and metered with Messages semantics, and OpenAI-format chat requests for Claude
//! models translated both ways.

use worker::{Context, Headers, Request, Response};

use super::{
    bytes_response, copy_headers, header, now_ms, read_body, read_json, relay_key, stream_response,
    upstream, Ctx,
};
use crate::anthropic::{self, StreamTranslator};
use crate::chat::{self, ChatRequest};
use crate::error::RelayError;
use crate::keys;
use crate::messages::PassThrough;
use crate::models::{self, Provider, Target};
use crate::sse::SseDecoder;
use crate::stream::{Relay, Settled};
use crate::usage::{Tokens, UsageSource};

/// What Anthropic's SDKs send; used when a client (or the translation) gives none.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Headers Anthropic needs besides the key: the version (the client's, or what the SDKs send)
/// and any beta flags the client asked for.
pub fn anthropic_headers(req: &Request) -> Vec<(&'static str, String)> {
    let mut out = vec![(
        "anthropic-version",
        header(req, "anthropic-version").unwrap_or_else(|| ANTHROPIC_VERSION.to_string()),
    )];
    if let Some(beta) = header(req, "anthropic-beta") {
        out.push(("anthropic-beta", beta));
    }
    out
}

/// Anthropic-client errors: the relay's own key problems are 502, overload and rate limits
/// pass through with Anthropic's body so the SDK retries as it would against Anthropic.
fn native_error(status: u16, body: Vec<u8>, retry_after: Option<String>) -> RelayError {
    match status {
        401 | 403 => RelayError::UpstreamAuth,
        _ => RelayError::UpstreamRejected {
            status,
            body: Some(body),
            retry_after,
        },
    }
}

/// `POST /v1/messages` and `/v1/messages/count_tokens` from Anthropic SDKs and Claude Code.
pub async fn messages(
    req: &mut Request,
    ctx: &mut Ctx,
    wctx: &Context,
    count_tokens: bool,
) -> Result<Response, RelayError> {
    let body = read_body(req, ctx.config.max_body_bytes).await?;
    let parsed = chat::parse(&body)?;
    if let Some(rec) = ctx.rec() {
        rec.model_requested = Some(parsed.model.clone());
        rec.stream = parsed.stream && !count_tokens;
        rec.tokens = Tokens::estimated(parsed.prompt_chars, 0);
    }
    let wanted = keys::effective_model(relay_key(ctx)?, &parsed.model)?;
    let target = models::resolve(&ctx.config, &wanted)?;
    if target.provider == Provider::OpenAi && !count_tokens {
        return messages_via_openai(req, &body, &parsed, &target, ctx, wctx).await;
    }
    if target.provider != Provider::Anthropic {
        // relay-echo speaks OpenAI only, and OpenAI-format providers cannot count tokens.
        return Err(RelayError::ModelNotFound(parsed.model.clone()));
    }
    if let Some(rec) = ctx.rec() {
        rec.provider = Some(target.provider_id().to_string());
        rec.model_upstream = Some(target.upstream_model.clone());
        rec.attempts = 1;
    }
    let upstream_body = parsed.upstream_body(&body, &target.upstream_model, false, &[]);
    let path = if count_tokens {
        "/v1/messages/count_tokens"
    } else {
        "/v1/messages"
    };
    let mut resp = upstream::send(upstream::call(&target, req, path, upstream_body, ctx)).await?;
    let status = resp.status_code();
    let upstream_headers = resp.headers().clone();
    ctx.upstream_answered(upstream_headers.get("request-id").ok().flatten());
    if status >= 400 {
        let bytes = resp.bytes().await.unwrap_or_default();
        let retry_after = upstream_headers.get("retry-after").ok().flatten();
        return Err(native_error(status, bytes, retry_after));
    }
    let copied = copy_headers(&upstream_headers);
    let is_sse = upstream_headers
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if parsed.stream && is_sse && !count_tokens {
        let upstream_body = resp
            .stream()
            .map_err(|e| RelayError::UpstreamUnavailable(format!("upstream body: {e}")))?;
        return stream_response(
            upstream_body,
            Box::new(PassThrough::new()),
            parsed.prompt_chars,
            copied,
            ctx,
            wctx,
        );
    }
    let (bytes, json) = read_json(&mut resp).await?;
    if !count_tokens {
        if let Some(rec) = ctx.rec() {
            match json.get("usage").and_then(anthropic::tokens_from_usage) {
                Some(tokens) => {
                    rec.tokens = tokens;
                    rec.usage_source = UsageSource::Upstream;
                }
                None => rec.usage_source = UsageSource::Estimated,
            }
            rec.finish_reason = json
                .get("stop_reason")
                .and_then(|v| v.as_str())
                .map(str::to_string);
        }
    } else if let Some(rec) = ctx.rec() {
        // Counting tokens is free: the row records the call, not spend.
        rec.tokens = Tokens::default();
    }
    let content_type = upstream_headers
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_else(|| "application/json".to_string());
    bytes_response(status, &content_type, bytes, copied)
}

/// An Anthropic stream translated to OpenAI chat chunks for the client.
struct Translate {
    decoder: SseDecoder,
    translator: StreamTranslator,
    ended: bool,
}

impl Relay for Translate {
    fn feed(&mut self, chunk: Vec<u8>) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        match self.decoder.feed(&chunk) {
            Ok(events) => events
                .iter()
                .flat_map(|ev| self.translator.on_event(ev))
                .collect(),
            Err(_) => self.abort(),
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        let mut out = Vec::new();
        if let Some(ev) = self.decoder.finish() {
            out.extend(self.translator.on_event(&ev));
        }
        out.extend(self.translator.finish());
        out
    }

    fn abort(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        self.translator.finish()
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn settle(&self, prompt_chars: u64, cancelled: bool) -> Settled {
        let meter = self.translator.meter();
        let (outcome, tokens, source) = meter.settle(prompt_chars, cancelled);
        Settled {
            outcome,
            tokens,
            source,
            finish_reason: meter.stop_reason.clone(),
            upstream_error: meter.upstream_error.clone(),
        }
    }
}

/// The Messages request for an OpenAI-format chat body (§6.1).
pub fn translate_request(body: &[u8], target: &Target, ctx: &Ctx) -> Result<Vec<u8>, RelayError> {
    let openai: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        RelayError::invalid("We could not parse the JSON body of your request.", None)
    })?;
    let translated = anthropic::to_messages_request(
        &openai,
        &target.upstream_model,
        ctx.config.anthropic_max_tokens,
    )?;
    Ok(translated.to_string().into_bytes())
}

/// A Messages answer (status below 400) turned back into OpenAI chat, streamed or not.
pub async fn respond(
    mut resp: Response,
    parsed: &ChatRequest<'_>,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    ctx.upstream_answered(resp.headers().get("request-id").ok().flatten());
    let id = format!("chatcmpl-{}", ctx.request_id.trim_start_matches("req_"));
    let created = now_ms() / 1000;
    let custom_tools = anthropic::custom::tool_names(parsed.field("tools").as_ref());
    if parsed.stream {
        let upstream_body = resp
            .stream()
            .map_err(|e| RelayError::UpstreamUnavailable(format!("upstream body: {e}")))?;
        let relay = Translate {
            decoder: SseDecoder::new(),
            translator: StreamTranslator::new(
                id,
                created,
                parsed.model.clone(),
                parsed.client_wants_usage,
            )
            .with_custom_tools(custom_tools),
            ended: false,
        };
        return stream_response(
            upstream_body,
            Box::new(relay),
            parsed.prompt_chars,
            Headers::new(),
            ctx,
            wctx,
        );
    }
    let (_, json) = read_json(&mut resp).await?;
    let out = anthropic::to_chat_completion(&json, &id, created, &parsed.model, &custom_tools);
    if let Some(rec) = ctx.rec() {
        if let Some(tokens) = json.get("usage").and_then(anthropic::tokens_from_usage) {
            rec.tokens = tokens;
            rec.usage_source = UsageSource::Upstream;
        }
        rec.finish_reason = json
            .get("stop_reason")
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
    bytes_response(
        200,
        "application/json",
        out.to_string().into_bytes(),
        Headers::new(),
    )
}

/// `/v1/messages` for a model served by an OpenAI-format provider: the Messages request goes
/// out as Chat Completions and the answer comes back as Anthropic events (§6.6).
async fn messages_via_openai(
    req: &Request,
    body: &[u8],
    parsed: &ChatRequest<'_>,
    target: &Target,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        RelayError::invalid("We could not parse the JSON body of your request.", None)
    })?;
    let chat = anthropic::to_chat_request(&json, &target.upstream_model, target.stream_usage)?;
    if let Some(rec) = ctx.rec() {
        rec.provider = Some(target.provider_id().to_string());
        rec.model_upstream = Some(target.upstream_model.clone());
        rec.attempts = 1;
    }
    let call = upstream::call(
        target,
        req,
        "/chat/completions",
        chat.to_string().into_bytes(),
        ctx,
    );
    let mut resp = upstream::send(call).await?;
    let status = resp.status_code();
    let upstream_headers = resp.headers().clone();
    ctx.upstream_answered(upstream_headers.get("x-request-id").ok().flatten());
    if status >= 400 {
        let bytes = resp.bytes().await.unwrap_or_default();
        let retry_after = upstream_headers.get("retry-after").ok().flatten();
        return Err(RelayError::from_upstream_status(status, bytes, retry_after));
    }
    let fallback_id = format!("msg_{}", ctx.request_id.trim_start_matches("req_"));
    if parsed.stream {
        let upstream_body = resp
            .stream()
            .map_err(|e| RelayError::UpstreamUnavailable(format!("upstream body: {e}")))?;
        let relay = anthropic::ReverseTranslator::new(fallback_id, parsed.model.clone());
        return stream_response(
            upstream_body,
            Box::new(relay),
            parsed.prompt_chars,
            Headers::new(),
            ctx,
            wctx,
        );
    }
    let (_, completion) = read_json(&mut resp).await?;
    if let Some(rec) = ctx.rec() {
        if let Some(tokens) = completion.get("usage").and_then(Tokens::from_openai) {
            rec.tokens = tokens;
            rec.usage_source = UsageSource::Upstream;
        }
        rec.finish_reason = completion
            .pointer("/choices/0/finish_reason")
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
    let message = anthropic::to_message(&completion, &parsed.model);
    bytes_response(
        200,
        "application/json",
        message.to_string().into_bytes(),
        Headers::new(),
    )
}
