//! What a client is told about limits: the refusal (message, type, headers) when a scope says
//! no, and the remaining-budget and remaining-rate headers of the tightest scope on every
//! answered request. OpenAI's header names where it has them (`x-ratelimit-*`), the relay's
//! own (`x-relay-budget-*`) for budgets, which OpenAI does not report per request.

use super::ledger::{LimitName, Refusal, State};
use super::{Limits, Scope};
use crate::time::rfc3339;

/// A request some scope refused, ready for `RelayError::Limited` to render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `key`, `user` or `team`: the usage row's `limit_scope`.
    pub scope: &'static str,
    pub limit: LimitName,
    pub message: String,
    pub headers: Vec<(&'static str, String)>,
}

/// One scope as the request met it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub scope: &'a Scope,
    pub limits: &'a Limits,
    pub state: &'a State,
}

fn dollars(v: f64) -> String {
    format!("${}", fixed(v, 4))
}

/// A non-negative amount with `decimals` places, by integer arithmetic: core's float
/// formatting would add kilobytes to the bundle for these few strings (serde_json's own
/// shortest form, already linked, writes the rest).
pub fn fixed(v: f64, decimals: u32) -> String {
    let scale = 10u64.pow(decimals);
    let v = if v.is_finite() && v > 0.0 { v } else { 0.0 };
    let n = (v * scale as f64).round() as u64;
    format!(
        "{}.{:0width$}",
        n / scale,
        n % scale,
        width = decimals as usize
    )
}

fn resets(state: &State) -> String {
    match state.resets_at_ms {
        Some(ms) => format!("The budget resets at {}.", rfc3339(ms)),
        None => "The budget is a total: it does not reset.".to_string(),
    }
}

