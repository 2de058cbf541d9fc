//! `POST /v1/responses` on every provider kind, and OpenAI's stored-response routes. OpenAI
//! (kind `openai`) gets the client's bytes and its SSE comes back unchanged; Chat-only providers,
//! the echo and Claude get a Chat request (Claude's then translated to Messages) and their answer
//! comes back as a Response through the core's translators. All I/O, no protocol logic.

use std::time::Duration;

use serde_json::Value;
use worker::{Context, Delay, Headers, Method, Request, Response};

use super::relay::{self, copy_headers, Out};
use super::{bytes_response, claude, now_ms, read_body, relay_key, store, upstream, Ctx};
use crate::config::Config;
use crate::flow::attempts::Plan;
use crate::flow::row::{self, Answer};
use crate::flow::targets::{self, Way};
use crate::http::error::RelayError;
use crate::limits::estimate::{cap_of, CAP_FIELDS};
use crate::metering::usage::Tokens;
use crate::protocols::chat;
use crate::protocols::responses::answer::{self, Skeleton};
use crate::protocols::responses::owner::{self, Access};
use crate::protocols::responses::passthrough::PassThrough;
use crate::protocols::responses::translate::ChatToResponses;
use crate::protocols::responses::{self, Request as ResponsesRequest};
use crate::protocols::stream::{Relay, StreamRelay};
use crate::providers::echo::{self, Echo};
use crate::providers::models::Target;
use crate::providers::ProviderSpec;
use crate::translate::anthropic::{self, ChatRelay, StreamTranslator};

pub async fn create(
    req: &mut Request,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let body = read_body(req, ctx.config.max_body_bytes).await?;
    let parsed = responses::parse(&body)?;
    if let Some(rec) = ctx.rec() {
        rec.client_shape = Some("responses".to_string());
        row::requested(rec, &parsed.model, parsed.stream);
        rec.tokens = Tokens::estimated(parsed.prompt_chars, 0);
    }
    let resolved = targets::resolve(&ctx.config, relay_key(ctx)?, &parsed.model)?;
    let skeleton = Skeleton::new(
        ctx.request_id.trim_start_matches("req_"),
        now_ms() / 1000,
        &parsed,
    );
    if targets::is_echo(&resolved) {
        if let Some(rec) = ctx.rec() {
            row::echoed(rec);
        }
        return echo_reply(&parsed, skeleton, ctx, wctx);
    }
    let targets = targets::responses(resolved, parsed.refuse_state().is_err());
    if let Some(prev) = owner::previous(&parsed.body) {
        if targets::any_native(&targets) {
            refuse_foreign_previous(ctx, prev).await?;
        }
    }
    let protocol = crate::cache::key::Protocol::Responses;
    if let Some(hit) = super::cache::lookup(req, ctx, wctx, protocol, &body, &targets).await? {
        return Ok(hit);
    }
    let plan = ResponsesPlan {
        body: &body,
        parsed: &parsed,
        request_id: ctx.request_id.clone(),
    };
    let (resp, target) = relay::send(req, &targets, ctx, &plan, &parsed.model).await?;
    match targets::way(target) {
        Way::Native => native(resp, &parsed, ctx, wctx).await,
        w => translated(resp, w, &parsed, skeleton, ctx, wctx).await,
    }
}

struct ResponsesPlan<'a> {
    body: &'a [u8],
    parsed: &'a ResponsesRequest,
    request_id: String,
}

