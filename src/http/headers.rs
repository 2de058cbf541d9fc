//! Which headers cross the relay, as allow-lists: the client's headers a provider may see (by
//! the provider's wire format), and the provider's headers a client may see. Anything not
//! listed stays behind, so a header invented tomorrow (a new credential, a new tracing id)
//! does not leak by default.

use crate::providers::Kind;

/// Client headers forwarded to every provider: a retry of the same idempotent call must stay
/// one call upstream.
const TO_EVERY_PROVIDER: &[&str] = &["idempotency-key"];
/// Anthropic's version and beta flags mean something only to Anthropic.
const TO_ANTHROPIC: &[&str] = &["anthropic-version", "anthropic-beta"];
/// OpenAI's beta flag, for OpenAI-format upstreams only.
const TO_OPENAI: &[&str] = &["openai-beta"];

/// Whether the client's header `name` (lowercase) may reach a provider of `kind`.
///
/// Everything else is dropped, on purpose: credentials (`authorization`, `x-api-key`,
/// `api-key`, `x-goog-api-key`, `proxy-authorization`, `cookie`) belong to the client and the
/// relay, not the provider; client identity (`forwarded`, `x-forwarded-*`, `x-real-ip`,
/// `true-client-ip`, `cf-*`, `user-agent`, `origin`, `referer`, the SDKs' `x-stainless-*`
/// machine fingerprint) is nobody's business upstream; framing (`host`, `content-length`,
/// `connection`, `accept-encoding`) is redone by the runtime. `openai-organization` and
/// `openai-project` are dropped too: upstream they would pick which org or project of the
/// *relay's* account pays, which is the operator's choice, not a key holder's.
/// `content-type` is not taken from the client: the relay always sends `application/json`.
pub fn forward_to_provider(kind: Kind, name: &str) -> bool {
    let own = match kind {
        Kind::Anthropic => TO_ANTHROPIC,
        Kind::OpenAi => TO_OPENAI,
    };
    TO_EVERY_PROVIDER.contains(&name) || own.contains(&name)
}

/// The client's headers for a provider of `kind`, names lowercased, in the order given.
pub fn provider_headers<'a>(
    kind: Kind,
    client: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    client
        .into_iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .filter(|(n, _)| forward_to_provider(kind, n))
        .collect()
}

/// Provider response headers a client may see: when to retry (`retry-after`, and OpenAI's
/// `retry-after-ms`, which its SDKs prefer). The rest describes the relay's provider account
/// (`x-ratelimit-*`, `anthropic-ratelimit-*`, `openai-organization`, `openai-processing-ms`),
/// the provider's infrastructure (`server`, `cf-ray`, `set-cookie`, `via`) or framing the
/// runtime redoes; the relay sets `content-type` and its own request ids itself.
pub fn return_to_client(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "retry-after" | "retry-after-ms"
    )
}

/// What the relay calls itself upstream, instead of passing on the client's `user-agent`.
pub const USER_AGENT: &str = concat!("llm-relay/", env!("CARGO_PKG_VERSION"));

#[cfg(test)]
mod tests {
    use super::*;

    /// Every header an audit saw reach a provider, plus the ones a client may mean for it.
    const CLIENT: &[(&str, &str)] = &[
        ("Authorization", "Bearer lc_test_t_u_secret"),
        ("x-api-key", "lc_test_t_u_secret"),
        ("api-key", "client-azure-key"),
        ("x-goog-api-key", "client-google-key"),
        ("proxy-authorization", "Basic dXNlcjpwYXNz"),
        ("cookie", "session=1"),
        ("forwarded", "for=203.0.113.7"),
        ("x-forwarded-for", "203.0.113.7"),
        ("true-client-ip", "203.0.113.7"),
        ("x-real-ip", "203.0.113.7"),
        ("cf-connecting-ip", "203.0.113.7"),
        ("user-agent", "Cursor/1.0"),
        ("origin", "https://evil.example"),
        ("referer", "https://evil.example/page"),
        ("x-stainless-os", "MacOS"),
        ("openai-organization", "org-client"),
        ("openai-project", "proj-client"),
        ("host", "relay.example"),
        ("content-length", "12"),
        ("content-type", "text/plain"),
        ("Idempotency-Key", "idem-1"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "prompt-caching-2024-07-31"),
        ("openai-beta", "assistants=v2"),
    ];

    fn names(kind: Kind) -> Vec<String> {
        provider_headers(kind, CLIENT.iter().copied())
            .into_iter()
            .map(|(n, _)| n)
            .collect()
    }

    #[test]
    fn each_protocol_gets_only_its_own_headers() {
        assert_eq!(names(Kind::OpenAi), ["idempotency-key", "openai-beta"]);
        assert_eq!(
            names(Kind::Anthropic),
            ["idempotency-key", "anthropic-version", "anthropic-beta"]
        );
        let kept = provider_headers(Kind::OpenAi, [("IDEMPOTENCY-KEY", "k-9")]);
        assert_eq!(kept, [("idempotency-key".to_string(), "k-9".to_string())]);
    }

    #[test]
    fn clients_see_only_retry_hints() {
        for name in ["retry-after", "Retry-After", "retry-after-ms"] {
            assert!(return_to_client(name), "{name}");
        }
        for name in [
            "server",
            "set-cookie",
            "x-ratelimit-remaining-requests",
            "anthropic-ratelimit-tokens-remaining",
            "openai-organization",
            "openai-processing-ms",
            "anthropic-organization-id",
            "cf-ray",
            "via",
            "content-length",
            "content-encoding",
            "x-request-id",
            "access-control-allow-origin",
        ] {
            assert!(!return_to_client(name), "{name}");
        }
    }
}
