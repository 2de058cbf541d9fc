//! The admin dashboard's HTTP policy as data: where its files sit among the Worker's static
//! assets, the security headers every dashboard answer carries, and how long a browser may keep
//! each file. The files themselves are built from `src/dashboard/` (tests/tools/build.mjs).

/// The page's Content-Security-Policy. Everything comes from this origin and nothing runs
/// inline: the bundle is one script and one stylesheet, the chart draws on a canvas (`data:`
/// images only for what a canvas may export), and the only network use is the same-origin
/// admin API. No `unsafe-inline` anywhere, so an injected `<script>` or `style=""` is inert.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Headers on every dashboard answer, errors included.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("content-security-policy", CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    ),
];

/// Whether a request path belongs to the dashboard (so its answer gets `SECURITY_HEADERS`).
pub fn is_dashboard_path(path: &str) -> bool {
    path == "/dashboard" || path.starts_with("/dashboard/")
}

/// The file's path inside the assets directory (`build/assets`).
pub fn asset_path(file: &str) -> String {
    format!("/dashboard/{file}")
}

/// The URL to ask the assets binding for: the request's origin with the file's path (the
/// assets layer reads only the path). Plain text work, so no URL crate and its Unicode tables
/// join the bundle.
pub fn asset_url(request_url: &str, file: &str) -> String {
    let origin = request_url
        .find("://")
        .and_then(|scheme| {
            let host = scheme + 3;
            let rest = request_url.get(host..)?;
            let end = rest
                .find(['/', '?', '#'])
                .map_or(request_url.len(), |i| host + i);
            request_url.get(..end)
        })
        .unwrap_or("");
    format!("{origin}{}", asset_path(file))
}

/// The files are not content-hashed, so a browser must revalidate each use (a cheap 304 with
/// the ETag the assets layer gives); an admin tool never runs yesterday's script by accident.
pub const CACHE_CONTROL: &str = "no-cache";

/// Content types by extension, so a file is never served as something a browser would sniff.
pub fn content_type(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        Some("map") => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_is_strict() {
        assert!(!CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval"));
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'none'",
        ] {
            assert!(CSP.contains(directive), "{directive}");
        }
        assert!(!CSP.contains("  "), "one space between directives");
        let names: Vec<&str> = SECURITY_HEADERS.iter().map(|(n, _)| *n).collect();
        for name in [
            "content-security-policy",
            "x-content-type-options",
            "referrer-policy",
        ] {
            assert!(names.contains(&name), "{name}");
        }
    }

    #[test]
    fn paths_and_types() {
        assert!(is_dashboard_path("/dashboard"));
        assert!(is_dashboard_path("/dashboard/app.js"));
        assert!(!is_dashboard_path("/dashboards"));
        assert!(!is_dashboard_path("/v1/dashboard"));
        assert_eq!(asset_path("index.html"), "/dashboard/index.html");
        assert_eq!(
            asset_url("https://relay.example/dashboard?x=1#y", "index.html"),
            "https://relay.example/dashboard/index.html"
        );
        assert_eq!(
            asset_url("http://127.0.0.1:8787/dashboard/app.js", "app.js"),
            "http://127.0.0.1:8787/dashboard/app.js"
        );
        assert_eq!(
            asset_url("http://127.0.0.1:8787?q", "app.css"),
            "http://127.0.0.1:8787/dashboard/app.css"
        );
        assert_eq!(asset_url("garbage", "app.js"), "/dashboard/app.js");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}
