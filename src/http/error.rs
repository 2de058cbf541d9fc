//! `RelayError`: every error the relay answers with, and the only place that renders one —
//! status, headers, OpenAI body, Anthropic body, and the in-band form once a stream has started.

use serde_json::{json, Value};

use crate::limits::ledger::LimitName;

/// Why a relay key was refused; each gets its own message so a user knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyProblem {
    Missing,
    /// Not in `lc_<env>_<team>_<user>_<secret>` form, or no such key; carries the masked key.
    Unknown(String),
    Revoked,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayError {
    InvalidApiKey(KeyProblem),
    AdminUnauthorized,
    /// Malformed body or parameter: 400 with the offending `param` when there is one.
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    ModelNotFound(String),
    /// The key's policy does not include this model.
    ModelNotAllowed(String),
    /// The model's provider does not serve this endpoint (R3.1).
    UnsupportedEndpoint {
        model: String,
        path: String,
    },
    /// No key (or other admin object) with this id.
    NotFound {
        what: &'static str,
        id: String,
    },
    /// A stored OpenAI response this key may not see (another key's, or one the relay never
    /// saw created): OpenAI's own answer for an id it does not know, so a refusal cannot be
    /// told from a response that does not exist.
    ResponseNotFound(String),
    /// `previous_response_id` naming a response this key may not build on: OpenAI's own 400
    /// for an unknown one, for the same reason.
    PreviousResponseNotFound(String),
    RouteNotFound {
        method: String,
        path: String,
    },
    MethodNotAllowed {
        method: String,
        path: String,
        allow: &'static str,
    },
    PayloadTooLarge {
        limit: usize,
    },
    /// An upstream 4xx about the request itself; the client's business, so it passes through.
    /// `body` is the upstream's own OpenAI-shaped JSON when it sent one.
    UpstreamRejected {
        status: u16,
        body: Option<Vec<u8>>,
        retry_after: Option<String>,
    },
    /// The upstream refused the relay's own provider key (401/403): never the user's fault.
    UpstreamAuth,
    /// Upstream unreachable, 5xx, or an answer the relay cannot use.
    UpstreamUnavailable(String),
    /// The provider is overloaded (Anthropic 529), or the relay's provider account is out of
    /// credit (`insufficient_quota`, Anthropic 402): 503, since OpenAI clients know no 529 and a
    /// quota problem is the operator's, not the user's (protocol.md R2.4, §6.7).
    UpstreamExhausted {
        quota: bool,
    },
    UpstreamTimeout,
    /// The upstream stream stopped before its terminal marker (R2.7).
    UpstreamStreamEnded,
    /// An admin change is saved in D1 but KV, which requests are checked against, could not
    /// be brought in line; the detail is for the log. Retrying the same call repairs KV.
    KeySyncFailed(String),
    /// Too many failed authentications from one client address (README: "Errors").
    AuthThrottled {
        retry_after_s: u64,
    },
    /// A spend or rate limit of the key, its user or its team refused the request (README:
    /// "Limits"); boxed, as it carries its own message and headers.
    Limited(Box<crate::limits::answer::Refused>),
    /// A relay bug or a platform failure (KV/D1 unavailable).
    Internal(String),
}

impl RelayError {
    pub fn invalid(message: impl Into<String>, param: Option<&str>) -> Self {
        RelayError::InvalidRequest {
            message: message.into(),
            param: param.map(str::to_string),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            RelayError::InvalidApiKey(_) | RelayError::AdminUnauthorized => 401,
            RelayError::InvalidRequest { .. }
            | RelayError::UnsupportedEndpoint { .. }
            | RelayError::PreviousResponseNotFound(_) => 400,
            RelayError::ModelNotAllowed(_) => 403,
            RelayError::ModelNotFound(_)
            | RelayError::NotFound { .. }
            | RelayError::ResponseNotFound(_)
            | RelayError::RouteNotFound { .. } => 404,
            RelayError::MethodNotAllowed { .. } => 405,
            RelayError::PayloadTooLarge { .. } => 413,
            RelayError::UpstreamRejected { status, .. } => *status,
            RelayError::UpstreamAuth
            | RelayError::UpstreamUnavailable(_)
            | RelayError::UpstreamStreamEnded => 502,
            RelayError::UpstreamExhausted { .. } | RelayError::KeySyncFailed(_) => 503,
            RelayError::AuthThrottled { .. } => 429,
            RelayError::Limited(r) => match r.limit {
                LimitName::Unpriced => 400,
                LimitName::Unavailable => 503,
                _ => 429,
            },
            RelayError::UpstreamTimeout => 504,
            RelayError::Internal(_) => 500,
        }
    }

