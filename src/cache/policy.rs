//! Whether a request uses the cache and how (the key's setting and the request's headers), and
//! whether an answer may be stored: only a complete one, for every outcome the relay knows.

use serde_json::Value;

use super::key::Protocol;
use super::{ttl, KeyCache, Scope, MAX_ENTRY_BYTES};
use crate::http::error::RelayError;
use crate::metering::usage::Outcome;

pub const TTL_HEADER: &str = "x-relay-cache-ttl";
pub const MODE_HEADER: &str = "x-relay-cache";
pub const STATUS_HEADER: &str = "x-relay-cache-status";

/// The request's own say: `x-relay-cache-ttl: <seconds>` turns caching on for it, and
/// `x-relay-cache: no-cache` (skip the lookup, store the fresh answer) and/or `no-store`
/// (never store) narrow what happens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directive {
    pub ttl_s: Option<u64>,
    pub no_cache: bool,
    pub no_store: bool,
}

impl Directive {
    pub fn from_headers(ttl_h: Option<&str>, mode: Option<&str>) -> Result<Self, RelayError> {
        let mut d = Directive::default();
        if let Some(t) = ttl_h {
            let n: Value = t
                .trim()
                .parse::<u64>()
                .map(Value::from)
                .unwrap_or(Value::Null);
            d.ttl_s = Some(ttl(&n, TTL_HEADER)?);
        }
        for token in mode.unwrap_or("").split(',').map(str::trim) {
            match token.to_ascii_lowercase().as_str() {
                "" => {}
                "no-cache" => d.no_cache = true,
                "no-store" => d.no_store = true,
                _ => {
                    return Err(RelayError::invalid(
                        format!("'{MODE_HEADER}' takes no-cache and/or no-store, not '{token}'."),
                        Some(MODE_HEADER),
                    ))
                }
            }
        }
        Ok(d)
    }
}

/// The setting in force for one request. A request may turn caching on for itself (scope
/// `key`, no sampled answers), and may shorten the key's TTL but never lengthen it: with a
/// wider scope, its entry answers the key's teammates too, and they are promised the key's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub ttl_s: u64,
    pub scope: Scope,
    pub sampled: bool,
}

/// None: caching is not in play for this request (its row's `cache` stays NULL).
pub fn settings(key: Option<&KeyCache>, d: &Directive) -> Option<Settings> {
    match (key, d.ttl_s) {
        (Some(k), ttl) => Some(Settings {
            ttl_s: ttl.map_or(k.ttl_s, |t| t.min(k.ttl_s)),
            scope: k.scope,
            sampled: k.sampled,
        }),
        (None, Some(ttl_s)) => Some(Settings {
            ttl_s,
            scope: Scope::Key,
            sampled: false,
        }),
        (None, None) => None,
    }
}

/// Why a request that could use the cache does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// `n > 1`: several sampled choices are never one fixed answer.
    Choices,
    /// Sampled (`temperature` absent or above 0) without the key's `sampled: true`.
    Sampled,
    /// A Responses request whose answer is server state, not just text: `background`,
    /// `conversation` (each turn appends to it).
    Stateful,
    /// `no-cache` together with `no-store`: neither read nor written.
    Refused,
}

/// What the edge does for a cacheable request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Use {
    pub lookup: bool,
    pub store: bool,
}

/// The decision for a request body the route has already validated.
pub fn plan(s: &Settings, d: &Directive, protocol: Protocol, body: &Value) -> Result<Use, Bypass> {
    if d.no_cache && d.no_store {
        return Err(Bypass::Refused);
    }
    if protocol == Protocol::Chat && body.get("n").is_some_and(|n| n.as_u64() != Some(1)) {
        return Err(Bypass::Choices);
    }
    if protocol == Protocol::Responses
        && (body.get("background") == Some(&Value::Bool(true))
            || body.get("conversation").is_some_and(|c| !c.is_null()))
    {
        return Err(Bypass::Stateful);
    }
    if !s.sampled && sampled(body) {
        return Err(Bypass::Sampled);
    }
    Ok(Use {
        lookup: !d.no_cache,
        store: !d.no_store,
    })
}

/// Every protocol's default temperature is 1: only an explicit 0 is deterministic (or as
/// close as providers get).
pub fn sampled(body: &Value) -> bool {
    match body.get("temperature") {
        Some(t) => t.as_f64().is_none_or(|t| t > 0.0),
        None => true,
    }
}

