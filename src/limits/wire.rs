//! The JSON the request path and a scope's object exchange (a `Call` one way, a `Reply` the
//! other) and the object's stored `Ledger`. Written and read through `serde_json::Value` by
//! hand rather than derived: derived code for these shapes would add more to the bundle than
//! the rest of the limits feature, while `Value` is already linked.

use serde_json::{json, Map, Value};

use super::ledger::{Call, Hold, Ledger, LimitName, Refusal, Reply, State};
use super::period::Period;
use super::{parse_patch, Limits};

fn u64_of(m: &Map<String, Value>, k: &str) -> Option<u64> {
    m.get(k)?.as_u64()
}

fn opt_u64(m: &Map<String, Value>, k: &str) -> Option<Option<u64>> {
    match m.get(k)? {
        Value::Null => Some(None),
        v => v.as_u64().map(Some),
    }
}

fn f64_of(m: &Map<String, Value>, k: &str) -> Option<f64> {
    m.get(k)?.as_f64()
}

fn opt_f64(m: &Map<String, Value>, k: &str) -> Option<Option<f64>> {
    match m.get(k)? {
        Value::Null => Some(None),
        v => v.as_f64().map(Some),
    }
}

fn str_of(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k)?.as_str().map(str::to_string)
}

fn limits_of(m: &Map<String, Value>) -> Option<Limits> {
    parse_patch(m.get("limits")?, "")
        .ok()
        .map(|p| Limits::default().merged(&p))
}

impl Call {
    pub fn to_json(&self) -> Value {
        match self {
            Call::Reserve {
                id,
                limits,
                usd,
                tokens,
                lease_ms,
            } => json!({"op": "reserve", "id": id, "limits": limits.public(), "usd": usd,
                        "tokens": tokens, "lease_ms": lease_ms}),
            Call::Settle {
                id,
                cost_usd,
                tokens,
                day,
            } => {
                json!({"op": "settle", "id": id, "cost_usd": cost_usd, "tokens": tokens, "day": day})
            }
            Call::Release { id } => json!({"op": "release", "id": id}),
            Call::View { limits } => json!({"op": "view", "limits": limits.public()}),
        }
    }

    /// None for anything but a well-formed call.
    pub fn from_json(v: &Value) -> Option<Call> {
        let m = v.as_object()?;
        Some(match m.get("op")?.as_str()? {
            "reserve" => Call::Reserve {
                id: str_of(m, "id")?,
                limits: limits_of(m)?,
                usd: opt_f64(m, "usd")?,
                tokens: u64_of(m, "tokens")?,
                lease_ms: u64_of(m, "lease_ms")?,
            },
            "settle" => Call::Settle {
                id: str_of(m, "id")?,
                cost_usd: f64_of(m, "cost_usd")?,
                tokens: u64_of(m, "tokens")?,
                day: u64_of(m, "day")?,
            },
            "release" => Call::Release {
                id: str_of(m, "id")?,
            },
            "view" => Call::View {
                limits: limits_of(m)?,
            },
            _ => return None,
        })
    }
}

impl Reply {
    pub fn to_json(&self) -> Value {
        let s = &self.state;
        json!({
            "refusal": self.refusal.map(|r| json!({
                "limit": r.limit.as_str(), "retry_after_s": r.retry_after_s, "ask_usd": r.ask_usd,
            })),
            "state": {
                "period": s.period.as_str(), "period_start_ms": s.period_start_ms,
                "resets_at_ms": s.resets_at_ms, "spent_usd": s.spent_usd,
                "reserved_usd": s.reserved_usd, "remaining_usd": s.remaining_usd,
                "in_flight": s.in_flight, "requests_last_minute": s.requests_last_minute,
                "tokens_last_minute": s.tokens_last_minute,
                "requests_reset_s": s.requests_reset_s, "tokens_reset_s": s.tokens_reset_s,
            },
        })
    }

    pub fn from_json(v: &Value) -> Option<Reply> {
        let m = v.as_object()?;
        let refusal = match m.get("refusal")? {
            Value::Null => None,
            Value::Object(r) => Some(Refusal {
                limit: LimitName::parse(r.get("limit")?.as_str()?)?,
                retry_after_s: opt_u64(r, "retry_after_s")?,
                ask_usd: opt_f64(r, "ask_usd")?,
            }),
            _ => return None,
        };
        let s = m.get("state")?.as_object()?;
        Some(Reply {
            refusal,
            state: State {
                period: Period::parse(s.get("period")?.as_str()?)?,
                period_start_ms: opt_u64(s, "period_start_ms")?,
                resets_at_ms: opt_u64(s, "resets_at_ms")?,
                spent_usd: f64_of(s, "spent_usd")?,
                reserved_usd: f64_of(s, "reserved_usd")?,
                remaining_usd: opt_f64(s, "remaining_usd")?,
                in_flight: u64_of(s, "in_flight")?,
                requests_last_minute: u64_of(s, "requests_last_minute")?,
                tokens_last_minute: u64_of(s, "tokens_last_minute")?,
                requests_reset_s: u64_of(s, "requests_reset_s")?,
                tokens_reset_s: u64_of(s, "tokens_reset_s")?,
            },
        })
    }
}

