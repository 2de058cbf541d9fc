//! Spend and rate limits (issue 16) as pure data and decisions: the limits object an admin sets
//! on a key, a user or a team (parse, validate, merge, its public form), the scopes a request
//! must pass, and the deployment settings of the check. The per-scope state machine is in
//! `ledger`, calendar periods in `period`, the worst-case reservation in `estimate`, and what a
//! client is told in `answer`. The edge runs one Durable Object per scope around a `Ledger`.

pub mod answer;
pub mod estimate;
pub mod ledger;
pub mod period;
pub mod wire;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

use crate::http::error::RelayError;
pub use period::Period;

/// Largest budget accepted: far above any real one, small enough that sums stay exact to the
/// micro-dollar in an f64.
pub const MAX_BUDGET_USD: f64 = 1.0e9;
pub const MAX_RPM: u64 = 1_000_000;
pub const MAX_TPM: u64 = 1_000_000_000_000;
/// Also the most reservations one scope holds at once (`ledger::MAX_HOLDS`).
pub const MAX_PARALLEL: u64 = 10_000;

const FIELDS: &[&str] = &["budget_usd", "budget_period", "rpm", "tpm", "max_parallel"];

/// What may be set on one scope. Every field is optional; an empty object limits nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_period: Option<Period>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u64>,
}

// Budgets are validated finite, so equality is reflexive (key records compare as `Eq`).
impl Eq for Limits {}

/// A stored copy (a key record's, KV's, D1's) is read as the admin API reads a new one, through
/// `Value` and `parse_patch`: one set of rules, and no derived visitor in the bundle.
impl<'de> Deserialize<'de> for Limits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        parse_patch(&v, "")
            .map(|p| Limits::default().merged(&p))
            .map_err(|_| D::Error::custom("not a limits object"))
    }
}

/// A change to a limits object: the outer `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Patch {
    pub budget_usd: Option<Option<f64>>,
    pub budget_period: Option<Option<Period>>,
    pub rpm: Option<Option<u64>>,
    pub tpm: Option<Option<u64>>,
    pub max_parallel: Option<Option<u64>>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    pub fn has_budget(&self) -> bool {
        self.budget_usd.is_some()
    }

    /// The budget's period: `month` when a budget is set without one (CONTRACT.md).
    pub fn period(&self) -> Period {
        self.budget_period.unwrap_or(Period::Month)
    }

    /// Field by field: what `patch` sets replaces, what it clears goes. A budget set without a
    /// period gets `month` written down, so the record says what is enforced.
    pub fn merged(mut self, patch: &Patch) -> Limits {
        fn put<T: Copy>(field: &mut Option<T>, change: Option<Option<T>>) {
            if let Some(v) = change {
                *field = v;
            }
        }
        put(&mut self.budget_usd, patch.budget_usd);
        put(&mut self.budget_period, patch.budget_period);
        put(&mut self.rpm, patch.rpm);
        put(&mut self.tpm, patch.tpm);
        put(&mut self.max_parallel, patch.max_parallel);
        if self.budget_usd.is_some() && self.budget_period.is_none() {
            self.budget_period = Some(Period::Month);
        }
        self
    }

    /// The public form: only the fields that are set (`{}` when none). Built by hand: the
    /// derived `to_value` would link a serializer into `Value` for this type alone.
    pub fn public(&self) -> Value {
        let mut m = Map::new();
        if let Some(b) = self.budget_usd {
            m.insert("budget_usd".into(), json!(b));
        }
        if let Some(p) = self.budget_period {
            m.insert("budget_period".into(), json!(p.as_str()));
        }
        for (name, v) in [
            ("rpm", self.rpm),
            ("tpm", self.tpm),
            ("max_parallel", self.max_parallel),
        ] {
            if let Some(v) = v {
                m.insert(name.into(), json!(v));
            }
        }
        Value::Object(m)
    }
}

fn bad(param: &str, message: String) -> RelayError {
    RelayError::invalid(message, Some(param))
}

fn count(v: &Value, param: &str, max: u64) -> Result<Option<u64>, RelayError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(k) if (1..=max).contains(&k) => Ok(Some(k)),
            _ => Err(bad(
                param,
                format!("'{param}' must be an integer from 1 to {max}, or null."),
            )),
        },
        _ => Err(bad(
            param,
            format!("'{param}' must be an integer from 1 to {max}, or null."),
        )),
    }
}

