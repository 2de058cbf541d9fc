//! The flow's driver: performs the steps `flow::attempts` decides (calls, waits), and hands the
//! serving provider's answer to the client, passed through or through a stream relay, metered.

use std::time::Duration;

use worker::{Context, Delay, Headers, Request, Response};

use super::{bytes_response, metered, pump, upstream, Ctx};
use crate::flow::attempts::{self, Attempts, Call, Plan, Step};
use crate::flow::row::{self, Answer};
use crate::http::error::RelayError;
use crate::metering::usage::UsageRecord;
use crate::protocols::stream::Relay;
use crate::providers::models::Target;

/// Runs the attempts plan until a target answers with status below 400. All of this happens
/// before the client sees a byte, so a failover is invisible to it; the row records the target
/// that served and how many attempts it took. Bounded: the plan ends within `MAX_ATTEMPTS`.
pub async fn send<'t>(
    req: &Request,
    targets: &'t [Target],
    ctx: &mut Ctx,
    plan: &dyn Plan,
    model: &str,
) -> Result<(Response, &'t Target), RelayError> {
    // Before the first attempt: reserve in every scope with limits, or refuse (README: "Limits").
    let (prompt_chars, cap) = plan.reservation();
    super::limits::check(ctx, targets, model, prompt_chars, cap).await?;
    let mut flow = Attempts::new(targets, model);
    let mut step = flow.start(plan, &ctx.config);
    loop {
        step = match step {
            Step::Call(call) => {
                let target = call.target;
                match attempt(req, call, ctx, plan).await {
                    Ok(resp) => {
                        ctx.idle_timeout_ms = target.spec.as_ref().and_then(|s| s.idle_timeout_ms);
                        return Ok((resp, target));
                    }
                    Err(e) => flow.failed(e, plan, &ctx.config),
                }
            }
            Step::Wait { ms } => {
                Delay::from(Duration::from_millis(ms)).await;
                flow.waited()
            }
            Step::GiveUp(e) => return Err(e),
        };
    }
}

/// One call: the provider's answer if it accepted, else the failure as the plan reads it.
async fn attempt(
    req: &Request,
    call: Call<'_>,
    ctx: &mut Ctx,
    plan: &dyn Plan,
) -> Result<Response, RelayError> {
    let target = call.target;
    if let Some(rec) = ctx.rec() {
        row::attempting(rec, target, call.attempt);
    }
    let mut resp = upstream::send(upstream::call(target, req, call.path, call.body, ctx)).await?;
    let status = resp.status_code();
    if status < 400 {
        return Ok(resp);
    }
    let headers = resp.headers();
    let retry_after = headers.get("retry-after").ok().flatten();
    let upstream_id = headers
        .get("x-request-id")
        .ok()
        .flatten()
        .or_else(|| headers.get("request-id").ok().flatten());
    let bytes = resp.bytes().await.unwrap_or_default();
    if let Some(rec) = ctx.rec() {
        row::rejected(rec, upstream_id, &bytes);
    }
    Err(attempts::failure(
        plan.client(),
        target,
        status,
        bytes,
        retry_after,
    ))
}

/// A provider accepted the request (`flow::row::served`).
pub fn served(ctx: &mut Ctx, prompt_chars: u64) {
    if let Some(rec) = ctx.rec() {
        row::served(rec, prompt_chars);
    }
}

/// Where a provider's answer goes: the header naming its request id, the relay for a streamed
/// answer (when the client asked for one), and the prompt's size for the stream's estimate.
pub struct Out {
    id_header: &'static str,
    relay: Option<Box<dyn Relay>>,
    prompt_chars: u64,
    sse_only: bool,
}

impl Out {
    pub fn new(id_header: &'static str, relay: Option<Box<dyn Relay>>, prompt_chars: u64) -> Self {
        Out {
            id_header,
            relay,
            prompt_chars,
            sse_only: false,
        }
    }

    /// A translated stream request answered without a stream is the provider's fault.
    pub fn sse_only(self) -> Self {
        Out {
            sse_only: true,
            ..self
        }
    }
}

/// The provider's answer relayed as it came, with the headers the client may see: an SSE
/// answer through the relay, metered; a JSON body after the row has read it as `answer`.
pub async fn pass_through(
    mut resp: Response,
    p: Out,
    answer: Answer,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let status = resp.status_code();
    let upstream_headers = resp.headers().clone();
    ctx.upstream_answered(upstream_headers.get(p.id_header).ok().flatten());
    let copied = copy_headers(&upstream_headers);
    if let Some(relay) = p.relay.filter(|_| is_sse(&upstream_headers)) {
        return relay_body(&mut resp, relay, p.prompt_chars, copied, ctx, wctx);
    }
    let (body, json) = read_json(&mut resp).await?;
    read_answer(ctx, answer, &json)?;
    let content_type = upstream_headers
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_else(|| "application/json".to_string());
    bytes_response(status, &content_type, body, copied)
}