impl Plan for ResponsesPlan<'_> {
    fn reservation(&self) -> (u64, Option<u64>) {
        let caps = CAP_FIELDS.iter().map(|f| self.parsed.body.get(*f));
        (self.parsed.prompt_chars, cap_of(caps))
    }

    fn request(
        &self,
        target: &Target,
        config: &Config,
    ) -> Result<(Vec<u8>, &'static str), RelayError> {
        let way = targets::way(target);
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
            let translated =
                claude::translate_request(&chat_body, target, config, &self.request_id)?;
            return Ok((translated, "/v1/messages"));
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

/// OpenAI's answer, relayed as it came; only the meter reads it.
async fn native(
    resp: Response,
    parsed: &ResponsesRequest,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let background = parsed.body.get("background") == Some(&Value::Bool(true));
    let created = (200..300).contains(&resp.status_code());
    let relay = parsed
        .stream
        .then(|| Box::new(PassThrough::new().early_row(background)) as Box<dyn Relay>);
    let out = Out::new("x-request-id", relay, parsed.prompt_chars);
    relay::pass_through(resp, out, Answer::Responses { created }, ctx, wctx).await
}

/// A Chat or Messages answer, back as a Response or Responses events.
async fn translated(
    resp: Response,
    way: Way,
    parsed: &ResponsesRequest,
    skeleton: Skeleton,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let claude = way == Way::Claude;
    let chat_id = format!("chatcmpl-{}", skeleton.base);
    let custom_tools = if claude {
        anthropic::custom::tool_names(parsed.to_chat()?.get("tools"))
    } else {
        Vec::new()
    };
    let id_header = if claude { "request-id" } else { "x-request-id" };
    if parsed.stream {
        let inner: Box<dyn Relay> = if claude {
            let (at, model) = (skeleton.created_at, parsed.model.clone());
            let translator = StreamTranslator::new(chat_id, at, model, true);
            Box::new(ChatRelay::new(translator.with_custom_tools(custom_tools)))
        } else {
            Box::new(StreamRelay::new(false))
        };
        let relay = Some(Box::new(ChatToResponses::new(inner, skeleton)) as Box<dyn Relay>);
        let out = Out::new(id_header, relay, parsed.prompt_chars).sse_only();
        return relay::translated(resp, out, ctx, wctx, |_, _| Ok(Value::Null)).await;
    }
    let out = Out::new(id_header, None, parsed.prompt_chars);
    relay::translated(resp, out, ctx, wctx, |json, rec| {
        let completion = if claude {
            row::upstream_usage(
                rec,
                json.get("usage").and_then(anthropic::tokens_from_usage),
            );
            row::finished(rec, json, "/stop_reason");
            let (id, at) = (&chat_id, skeleton.created_at);
            anthropic::to_chat_completion(json, id, at, &parsed.model, &custom_tools)
        } else {
            row::chat_answer(json, rec)?;
            json.clone()
        };
        Ok(answer::from_chat(&completion, &skeleton))
    })
    .await
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
    let relay = parsed.stream.then(|| {
        Box::new(ChatToResponses::new(
            Box::new(StreamRelay::new(false)),
            skeleton.clone(),
        )) as Box<dyn Relay>
    });
    if let Some(streamed) = relay::echo_stream(&e, relay, parsed.prompt_chars, ctx, wctx)? {
        return Ok(streamed);
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

/// The provider's URL for the stored response, with the client's query string.
fn stored_url(spec: &ProviderSpec, id: &str, action: Option<&str>, req: &Request) -> String {
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
    url
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
    let url = stored_url(&spec, id, action, req);
    if let Some(rec) = ctx.rec() {
        rec.provider = Some(spec.id.clone());
        rec.attempts = 1;
    }
    let call = upstream::Call {
        url,
        api_key: spec.api_key.clone().unwrap_or_default(),
        key_header: spec.key_header,
        kind: spec.kind,
        extra_headers: vec![("accept", "application/json".to_string())],
        client_headers: req.headers(),
        method: match req.method() {
            Method::Delete => Method::Delete,
            Method::Post => Method::Post,
            _ => Method::Get,
        },
        body: None,
        timeout_ms: spec
            .ttfb_timeout_ms
            .unwrap_or(ctx.config.upstream_timeout_ms),
    };
    let mut resp = upstream::send(call).await?;
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