    /// Short machine-readable code stored in the usage row.
    pub fn code(&self) -> &'static str {
        match self {
            RelayError::InvalidApiKey(_) => "invalid_api_key",
            RelayError::AdminUnauthorized => "invalid_admin_token",
            RelayError::InvalidRequest { .. } => "invalid_request",
            RelayError::ModelNotFound(_) => "model_not_found",
            RelayError::ModelNotAllowed(_) => "model_not_allowed",
            RelayError::UnsupportedEndpoint { .. } => "unsupported_endpoint",
            RelayError::NotFound { .. } => "not_found",
            RelayError::ResponseNotFound(_) => "response_not_found",
            RelayError::PreviousResponseNotFound(_) => "previous_response_not_found",
            RelayError::RouteNotFound { .. } => "route_not_found",
            RelayError::MethodNotAllowed { .. } => "method_not_allowed",
            RelayError::PayloadTooLarge { .. } => "request_too_large",
            RelayError::UpstreamRejected { .. } => "upstream_rejected",
            RelayError::UpstreamAuth | RelayError::UpstreamUnavailable(_) => "upstream_error",
            RelayError::UpstreamExhausted { quota: false } => "overloaded",
            RelayError::UpstreamExhausted { quota: true } => "upstream_unavailable",
            RelayError::UpstreamTimeout => "timeout",
            RelayError::UpstreamStreamEnded => "upstream_stream_error",
            RelayError::KeySyncFailed(_) => "key_sync_failed",
            RelayError::AuthThrottled { .. } => "too_many_failed_attempts",
            RelayError::Limited(r) => match r.limit {
                LimitName::Budget => "budget_exceeded",
                LimitName::Unpriced => "model_not_priced",
                LimitName::Unavailable => "limits_unavailable",
                _ => "rate_limit_exceeded",
            },
            RelayError::Internal(_) => "internal_error",
        }
    }

    /// Extra response headers; SDKs read `retry-after` and `x-should-retry` before retrying.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            RelayError::MethodNotAllowed { allow, .. } => vec![("allow", (*allow).to_string())],
            RelayError::UpstreamRejected {
                retry_after: Some(v),
                ..
            } => vec![("retry-after", v.clone())],
            RelayError::UpstreamAuth | RelayError::UpstreamExhausted { quota: true } => {
                vec![("x-should-retry", "false".to_string())]
            }
            RelayError::AuthThrottled { retry_after_s } => {
                vec![("retry-after", retry_after_s.to_string())]
            }
            RelayError::Limited(r) => r.headers.clone(),
            _ => Vec::new(),
        }
    }

    fn message(&self) -> String {
        match self {
            RelayError::InvalidApiKey(KeyProblem::Missing) => "You didn't provide an API key. You need to provide your relay key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".to_string(),
            RelayError::InvalidApiKey(KeyProblem::Unknown(masked)) => {
                format!("Incorrect API key provided: {masked}.")
            }
            RelayError::InvalidApiKey(KeyProblem::Revoked) => {
                "This API key has been revoked.".to_string()
            }
            RelayError::InvalidApiKey(KeyProblem::Expired) => {
                "This API key has expired.".to_string()
            }
            RelayError::AdminUnauthorized => "Invalid admin token.".to_string(),
            RelayError::InvalidRequest { message, .. } => message.clone(),
            RelayError::ModelNotFound(model) => {
                format!("The model '{model}' does not exist or you do not have access to it.")
            }
            RelayError::ModelNotAllowed(model) => {
                format!("Key is not permitted to use model '{model}'.")
            }
            RelayError::NotFound { what, id } => format!("No {what} with id '{id}'."),
            RelayError::ResponseNotFound(id) => format!("Response with id '{id}' not found."),
            RelayError::PreviousResponseNotFound(id) => {
                format!("Previous response with id '{id}' not found.")
            }
            RelayError::UnsupportedEndpoint { model, path } => {
                format!("Model '{model}' does not support {path}")
            }
            RelayError::RouteNotFound { method, path } => format!("Invalid URL ({method} {path})"),
            RelayError::MethodNotAllowed { method, path, allow } => {
                format!("Method {method} is not allowed on {path}; use {allow}.")
            }
            RelayError::PayloadTooLarge { limit } => {
                format!("Request too large: the body exceeds the relay's limit of {limit} bytes.")
            }
            RelayError::UpstreamRejected { status, .. } => {
                format!("The upstream provider rejected the request with status {status}.")
            }
            RelayError::UpstreamAuth => {
                "Upstream provider error: the relay's provider credentials were rejected. Contact the relay operator.".to_string()
            }
            RelayError::UpstreamUnavailable(_) => "Upstream provider error.".to_string(),
            RelayError::UpstreamExhausted { quota: false } => {
                "The upstream provider is overloaded. Please try again shortly.".to_string()
            }
            RelayError::UpstreamExhausted { quota: true } => {
                "Upstream provider unavailable: the relay's provider account is out of credit. Contact the relay operator.".to_string()
            }
            RelayError::UpstreamTimeout => "Upstream timed out.".to_string(),
            RelayError::UpstreamStreamEnded => "Upstream stream ended unexpectedly.".to_string(),
            RelayError::KeySyncFailed(_) => "The change is saved, but the copy of the key that requests are checked against could not be updated, so the key's previous state (and, after a rotation, its previous secret) may still be accepted. Retry the same request: it repairs the copy.".to_string(),
            RelayError::AuthThrottled { retry_after_s } => format!(
                "Too many failed authentication attempts from your address. Try again in {retry_after_s} seconds."
            ),
            RelayError::Limited(r) => r.message.clone(),
            RelayError::Internal(_) => {
                "The server had an error while processing your request.".to_string()
            }
        }
    }

    fn openai_type(&self) -> &'static str {
        if let RelayError::Limited(r) = self {
            // OpenAI's own types: `insufficient_quota` for money, `requests`/`tokens` for rates.
            match r.limit {
                LimitName::Budget => return "insufficient_quota",
                LimitName::Tpm => return "tokens",
                LimitName::Rpm | LimitName::MaxParallel => return "requests",
                _ => {}
            }
        }
        match self.status() {
            429 => "requests",
            s if s >= 500 => "server_error",
            _ => "invalid_request_error",
        }
    }

    fn openai_code(&self) -> Value {
        match self {
            RelayError::InvalidRequest { .. }
            | RelayError::RouteNotFound { .. }
            | RelayError::ResponseNotFound(_) => Value::Null,
            RelayError::UpstreamAuth | RelayError::UpstreamUnavailable(_) => {
                json!("upstream_error")
            }
            other => json!(other.code()),
        }
    }

    fn param(&self) -> Value {
        match self {
            RelayError::InvalidRequest { param, .. } => json!(param),
            RelayError::ModelNotFound(_)
            | RelayError::ModelNotAllowed(_)
            | RelayError::UnsupportedEndpoint { .. } => json!("model"),
            RelayError::Limited(r) if r.limit == LimitName::Unpriced => json!("model"),
            RelayError::NotFound { .. } => json!("id"),
            RelayError::PreviousResponseNotFound(_) => json!("previous_response_id"),
            _ => Value::Null,
        }
    }

    /// `{"error":{"message","type","param","code"}}`, all four keys always present (§2.5).
    pub fn openai_body(&self) -> Vec<u8> {
        if let RelayError::UpstreamRejected {
            body: Some(bytes), ..
        } = self
        {
            if is_openai_error_body(bytes) {
                return bytes.clone();
            }
        }
        let body = json!({"error": {
            "message": self.message(),
            "type": self.openai_type(),
            "param": self.param(),
            "code": self.openai_code(),
        }});
        body.to_string().into_bytes()
    }

    /// `{"type":"error","error":{"type","message"}}` for Anthropic-family callers (§5.6).
    pub fn anthropic_body(&self) -> Vec<u8> {
        if let RelayError::UpstreamRejected {
            body: Some(bytes), ..
        } = self
        {
            if is_anthropic_error_body(bytes) {
                return bytes.clone();
            }
        }
        let kind = match self.status() {
            400 | 405 | 413 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            504 => "timeout_error",
            _ => "api_error",
        };
        json!({"type": "error", "error": {"type": kind, "message": self.message()}})
            .to_string()
            .into_bytes()
    }

    /// The one event an OpenAI stream gets once its headers are out, followed by `[DONE]` (R2.7).
    pub fn openai_stream_tail(&self) -> Vec<u8> {
        let mut out = b"data: ".to_vec();
        out.extend_from_slice(&self.openai_body());
        out.extend_from_slice(b"\n\ndata: [DONE]\n\n");
        out
    }

    /// Maps an upstream error status (and its body) to what the client should see: 401/403 and
    /// quota errors concern the relay's own provider account (R2.4); other 4xx pass through (R2.5).
    pub fn from_upstream_status(status: u16, body: Vec<u8>, retry_after: Option<String>) -> Self {
        match status {
            401 | 403 => RelayError::UpstreamAuth,
            429 if is_quota_error(&body) => RelayError::UpstreamExhausted { quota: true },
            400..=499 => RelayError::UpstreamRejected {
                status,
                body: Some(body),
                retry_after,
            },
            _ => RelayError::UpstreamUnavailable(format!("upstream status {status}")),
        }
    }

    /// Detail for the operator's log line, never sent to the client.
    pub fn detail(&self) -> Option<&str> {
        match self {
            RelayError::UpstreamUnavailable(d)
            | RelayError::KeySyncFailed(d)
            | RelayError::Internal(d) => Some(d),
            _ => None,
        }
    }
}