/// The refusal of `seen` for `refusal`; `model` is what the client asked for, and `headers`
/// the remaining-headers of all scopes the request met.
pub fn refused(
    seen: Seen<'_>,
    refusal: &Refusal,
    model: &str,
    mut headers: Vec<(&'static str, String)>,
) -> Refused {
    let label = seen.scope.label();
    let (s, l) = (seen.state, seen.limits);
    let retry = refusal.retry_after_s.unwrap_or(1);
    let message = match refusal.limit {
        LimitName::Budget => format!(
            "Budget exceeded for {label}: {} of its {} per {} is spent and {} is reserved by requests in flight; this request could cost up to {}. {}",
            dollars(s.spent_usd),
            dollars(l.budget_usd.unwrap_or(0.0)),
            l.period().as_str(),
            dollars(s.reserved_usd),
            dollars(refusal.ask_usd.unwrap_or(0.0)),
            resets(s)
        ),
        LimitName::Rpm => format!(
            "Rate limit reached for requests of {label}: {} per minute. Please try again in {retry}s.",
            l.rpm.unwrap_or(0)
        ),
        LimitName::Tpm => format!(
            "Rate limit reached for tokens of {label}: {} per minute, {} used in the last minute. Please try again in {retry}s.",
            l.tpm.unwrap_or(0),
            s.tokens_last_minute
        ),
        LimitName::MaxParallel => format!(
            "Too many requests in flight for {label}: at most {} at once. Please try again in {retry}s.",
            l.max_parallel.unwrap_or(super::MAX_PARALLEL)
        ),
        LimitName::Unpriced => format!(
            "Model '{model}' has no price in the relay's price table, so it cannot be counted against the budget of {label}. Ask the relay operator to add its price (PRICES), or use a priced model."
        ),
        LimitName::Unavailable => unavailable_message(seen.scope),
    };
    match refusal.limit {
        LimitName::Budget | LimitName::Unpriced => {
            // The OpenAI and Anthropic SDKs retry 429s unless told not to (protocol.md §1.3).
            headers.push(("x-should-retry", "false".to_string()));
        }
        LimitName::Rpm | LimitName::Tpm | LimitName::MaxParallel => {
            headers.push(("retry-after", retry.to_string()));
            headers.push(("retry-after-ms", (retry * 1000).to_string()));
        }
        LimitName::Unavailable => {}
    }
    Refused {
        scope: seen.scope.kind(),
        limit: refusal.limit,
        message,
        headers,
    }
}

fn unavailable_message(scope: &Scope) -> String {
    format!(
        "The relay could not check the limits of {}, so it cannot serve this request now. Please try again shortly.",
        scope.label()
    )
}

/// Fail-closed answer for a budgeted scope whose object could not be reached.
pub fn unavailable(scope: &Scope) -> Refused {
    Refused {
        scope: scope.kind(),
        limit: LimitName::Unavailable,
        message: unavailable_message(scope),
        headers: Vec::new(),
    }
}

/// The remaining-budget and remaining-rate headers of the tightest scope, each dimension on
/// its own: the scope with the least budget left, the fewest requests left, the fewest tokens.
pub fn headers(seen: &[Seen<'_>]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let requests = seen
        .iter()
        .filter_map(|x| x.limits.rpm.map(|rpm| (x, rpm)))
        .min_by_key(|(x, rpm)| rpm.saturating_sub(x.state.requests_last_minute));
    if let Some((x, rpm)) = requests {
        out.push(("x-ratelimit-limit-requests", rpm.to_string()));
        out.push((
            "x-ratelimit-remaining-requests",
            rpm.saturating_sub(x.state.requests_last_minute).to_string(),
        ));
        out.push((
            "x-ratelimit-reset-requests",
            format!("{}s", x.state.requests_reset_s),
        ));
    }
    let tokens = seen
        .iter()
        .filter_map(|x| x.limits.tpm.map(|tpm| (x, tpm)))
        .min_by_key(|(x, tpm)| tpm.saturating_sub(x.state.tokens_last_minute));
    if let Some((x, tpm)) = tokens {
        out.push(("x-ratelimit-limit-tokens", tpm.to_string()));
        out.push((
            "x-ratelimit-remaining-tokens",
            tpm.saturating_sub(x.state.tokens_last_minute).to_string(),
        ));
        out.push((
            "x-ratelimit-reset-tokens",
            format!("{}s", x.state.tokens_reset_s),
        ));
    }
    let budget = seen
        .iter()
        .filter_map(|x| Some((x, x.limits.budget_usd?, x.state.remaining_usd?)))
        .min_by(|a, b| a.2.total_cmp(&b.2));
    if let Some((x, limit, remaining)) = budget {
        out.push(("x-relay-budget-scope", x.scope.kind().to_string()));
        out.push((
            "x-relay-budget-limit-usd",
            serde_json::json!(limit).to_string(),
        ));
        out.push(("x-relay-budget-remaining-usd", fixed(remaining, 6)));
        out.push((
            "x-relay-budget-reset",
            x.state
                .resets_at_ms
                .map_or_else(|| "never".to_string(), rfc3339),
        ));
    }
    out
}

/// The names above, for `access-control-expose-headers`, so browser clients can read them.
pub const EXPOSED: &str = "x-ratelimit-limit-requests, x-ratelimit-remaining-requests, x-ratelimit-reset-requests, x-ratelimit-limit-tokens, x-ratelimit-remaining-tokens, x-ratelimit-reset-tokens, x-relay-budget-scope, x-relay-budget-limit-usd, x-relay-budget-remaining-usd, x-relay-budget-reset, retry-after";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::ledger::{Call, Ledger};
    use super::super::period::Period;
    use super::*;
    use serde_json::json;

    fn lim(v: serde_json::Value) -> Limits {
        Limits::default().merged(&super::super::parse_patch(&v, "").unwrap())
    }

    fn state(l: &Limits, spent: f64, requests: u64, tokens: u64) -> State {
        State {
            period: l.period(),
            period_start_ms: Some(0),
            resets_at_ms: Some(1_798_761_600_000),
            spent_usd: spent,
            reserved_usd: 0.0,
            remaining_usd: l.budget_usd.map(|b| b - spent),
            in_flight: 0,
            requests_last_minute: requests,
            tokens_last_minute: tokens,
            requests_reset_s: 12,
            tokens_reset_s: 30,
        }
    }

    fn get<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn each_dimension_reports_its_tightest_scope() {
        let key = Scope::Key("key_a".into());
        let team = Scope::Team("t".into());
        let kl = lim(json!({"rpm": 10, "budget_usd": 5}));
        let tl = lim(json!({"rpm": 100, "tpm": 1000, "budget_usd": 50, "budget_period": "total"}));
        let ks = state(&kl, 1.0, 2, 0);
        let ts = state(&tl, 49.5, 95, 400);
        let h = headers(&[
            Seen {
                scope: &key,
                limits: &kl,
                state: &ks,
            },
            Seen {
                scope: &team,
                limits: &tl,
                state: &ts,
            },
        ]);
        // Requests: the team has 5 left, the key 8.
        assert_eq!(get(&h, "x-ratelimit-limit-requests"), Some("100"));
        assert_eq!(get(&h, "x-ratelimit-remaining-requests"), Some("5"));
        assert_eq!(get(&h, "x-ratelimit-reset-requests"), Some("12s"));
        assert_eq!(get(&h, "x-ratelimit-remaining-tokens"), Some("600"));
        // Budget: the team has $0.50 left, the key $4.
        assert_eq!(get(&h, "x-relay-budget-scope"), Some("team"));
        assert_eq!(get(&h, "x-relay-budget-remaining-usd"), Some("0.500000"));
        assert_eq!(get(&h, "x-relay-budget-limit-usd"), Some("50.0"));
        assert_eq!(fixed(0.1 + 0.2, 4), "0.3000");
        assert_eq!(fixed(12.345678, 6), "12.345678");
        assert_eq!(fixed(-1.0, 2), "0.00");
        assert_eq!(fixed(f64::NAN, 2), "0.00");
        assert!(headers(&[]).is_empty());
    }

    #[test]
    fn budget_refusal_says_whose_and_when_it_resets_and_not_to_retry() {
        let key = Scope::Key("key_a".into());
        let l = lim(json!({"budget_usd": 1}));
        let mut ledger = Ledger::default();
        let now = 1_796_212_800_000; // 2026-12-02T12:00:00Z
        let reply = ledger.handle(
            Call::Reserve {
                id: "a".into(),
                limits: l,
                usd: Some(2.0),
                tokens: 0,
                lease_ms: 1000,
            },
            now,
        );
        let r = refused(
            Seen {
                scope: &key,
                limits: &l,
                state: &reply.state,
            },
            &reply.refusal.unwrap(),
            "gpt-4o",
            Vec::new(),
        );
        assert_eq!(r.scope, "key");
        assert_eq!(r.limit, LimitName::Budget);
        assert_eq!(
            r.message,
            "Budget exceeded for key key_a: $0.0000 of its $1.0000 per month is spent and $0.0000 is reserved by requests in flight; this request could cost up to $2.0000. The budget resets at 2027-01-01T00:00:00.000Z."
        );
        assert_eq!(get(&r.headers, "x-should-retry"), Some("false"));
        assert_eq!(get(&r.headers, "retry-after"), None);
        assert_eq!(l.period(), Period::Month);
    }

    #[test]
    fn rate_refusals_carry_retry_after() {
        let user = Scope::User {
            team: "t".into(),
            user: "u".into(),
        };
        let l = lim(json!({"rpm": 3}));
        let s = state(&l, 0.0, 3, 0);
        let r = refused(
            Seen {
                scope: &user,
                limits: &l,
                state: &s,
            },
            &Refusal {
                limit: LimitName::Rpm,
                retry_after_s: Some(7),
                ask_usd: None,
            },
            "m",
            vec![("x-ratelimit-remaining-requests", "0".into())],
        );
        assert_eq!(
            r.message,
            "Rate limit reached for requests of user t/u: 3 per minute. Please try again in 7s."
        );
        assert_eq!(get(&r.headers, "retry-after"), Some("7"));
        assert_eq!(get(&r.headers, "retry-after-ms"), Some("7000"));
        assert_eq!(get(&r.headers, "x-ratelimit-remaining-requests"), Some("0"));
        assert_eq!(get(&r.headers, "x-should-retry"), None);
        let u = refused(
            Seen {
                scope: &user,
                limits: &l,
                state: &s,
            },
            &Refusal {
                limit: LimitName::Unpriced,
                retry_after_s: None,
                ask_usd: None,
            },
            "mystery-1",
            Vec::new(),
        );
        assert!(
            u.message.starts_with("Model 'mystery-1' has no price"),
            "{}",
            u.message
        );
        assert_eq!(unavailable(&user).limit, LimitName::Unavailable);
    }
}
