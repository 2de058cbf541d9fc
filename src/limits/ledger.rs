//! One scope's state and every decision on it, as the scope's Durable Object runs it: spend per
//! UTC day, reservations (holds) with a lease, a 60-second window of requests and tokens, and
//! the calls the request path makes (`reserve`, `settle`, `release`, `view`). Each call is
//! applied whole before the next, which is what makes N concurrent checks safe: the object
//! runs them one at a time, and nothing here awaits.

use serde_json::{json, Value};

use super::period::{day_of, Period, DAY_MS};
use super::{Limits, MAX_PARALLEL};
use crate::time::rfc3339;

/// The RPM/TPM window: the last 60 seconds, in one-second buckets (a sliding window exact to
/// the second).
pub const WINDOW_S: u64 = 60;
/// Reservations one scope holds at once, whatever its limits: bounds the object's state.
pub const MAX_HOLDS: usize = MAX_PARALLEL as usize;
/// Days of spend kept besides the running total: the longest period (a month) and then some.
const KEEP_DAYS: u64 = 62;

#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    /// The request's id.
    pub id: String,
    pub usd: f64,
    pub tokens: u64,
    /// The UTC day it was made: its settlement counts there, the same day its usage row's
    /// `started_at` puts it in, even when it settles after midnight.
    pub day: u64,
    pub second: u64,
    pub expires_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Second {
    at: u64,
    requests: u64,
    tokens: u64,
}

// Plain vectors rather than maps: a scope holds a few dozen days and its requests in flight,
// and each map type would add its own code to the bundle. Stored as JSON by `wire`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    /// (UTC day, spend settled that day), ascending by day.
    pub(super) days: Vec<(u64, f64)>,
    pub(super) total_usd: f64,
    pub(super) holds: Vec<Hold>,
    /// Ascending by `at`, only seconds inside the window. Not stored: an object that restarts
    /// starts a fresh window (it restarts after going idle, when the window is mostly empty).
    seconds: Vec<Second>,
}

