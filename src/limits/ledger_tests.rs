//! The ledger's decisions: budgets under a burst, settlement, periods, the lease sweep, the
//! windows, max_parallel, release, storage.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::time::parse_rfc3339;

fn at(s: &str) -> u64 {
    parse_rfc3339(s).unwrap()
}

fn limits(v: Value) -> Limits {
    Limits::default().merged(&super::super::parse_patch(&v, "").unwrap())
}

const LEASE: u64 = 900_000;

fn reserve(
    l: &mut Ledger,
    id: &str,
    lim: &Limits,
    usd: Option<f64>,
    tokens: u64,
    now: u64,
) -> Reply {
    l.handle(
        Call::Reserve {
            id: id.to_string(),
            limits: *lim,
            usd,
            tokens,
            lease_ms: LEASE,
        },
        now,
    )
}

fn settle(l: &mut Ledger, id: &str, cost: f64, tokens: u64, now: u64) -> Reply {
    l.handle(
        Call::Settle {
            id: id.to_string(),
            cost_usd: cost,
            tokens,
            day: day_of(now),
        },
        now,
    )
}

fn limit(r: &Reply) -> Option<LimitName> {
    r.refusal.map(|x| x.limit)
}

#[test]
fn a_budget_admits_exactly_the_requests_that_fit() {
    let lim = limits(json!({"budget_usd": 1.0}));
    let mut l = Ledger::default();
    let now = at("2026-12-02T10:00:00Z");
    // 30 arrive together; each may cost up to $0.3: three fit, the rest are refused.
    let admitted: Vec<bool> = (0..30)
        .map(|i| limit(&reserve(&mut l, &format!("r{i}"), &lim, Some(0.3), 10, now)).is_none())
        .collect();
    assert_eq!(admitted.iter().filter(|a| **a).count(), 3);
    assert!(admitted[..3].iter().all(|a| *a));
    let s = l.state(&lim, now);
    assert!((s.reserved_usd - 0.9).abs() < 1e-9);
    assert_eq!(s.in_flight, 3);
    let refused = reserve(&mut l, "late", &lim, Some(0.3), 10, now);
    assert_eq!(limit(&refused), Some(LimitName::Budget));
    assert_eq!(refused.refusal.unwrap().retry_after_s, None);
}

#[test]
fn settlement_replaces_the_reservation_with_the_actual_cost() {
    let lim = limits(json!({"budget_usd": 1.0, "budget_period": "day"}));
    let mut l = Ledger::default();
    let now = at("2026-12-02T10:00:00Z");
    for id in ["a", "b", "c"] {
        assert_eq!(limit(&reserve(&mut l, id, &lim, Some(0.3), 0, now)), None);
    }
    assert_eq!(
        limit(&reserve(&mut l, "d", &lim, Some(0.3), 0, now)),
        Some(LimitName::Budget)
    );
    // "a" was cut short by a hang-up: it cost a tenth of its worst case.
    let after = settle(&mut l, "a", 0.03, 5, now + 1000);
    assert!((after.state.spent_usd - 0.03).abs() < 1e-9);
    assert!((after.state.reserved_usd - 0.6).abs() < 1e-9);
    assert_eq!(after.state.in_flight, 2);
    // The room it returned admits one more.
    assert_eq!(
        limit(&reserve(&mut l, "d", &lim, Some(0.3), 0, now + 2000)),
        None
    );
    for id in ["b", "c", "d"] {
        settle(&mut l, id, 0.3, 0, now + 3000);
    }
    let s = l.state(&lim, now + 3000);
    assert!((s.spent_usd - 0.93).abs() < 1e-9);
    assert!((s.remaining_usd.unwrap() - 0.07).abs() < 1e-9);
    assert_eq!(
        limit(&reserve(&mut l, "e", &lim, Some(0.08), 0, now + 4000)),
        Some(LimitName::Budget)
    );
    assert_eq!(
        limit(&reserve(&mut l, "f", &lim, Some(0.07), 0, now + 4000)),
        None
    );
}

#[test]
fn an_unpriced_model_is_refused_only_where_a_budget_applies() {
    let mut l = Ledger::default();
    let now = at("2026-12-02T10:00:00Z");
    let budget = limits(json!({"budget_usd": 10}));
    assert_eq!(
        limit(&reserve(&mut l, "a", &budget, None, 1, now)),
        Some(LimitName::Unpriced)
    );
    assert_eq!(l.state(&budget, now).in_flight, 0);
    let rate = limits(json!({"rpm": 10}));
    assert_eq!(limit(&reserve(&mut l, "b", &rate, None, 1, now)), None);
}