/// A provider's answer in another wire format than the client's: a stream through the relay
/// (when the client asked for one), or the JSON body rebuilt by `rebuild`, which also fills
/// the row.
pub async fn translated(
    mut resp: Response,
    t: Out,
    ctx: &mut Ctx,
    wctx: &Context,
    rebuild: impl FnOnce(&serde_json::Value, &mut UsageRecord) -> Result<serde_json::Value, RelayError>,
) -> Result<Response, RelayError> {
    ctx.upstream_answered(resp.headers().get(t.id_header).ok().flatten());
    if let Some(relay) = t.relay {
        if t.sse_only && !is_sse(resp.headers()) {
            return Err(RelayError::UpstreamUnavailable(
                "upstream answered a stream request with a non-stream body".to_string(),
            ));
        }
        return relay_body(&mut resp, relay, t.prompt_chars, Headers::new(), ctx, wctx);
    }
    let (_, json) = read_json(&mut resp).await?;
    let out = match ctx.rec() {
        Some(rec) => rebuild(&json, rec)?,
        None => rebuild(&json, &mut scratch())?,
    };
    bytes_response(
        200,
        "application/json",
        out.to_string().into_bytes(),
        Headers::new(),
    )
}

/// relay-echo's answer: streamed through `relay`, or `None` once the row has its tokens (the
/// caller shapes the completion).
pub fn echo_stream(
    e: &crate::providers::echo::Echo<'_>,
    relay: Option<Box<dyn Relay>>,
    prompt_chars: u64,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Option<Response>, RelayError> {
    ctx.upstream_answered(None);
    if let Some(relay) = relay {
        let chunks = futures_util::stream::iter(e.stream_chunks().into_iter().map(Ok));
        return stream_response(chunks, relay, prompt_chars, Headers::new(), ctx, wctx).map(Some);
    }
    if let Some(rec) = ctx.rec() {
        row::echo_answered(rec, e.tokens);
    }
    Ok(None)
}

/// A row for answers read when the real one has gone to a stream's watcher (never, in
/// practice): what they record is dropped.
fn scratch() -> UsageRecord {
    UsageRecord::begin("", "", "", String::new())
}

/// `Answer::read` into the row (a stream's watcher owns it once taken: nothing to record).
pub fn read_answer(
    ctx: &mut Ctx,
    answer: Answer,
    json: &serde_json::Value,
) -> Result<(), RelayError> {
    match ctx.rec() {
        Some(rec) => answer.read(json, rec),
        None => answer.read(json, &mut scratch()),
    }
}

pub fn is_sse(headers: &Headers) -> bool {
    headers
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|ct| ct.starts_with("text/event-stream"))
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

/// A provider's streamed answer relayed to the client through `relay`, metered.
pub fn relay_body(
    resp: &mut Response,
    relay: Box<dyn Relay>,
    prompt_chars: u64,
    headers: Headers,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError> {
    let body = pump::upstream(resp)
        .ok_or_else(|| RelayError::UpstreamUnavailable("upstream body: none".to_string()))?;
    stream_response(body, relay, prompt_chars, headers, ctx, wctx)
}

/// Hands the row to the stream's watcher and returns the SSE response.
pub fn stream_response<S>(
    body: S,
    relay: Box<dyn Relay>,
    prompt_chars: u64,
    headers: Headers,
    ctx: &mut Ctx,
    wctx: &Context,
) -> Result<Response, RelayError>
where
    S: futures_util::Stream<Item = worker::Result<Vec<u8>>> + 'static,
{
    let relay = super::cache::capture(relay, ctx);
    let m = metering(ctx, prompt_chars)?;
    let (metered, watcher) = metered::meter(body, relay, m, ctx.env.clone());
    let (client, watcher) = pump::respond(metered, watcher)
        .map_err(|e| RelayError::Internal(format!("client stream: {e:?}")))?;
    wctx.wait_until(watcher);
    Ok(Response::builder()
        .with_headers(sse_headers(headers)?)
        .stream(client))
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
        cache: super::cache::take_stream(ctx),
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

pub fn copy_headers(from: &Headers) -> Headers {
    let out = Headers::new();
    for (name, value) in from.entries() {
        if crate::http::headers::return_to_client(&name) {
            let _ = out.append(&name, &value);
        }
    }
    out
}