/// What the request path asks of a scope's object (its JSON form is in `wire`).
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// Admit the request (and hold `usd` and a parallel slot until settled) or refuse it.
    /// `usd` is None for a model with no price.
    Reserve {
        id: String,
        limits: Limits,
        usd: Option<f64>,
        tokens: u64,
        lease_ms: u64,
    },
    /// The request ended: drop its hold and count what it cost. `day` is where the cost goes
    /// should the hold already be gone (swept after its lease).
    Settle {
        id: String,
        cost_usd: f64,
        tokens: u64,
        day: u64,
    },
    /// The request was admitted here but refused by another scope: it never ran.
    Release {
        id: String,
    },
    View {
        limits: Limits,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitName {
    Budget,
    Rpm,
    Tpm,
    MaxParallel,
    Unpriced,
    Unavailable,
}

impl LimitName {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitName::Budget => "budget",
            LimitName::Rpm => "rpm",
            LimitName::Tpm => "tpm",
            LimitName::MaxParallel => "max_parallel",
            LimitName::Unpriced => "unpriced",
            LimitName::Unavailable => "unavailable",
        }
    }

    pub fn parse(s: &str) -> Option<LimitName> {
        [
            LimitName::Budget,
            LimitName::Rpm,
            LimitName::Tpm,
            LimitName::MaxParallel,
            LimitName::Unpriced,
            LimitName::Unavailable,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Refusal {
    pub limit: LimitName,
    /// Seconds until retrying can succeed (rates); None for a budget (it waits for the reset).
    pub retry_after_s: Option<u64>,
    /// What this request would have reserved.
    pub ask_usd: Option<f64>,
}

/// A scope's state at one instant: the admin view's `state`, and what the headers report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    pub period: Period,
    pub period_start_ms: Option<u64>,
    pub resets_at_ms: Option<u64>,
    pub spent_usd: f64,
    pub reserved_usd: f64,
    /// None without a budget.
    pub remaining_usd: Option<f64>,
    pub in_flight: u64,
    pub requests_last_minute: u64,
    pub tokens_last_minute: u64,
    /// Seconds until the oldest counted request (token) leaves the window; 0 when none is.
    pub requests_reset_s: u64,
    pub tokens_reset_s: u64,
}

impl State {
    /// CONTRACT.md's `state` object.
    pub fn public(&self) -> Value {
        json!({
            "period": self.period.as_str(),
            "period_start": self.period_start_ms.map(rfc3339),
            "resets_at": self.resets_at_ms.map(rfc3339),
            "spent_usd": self.spent_usd,
            "reserved_usd": self.reserved_usd,
            "remaining_usd": self.remaining_usd,
            "in_flight": self.in_flight,
            "requests_last_minute": self.requests_last_minute,
            "tokens_last_minute": self.tokens_last_minute,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reply {
    pub refusal: Option<Refusal>,
    pub state: State,
}

/// Costs come from the relay's own pricing, but a row's cost is still a float: only finite,
/// non-negative amounts are counted.
fn usd(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 {
        v
    } else {
        0.0
    }
}

impl Ledger {
    /// Applies one call at `now_ms` (the object's own clock) and reports the state after it.
    pub fn handle(&mut self, call: Call, now_ms: u64) -> Reply {
        self.sweep(now_ms);
        let (refusal, limits) = match call {
            Call::Reserve {
                id,
                limits,
                usd,
                tokens,
                lease_ms,
            } => (
                self.reserve(&id, &limits, usd, tokens, lease_ms, now_ms),
                limits,
            ),
            Call::Settle {
                id,
                cost_usd,
                tokens,
                day,
            } => {
                self.settle(&id, cost_usd, tokens, day);
                (None, Limits::default())
            }
            Call::Release { id } => {
                self.release(&id);
                (None, Limits::default())
            }
            Call::View { limits } => (None, limits),
        };
        Reply {
            refusal,
            state: self.state(&limits, now_ms),
        }
    }

    /// Drops holds past their lease (a request whose settlement never came: its isolate died),
    /// seconds out of the window and days no period reaches.
    pub fn sweep(&mut self, now_ms: u64) {
        self.holds.retain(|h| h.expires_ms > now_ms);
        let now_s = now_ms / 1000;
        self.seconds.retain(|s| s.at + WINDOW_S > now_s);
        let oldest = day_of(now_ms).saturating_sub(KEEP_DAYS);
        self.days.retain(|(d, _)| *d >= oldest);
    }

    fn spent(&self, period: Period, today: u64) -> f64 {
        match period.start_day(today) {
            // A fold from +0.0: an empty `sum()` of floats is -0.0, which prints as "$-0.0000".
            Some(start) => self
                .days
                .iter()
                .filter(|(d, _)| *d >= start)
                .fold(0.0, |a, (_, v)| a + v),
            None => self.total_usd,
        }
    }

    fn reserved(&self) -> f64 {
        self.holds.iter().fold(0.0, |a, h| a + h.usd)
    }

    fn window(&self) -> (u64, u64) {
        self.seconds.iter().fold((0, 0), |(r, t), s| {
            (r.saturating_add(s.requests), t.saturating_add(s.tokens))
        })
    }

    fn reserve(
        &mut self,
        id: &str,
        limits: &Limits,
        ask: Option<f64>,
        tokens: u64,
        lease_ms: u64,
        now_ms: u64,
    ) -> Option<Refusal> {
        if self.holds.iter().any(|h| h.id == id) {
            // The same reservation asked twice (a retried call): admitted once.
            return None;
        }
        let refuse = |limit, retry_after_s| {
            Some(Refusal {
                limit,
                retry_after_s,
                ask_usd: ask,
            })
        };
        let today = day_of(now_ms);
        let now_s = now_ms / 1000;
        if let Some(budget) = limits.budget_usd {
            let Some(ask) = ask else {
                return refuse(LimitName::Unpriced, None);
            };
            let committed = self.spent(limits.period(), today) + self.reserved();
            if committed + usd(ask) > budget {
                return refuse(LimitName::Budget, None);
            }
        }
        let in_flight = self.holds.len();
        if limits.max_parallel.is_some_and(|m| in_flight as u64 >= m) || in_flight >= MAX_HOLDS {
            return refuse(LimitName::MaxParallel, Some(1));
        }
        let (requests, used_tokens) = self.window();
        if let Some(rpm) = limits.rpm {
            if requests >= rpm {
                return refuse(LimitName::Rpm, Some(self.requests_free_in(rpm, now_s)));
            }
        }
        if let Some(tpm) = limits.tpm {
            // A request larger than the whole allowance passes only into an empty minute,
            // rather than never.
            if used_tokens > 0 && used_tokens.saturating_add(tokens) > tpm {
                return refuse(
                    LimitName::Tpm,
                    Some(self.tokens_free_in(tpm, tokens, now_s)),
                );
            }
        }
        self.holds.push(Hold {
            id: id.to_string(),
            usd: ask.map_or(0.0, usd),
            tokens,
            day: today,
            second: now_s,
            expires_ms: now_ms.saturating_add(lease_ms),
        });
        match self.seconds.last_mut() {
            Some(s) if s.at == now_s => {
                s.requests += 1;
                s.tokens = s.tokens.saturating_add(tokens);
            }
            _ => self.seconds.push(Second {
                at: now_s,
                requests: 1,
                tokens,
            }),
        }
        None
    }

    /// Seconds until fewer than `rpm` requests are in the window.
    fn requests_free_in(&self, rpm: u64, now_s: u64) -> u64 {
        let (mut counted, _) = self.window();
        for s in &self.seconds {
            counted = counted.saturating_sub(s.requests);
            if counted < rpm {
                return (s.at + WINDOW_S).saturating_sub(now_s).max(1);
            }
        }
        1
    }

    /// Seconds until `tokens` more fit under `tpm` (or the window is empty).
    fn tokens_free_in(&self, tpm: u64, tokens: u64, now_s: u64) -> u64 {
        let (_, mut used) = self.window();
        for s in &self.seconds {
            used = used.saturating_sub(s.tokens);
            if used == 0 || used.saturating_add(tokens) <= tpm {
                return (s.at + WINDOW_S).saturating_sub(now_s).max(1);
            }
        }
        WINDOW_S
    }

    fn settle(&mut self, id: &str, cost_usd: f64, tokens: u64, day: u64) {
        let hold = self.take_hold(id);
        let cost = usd(cost_usd);
        let day = hold.as_ref().map_or(day, |h| h.day);
        match self.days.iter_mut().find(|(d, _)| *d == day) {
            Some((_, spent)) => *spent += cost,
            None => {
                let at = self.days.iter().position(|(d, _)| *d > day);
                self.days.insert(at.unwrap_or(self.days.len()), (day, cost));
            }
        }
        self.total_usd += cost;
        if let Some(h) = hold {
            // The window counted the estimate; from now on it counts what was really used.
            if let Some(s) = self.seconds.iter_mut().find(|s| s.at == h.second) {
                s.tokens = s.tokens.saturating_sub(h.tokens).saturating_add(tokens);
            }
        }
    }

    fn take_hold(&mut self, id: &str) -> Option<Hold> {
        let at = self.holds.iter().position(|h| h.id == id)?;
        Some(self.holds.swap_remove(at))
    }

    fn release(&mut self, id: &str) {
        if let Some(h) = self.take_hold(id) {
            if let Some(s) = self.seconds.iter_mut().find(|s| s.at == h.second) {
                s.requests = s.requests.saturating_sub(1);
                s.tokens = s.tokens.saturating_sub(h.tokens);
            }
        }
    }

    pub fn state(&self, limits: &Limits, now_ms: u64) -> State {
        let today = day_of(now_ms);
        let period = limits.period();
        let spent = self.spent(period, today);
        let reserved = self.reserved();
        let (requests, tokens) = self.window();
        let now_s = now_ms / 1000;
        let reset = |pick: fn(&Second) -> u64| {
            self.seconds
                .iter()
                .find(|s| pick(s) > 0)
                .map_or(0, |s| (s.at + WINDOW_S).saturating_sub(now_s))
        };
        State {
            period,
            period_start_ms: period.start_day(today).map(|d| d * DAY_MS),
            resets_at_ms: period.reset_day(today).map(|d| d * DAY_MS),
            spent_usd: spent,
            reserved_usd: reserved,
            remaining_usd: limits.budget_usd.map(|b| (b - spent - reserved).max(0.0)),
            in_flight: self.holds.len() as u64,
            requests_last_minute: requests,
            tokens_last_minute: tokens,
            requests_reset_s: reset(|s| s.requests),
            tokens_reset_s: reset(|s| s.tokens),
        }
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