#[test]
fn cost_counts_in_the_period_the_request_started_in() {
    let lim = limits(json!({"budget_usd": 1.0, "budget_period": "day"}));
    let mut l = Ledger::default();
    let before = at("2026-12-31T23:59:59Z");
    let after = at("2027-01-01T00:00:01Z");
    assert_eq!(
        limit(&reserve(&mut l, "a", &lim, Some(0.5), 0, before)),
        None
    );
    settle(&mut l, "a", 0.4, 0, after);
    // The new day starts clean; the old one keeps the cost.
    assert_eq!(l.state(&lim, after).spent_usd, 0.0);
    assert!((l.state(&lim, before).spent_usd - 0.4).abs() < 1e-9);
    // A monthly budget sees the same split at the month boundary; `total` sees everything.
    let month = limits(json!({"budget_usd": 1.0}));
    assert_eq!(l.state(&month, after).spent_usd, 0.0);
    assert_eq!(
        l.state(&month, after).resets_at_ms,
        Some(at("2027-02-01T00:00:00Z"))
    );
    let total = limits(json!({"budget_usd": 1.0, "budget_period": "total"}));
    assert!((l.state(&total, after).spent_usd - 0.4).abs() < 1e-9);
    assert_eq!(l.state(&total, after).resets_at_ms, None);
}

#[test]
fn a_lease_expires_and_the_sweep_frees_its_budget_and_slot() {
    let lim = limits(json!({"budget_usd": 1.0, "max_parallel": 1}));
    let mut l = Ledger::default();
    let now = at("2026-12-02T10:00:00Z");
    assert_eq!(
        limit(&reserve(&mut l, "lost", &lim, Some(0.9), 0, now)),
        None
    );
    assert_eq!(
        limit(&reserve(&mut l, "next", &lim, Some(0.05), 0, now + 1000)),
        Some(LimitName::MaxParallel)
    );
    // The isolate holding "lost" died: nothing settles it. At the lease's end it is gone.
    let swept = l.handle(Call::View { limits: lim }, now + LEASE);
    assert_eq!(swept.state.in_flight, 0);
    assert_eq!(swept.state.reserved_usd, 0.0);
    assert_eq!(
        limit(&reserve(&mut l, "next", &lim, Some(0.9), 0, now + LEASE)),
        None
    );
    // A settlement that arrives after all still counts its cost, in its own day.
    settle(&mut l, "lost", 0.2, 0, now + LEASE + 1);
    assert!((l.state(&lim, now + LEASE + 1).spent_usd - 0.2).abs() < 1e-9);
}

#[test]
fn rpm_is_a_sliding_minute() {
    let lim = limits(json!({"rpm": 3}));
    let mut l = Ledger::default();
    let t0 = at("2026-12-02T10:00:00Z");
    for (i, dt) in [0u64, 10_000, 20_000].iter().enumerate() {
        let r = reserve(&mut l, &format!("r{i}"), &lim, None, 0, t0 + dt);
        assert_eq!(limit(&r), None);
        settle(&mut l, &format!("r{i}"), 0.0, 0, t0 + dt + 1);
    }
    let fourth = reserve(&mut l, "r3", &lim, None, 0, t0 + 30_000);
    assert_eq!(limit(&fourth), Some(LimitName::Rpm));
    // The first request leaves the window 60 s after it came: 30 s from now.
    assert_eq!(fourth.refusal.unwrap().retry_after_s, Some(30));
    assert_eq!(fourth.state.requests_last_minute, 3);
    assert_eq!(fourth.state.requests_reset_s, 30);
    assert_eq!(
        limit(&reserve(&mut l, "r3", &lim, None, 0, t0 + 59_999)),
        Some(LimitName::Rpm)
    );
    assert_eq!(
        limit(&reserve(&mut l, "r3", &lim, None, 0, t0 + 60_000)),
        None
    );
}

#[test]
fn tpm_counts_the_estimate_then_what_was_used() {
    let lim = limits(json!({"tpm": 1000}));
    let mut l = Ledger::default();
    let t0 = at("2026-12-02T10:00:00Z");
    assert_eq!(limit(&reserve(&mut l, "a", &lim, None, 800, t0)), None);
    let r = reserve(&mut l, "b", &lim, None, 300, t0 + 5_000);
    assert_eq!(limit(&r), Some(LimitName::Tpm));
    assert_eq!(r.refusal.unwrap().retry_after_s, Some(55));
    // "a" really used 100 tokens: the window now holds 100, so "b" fits.
    settle(&mut l, "a", 0.0, 100, t0 + 6_000);
    assert_eq!(l.state(&lim, t0 + 6_000).tokens_last_minute, 100);
    assert_eq!(
        limit(&reserve(&mut l, "b", &lim, None, 300, t0 + 6_000)),
        None
    );
    // One request larger than the whole allowance gets an empty minute, not a refusal forever.
    let mut empty = Ledger::default();
    assert_eq!(
        limit(&reserve(&mut empty, "big", &lim, None, 5000, t0)),
        None
    );
    assert_eq!(
        limit(&reserve(&mut empty, "next", &lim, None, 1, t0)),
        Some(LimitName::Tpm)
    );
}

