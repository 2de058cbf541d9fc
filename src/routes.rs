//! Method + path to `Route`, table-driven and pure. Paths work with and without the `/v1`
//! prefix (R1.2) because users paste base URLs both ways.

use crate::error::RelayError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Preflight,
    Health,
    Models,
    Model(String),
    ChatCompletions,
    CreateKey,
}

impl Route {
    /// Whether the route runs on a relay key (vs. none, or the admin token).
    pub fn needs_relay_key(&self) -> bool {
        matches!(
            self,
            Route::Models | Route::Model(_) | Route::ChatCompletions
        )
    }
}

/// Exact paths: (path without `/v1`, the method it takes, route).
const TABLE: &[(&str, &str, Route)] = &[
    ("/health", "GET", Route::Health),
    ("/", "GET", Route::Health),
    ("/models", "GET", Route::Models),
    ("/chat/completions", "POST", Route::ChatCompletions),
    ("/admin/keys", "POST", Route::CreateKey),
];

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
            _ => Err(RelayError::MethodNotAllowed {
                method: method.to_string(),
                path: path.to_string(),
                allow: "GET",
            }),
        };
    }
    // Admin routes live outside /v1 only.
    if bare.starts_with("/admin") && trimmed.starts_with("/v1") {
        return Err(not_found());
    }
    let (_, allow, found) = TABLE
        .iter()
        .find(|(p, _, _)| *p == bare)
        .ok_or_else(not_found)?;
    if method == *allow || (method == "HEAD" && *allow == "GET") {
        Ok(found.clone())
    } else {
        Err(RelayError::MethodNotAllowed {
            method: method.to_string(),
            path: path.to_string(),
            allow,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
        assert_eq!(route("OPTIONS", "/anything"), Ok(Route::Preflight));
        assert_eq!(route("POST", "/admin/keys"), Ok(Route::CreateKey));
    }

    #[test]
    fn errors() {
        assert_eq!(
            route("GET", "/v1/chat/completions"),
            Err(RelayError::MethodNotAllowed {
                method: "GET".into(),
                path: "/v1/chat/completions".into(),
                allow: "POST"
            })
        );
        assert_eq!(
            route("POST", "/v1/foo"),
            Err(RelayError::RouteNotFound {
                method: "POST".into(),
                path: "/v1/foo".into()
            })
        );
        assert!(route("POST", "/v1/admin/keys").is_err());
        assert!(route("POST", "/v1/models/x").is_err());
        assert!(route("GET", "/v1x/models").is_err());
    }
}
