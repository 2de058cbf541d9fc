//! `POST /v1/chat/completions` (Cursor's shapes included) and the legacy OpenAI endpoints
//! (`/v1/completions`, `/v1/embeddings`, `/v1/moderations`): parse, resolve, hand the plan to
//! the flow's driver, and relay the serving provider's answer.

use worker::{Context, Headers, Request, Response};

use super::relay::{self, Out};
use super::{bytes_response, claude, now_ms, read_body, relay_key, Ctx};
use crate::config::Config;
use crate::flow::attempts::Plan;
use crate::flow::row::{self, Answer};
use crate::flow::targets;
use crate::http::error::RelayError;
use crate::limits::estimate;
use crate::protocols::chat;
use crate::protocols::cursor;
use crate::protocols::stream::{Relay, StreamRelay};
use crate::providers::echo::{self, Echo};
use crate::providers::models::{Provider, Target};

pub async fn completions(
    req: &mut Request,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let body = read_body(req, ctx.config.max_body_bytes).await?;
    let (shape, body) = cursor_normalize(body)?;
    let parsed = chat::parse(&body)?;
    if let Some(rec) = ctx.rec() {
        rec.client_shape = Some(shape.as_str().to_string());
        row::requested(rec, &parsed.model, parsed.stream);
    }
    let targets = targets::resolve(&ctx.config, relay_key(ctx)?, &parsed.model)?;
    let protocol = crate::cache::key::Protocol::Chat;
    if let Some(hit) = super::cache::lookup(req, ctx, wctx, protocol, &body, &targets).await? {
        return Ok(hit);
    }
    if targets::is_echo(&targets) {
        if let Some(rec) = ctx.rec() {
            row::echoed(rec);
        }
        return echo_reply(&parsed, ctx, wctx);
    }
    let plan = OpenAiPlan {
        body: &body,
        parsed: &parsed,
        path: "/chat/completions",
        request_id: ctx.request_id.clone(),
    };
    let (resp, target) = relay::send(req, &targets, ctx, &plan, &parsed.model).await?;
    relay::served(ctx, parsed.prompt_chars);
    match target.provider {
        Provider::Anthropic => claude::respond(resp, &parsed, ctx, wctx).await,
        _ => pass_chat(resp, &parsed, target.stream_usage, ctx, wctx).await,
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
pub async fn legacy(
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
        row::requested(rec, &parsed.model, parsed.stream);
    }
    let resolved = targets::resolve(&ctx.config, relay_key(ctx)?, &parsed.model)?;
    let targets = targets::legacy(resolved, &parsed.model, path)?;
    let plan = OpenAiPlan {
        body: &body,
        parsed: &parsed,
        path,
        request_id: ctx.request_id.clone(),
    };
    let (resp, target) = relay::send(req, &targets, ctx, &plan, &parsed.model).await?;
    relay::served(ctx, parsed.prompt_chars);
    pass_chat(resp, &parsed, target.stream_usage, ctx, wctx).await
}

/// An OpenAI-format provider's answer, passed through; `asked_usage`: the relay asked for the
/// usage chunk, which is stripped unless the client asked too.
async fn pass_chat(
    resp: Response,
    parsed: &chat::ChatRequest<'_>,
    asked_usage: bool,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let strip = asked_usage && !parsed.client_wants_usage;
    let relay = parsed
        .stream
        .then(|| Box::new(StreamRelay::new(strip)) as Box<dyn Relay>);
    let answer = Answer::Chat {
        prompt_chars: parsed.prompt_chars,
        stream: parsed.stream,
    };
    let out = Out::new("x-request-id", relay, parsed.prompt_chars);
    relay::pass_through(resp, out, answer, ctx, wctx).await
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
    let relay = parsed
        .stream
        .then(|| Box::new(StreamRelay::new(!parsed.client_wants_usage)) as Box<dyn Relay>);
    if let Some(streamed) = relay::echo_stream(&e, relay, parsed.prompt_chars, ctx, wctx)? {
        return Ok(streamed);
    }
    bytes_response(200, "application/json", e.completion(), Headers::new())
}

/// An OpenAI-format request (chat, completions, embeddings): passed through to OpenAI-format
/// targets, translated for Claude ones.
struct OpenAiPlan<'a> {
    body: &'a [u8],
    parsed: &'a chat::ChatRequest<'a>,
    path: &'static str,
    request_id: String,
}

impl Plan for OpenAiPlan<'_> {
    fn reservation(&self) -> (u64, Option<u64>) {
        estimate::of_chat(self.parsed)
    }

    fn request(
        &self,
        target: &Target,
        config: &Config,
    ) -> Result<(Vec<u8>, &'static str), RelayError> {
        Ok(match target.provider {
            Provider::Anthropic => (
                claude::translate_request(self.body, target, config, &self.request_id)?,
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
