//! Method + path to `Route`, table-driven and pure. Paths work with and without the `/v1`
//! prefix (R1.2) because users paste base URLs both ways.

use crate::http::error::RelayError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Preflight,
    Health,
    Models,
    Model(String),
    ChatCompletions,
    /// Legacy completions, embeddings and moderations: OpenAI-format providers only.
    Completions,
    Embeddings,
    Moderations,
    /// Anthropic Messages, native: forwarded byte-faithfully to Anthropic.
    Messages,
    CountTokens,
    /// `POST /v1/responses`: the OpenAI Responses API, for every provider (§4).
    Responses,
    /// A stored response on OpenAI (`GET`/`DELETE /v1/responses/{id}`, `POST …/cancel`,
    /// `GET …/input_items`): only OpenAI keeps them, so these pass through to it (R4.1).
    StoredResponse {
        id: String,
        /// `cancel` or `input_items`; None for the response itself.
        action: Option<&'static str>,
    },
    CreateKey,
    ListKeys,
    GetKey(String),
    UpdateKey(String),
    RevokeKey(String),
    RotateKey(String),
    Usage,
    UsageExport,
    /// `GET /admin/requests`: individual usage rows, newest first.
    Requests,
    Audit,
    /// `GET /admin/keys/{id}/limits`: the key's limits and live state.
    KeyLimits(String),
    /// `GET /admin/limits`: every user and team scope that has limits.
    ListLimits,
    /// `PUT`/`GET`/`DELETE /admin/limits/teams/{team}[/users/{user}]`.
    ScopeLimits {
        method: LimitsMethod,
        team: String,
        user: Option<String>,
    },
    /// The admin dashboard: a file of its single-page app, by name (`index.html` for the page).
    Dashboard(String),
}

impl Route {
    /// Whether the route runs on a relay key (vs. none, or the admin token).
    pub fn needs_relay_key(&self) -> bool {
        matches!(
            self,
            Route::Models
                | Route::Model(_)
                | Route::ChatCompletions
                | Route::Completions
                | Route::Embeddings
                | Route::Moderations
                | Route::Messages
                | Route::CountTokens
                | Route::Responses
                | Route::StoredResponse { .. }
        )
    }