fn budget(v: &Value, param: &str) -> Result<Option<f64>, RelayError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() && f > 0.0 && f <= MAX_BUDGET_USD => Ok(Some(f)),
            _ => Err(bad(
                param,
                format!("'{param}' must be a number of US dollars above 0 and at most 1000000000, or null."),
            )),
        },
        _ => Err(bad(
            param,
            format!("'{param}' must be a number of US dollars above 0, or null."),
        )),
    }
}

fn period_of(v: &Value, param: &str) -> Result<Option<Period>, RelayError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Period::parse(s).map(Some).ok_or_else(|| {
            bad(
                param,
                format!("'{param}' must be one of day, week, month, total, or null."),
            )
        }),
        _ => Err(bad(
            param,
            format!("'{param}' must be one of day, week, month, total, or null."),
        )),
    }
}

/// Reads a limits object as a patch. `prefix` names where it sits (`limits.` inside a key
/// body, empty for a scope's own body), so errors name the exact field.
pub fn parse_patch(v: &Value, prefix: &str) -> Result<Patch, RelayError> {
    let Value::Object(map) = v else {
        let param = prefix.trim_end_matches('.');
        let shown = if param.is_empty() { "body" } else { param };
        return Err(RelayError::invalid(
            format!("'{shown}' must be a limits object such as {{\"budget_usd\": 25, \"budget_period\": \"month\", \"rpm\": 60}}."),
            (!param.is_empty()).then_some(param),
        ));
    };
    patch_of(map, prefix)
}

fn patch_of(map: &Map<String, Value>, prefix: &str) -> Result<Patch, RelayError> {
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        let param = format!("{prefix}{unknown}");
        return Err(RelayError::invalid(
            format!(
                "Unrecognized limits field: '{param}'. Known: {}.",
                FIELDS.join(", ")
            ),
            Some(&param),
        ));
    }
    let p = |name: &str| format!("{prefix}{name}");
    let mut patch = Patch::default();
    if let Some(v) = map.get("budget_usd") {
        patch.budget_usd = Some(budget(v, &p("budget_usd"))?);
    }
    if let Some(v) = map.get("budget_period") {
        patch.budget_period = Some(period_of(v, &p("budget_period"))?);
    }
    if let Some(v) = map.get("rpm") {
        patch.rpm = Some(count(v, &p("rpm"), MAX_RPM)?);
    }
    if let Some(v) = map.get("tpm") {
        patch.tpm = Some(count(v, &p("tpm"), MAX_TPM)?);
    }
    if let Some(v) = map.get("max_parallel") {
        patch.max_parallel = Some(count(v, &p("max_parallel"), MAX_PARALLEL)?);
    }
    Ok(patch)
}

/// A whole limits object that replaces a scope's limits (`PUT`): `null` fields are unset.
pub fn parse_replacement(body: &[u8]) -> Result<Limits, RelayError> {
    crate::http::json::refuse_duplicate_keys(body)?;
    let v: Value = serde_json::from_slice(body).map_err(|_| {
        RelayError::invalid("We could not parse the JSON body of your request.", None)
    })?;
    Ok(Limits::default().merged(&parse_patch(&v, "")?))
}

/// Where limits apply. A request passes its key's, its user's (team + user) and its team's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Key(String),
    User { team: String, user: String },
    Team(String),
}

impl Scope {
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Key(_) => "key",
            Scope::User { .. } => "user",
            Scope::Team(_) => "team",
        }
    }

    /// The scope's one name: its Durable Object's name, its KV entry's suffix, its audit
    /// target. Team and user are slugs and key ids base62, so `:` and `/` cannot collide.
    pub fn name(&self) -> String {
        match self {
            Scope::Key(id) => format!("key:{id}"),
            Scope::User { team, user } => format!("user:{team}/{user}"),
            Scope::Team(team) => format!("team:{team}"),
        }
    }

    /// How a message names it: `key key_9sQ…`, `user platform/ann`, `team platform`.
    pub fn label(&self) -> String {
        match self {
            Scope::Key(id) => format!("key {id}"),
            Scope::User { team, user } => format!("user {team}/{user}"),
            Scope::Team(team) => format!("team {team}"),
        }
    }

    /// The scope view's identity fields (CONTRACT.md), `key_id` and `user` where they apply.
    pub fn identity(&self, key_team_user: Option<(&str, &str)>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("scope".into(), json!(self.kind()));
        match self {
            Scope::Key(id) => {
                m.insert("key_id".into(), json!(id));
                if let Some((team, user)) = key_team_user {
                    m.insert("team".into(), json!(team));
                    m.insert("user".into(), json!(user));
                }
            }
            Scope::User { team, user } => {
                m.insert("team".into(), json!(team));
                m.insert("user".into(), json!(user));
            }
            Scope::Team(team) => {
                m.insert("team".into(), json!(team));
            }
        }
        m
    }
}