/// An answer as it ended, for the store-or-not decision.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: u16,
    pub outcome: Outcome,
    pub finish_reason: Option<&'a str>,
    pub bytes: usize,
    /// A capture that passed `MAX_ENTRY_BYTES` and stopped keeping bytes.
    pub overflowed: bool,
}

/// Why an answer was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Status(u16),
    /// Truncated, cut by an upstream error or timeout, or the client left before the end.
    Incomplete(Outcome),
    /// No finish reason: the provider never said the answer was done.
    Unfinished,
    /// A finish reason that is not an answer (`failed`, `cancelled`, still `in_progress`…).
    NotAnAnswer,
    Oversize,
}

/// Finish reasons (and Response statuses) that end a stream without an answer.
const NOT_ANSWERS: &[&str] = &["failed", "cancelled", "queued", "in_progress", "error"];

/// Only a complete answer is stored: status 200, the stream's terminal event seen and taken by
/// the client to the end (outcome `ok`), a finish reason that is one, and within the size cap.
pub fn storable(a: &Answer<'_>) -> Result<(), Skip> {
    if a.status != 200 {
        return Err(Skip::Status(a.status));
    }
    if a.outcome != Outcome::Ok {
        return Err(Skip::Incomplete(a.outcome));
    }
    let reason = a.finish_reason.ok_or(Skip::Unfinished)?;
    if reason.is_empty() {
        return Err(Skip::Unfinished);
    }
    if NOT_ANSWERS.contains(&reason) {
        return Err(Skip::NotAnAnswer);
    }
    if a.overflowed || a.bytes > MAX_ENTRY_BYTES {
        return Err(Skip::Oversize);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use serde_json::json;

    const ON: Settings = Settings {
        ttl_s: 300,
        scope: Scope::Key,
        sampled: false,
    };

    #[test]
    fn headers_parse_and_refuse_with_the_header_named() {
        let d = Directive::from_headers(Some(" 120 "), Some("No-Cache, no-store")).unwrap();
        assert_eq!(
            d,
            Directive {
                ttl_s: Some(120),
                no_cache: true,
                no_store: true
            }
        );
        assert_eq!(
            Directive::from_headers(None, None).unwrap(),
            Directive::default()
        );
        for (ttl, mode, param) in [
            (Some("59"), None, TTL_HEADER),
            (Some("abc"), None, TTL_HEADER),
            (Some("-5"), None, TTL_HEADER),
            (Some("2592001"), None, TTL_HEADER),
            (None, Some("max-age=5"), MODE_HEADER),
        ] {
            match Directive::from_headers(ttl, mode).unwrap_err() {
                RelayError::InvalidRequest { param: p, .. } => {
                    assert_eq!(p.as_deref(), Some(param))
                }
                e => panic!("{e:?}"),
            }
        }
    }

    #[test]
    fn the_key_or_the_request_turns_caching_on() {
        let none = Directive::default();
        assert_eq!(settings(None, &none), None);
        let req = Directive {
            ttl_s: Some(90),
            ..Directive::default()
        };
        // A request alone never widens the scope nor opts in to sampled answers.
        assert_eq!(
            settings(None, &req),
            Some(Settings {
                ttl_s: 90,
                scope: Scope::Key,
                sampled: false
            })
        );
        let key = KeyCache {
            ttl_s: 600,
            scope: Scope::Team,
            sampled: true,
        };
        assert_eq!(settings(Some(&key), &none).unwrap().ttl_s, 600);
        let s = settings(Some(&key), &req).unwrap();
        assert_eq!((s.ttl_s, s.scope, s.sampled), (90, Scope::Team, true));
        let longer = Directive {
            ttl_s: Some(6000),
            ..Directive::default()
        };
        assert_eq!(settings(Some(&key), &longer).unwrap().ttl_s, 600);
        // `x-relay-cache` alone does not turn caching on.
        let mode_only = Directive {
            no_cache: true,
            ..Directive::default()
        };
        assert_eq!(settings(None, &mode_only), None);
    }

    #[test]
    fn choices_sampling_and_state_bypass() {
        let d = Directive::default();
        let chat = |b: Value| plan(&ON, &d, Protocol::Chat, &b);
        assert_eq!(
            chat(json!({"temperature": 0})),
            Ok(Use {
                lookup: true,
                store: true
            })
        );
        assert_eq!(chat(json!({"temperature": 0, "n": 1})).map(|_| ()), Ok(()));
        assert_eq!(
            chat(json!({"temperature": 0, "n": 2})),
            Err(Bypass::Choices)
        );
        assert_eq!(
            chat(json!({"temperature": 0, "n": "2"})),
            Err(Bypass::Choices)
        );
        assert_eq!(chat(json!({})), Err(Bypass::Sampled));
        assert_eq!(chat(json!({"temperature": 0.7})), Err(Bypass::Sampled));
        assert_eq!(chat(json!({"temperature": "0"})), Err(Bypass::Sampled));
        let opted = Settings {
            sampled: true,
            ..ON
        };
        assert!(plan(&opted, &d, Protocol::Messages, &json!({"temperature": 1})).is_ok());
        assert!(plan(&opted, &d, Protocol::Messages, &json!({})).is_ok());
        // n>1 is refused even where sampling is allowed.
        assert_eq!(
            plan(&opted, &d, Protocol::Chat, &json!({"n": 3})),
            Err(Bypass::Choices)
        );
        let resp = |b: Value| plan(&ON, &d, Protocol::Responses, &b);
        assert_eq!(
            resp(json!({"temperature": 0, "background": true})),
            Err(Bypass::Stateful)
        );
        assert_eq!(
            resp(json!({"temperature": 0, "conversation": "conv_1"})),
            Err(Bypass::Stateful)
        );
        assert!(resp(json!({"temperature": 0, "background": false})).is_ok());
    }

    #[test]
    fn no_cache_and_no_store() {
        let body = json!({"temperature": 0});
        let nc = Directive {
            no_cache: true,
            ..Directive::default()
        };
        assert_eq!(
            plan(&ON, &nc, Protocol::Chat, &body),
            Ok(Use {
                lookup: false,
                store: true
            })
        );
        let ns = Directive {
            no_store: true,
            ..Directive::default()
        };
        assert_eq!(
            plan(&ON, &ns, Protocol::Chat, &body),
            Ok(Use {
                lookup: true,
                store: false
            })
        );
        let both = Directive {
            no_cache: true,
            no_store: true,
            ttl_s: None,
        };
        assert_eq!(
            plan(&ON, &both, Protocol::Chat, &body),
            Err(Bypass::Refused)
        );
    }

    fn answer(outcome: Outcome, finish: Option<&str>) -> Answer<'_> {
        Answer {
            status: 200,
            outcome,
            finish_reason: finish,
            bytes: 100,
            overflowed: false,
        }
    }

    #[test]
    fn store_or_not_for_every_outcome() {
        assert_eq!(storable(&answer(Outcome::Ok, Some("stop"))), Ok(()));
        assert_eq!(storable(&answer(Outcome::Ok, Some("end_turn"))), Ok(()));
        assert_eq!(storable(&answer(Outcome::Ok, Some("completed"))), Ok(()));
        assert_eq!(storable(&answer(Outcome::Ok, Some("length"))), Ok(()));
        for o in [
            Outcome::Truncated,
            Outcome::UpstreamError,
            Outcome::RelayError,
            Outcome::ClientCancelled,
        ] {
            assert_eq!(
                storable(&answer(o, Some("stop"))),
                Err(Skip::Incomplete(o)),
                "{o:?}"
            );
        }
        assert_eq!(storable(&answer(Outcome::Ok, None)), Err(Skip::Unfinished));
        assert_eq!(
            storable(&answer(Outcome::Ok, Some(""))),
            Err(Skip::Unfinished)
        );
        for r in ["failed", "cancelled", "in_progress", "queued"] {
            assert_eq!(
                storable(&answer(Outcome::Ok, Some(r))),
                Err(Skip::NotAnAnswer)
            );
        }
        for status in [201, 400, 429, 500, 502, 504] {
            let a = Answer {
                status,
                ..answer(Outcome::Ok, Some("stop"))
            };
            assert_eq!(storable(&a), Err(Skip::Status(status)));
        }
        let big = Answer {
            bytes: MAX_ENTRY_BYTES + 1,
            ..answer(Outcome::Ok, Some("stop"))
        };
        assert_eq!(storable(&big), Err(Skip::Oversize));
        let at_cap = Answer {
            bytes: MAX_ENTRY_BYTES,
            ..answer(Outcome::Ok, Some("stop"))
        };
        assert_eq!(storable(&at_cap), Ok(()));
        let over = Answer {
            overflowed: true,
            bytes: 10,
            ..answer(Outcome::Ok, Some("stop"))
        };
        assert_eq!(storable(&over), Err(Skip::Oversize));
    }
}
