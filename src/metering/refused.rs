//! Refusals that do not each leave a usage row: which failures a client address is throttled
//! for, how long a throttled address waits, and the per-minute tally of throttled requests
//! that is written to D1's `refused` table instead — the one exception to "every request
//! leaves exactly one usage row" (README: "Usage rows").

use std::collections::BTreeMap;

use crate::http::error::RelayError;
use crate::time::rfc3339;

/// Failures counted per client address by the `AUTH_LIMIT` rate limiter (wrangler.toml:
/// 10 a minute); past the limit the address is answered 429 for `BLOCK_MS`.
pub const BLOCK_MS: u64 = 60_000;
/// The tally's rows are per minute.
pub const WINDOW_MS: u64 = 60_000;
/// How long an isolate gathers refusals before writing them: at most one D1 write per this
/// interval per isolate, however many requests are refused.
pub const FLUSH_DELAY_MS: u64 = 5_000;

/// What a throttled request had failed at; the tally's `reason` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// No relay key, or one that is unknown, revoked or expired.
    InvalidApiKey,
    /// A wrong `ADMIN_TOKEN`.
    InvalidAdminToken,
    /// A path the relay does not serve (scanners, mistyped base URLs).
    RouteNotFound,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidApiKey => "invalid_api_key",
            Reason::InvalidAdminToken => "invalid_admin_token",
            Reason::RouteNotFound => "route_not_found",
        }
    }

    /// The failures that count against an address: those anyone can cause without a key.
    pub fn of(e: &RelayError) -> Option<Reason> {
        match e {
            RelayError::InvalidApiKey(_) => Some(Reason::InvalidApiKey),
            RelayError::AdminUnauthorized => Some(Reason::InvalidAdminToken),
            RelayError::RouteNotFound { .. } => Some(Reason::RouteNotFound),
            _ => None,
        }
    }

    /// The rate limiter's key: each reason is counted separately per address.
    pub fn limiter_key(self, ip: &str) -> String {
        format!("{}:{ip}", self.as_str())
    }
}

/// Seconds a client blocked at `blocked_at_ms` still waits at `now_ms` (at least 1).
pub fn retry_after_s(blocked_at_ms: u64, now_ms: u64) -> u64 {
    let left = (blocked_at_ms.saturating_add(BLOCK_MS)).saturating_sub(now_ms);
    left.div_ceil(1000).max(1)
}

/// The start of the minute `now_ms` falls in, in the table's text form.
pub fn window_start(now_ms: u64) -> String {
    rfc3339(now_ms - now_ms % WINDOW_MS)
}

/// An isolate's refusals not yet written, by (window start, reason).
#[derive(Debug, Default)]
pub struct Tally {
    counts: BTreeMap<(String, Reason), u64>,
    flush_pending: bool,
}

impl Tally {
    /// Counts one refusal; true when the caller must schedule a flush (none is pending).
    pub fn add(&mut self, reason: Reason, now_ms: u64) -> bool {
        let n = self
            .counts
            .entry((window_start(now_ms), reason))
            .or_insert(0);
        *n = n.saturating_add(1);
        !std::mem::replace(&mut self.flush_pending, true)
    }

    /// Everything counted so far, for one write; the next `add` schedules the next flush.
    pub fn take(&mut self) -> Vec<(String, Reason, u64)> {
        self.flush_pending = false;
        std::mem::take(&mut self.counts)
            .into_iter()
            .map(|((w, r), n)| (w, r, n))
            .collect()
    }

    /// Puts back counts whose write failed, so the next flush carries them.
    pub fn restore(&mut self, rows: Vec<(String, Reason, u64)>) {
        for (w, r, n) in rows {
            let c = self.counts.entry((w, r)).or_insert(0);
            *c = c.saturating_add(n);
        }
    }
}

/// One statement adding `rows` rows of `(window_start, reason, count)` (bound in that order)
/// to whatever the table already holds for them.
pub fn upsert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|i| format!("(?{}, ?{}, ?{})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
        .collect();
    format!(
        "INSERT INTO refused (window_start, reason, count) VALUES {} \
         ON CONFLICT(window_start, reason) DO UPDATE SET count = MIN(count + excluded.count, 9007199254740991)",
        values.join(", ")
    )
}

/// Totals per reason for windows starting in `[from, to)` (each bound optional, ?1 and ?2).
pub const TOTALS_SQL: &str = "SELECT reason, SUM(count) AS count FROM refused \
     WHERE (?1 IS NULL OR window_start >= ?1) AND (?2 IS NULL OR window_start < ?2) \
     GROUP BY reason ORDER BY reason";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::http::error::KeyProblem;

    #[test]
    fn which_failures_count() {
        assert_eq!(
            Reason::of(&RelayError::InvalidApiKey(KeyProblem::Missing)),
            Some(Reason::InvalidApiKey)
        );
        assert_eq!(
            Reason::of(&RelayError::AdminUnauthorized),
            Some(Reason::InvalidAdminToken)
        );
        assert_eq!(
            Reason::of(&RelayError::RouteNotFound {
                method: "GET".into(),
                path: "/wp-login.php".into()
            }),
            Some(Reason::RouteNotFound)
        );
        // A key holder's own mistakes are theirs to see, row by row.
        assert_eq!(Reason::of(&RelayError::ModelNotFound("x".into())), None);
        assert_eq!(Reason::of(&RelayError::invalid("bad", None)), None);
        assert_eq!(
            Reason::InvalidAdminToken.limiter_key("203.0.113.7"),
            "invalid_admin_token:203.0.113.7"
        );
    }

    #[test]
    fn retry_after_counts_down_to_one() {
        assert_eq!(retry_after_s(1_000, 1_000), 60);
        assert_eq!(retry_after_s(1_000, 1_001), 60);
        assert_eq!(retry_after_s(1_000, 60_500), 1);
        assert_eq!(retry_after_s(1_000, 99_000), 1);
        assert_eq!(retry_after_s(u64::MAX, 0), u64::MAX.div_ceil(1000));
    }

    #[test]
    fn tally_schedules_one_flush_and_adds_up() {
        let mut t = Tally::default();
        let t0 = 1_764_547_200_000; // a minute boundary
        assert!(t.add(Reason::InvalidApiKey, t0), "first refusal schedules");
        for i in 1..30 {
            assert!(!t.add(Reason::InvalidApiKey, t0 + i), "one flush pending");
        }
        assert!(!t.add(Reason::InvalidAdminToken, t0 + 59_999));
        assert!(!t.add(Reason::InvalidApiKey, t0 + 60_000));
        let rows = t.take();
        assert_eq!(
            rows,
            vec![
                (window_start(t0), Reason::InvalidApiKey, 30),
                (window_start(t0), Reason::InvalidAdminToken, 1),
                (window_start(t0 + 60_000), Reason::InvalidApiKey, 1),
            ]
        );
        assert_eq!(window_start(t0 + 59_999), "2025-12-01T00:00:00.000Z");
        assert!(t.take().is_empty());
        t.restore(rows);
        assert!(
            t.add(Reason::InvalidApiKey, t0),
            "after a flush, the next one schedules"
        );
        let total: u64 = t.take().iter().map(|(_, _, n)| n).sum();
        assert_eq!(total, 33);
    }

    #[test]
    fn upsert_binds_three_per_row() {
        assert_eq!(
            upsert_sql(2),
            "INSERT INTO refused (window_start, reason, count) VALUES (?1, ?2, ?3), (?4, ?5, ?6) ON CONFLICT(window_start, reason) DO UPDATE SET count = MIN(count + excluded.count, 9007199254740991)"
        );
    }
}
