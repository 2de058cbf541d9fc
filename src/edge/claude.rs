//! Claude: native `POST /v1/messages` (and `count_tokens`) forwarded byte-faithfully to
//! Anthropic and metered with Messages semantics, and OpenAI-format chat requests for Claude
//! models translated both ways.

use worker::{Context, Headers, Request, Response};

use super::{
    bytes_response, copy_headers, header, now_ms, read_body, read_json, relay_body, relay_key,
    send_with_fallback, Attempt, Ctx,
};
use crate::http::error::RelayError;
use crate::keys;
use crate::metering::usage::{Tokens, UsageSource};
use crate::protocols::chat::{self, ChatRequest};
use crate::protocols::messages::PassThrough;
use crate::providers::models::{self, Provider, Target};
use crate::translate::anthropic::{self, ChatRelay, StreamTranslator};

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

/// Anthropic-client errors: the relay's own key problems are 502, billing 503, overload and rate limits
/// pass through with Anthropic's body so the SDK retries as it would against Anthropic.
fn native_error(status: u16, body: Vec<u8>, retry_after: Option<String>) -> RelayError {
    match status {
        401 | 403 => RelayError::UpstreamAuth,
        // Billing concerns the relay's Anthropic account, not the caller (§6.7, R2.4).
        402 => RelayError::UpstreamExhausted { quota: true },
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
    }
    let wanted = keys::effective_model(relay_key(ctx)?, &parsed.model)?;
    let resolved = models::resolve_all(&ctx.config, &wanted)?;
    if count_tokens {
        if let Some(first) = resolved.first().filter(|t| t.provider == Provider::OpenAi) {
            return count_estimate(&body, first, ctx);
        }
    }
    // relay-echo speaks OpenAI only; counting goes to Claude targets only (above: the estimate).
    let targets: Vec<Target> = resolved
        .into_iter()
        .filter(|t| match t.provider {
            Provider::Anthropic => true,
            Provider::OpenAi => !count_tokens,
            Provider::Echo => false,
        })
        .collect();
    if targets.is_empty() {
        return Err(RelayError::ModelNotFound(parsed.model.clone()));
    }
    if !count_tokens {
        let protocol = crate::cache::key::Protocol::Messages;
        if let Some(hit) = super::cache::lookup(req, ctx, wctx, protocol, &body, &targets).await? {
            return Ok(hit);
        }
    }
    let as_json = if targets.iter().any(|t| t.provider == Provider::OpenAi) {
        Some(serde_json::from_slice(&body).map_err(|_| {
            RelayError::invalid("We could not parse the JSON body of your request.", None)
        })?)
    } else {
        None
    };
    let plan = MessagesAttempt {
        body: &body,
        parsed: &parsed,
        as_json,
        count_tokens,
    };
    super::limits::check(ctx, &targets, &parsed.model, parsed.prompt_chars, &body).await?;
    let (mut resp, target) = send_with_fallback(req, &targets, ctx, &plan, &parsed.model).await?;
    super::served(ctx, parsed.prompt_chars);
    if target.provider == Provider::OpenAi {
        return via_openai_respond(resp, &parsed, ctx, wctx).await;
    }
    let status = resp.status_code();
    let upstream_headers = resp.headers().clone();
    ctx.upstream_answered(upstream_headers.get("request-id").ok().flatten());
    let copied = copy_headers(&upstream_headers);
    let is_sse = upstream_headers
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    if parsed.stream && is_sse && !count_tokens {
        return relay_body(
            &mut resp,
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

/// `count_tokens` for a model served by an OpenAI-format provider, which cannot count: the
/// relay's estimate, said to be one by `x-relay-estimate: true`, since an SDK caller would
/// otherwise take it for the provider's count. Nothing goes upstream and nothing is spent.
fn count_estimate(body: &[u8], target: &Target, ctx: &mut Ctx) -> Result<Response, RelayError> {
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        RelayError::invalid("We could not parse the JSON body of your request.", None)
    })?;
    let input_tokens = anthropic::count::estimate_input_tokens(&json);
    if let Some(rec) = ctx.rec() {
        rec.provider = Some(target.provider_id().to_string());
        rec.model_upstream = Some(target.upstream_model.clone());
        rec.tokens = Tokens::default();
    }
    let headers = Headers::new();
    headers
        .set("x-relay-estimate", "true")
        .map_err(|e| RelayError::Internal(e.to_string()))?;
    bytes_response(
        200,
        "application/json",
        format!("{{\"input_tokens\":{input_tokens}}}").into_bytes(),
        headers,
    )
}

/// The Messages request for an OpenAI-format chat body (§6.1).
pub fn translate_request(body: &[u8], target: &Target, ctx: &Ctx) -> Result<Vec<u8>, RelayError> {
    let openai: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        RelayError::invalid("We could not parse the JSON body of your request.", None)
    })?;
    let mut translated = anthropic::to_messages_request(
        &openai,
        &target.upstream_model,
        ctx.config.anthropic_max_tokens,
    )?;
    clamp_output(
        &mut translated,
        &target.upstream_model,
        &["max_tokens"],
        ctx,
    );
    Ok(translated.to_string().into_bytes())
}

