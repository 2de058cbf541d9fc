//! Serves the dashboard's files from the Worker's static assets (the `ASSETS` binding) behind
//! the same gate as the admin API, with the content type and caching `crate::dashboard` sets.
//! The page itself holds no secret: it asks for the admin token and sends it to `/admin/…`.

use worker::{Headers, Method, Request, RequestInit, Response};

use super::{header, Ctx};
use crate::dashboard;
use crate::http::error::RelayError;

const ASSETS_BINDING: &str = "ASSETS";

fn internal(what: &'static str) -> impl Fn(worker::Error) -> RelayError {
    move |e| RelayError::Internal(format!("{what}: {e}"))
}

/// One dashboard file. Without `ADMIN_TOKEN` the dashboard is as absent as the admin API (404),
/// so a relay without admin access does not advertise a page that cannot work.
pub async fn serve(file: &str, req: &Request, ctx: &Ctx) -> Result<Response, RelayError> {
    let not_found = || RelayError::RouteNotFound {
        method: req.method().to_string(),
        path: req.path(),
    };
    if ctx.config.admin_token.is_none() {
        return Err(not_found());
    }
    // Deployers may drop [assets] to keep Cloudflare's asset router off the API path; then
    // there is no page to serve, which is a 404, not a relay failure.
    let Ok(assets) = ctx.env.assets(ASSETS_BINDING) else {
        worker::console_log!(
            "dashboard: no ASSETS binding ([assets] is not in wrangler.toml), answering 404"
        );
        return Err(not_found());
    };
    let url = dashboard::asset_url(&req.inner().url(), file);
    let forwarded = Headers::new();
    // Lets the assets layer answer 304 when the browser's copy is current.
    if let Some(tag) = header(req, "if-none-match") {
        forwarded
            .set("if-none-match", &tag)
            .map_err(internal("header"))?;
    }
    let method = if req.method() == Method::Head {
        Method::Head
    } else {
        Method::Get
    };
    let mut init = RequestInit::new();
    init.with_method(method).with_headers(forwarded);
    let mut found = assets
        .fetch(url, Some(init))
        .await
        .map_err(internal("assets fetch"))?;
    let status = found.status_code();
    match status {
        200 | 304 => {}
        404 => return Err(not_found()),
        other => {
            return Err(RelayError::Internal(format!(
                "assets answered {other} for {file}"
            )))
        }
    }
    // A fetched response's headers are immutable, so the answer is a new response.
    let headers = Headers::new();
    let set = |name: &str, value: &str| headers.set(name, value).map_err(internal("header"));
    set("content-type", dashboard::content_type(file))?;
    set("cache-control", dashboard::CACHE_CONTROL)?;
    if let Some(tag) = found.headers().get("etag").ok().flatten() {
        set("etag", &tag)?;
    }
    let body = if status == 200 {
        found.bytes().await.map_err(internal("assets body"))?
    } else {
        Vec::new()
    };
    Ok(Response::builder()
        .with_status(status)
        .with_headers(headers)
        .fixed(body))
}

/// Adds the dashboard's security headers (CSP and friends) to an answer, errors included.
pub fn secure(resp: &mut Response) {
    let headers = resp.headers_mut();
    for (name, value) in dashboard::SECURITY_HEADERS {
        let _ = headers.set(name, value);
    }
}