/// The relay's provider account is out of credit: retrying will not help the user.
fn is_quota_error(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            let code = e.get("code").and_then(Value::as_str);
            let kind = e.get("type").and_then(Value::as_str);
            Some(code == Some("insufficient_quota") || kind == Some("insufficient_quota"))
        })
        .unwrap_or(false)
}

/// True when `bytes` is Anthropic's error shape, which Anthropic clients parse as is.
fn is_anthropic_error_body(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .is_some_and(|v| {
            v.get("type").and_then(Value::as_str) == Some("error")
                && v.get("error").is_some_and(Value::is_object)
        })
}

/// True when `bytes` is JSON with an object under `error`, the shape SDKs parse.
fn is_openai_error_body(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v.get("error").map(Value::is_object))
        .unwrap_or(false)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn body(e: &RelayError) -> Value {
        serde_json::from_slice(&e.openai_body()).unwrap()
    }

    #[test]
    fn model_not_found_matches_openai_shape() {
        let e = RelayError::ModelNotFound("x".into());
        assert_eq!(e.status(), 404);
        assert_eq!(
            body(&e),
            json!({"error":{"message":"The model 'x' does not exist or you do not have access to it.","type":"invalid_request_error","param":"model","code":"model_not_found"}})
        );
    }

    #[test]
    fn key_sync_and_throttle_shapes() {
        let e = RelayError::KeySyncFailed("KV put: injected".into());
        assert_eq!((e.status(), e.detail()), (503, Some("KV put: injected")));
        let b = body(&e);
        assert_eq!(b["error"]["type"], "server_error");
        assert_eq!(b["error"]["code"], "key_sync_failed");
        assert!(b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Retry the same request: it repairs the copy."));
        assert!(!b["error"]["message"].as_str().unwrap().contains("injected"));
        let t = RelayError::AuthThrottled { retry_after_s: 42 };
        assert_eq!(t.status(), 429);
        assert_eq!(t.headers(), vec![("retry-after", "42".to_string())]);
        assert_eq!(
            body(&t),
            json!({"error":{"message":"Too many failed authentication attempts from your address. Try again in 42 seconds.","type":"requests","param":null,"code":"too_many_failed_attempts"}})
        );
    }

    #[test]
    fn unknown_route_has_null_code() {
        let e = RelayError::RouteNotFound {
            method: "POST".into(),
            path: "/v1/foo".into(),
        };
        assert_eq!(
            body(&e),
            json!({"error":{"message":"Invalid URL (POST /v1/foo)","type":"invalid_request_error","param":null,"code":null}})
        );
    }

    #[test]
    fn refused_stored_response_reads_as_openai_unknown_id() {
        let e = RelayError::ResponseNotFound("resp_abc".into());
        assert_eq!(e.status(), 404);
        assert_eq!(
            body(&e),
            json!({"error":{"message":"Response with id 'resp_abc' not found.","type":"invalid_request_error","param":null,"code":null}})
        );
    }

    #[test]
    fn refused_previous_response_reads_as_openai_unknown_previous_id() {
        let e = RelayError::PreviousResponseNotFound("resp_abc".into());
        assert_eq!(e.status(), 400);
        assert_eq!(
            body(&e),
            json!({"error":{"message":"Previous response with id 'resp_abc' not found.","type":"invalid_request_error","param":"previous_response_id","code":"previous_response_not_found"}})
        );
    }

    #[test]
    fn upstream_openai_error_passes_through_bytes() {
        let raw = br#"{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":"x"}}"#;
        let e = RelayError::UpstreamRejected {
            status: 422,
            body: Some(raw.to_vec()),
            retry_after: None,
        };
        assert_eq!(e.status(), 422);
        assert_eq!(e.openai_body(), raw.to_vec());
    }

    #[test]
    fn upstream_non_json_error_is_wrapped() {
        let e = RelayError::UpstreamRejected {
            status: 429,
            body: Some(b"slow down".to_vec()),
            retry_after: Some("2".into()),
        };
        let b = body(&e);
        assert_eq!(b["error"]["type"], "requests");
        assert_eq!(e.headers(), vec![("retry-after", "2".to_string())]);
    }

    #[test]
    fn upstream_auth_is_502_not_401() {
        let e = RelayError::UpstreamAuth;
        assert_eq!(e.status(), 502);
        assert_eq!(body(&e)["error"]["code"], "upstream_error");
    }

    #[test]
    fn upstream_statuses_map() {
        assert_eq!(
            RelayError::from_upstream_status(401, vec![], None),
            RelayError::UpstreamAuth
        );
        assert_eq!(
            RelayError::from_upstream_status(403, vec![], None),
            RelayError::UpstreamAuth
        );
        assert_eq!(
            RelayError::from_upstream_status(400, b"x".to_vec(), None).status(),
            400
        );
        assert_eq!(
            RelayError::from_upstream_status(500, vec![], None).status(),
            502
        );
        assert_eq!(
            RelayError::from_upstream_status(503, vec![], None).status(),
            502
        );
        let quota = br#"{"error":{"message":"q","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let e = RelayError::from_upstream_status(429, quota.to_vec(), None);
        assert_eq!(e.status(), 503);
        assert_eq!(body(&e)["error"]["code"], "upstream_unavailable");
        assert_eq!(body(&e)["error"]["type"], "server_error");
        assert_eq!(e.headers(), vec![("x-should-retry", "false".to_string())]);
        let e = RelayError::UpstreamExhausted { quota: false };
        assert_eq!((e.status(), e.code()), (503, "overloaded"));
        assert!(e.headers().is_empty(), "overload is worth retrying");
        assert_eq!(
            RelayError::from_upstream_status(429, b"{}".to_vec(), None).status(),
            429
        );
    }

    #[test]
    fn stream_tail_is_error_then_done() {
        let tail = String::from_utf8(RelayError::UpstreamStreamEnded.openai_stream_tail()).unwrap();
        assert_eq!(
            tail,
            "data: {\"error\":{\"code\":\"upstream_stream_error\",\"message\":\"Upstream stream ended unexpectedly.\",\"param\":null,\"type\":\"server_error\"}}\n\ndata: [DONE]\n\n"
        );
    }

    #[test]
    fn anthropic_shape() {
        let b: Value = serde_json::from_slice(
            &RelayError::InvalidApiKey(KeyProblem::Missing).anthropic_body(),
        )
        .unwrap();
        assert_eq!(b["type"], "error");
        assert_eq!(b["error"]["type"], "authentication_error");
    }
}