#[test]
fn max_parallel_counts_requests_in_flight() {
    let lim = limits(json!({"max_parallel": 2}));
    let mut l = Ledger::default();
    let now = at("2026-12-02T10:00:00Z");
    let results: Vec<Option<LimitName>> = (0..6)
        .map(|i| limit(&reserve(&mut l, &format!("s{i}"), &lim, None, 0, now)))
        .collect();
    assert_eq!(results.iter().filter(|r| r.is_none()).count(), 2);
    assert!(results[2..]
        .iter()
        .all(|r| *r == Some(LimitName::MaxParallel)));
    settle(&mut l, "s0", 0.0, 0, now);
    assert_eq!(limit(&reserve(&mut l, "s6", &lim, None, 0, now)), None);
}

#[test]
fn a_release_undoes_the_admission() {
    let lim = limits(json!({"rpm": 1, "budget_usd": 1}));
    let mut l = Ledger::default();
    let now = at("2026-12-02T10:00:00Z");
    assert_eq!(limit(&reserve(&mut l, "a", &lim, Some(0.5), 10, now)), None);
    l.handle(Call::Release { id: "a".into() }, now);
    let s = l.state(&lim, now);
    assert_eq!(
        (s.in_flight, s.requests_last_minute, s.tokens_last_minute),
        (0, 0, 0)
    );
    assert_eq!(s.spent_usd, 0.0);
    assert_eq!(limit(&reserve(&mut l, "b", &lim, Some(0.5), 10, now)), None);
}

#[test]
fn a_repeated_reservation_is_held_once() {
    let lim = limits(json!({"max_parallel": 1}));
    let mut l = Ledger::default();
    let now = at("2026-12-02T10:00:00Z");
    assert_eq!(limit(&reserve(&mut l, "a", &lim, None, 0, now)), None);
    assert_eq!(limit(&reserve(&mut l, "a", &lim, None, 0, now)), None);
    assert_eq!(l.state(&lim, now).in_flight, 1);
    assert_eq!(l.state(&lim, now).requests_last_minute, 1);
}

#[test]
fn spend_and_holds_survive_a_round_trip_through_storage() {
    let lim = limits(json!({"budget_usd": 5, "rpm": 10}));
    let mut l = Ledger::default();
    let now = at("2026-12-02T10:00:00Z");
    reserve(&mut l, "a", &lim, Some(1.0), 10, now);
    reserve(&mut l, "b", &lim, Some(1.0), 10, now);
    settle(&mut l, "b", 0.25, 3, now);
    let text = l.to_json().to_string();
    let back = Ledger::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
    let (was, is) = (l.state(&lim, now), back.state(&lim, now));
    assert_eq!(
        (
            is.spent_usd,
            is.reserved_usd,
            is.in_flight,
            is.remaining_usd
        ),
        (
            was.spent_usd,
            was.reserved_usd,
            was.in_flight,
            was.remaining_usd
        )
    );
    assert_eq!(back.holds, l.holds);
    // The rate window is not stored: a restarted object starts a fresh minute.
    assert_eq!((was.requests_last_minute, is.requests_last_minute), (2, 0));
    // Not a ledger: no ledger (the object then fails rather than forget what was spent).
    assert_eq!(Ledger::from_json(&json!({"days": [[1, "x"]]})), None);
    assert_eq!(Ledger::from_json(&json!(null)), None);
    assert_eq!(
        Ledger::from_json(&Ledger::default().to_json()),
        Some(Ledger::default())
    );
}

#[test]
fn old_days_are_pruned_but_total_keeps_them() {
    let total = limits(json!({"budget_usd": 100, "budget_period": "total"}));
    let mut l = Ledger::default();
    let t0 = at("2026-01-01T00:00:00Z");
    reserve(&mut l, "a", &total, Some(1.0), 0, t0);
    settle(&mut l, "a", 1.0, 0, t0);
    let later = at("2026-12-01T00:00:00Z");
    l.sweep(later);
    assert!(l.days.is_empty());
    assert!((l.state(&total, later).spent_usd - 1.0).abs() < 1e-9);
}

#[test]
fn bad_costs_are_not_counted() {
    let lim = limits(json!({"budget_usd": 1}));
    let mut l = Ledger::default();
    let now = at("2026-12-02T10:00:00Z");
    for (id, cost) in [("a", f64::NAN), ("b", -5.0), ("c", f64::INFINITY)] {
        reserve(&mut l, id, &lim, Some(0.1), 0, now);
        settle(&mut l, id, cost, 0, now);
    }
    assert_eq!(l.state(&lim, now).spent_usd, 0.0);
}

#[test]
fn the_public_state_matches_the_contract() {
    let lim = limits(json!({"budget_usd": 25}));
    let l = Ledger::default();
    let v = l.state(&lim, at("2026-12-02T10:00:00Z")).public();
    assert_eq!(
        v,
        json!({"period": "month", "period_start": "2026-12-01T00:00:00.000Z",
               "resets_at": "2027-01-01T00:00:00.000Z", "spent_usd": 0.0, "reserved_usd": 0.0,
               "remaining_usd": 25.0, "in_flight": 0, "requests_last_minute": 0,
               "tokens_last_minute": 0})
    );
}