/// Lowers the translated request's output limit to the target model's cap (output_caps.rs), so
/// a limit the client's own models take does not become the provider's 400; logged, since the
/// client asked for more than it can get.
fn clamp_output(body: &mut serde_json::Value, model: &str, fields: &[&'static str], ctx: &Ctx) {
    if let Some(c) = ctx.config.output_caps.clamp(model, body, fields) {
        worker::console_log!(
            "request {}: {} {} lowered to {}, the output cap of {} (MAX_OUTPUT_TOKENS)",
            ctx.request_id,
            c.field,
            c.asked,
            c.cap,
            model
        );
    }
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
    let wants_json = anthropic::structured::wants_json(parsed.field("response_format").as_ref());
    if parsed.stream {
        let relay = ChatRelay::new(
            StreamTranslator::new(id, created, parsed.model.clone(), parsed.client_wants_usage)
                .with_custom_tools(custom_tools)
                .with_answer_tool(wants_json),
        );
        return relay_body(
            &mut resp,
            Box::new(relay),
            parsed.prompt_chars,
            Headers::new(),
            ctx,
            wctx,
        );
    }
    let (_, json) = read_json(&mut resp).await?;
    let mut out = anthropic::to_chat_completion(&json, &id, created, &parsed.model, &custom_tools);
    if wants_json {
        anthropic::structured::unwrap_answer(&mut out);
    }
    if let Some(rec) = ctx.rec() {
        if let Some(tokens) = json.get("usage").and_then(anthropic::tokens_from_usage) {
            rec.tokens = tokens;
            rec.usage_source = UsageSource::Upstream;
        }
        // The row speaks the client's vocabulary: what this client was told.
        rec.finish_reason = out
            .pointer("/choices/0/finish_reason")
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

/// `/v1/messages` on either kind of target: the body goes to Anthropic as the client sent it
/// (model renamed), or out as Chat Completions to an OpenAI-format provider (§6.6).
struct MessagesAttempt<'a> {
    body: &'a [u8],
    parsed: &'a ChatRequest<'a>,
    /// The body as JSON, parsed once when some target needs the translation.
    as_json: Option<serde_json::Value>,
    count_tokens: bool,
}

impl Attempt for MessagesAttempt<'_> {
    fn request(&self, target: &Target, ctx: &Ctx) -> Result<(Vec<u8>, &'static str), RelayError> {
        match (target.provider, &self.as_json) {
            (Provider::OpenAi, Some(json)) => {
                let mut chat =
                    anthropic::to_chat_request(json, &target.upstream_model, target.stream_usage)?;
                clamp_output(
                    &mut chat,
                    &target.upstream_model,
                    &["max_completion_tokens"],
                    ctx,
                );
                Ok((chat.to_string().into_bytes(), "/chat/completions"))
            }
            (Provider::Anthropic, _) => Ok((
                self.parsed
                    .upstream_body(self.body, &target.upstream_model, false, &[]),
                if self.count_tokens {
                    "/v1/messages/count_tokens"
                } else {
                    "/v1/messages"
                },
            )),
            _ => Err(RelayError::ModelNotFound(self.parsed.model.clone())),
        }
    }

    fn failure(
        &self,
        target: &Target,
        status: u16,
        body: Vec<u8>,
        retry_after: Option<String>,
    ) -> RelayError {
        match target.provider {
            Provider::Anthropic => native_error(status, body, retry_after),
            // In Anthropic's shape with the provider's own message; a 503 is 529 (§6.7).
            _ => anthropic::errors::from_openai_provider(status, body, retry_after),
        }
    }
}

/// An OpenAI-format provider's answer to a translated Messages request, back in Anthropic's
/// shape, streamed or not.
async fn via_openai_respond(
    mut resp: Response,
    parsed: &ChatRequest<'_>,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    ctx.upstream_answered(resp.headers().get("x-request-id").ok().flatten());
    let fallback_id = format!("msg_{}", ctx.request_id.trim_start_matches("req_"));
    if parsed.stream {
        let relay = anthropic::ReverseTranslator::new(fallback_id, parsed.model.clone());
        return relay_body(
            &mut resp,
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
    }
    let message = anthropic::to_message(&completion, &parsed.model);
    if let Some(rec) = ctx.rec() {
        // The client's vocabulary: the Anthropic stop_reason it was given.
        rec.finish_reason = message
            .get("stop_reason")
            .and_then(|v| v.as_str())
            .map(str::to_string);
    }
    bytes_response(
        200,
        "application/json",
        message.to_string().into_bytes(),
        Headers::new(),
    )
}