/// CONTRACT.md's scope view: identity, limits and the live state of the scope's object.
pub fn scope_view(
    scope: &Scope,
    key_team_user: Option<(&str, &str)>,
    limits: &Limits,
    state: &ledger::State,
) -> Value {
    let mut m = scope.identity(key_team_user);
    m.insert("limits".into(), limits.public());
    m.insert("state".into(), state.public());
    Value::Object(m)
}

/// The longest a reservation holds budget and a parallel slot without being settled: longer
/// than a request can run (Workers ends a request's `wait_until` 30 s after its response, and a
/// stream's watcher writes its row within seconds of a hang-up), short enough that a crashed
/// isolate returns budget the same quarter hour.
pub const DEFAULT_LEASE_S: u64 = 900;
const MAX_LEASE_S: u64 = 86_400;

/// How the check behaves, from the deployment's vars.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `LIMITS_FAIL_OPEN=true`: when a scope's object cannot be reached, admit rather than 503.
    pub fail_open: bool,
    /// `LIMITS_LEASE_S`: reservation lease in milliseconds.
    pub lease_ms: u64,
}

impl Settings {
    /// Unknown or malformed values fall back to the safe side (fail closed, default lease) and
    /// say so, rather than refusing to serve at all.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> (Settings, Vec<String>) {
        let mut warnings = Vec::new();
        let fail_open = match get("LIMITS_FAIL_OPEN").as_deref().map(str::trim) {
            None | Some("") | Some("false") | Some("0") => false,
            Some("true") | Some("1") => true,
            Some(other) => {
                warnings.push(format!(
                    "LIMITS_FAIL_OPEN={other:?} is not true or false: failing closed"
                ));
                false
            }
        };
        let lease_s = match get("LIMITS_LEASE_S").map(|v| v.trim().to_string()) {
            None => DEFAULT_LEASE_S,
            Some(v) if v.is_empty() => DEFAULT_LEASE_S,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (1..=MAX_LEASE_S).contains(&n) => n,
                _ => {
                    warnings.push(format!(
                        "LIMITS_LEASE_S={v:?} is not 1-{MAX_LEASE_S}: using {DEFAULT_LEASE_S}"
                    ));
                    DEFAULT_LEASE_S
                }
            },
        };
        (
            Settings {
                fail_open,
                lease_ms: lease_s * 1000,
            },
            warnings,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn patch(v: Value) -> Result<Patch, RelayError> {
        parse_patch(&v, "limits.")
    }

    fn param(e: RelayError) -> Option<String> {
        match e {
            RelayError::InvalidRequest { param, .. } => param,
            _ => None,
        }
    }

    #[test]
    fn parses_every_field_and_defaults_the_period() {
        let p = patch(json!({"budget_usd": 25.0, "rpm": 60, "tpm": 200000, "max_parallel": 4}))
            .unwrap();
        let l = Limits::default().merged(&p);
        assert_eq!(
            l.public(),
            json!({"budget_usd": 25.0, "budget_period": "month", "rpm": 60, "tpm": 200000, "max_parallel": 4})
        );
        assert_eq!(Limits::default().public(), json!({}));
        // The public form is what the key record's KV copy serialises.
        assert_eq!(l.public(), serde_json::to_value(l).unwrap());
        // And a stored copy reads back as itself; a damaged one is an error, not "no limits".
        let text = serde_json::to_string(&l).unwrap();
        assert_eq!(serde_json::from_str::<Limits>(&text).unwrap(), l);
        assert!(serde_json::from_str::<Limits>(r#"{"rpm": 0}"#).is_err());
        assert!(serde_json::from_str::<Limits>("[]").is_err());
        let week = Limits::default()
            .merged(&patch(json!({"budget_usd": 1, "budget_period": "week"})).unwrap());
        assert_eq!(week.period(), Period::Week);
    }

    #[test]
    fn merge_is_field_by_field_and_null_clears() {
        let base = Limits::default()
            .merged(&patch(json!({"budget_usd": 5, "budget_period": "day", "rpm": 3})).unwrap());
        let changed = base.merged(&patch(json!({"rpm": null, "tpm": 100})).unwrap());
        assert_eq!(
            changed.public(),
            json!({"budget_usd": 5.0, "budget_period": "day", "tpm": 100})
        );
        let cleared = changed.merged(
            &patch(json!({"budget_usd": null, "budget_period": null, "tpm": null})).unwrap(),
        );
        assert!(cleared.is_empty());
    }

    #[test]
    fn refuses_bad_values_naming_the_field() {
        for (body, field) in [
            (json!({"budget_usd": 0}), "limits.budget_usd"),
            (json!({"budget_usd": -1}), "limits.budget_usd"),
            (json!({"budget_usd": "5"}), "limits.budget_usd"),
            (json!({"budget_usd": 2e9}), "limits.budget_usd"),
            (json!({"budget_period": "year"}), "limits.budget_period"),
            (json!({"rpm": 0}), "limits.rpm"),
            (json!({"rpm": 1.5}), "limits.rpm"),
            (json!({"tpm": -3}), "limits.tpm"),
            (json!({"max_parallel": 10001}), "limits.max_parallel"),
            (json!({"max_paralel": 2}), "limits.max_paralel"),
        ] {
            assert_eq!(
                param(patch(body.clone()).unwrap_err()).as_deref(),
                Some(field),
                "{body}"
            );
        }
        assert_eq!(
            param(parse_patch(&json!(5), "limits.").unwrap_err()).as_deref(),
            Some("limits")
        );
        let e = parse_replacement(br#"{"rpm": 1, "burst": 2}"#).unwrap_err();
        assert_eq!(param(e).as_deref(), Some("burst"));
        assert!(parse_replacement(b"[1]").is_err());
        assert!(parse_replacement(br#"{"rpm": 1, "rpm": 2}"#).is_err());
    }

    #[test]
    fn replacement_drops_what_it_does_not_name() {
        let l = parse_replacement(br#"{"tpm": 10, "rpm": null}"#).unwrap();
        assert_eq!(l.public(), json!({"tpm": 10}));
    }

    #[test]
    fn scope_names_cannot_collide() {
        let names = [
            Scope::Key("key_a".into()).name(),
            Scope::User {
                team: "a".into(),
                user: "b".into(),
            }
            .name(),
            Scope::Team("a".into()).name(),
        ];
        assert_eq!(names, ["key:key_a", "user:a/b", "team:a"]);
        assert_eq!(
            Value::Object(Scope::Key("key_a".into()).identity(Some(("t", "u")))),
            json!({"scope": "key", "key_id": "key_a", "team": "t", "user": "u"})
        );
    }

    #[test]
    fn settings_fall_back_to_the_safe_side() {
        let none = |_: &str| None;
        assert_eq!(
            Settings::from_lookup(none).0,
            Settings {
                fail_open: false,
                lease_ms: DEFAULT_LEASE_S * 1000
            }
        );
        let vars = |n: &str| match n {
            "LIMITS_FAIL_OPEN" => Some("true".to_string()),
            "LIMITS_LEASE_S" => Some("30".to_string()),
            _ => None,
        };
        assert_eq!(
            Settings::from_lookup(vars).0,
            Settings {
                fail_open: true,
                lease_ms: 30_000
            }
        );
        let odd = |n: &str| match n {
            "LIMITS_FAIL_OPEN" => Some("yes".to_string()),
            "LIMITS_LEASE_S" => Some("0".to_string()),
            _ => None,
        };
        let (s, warnings) = Settings::from_lookup(odd);
        assert!(!s.fail_open);
        assert_eq!(s.lease_ms, DEFAULT_LEASE_S * 1000);
        assert_eq!(warnings.len(), 2);
    }
}