impl Ledger {
    pub fn to_json(&self) -> Value {
        let holds: Vec<Value> = self
            .holds
            .iter()
            .map(|h| {
                json!({"id": h.id, "usd": h.usd, "tokens": h.tokens, "day": h.day,
                       "second": h.second, "expires_ms": h.expires_ms})
            })
            .collect();
        json!({"days": self.days, "total_usd": self.total_usd, "holds": holds})
    }

    /// None when the stored text is not a ledger (the object then refuses to answer rather
    /// than start from zero).
    pub fn from_json(v: &Value) -> Option<Ledger> {
        let m = v.as_object()?;
        let days = m
            .get("days")?
            .as_array()?
            .iter()
            .map(|d| Some((d.get(0)?.as_u64()?, d.get(1)?.as_f64()?)))
            .collect::<Option<Vec<_>>>()?;
        let holds = m
            .get("holds")?
            .as_array()?
            .iter()
            .map(|h| {
                let h = h.as_object()?;
                Some(Hold {
                    id: str_of(h, "id")?,
                    usd: f64_of(h, "usd")?,
                    tokens: u64_of(h, "tokens")?,
                    day: u64_of(h, "day")?,
                    second: u64_of(h, "second")?,
                    expires_ms: u64_of(h, "expires_ms")?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let mut ledger = Ledger::default();
        ledger.days = days;
        ledger.total_usd = f64_of(m, "total_usd")?;
        ledger.holds = holds;
        Some(ledger)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::ledger::Ledger;
    use super::*;

    fn lim() -> Limits {
        Limits::default().merged(
            &parse_patch(&json!({"budget_usd": 2.5, "rpm": 3, "max_parallel": 2}), "").unwrap(),
        )
    }

    #[test]
    fn every_call_survives_the_wire() {
        let calls = [
            Call::Reserve {
                id: "req_1".into(),
                limits: lim(),
                usd: Some(0.25),
                tokens: 40,
                lease_ms: 900_000,
            },
            Call::Reserve {
                id: "req_2".into(),
                limits: Limits::default(),
                usd: None,
                tokens: 0,
                lease_ms: 1,
            },
            Call::Settle {
                id: "req_1".into(),
                cost_usd: 0.0125,
                tokens: 17,
                day: 20_424,
            },
            Call::Release { id: "req_1".into() },
            Call::View { limits: lim() },
        ];
        for c in calls {
            let text = c.to_json().to_string();
            let back = Call::from_json(&serde_json::from_str(&text).unwrap());
            assert_eq!(back, Some(c), "{text}");
        }
    }

    #[test]
    fn replies_survive_the_wire() {
        let mut l = Ledger::default();
        let now = 1_796_212_800_000;
        let admit = l.handle(
            Call::Reserve {
                id: "a".into(),
                limits: lim(),
                usd: Some(2.0),
                tokens: 5,
                lease_ms: 1000,
            },
            now,
        );
        let refuse = l.handle(
            Call::Reserve {
                id: "b".into(),
                limits: lim(),
                usd: Some(2.0),
                tokens: 5,
                lease_ms: 1000,
            },
            now,
        );
        assert!(refuse.refusal.is_some());
        for r in [admit, refuse] {
            let text = r.to_json().to_string();
            assert_eq!(
                Reply::from_json(&serde_json::from_str(&text).unwrap()),
                Some(r),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_calls_are_none() {
        for bad in [
            json!(null),
            json!({"op": "reserve"}),
            json!({"op": "explode", "id": "x"}),
            json!({"op": "settle", "id": "x", "cost_usd": "1", "tokens": 1, "day": 1}),
            json!({"op": "view", "limits": {"rpm": 0}}),
            json!({"op": "release", "id": 5}),
        ] {
            assert_eq!(Call::from_json(&bad), None, "{bad}");
        }
        assert_eq!(Reply::from_json(&json!({"refusal": null})), None);
    }
}
