//! Calls to the provider: only the client headers `crate::http::headers` allows (protocol.md §1.3),
//! the provider key in place of the client's, a time-to-first-byte timeout, and upstream errors
//! mapped to `RelayError`.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::js_sys::Uint8Array;
use worker::{AbortController, Delay, Fetch, Headers, Method, Request, RequestInit, Response};

use super::{claude, Ctx};
use crate::http::error::RelayError;
use crate::http::headers;
use crate::providers::models::{Provider, Target};
use crate::providers::{KeyHeader, Kind};

pub struct Call<'a> {
    pub url: String,
    pub api_key: String,
    pub key_header: KeyHeader,
    /// The provider's wire format, which decides the client headers it may see.
    pub kind: Kind,
    /// Set after the client's headers, so they win over anything the client sent.
    pub extra_headers: Vec<(&'static str, String)>,
    pub client_headers: &'a Headers,
    pub method: Method,
    /// Sent as JSON; `None` for the stored-response routes' GET and DELETE.
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u64,
}

/// The call for `path` (`/chat/completions`, `/v1/messages`, …) on a target's provider, with
/// its key, its headers and its time-to-first-byte budget.
pub fn call<'a>(
    target: &Target,
    req: &'a Request,
    path: &str,
    body: Vec<u8>,
    ctx: &Ctx,
) -> Call<'a> {
    let spec = target.spec.as_ref();
    Call {
        url: spec.map(|s| s.url(path)).unwrap_or_default(),
        api_key: spec.and_then(|s| s.api_key.clone()).unwrap_or_default(),
        key_header: spec.map_or(KeyHeader::Bearer, |s| s.key_header),
        kind: spec.map_or(Kind::OpenAi, |s| s.kind),
        extra_headers: if target.provider == Provider::Anthropic {
            claude::anthropic_headers(req)
        } else {
            Vec::new()
        },
        client_headers: req.headers(),
        method: Method::Post,
        body: Some(body),
        timeout_ms: spec
            .and_then(|s| s.ttfb_timeout_ms)
            .unwrap_or(ctx.config.upstream_timeout_ms),
    }
}

/// Sends the request and waits for the response headers, or fails with a `RelayError`.
pub async fn send(call: Call<'_>) -> Result<Response, RelayError> {
    let headers = Headers::new();
    let internal =
        |e: worker::Error| RelayError::Internal(format!("building upstream request: {e}"));
    let client: Vec<(String, String)> = call.client_headers.entries().collect();
    let allowed = headers::provider_headers(
        call.kind,
        client.iter().map(|(n, v)| (n.as_str(), v.as_str())),
    );
    for (name, value) in &allowed {
        headers.set(name, value).map_err(internal)?;
    }
    headers
        .set("user-agent", headers::USER_AGENT)
        .map_err(internal)?;
    match call.key_header {
        KeyHeader::Bearer => headers
            .set("authorization", &format!("Bearer {}", call.api_key))
            .map_err(internal)?,
        KeyHeader::XApiKey => headers.set("x-api-key", &call.api_key).map_err(internal)?,
        KeyHeader::ApiKey => headers.set("api-key", &call.api_key).map_err(internal)?,
    }
    for (name, value) in &call.extra_headers {
        headers.set(name, value).map_err(internal)?;
    }
    let mut init = RequestInit::new();
    if let Some(body) = &call.body {
        headers
            .set("content-type", "application/json")
            .map_err(internal)?;
        init.with_body(Some(Uint8Array::from(body.as_slice()).into()));
    }
    init.with_method(call.method).with_headers(headers);
    let request = Request::new_with_init(&call.url, &init).map_err(internal)?;

    let controller = AbortController::default();
    let signal = controller.signal();
    let fetch = Fetch::Request(request);
    let answered = {
        let sent = Box::pin(fetch.send_with_signal(&signal));
        let timer = Delay::from(Duration::from_millis(call.timeout_ms));
        match select(sent, timer).await {
            Either::Left((result, _)) => Some(result),
            Either::Right(_) => None,
        }
    };
    match answered {
        Some(Ok(resp)) => Ok(resp),
        Some(Err(e)) => Err(RelayError::UpstreamUnavailable(format!(
            "fetch failed: {e}"
        ))),
        None => {
            controller.abort();
            Err(RelayError::UpstreamTimeout)
        }
    }
}