    /// Routes whose clients are Anthropic SDKs: they authenticate with `x-api-key` too and get
    /// errors in Anthropic's shape.
    pub fn is_anthropic(&self) -> bool {
        matches!(self, Route::Messages | Route::CountTokens)
    }

    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Route::CreateKey
                | Route::ListKeys
                | Route::GetKey(_)
                | Route::UpdateKey(_)
                | Route::RevokeKey(_)
                | Route::RotateKey(_)
                | Route::Usage
                | Route::UsageExport
                | Route::Requests
                | Route::Audit
                | Route::KeyLimits(_)
                | Route::ListLimits
                | Route::ScopeLimits { .. }
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitsMethod {
    Put,
    Get,
    Delete,
}

/// Exact paths (without `/v1`): (path, method, route).
const TABLE: &[(&str, &str, Route)] = &[
    ("/health", "GET", Route::Health),
    ("/", "GET", Route::Health),
    ("/models", "GET", Route::Models),
    ("/chat/completions", "POST", Route::ChatCompletions),
    ("/completions", "POST", Route::Completions),
    ("/embeddings", "POST", Route::Embeddings),
    ("/moderations", "POST", Route::Moderations),
    ("/messages", "POST", Route::Messages),
    ("/messages/count_tokens", "POST", Route::CountTokens),
    ("/responses", "POST", Route::Responses),
    ("/admin/keys", "GET", Route::ListKeys),
    ("/admin/keys", "POST", Route::CreateKey),
    ("/admin/usage", "GET", Route::Usage),
    ("/admin/usage/export", "GET", Route::UsageExport),
    ("/admin/requests", "GET", Route::Requests),
    ("/admin/audit", "GET", Route::Audit),
    ("/admin/limits", "GET", Route::ListLimits),
];

fn method_not_allowed(method: &str, path: &str, allow: &'static str) -> RelayError {
    RelayError::MethodNotAllowed {
        method: method.to_string(),
        path: path.to_string(),
        allow,
    }
}

/// `/admin/keys/{id}` and `/admin/keys/{id}/rotate`.
fn key_route(method: &str, path: &str, rest: &str) -> Option<Result<Route, RelayError>> {
    let (id, action) = match rest.split_once('/') {
        Some((id, action)) => (id, Some(action)),
        None => (rest, None),
    };
    if id.is_empty() {
        return None;
    }
    let id = id.to_string();
    Some(match (action, method) {
        (None, "GET") => Ok(Route::GetKey(id)),
        (None, "PATCH") => Ok(Route::UpdateKey(id)),
        (None, "DELETE") => Ok(Route::RevokeKey(id)),
        (None, _) => Err(method_not_allowed(method, path, "GET, PATCH, DELETE")),
        (Some("rotate"), "POST") => Ok(Route::RotateKey(id)),
        (Some("rotate"), _) => Err(method_not_allowed(method, path, "POST")),
        (Some("limits"), "GET" | "HEAD") => Ok(Route::KeyLimits(id)),
        (Some("limits"), _) => Err(method_not_allowed(method, path, "GET")),
        (Some(_), _) => return None,
    })
}

/// `/admin/limits/teams/{team}` and `/admin/limits/teams/{team}/users/{user}`. Team and user
/// are any one segment here; the handler checks they are slugs and says so in a 400.
fn limits_route(method: &str, path: &str, rest: &str) -> Option<Result<Route, RelayError>> {
    let parts: Vec<&str> = rest.split('/').collect();
    let (team, user) = match parts.as_slice() {
        [team] => (*team, None),
        [team, "users", user] => (*team, Some(*user)),
        _ => return None,
    };
    if team.is_empty() || user.is_some_and(str::is_empty) {
        return None;
    }
    let method = match method {
        "PUT" => LimitsMethod::Put,
        "GET" | "HEAD" => LimitsMethod::Get,
        "DELETE" => LimitsMethod::Delete,
        _ => return Some(Err(method_not_allowed(method, path, "GET, PUT, DELETE"))),
    };
    Some(Ok(Route::ScopeLimits {
        method,
        team: team.to_string(),
        user: user.map(str::to_string),
    }))
}

/// `/responses/{id}` and its `cancel` / `input_items`. An id is one segment of
/// `A-Z a-z 0-9 _ -`, so it cannot reach another OpenAI path when appended to the base URL.
fn stored_response_route(
    method: &str,
    path: &str,
    rest: &str,
) -> Option<Result<Route, RelayError>> {
    let (id, action) = match rest.split_once('/') {
        Some((id, action)) => (id, Some(action)),
        None => (rest, None),
    };
    let safe = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !safe {
        return None;
    }
    let (action, allowed, allow) = match action {
        None => (None, matches!(method, "GET" | "DELETE"), "GET, DELETE"),
        Some("cancel") => (Some("cancel"), method == "POST", "POST"),
        Some("input_items") => (Some("input_items"), method == "GET", "GET"),
        Some(_) => return None,
    };
    Some(if allowed {
        Ok(Route::StoredResponse {
            id: id.to_string(),
            action,
        })
    } else {
        Err(method_not_allowed(method, path, allow))
    })
}

/// `/dashboard` is the page; `/dashboard/{file}` one of its files. A file name is a single
/// segment of `A-Z a-z 0-9 . _ -` not starting with a dot, so no request can climb out of the
/// dashboard's directory or reach a dotfile in the assets.
fn dashboard_route(method: &str, path: &str, bare: &str) -> Option<Result<Route, RelayError>> {
    let file = match bare.strip_prefix("/dashboard")? {
        "" => "index.html",
        rest => {
            let file = rest.strip_prefix('/')?;
            let safe = !file.is_empty()
                && !file.starts_with('.')
                && file
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !safe {
                return None;
            }
            file
        }
    };
    Some(match method {
        "GET" | "HEAD" => Ok(Route::Dashboard(file.to_string())),
        _ => Err(method_not_allowed(method, path, "GET")),
    })
}

/// Whether `path` is the admin API or the dashboard (any method, known route or not): the
/// same-origin surface, which gets no CORS headers.
pub fn is_admin_surface(path: &str) -> bool {
    ["/admin", "/dashboard"].iter().any(|root| {
        path.strip_prefix(root)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

pub fn route(method: &str, path: &str) -> Result<Route, RelayError> {
    if method == "OPTIONS" {
        return Ok(Route::Preflight);
    }
    let trimmed = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        path
    };
    let bare = match trimmed.strip_prefix("/v1") {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => trimmed,
    };
    let not_found = || RelayError::RouteNotFound {
        method: method.to_string(),
        path: path.to_string(),
    };
    // /v1/models/{id}: the id may itself contain '/', so take the whole rest.
    if let Some(id) = bare.strip_prefix("/models/").filter(|id| !id.is_empty()) {
        return match method {
            "GET" | "HEAD" => Ok(Route::Model(id.to_string())),
            _ => Err(method_not_allowed(method, path, "GET")),
        };
    }
    // Admin routes and the dashboard live outside /v1 only.
    if (bare.starts_with("/admin") || bare.starts_with("/dashboard")) && trimmed.starts_with("/v1")
    {
        return Err(not_found());
    }
    if bare == "/dashboard" || bare.starts_with("/dashboard/") {
        return dashboard_route(method, path, bare).unwrap_or_else(|| Err(not_found()));
    }
    if let Some(rest) = bare.strip_prefix("/responses/") {
        return stored_response_route(method, path, rest).unwrap_or_else(|| Err(not_found()));
    }
    if let Some(rest) = bare.strip_prefix("/admin/limits/teams/") {
        return limits_route(method, path, rest).unwrap_or_else(|| Err(not_found()));
    }
    if let Some(rest) = bare.strip_prefix("/admin/keys/") {
        return key_route(method, path, rest).unwrap_or_else(|| Err(not_found()));
    }
    let matching: Vec<&(&str, &str, Route)> = TABLE.iter().filter(|(p, _, _)| *p == bare).collect();
    if matching.is_empty() {
        return Err(not_found());
    }
    let head_as_get = if method == "HEAD" { "GET" } else { method };
    if let Some((_, _, found)) = matching.iter().find(|(_, m, _)| *m == head_as_get) {
        return Ok(found.clone());
    }
    let allow = match bare {
        "/admin/keys" => "GET, POST",
        _ => matching.first().map_or("GET", |(_, m, _)| *m),
    };
    Err(method_not_allowed(method, path, allow))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn admin_surface() {
        for p in [
            "/admin",
            "/admin/",
            "/admin/keys",
            "/admin/usage/export",
            "/dashboard",
            "/dashboard/app.js",
        ] {
            assert!(is_admin_surface(p), "{p}");
        }
        for p in [
            "/",
            "/v1/chat/completions",
            "/administrator",
            "/dashboards",
            "/v1/models",
            "/health",
        ] {
            assert!(!is_admin_surface(p), "{p}");
        }
    }

    #[test]
    fn table() {
        assert_eq!(
            route("POST", "/v1/chat/completions"),
            Ok(Route::ChatCompletions)
        );
        assert_eq!(
            route("POST", "/chat/completions"),
            Ok(Route::ChatCompletions)
        );
        assert_eq!(
            route("POST", "/v1/chat/completions/"),
            Ok(Route::ChatCompletions)
        );
        assert_eq!(route("GET", "/v1/models"), Ok(Route::Models));
        assert_eq!(route("GET", "/models"), Ok(Route::Models));
        assert_eq!(
            route("GET", "/v1/models/anthropic/claude-x"),
            Ok(Route::Model("anthropic/claude-x".into()))
        );
        assert_eq!(route("GET", "/health"), Ok(Route::Health));
        assert_eq!(route("POST", "/v1/moderations"), Ok(Route::Moderations));
        assert_eq!(route("POST", "/moderations"), Ok(Route::Moderations));
        assert!(Route::Moderations.needs_relay_key());
        assert!(matches!(
            route("GET", "/v1/moderations"),
            Err(RelayError::MethodNotAllowed { allow: "POST", .. })
        ));
        assert_eq!(route("OPTIONS", "/anything"), Ok(Route::Preflight));
        assert_eq!(route("POST", "/admin/keys"), Ok(Route::CreateKey));
        assert_eq!(route("GET", "/admin/keys"), Ok(Route::ListKeys));
        assert_eq!(
            route("GET", "/admin/keys/key_1"),
            Ok(Route::GetKey("key_1".into()))
        );
        assert_eq!(
            route("PATCH", "/admin/keys/key_1"),
            Ok(Route::UpdateKey("key_1".into()))
        );
        assert_eq!(
            route("DELETE", "/admin/keys/key_1"),
            Ok(Route::RevokeKey("key_1".into()))
        );
        assert_eq!(
            route("POST", "/admin/keys/key_1/rotate"),
            Ok(Route::RotateKey("key_1".into()))
        );
        assert_eq!(route("GET", "/admin/usage"), Ok(Route::Usage));
        assert_eq!(route("GET", "/admin/usage/export"), Ok(Route::UsageExport));
        assert_eq!(route("GET", "/admin/audit"), Ok(Route::Audit));
        assert_eq!(route("GET", "/admin/requests"), Ok(Route::Requests));
        assert!(Route::Requests.is_admin() && !Route::Requests.needs_relay_key());
        assert_eq!(route("POST", "/v1/messages"), Ok(Route::Messages));
        assert_eq!(
            route("POST", "/messages/count_tokens"),
            Ok(Route::CountTokens)
        );
        assert!(Route::Messages.is_anthropic() && Route::Messages.needs_relay_key());
        assert!(Route::Audit.is_admin() && !Route::Models.is_admin());
    }

    #[test]
    fn errors() {
        assert_eq!(
            route("GET", "/v1/chat/completions"),
            Err(method_not_allowed("GET", "/v1/chat/completions", "POST"))
        );
        assert_eq!(
            route("POST", "/v1/foo"),
            Err(RelayError::RouteNotFound {
                method: "POST".into(),
                path: "/v1/foo".into()
            })
        );
        assert_eq!(
            route("PUT", "/admin/keys"),
            Err(method_not_allowed("PUT", "/admin/keys", "GET, POST"))
        );
        assert_eq!(
            route("POST", "/admin/keys/key_1"),
            Err(method_not_allowed(
                "POST",
                "/admin/keys/key_1",
                "GET, PATCH, DELETE"
            ))
        );
        assert!(route("GET", "/admin/keys/key_1/explode").is_err());
        assert!(route("POST", "/v1/admin/keys").is_err());
        assert!(route("POST", "/v1/models/x").is_err());
        assert!(route("GET", "/v1x/models").is_err());
        assert_eq!(
            route("POST", "/admin/requests"),
            Err(method_not_allowed("POST", "/admin/requests", "GET"))
        );
    }

    #[test]
    fn responses() {
        assert_eq!(route("POST", "/v1/responses"), Ok(Route::Responses));
        assert_eq!(route("POST", "/responses"), Ok(Route::Responses));
        assert!(Route::Responses.needs_relay_key() && !Route::Responses.is_anthropic());
        let stored = |id: &str, action| {
            Ok(Route::StoredResponse {
                id: id.into(),
                action,
            })
        };
        assert_eq!(route("GET", "/v1/responses/resp_1"), stored("resp_1", None));
        assert_eq!(route("DELETE", "/responses/resp_1"), stored("resp_1", None));
        assert_eq!(
            route("POST", "/v1/responses/resp_1/cancel"),
            stored("resp_1", Some("cancel"))
        );
        assert_eq!(
            route("GET", "/v1/responses/resp_1/input_items"),
            stored("resp_1", Some("input_items"))
        );
        assert_eq!(
            route("GET", "/v1/responses"),
            Err(method_not_allowed("GET", "/v1/responses", "POST"))
        );
        assert_eq!(
            route("POST", "/v1/responses/resp_1"),
            Err(method_not_allowed(
                "POST",
                "/v1/responses/resp_1",
                "GET, DELETE"
            ))
        );
        for bad in [
            "/v1/responses/a%2F..",
            "/v1/responses/../models",
            "/v1/responses/r/x",
        ] {
            assert!(
                matches!(route("GET", bad), Err(RelayError::RouteNotFound { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn dashboard() {
        let page = Ok(Route::Dashboard("index.html".into()));
        assert_eq!(route("GET", "/dashboard"), page);
        assert_eq!(route("GET", "/dashboard/"), page);
        assert_eq!(route("HEAD", "/dashboard"), page);
        assert_eq!(
            route("GET", "/dashboard/app.js"),
            Ok(Route::Dashboard("app.js".into()))
        );
        assert_eq!(
            route("GET", "/dashboard/app-1.min.css"),
            Ok(Route::Dashboard("app-1.min.css".into()))
        );
        assert_eq!(
            route("POST", "/dashboard"),
            Err(method_not_allowed("POST", "/dashboard", "GET"))
        );
        let dashboard = Route::Dashboard("index.html".into());
        assert!(!dashboard.is_admin() && !dashboard.needs_relay_key());
        for bad in [
            "/dashboard/../wrangler.toml",
            "/dashboard/a/b.js",
            "/dashboard/.env",
            "/dashboard/%2e%2e",
            "/dashboard/a%20b",
            "/dashboardx",
            "/v1/dashboard",
            "/v1/dashboard/app.js",
        ] {
            assert_eq!(
                route("GET", bad),
                Err(RelayError::RouteNotFound {
                    method: "GET".into(),
                    path: bad.into()
                }),
                "{bad}"
            );
        }
    }
}

/// The query string of a request URL as decoded pairs (`+` is a space, `%XX` a byte), without
/// pulling a URL crate (and its Unicode tables) into the bundle for this alone.
pub fn query_pairs(url: &str) -> Vec<(String, String)> {
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(""))
        .unwrap_or("");
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| char::from(*c).to_digit(16));
        match b {
            b'+' => out.push(b' '),
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod query_tests {
    use super::*;

    #[test]
    fn decodes_pairs() {
        let pairs = query_pairs("https://r.example/admin/usage?from=2026-11-01T00%3A00%3A00Z&group_by=team,model&team=a+b&x&bad=%zz&u=%C3%A9#frag=1");
        let expected: Vec<(String, String)> = [
            ("from", "2026-11-01T00:00:00Z"),
            ("group_by", "team,model"),
            ("team", "a b"),
            ("x", ""),
            ("bad", "%zz"),
            ("u", "é"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(pairs, expected);
        assert!(query_pairs("https://r.example/admin/keys").is_empty());
    }

    #[test]
    fn limits_routes() {
        assert_eq!(route("GET", "/admin/limits"), Ok(Route::ListLimits));
        assert_eq!(
            route("GET", "/admin/keys/key_1/limits"),
            Ok(Route::KeyLimits("key_1".into()))
        );
        assert_eq!(
            route("PATCH", "/admin/keys/key_1/limits"),
            Err(method_not_allowed(
                "PATCH",
                "/admin/keys/key_1/limits",
                "GET"
            ))
        );
        assert_eq!(
            route("PUT", "/admin/limits/teams/platform"),
            Ok(Route::ScopeLimits {
                method: LimitsMethod::Put,
                team: "platform".into(),
                user: None
            })
        );
        assert_eq!(
            route("DELETE", "/admin/limits/teams/platform/users/ann"),
            Ok(Route::ScopeLimits {
                method: LimitsMethod::Delete,
                team: "platform".into(),
                user: Some("ann".into())
            })
        );
        assert_eq!(
            route("POST", "/admin/limits/teams/platform"),
            Err(method_not_allowed(
                "POST",
                "/admin/limits/teams/platform",
                "GET, PUT, DELETE"
            ))
        );
        for p in [
            "/admin/limits/teams/",
            "/admin/limits/teams/a/users",
            "/admin/limits/teams/a/users/",
            "/admin/limits/teams/a/members/b",
            "/v1/admin/limits",
        ] {
            assert!(route("GET", p).is_err(), "{p}");
        }
        assert!(Route::ListLimits.is_admin() && !Route::ListLimits.needs_relay_key());
        assert!(Route::KeyLimits("k".into()).is_admin());
    }
}
