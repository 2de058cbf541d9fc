//! Claude: native `POST /v1/messages` (and `count_tokens`) forwarded byte-faithfully to
//! Anthropic and metered with Messages semantics, and OpenAI-format chat requests for Claude
//! models translated both ways.

use worker::{Context, Headers, Request, Response};

use super::relay::{self, Out};
use super::{bytes_response, header, now_ms, read_body, relay_key, Ctx};
use crate::config::Config;
use crate::flow::attempts::{Client, Plan};
use crate::flow::row::{self, Answer};
use crate::flow::targets::{self, Messages};
use crate::http::error::RelayError;
use crate::limits::estimate;
use crate::metering::usage::Tokens;
use crate::protocols::chat::{self, ChatRequest};
use crate::protocols::messages::PassThrough;
use crate::protocols::stream::Relay;
use crate::providers::models::{Provider, Target};
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
        row::requested(rec, &parsed.model, parsed.stream && !count_tokens);
    }
    let resolved = targets::resolve(&ctx.config, relay_key(ctx)?, &parsed.model)?;
    let targets = match targets::messages(resolved, &parsed.model, count_tokens)? {
        Messages::Estimate(first) => return count_estimate(&body, &first, ctx),
        Messages::Send(targets) => targets,
    };
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
    let plan = MessagesPlan {
        body: &body,
        parsed: &parsed,
        as_json,
        count_tokens,
        request_id: ctx.request_id.clone(),
    };
    let (resp, target) = relay::send(req, &targets, ctx, &plan, &parsed.model).await?;
    relay::served(ctx, parsed.prompt_chars);
    if target.provider == Provider::OpenAi {
        return via_openai_respond(resp, &parsed, ctx, wctx).await;
    }
    let streamed = parsed.stream && !count_tokens;
    let relay = streamed.then(|| Box::new(PassThrough::new()) as Box<dyn Relay>);
    let out = Out::new("request-id", relay, parsed.prompt_chars);
    let answer = Answer::Messages { count_tokens };
    relay::pass_through(resp, out, answer, ctx, wctx).await
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
pub fn translate_request(
    body: &[u8],
    target: &Target,
    config: &Config,
    request_id: &str,
) -> Result<Vec<u8>, RelayError> {
    let openai: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        RelayError::invalid("We could not parse the JSON body of your request.", None)
    })?;
    let mut translated = anthropic::to_messages_request(
        &openai,
        &target.upstream_model,
        config.anthropic_max_tokens,
    )?;
    let model = &target.upstream_model;
    clamp_output(&mut translated, model, &["max_tokens"], config, request_id);
    Ok(translated.to_string().into_bytes())
}

/// Lowers the translated request's output limit to the target model's cap (output_caps.rs), so
/// a limit the client's own models take does not become the provider's 400; logged, since the
/// client asked for more than it can get.
fn clamp_output(
    body: &mut serde_json::Value,
    model: &str,
    fields: &[&'static str],
    config: &Config,
    request_id: &str,
) {
    if let Some(c) = config.output_caps.clamp(model, body, fields) {
        worker::console_log!(
            "request {request_id}: {} {} lowered to {}, the output cap of {model} (MAX_OUTPUT_TOKENS)",
            c.field,
            c.asked,
            c.cap,
        );
    }
}

/// A Messages answer (status below 400) turned back into OpenAI chat, streamed or not.
pub async fn respond(
    resp: Response,
    parsed: &ChatRequest<'_>,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let id = format!("chatcmpl-{}", ctx.request_id.trim_start_matches("req_"));
    let created = now_ms() / 1000;
    let custom_tools = anthropic::custom::tool_names(parsed.field("tools").as_ref());
    let wants_json = anthropic::structured::wants_json(parsed.field("response_format").as_ref());
    let relay = parsed.stream.then(|| {
        let translator = StreamTranslator::new(
            id.clone(),
            created,
            parsed.model.clone(),
            parsed.client_wants_usage,
        )
        .with_custom_tools(custom_tools.clone())
        .with_answer_tool(wants_json);
        Box::new(ChatRelay::new(translator)) as Box<dyn Relay>
    });
    let t = Out::new("request-id", relay, parsed.prompt_chars);
    relay::translated(resp, t, ctx, wctx, |json, rec| {
        let mut out =
            anthropic::to_chat_completion(json, &id, created, &parsed.model, &custom_tools);
        if wants_json {
            anthropic::structured::unwrap_answer(&mut out);
        }
        row::upstream_usage(
            rec,
            json.get("usage").and_then(anthropic::tokens_from_usage),
        );
        // The row speaks the client's vocabulary: what this client was told.
        row::finished(rec, &out, "/choices/0/finish_reason");
        Ok(out)
    })
    .await
}

/// `/v1/messages` on either kind of target: the body goes to Anthropic as the client sent it
/// (model renamed), or out as Chat Completions to an OpenAI-format provider (§6.6).
struct MessagesPlan<'a> {
    body: &'a [u8],
    parsed: &'a ChatRequest<'a>,
    /// The body as JSON, parsed once when some target needs the translation.
    as_json: Option<serde_json::Value>,
    count_tokens: bool,
    request_id: String,
}

impl Plan for MessagesPlan<'_> {
    fn reservation(&self) -> (u64, Option<u64>) {
        estimate::of_chat(self.parsed)
    }

    fn request(
        &self,
        target: &Target,
        config: &Config,
    ) -> Result<(Vec<u8>, &'static str), RelayError> {
        let model = &target.upstream_model;
        match (target.provider, &self.as_json) {
            (Provider::OpenAi, Some(json)) => {
                let mut chat = anthropic::to_chat_request(json, model, target.stream_usage)?;
                let fields = &["max_completion_tokens"];
                clamp_output(&mut chat, model, fields, config, &self.request_id);
                Ok((chat.to_string().into_bytes(), "/chat/completions"))
            }
            (Provider::Anthropic, _) => Ok((
                self.parsed.upstream_body(self.body, model, false, &[]),
                if self.count_tokens {
                    "/v1/messages/count_tokens"
                } else {
                    "/v1/messages"
                },
            )),
            _ => Err(RelayError::ModelNotFound(self.parsed.model.clone())),
        }
    }

    fn client(&self) -> Client {
        Client::Anthropic
    }
}

/// An OpenAI-format provider's answer to a translated Messages request, back in Anthropic's
/// shape, streamed or not.
async fn via_openai_respond(
    resp: Response,
    parsed: &ChatRequest<'_>,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let fallback_id = format!("msg_{}", ctx.request_id.trim_start_matches("req_"));
    let relay = parsed.stream.then(|| {
        Box::new(anthropic::ReverseTranslator::new(
            fallback_id,
            parsed.model.clone(),
        )) as Box<dyn Relay>
    });
    let t = Out::new("x-request-id", relay, parsed.prompt_chars);
    relay::translated(resp, t, ctx, wctx, |completion, rec| {
        row::upstream_usage(rec, completion.get("usage").and_then(Tokens::from_openai));
        let message = anthropic::to_message(completion, &parsed.model);
        // The client's vocabulary: the Anthropic stop_reason it was given.
        row::finished(rec, &message, "/stop_reason");
        Ok(message)
    })
    .await
}
