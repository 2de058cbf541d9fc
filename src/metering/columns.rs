//! The `usage` table's columns, one line each: the name, whether `GET /admin/requests` lists
//! it, and how its value is read from a `UsageRecord`. The D1 upsert (edge/store.rs) and the
//! request listing (request_log.rs) both read this table, so a new column is one line here
//! (plus its migration).

use crate::metering::usage::UsageRecord;

/// One value as D1 stores it. Integers stay `u64` here; the edge decides how to bind them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Text(Option<&'a str>),
    Int(Option<u64>),
    Real(Option<f64>),
}

/// What the row is written from: the record, and whether its stream's fate is known.
pub struct Row<'a> {
    pub record: &'a UsageRecord,
    pub settled: bool,
}

pub struct Column {
    pub name: &'static str,
    /// Part of each row `GET /admin/requests` answers with.
    pub listed: bool,
    pub value: for<'a> fn(&Row<'a>) -> Cell<'a>,
}

const fn col(name: &'static str, value: for<'a> fn(&Row<'a>) -> Cell<'a>) -> Column {
    Column {
        name,
        listed: true,
        value,
    }
}

/// A column the row keeps but the listing does not show.
const fn unlisted(name: &'static str, value: for<'a> fn(&Row<'a>) -> Cell<'a>) -> Column {
    Column {
        name,
        listed: false,
        value,
    }
}

fn text(s: &Option<String>) -> Cell<'_> {
    Cell::Text(s.as_deref())
}

fn int(n: impl Into<u64>) -> Cell<'static> {
    Cell::Int(Some(n.into()))
}

/// Every column, in the listing's answer order: when and which request first, then who, what,
/// how it ended, what it cost and how long it took. Names are the `usage` table's own (README:
/// "Usage records").
pub const USAGE: &[Column] = &[
    col("started_at", |w| Cell::Text(Some(&w.record.started_at))),
    col("request_id", |w| Cell::Text(Some(&w.record.request_id))),
    col("key_id", |w| text(&w.record.key_id)),
    col("team", |w| text(&w.record.team)),
    col("user", |w| text(&w.record.user)),
    col("method", |w| Cell::Text(Some(&w.record.method))),
    col("route", |w| Cell::Text(Some(&w.record.route))),
    col("model_requested", |w| text(&w.record.model_requested)),
    col("model_upstream", |w| text(&w.record.model_upstream)),
    col("provider", |w| text(&w.record.provider)),
    col("stream", |w| int(w.record.stream)),
    col("status", |w| int(w.record.status)),
    col("outcome", |w| Cell::Text(Some(w.record.outcome.as_str()))),
    col("error_code", |w| text(&w.record.error_code)),
    col("finish_reason", |w| text(&w.record.finish_reason)),
    col("prompt_tokens", |w| int(w.record.tokens.prompt)),
    col("completion_tokens", |w| int(w.record.tokens.completion)),
    col("cached_tokens", |w| int(w.record.tokens.cached)),
    col("cache_write_tokens", |w| int(w.record.tokens.cache_write)),
    col("reasoning_tokens", |w| int(w.record.tokens.reasoning)),
    col("usage_source", |w| {
        Cell::Text(Some(w.record.usage_source.as_str()))
    }),
    col("cost_usd", |w| Cell::Real(w.record.cost_usd)),
    col("cache", |w| Cell::Text(w.record.cache.map(|c| c.as_str()))),
    col("saved_usd", |w| Cell::Real(w.record.saved_usd)),
    col("attempts", |w| int(w.record.attempts)),
    col("client_shape", |w| text(&w.record.client_shape)),
    col("upstream_request_id", |w| {
        text(&w.record.upstream_request_id)
    }),
    col("ttfb_ms", |w| Cell::Int(w.record.ttfb_ms)),
    col("duration_ms", |w| int(w.record.duration_ms)),
    col("settled", |w| int(w.settled)),
    unlisted("response_id", |w| text(&w.record.response_id)),
    col("limit_scope", |w| text(&w.record.limit_scope)),
    col("limit_name", |w| text(&w.record.limit_name)),
];

/// The upsert for one row keyed by `request_id`: `?N` binds `USAGE[N-1]`, and a second write
/// for the same request (a provisional stream row, then the final one) replaces every column.
pub fn upsert_sql() -> String {
    let names: Vec<&str> = USAGE.iter().map(|c| c.name).collect();
    let placeholders: Vec<String> = (1..=USAGE.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = names
        .iter()
        .filter(|c| **c != "request_id")
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO usage ({}) VALUES ({}) ON CONFLICT(request_id) DO UPDATE SET {}",
        names.join(", "),
        placeholders.join(", "),
        updates.join(", ")
    )
}

/// The row's values, in `USAGE` order.
pub fn values<'a>(row: &Row<'a>) -> Vec<Cell<'a>> {
    USAGE.iter().map(|c| (c.value)(row)).collect()
}

/// The names `GET /admin/requests` selects, in answer order.
pub fn listed() -> impl Iterator<Item = &'static str> {
    USAGE.iter().filter(|c| c.listed).map(|c| c.name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::metering::usage::{Tokens, UsageSource};

    fn record() -> UsageRecord {
        // `begin` rather than a literal, so a new field does not break this test.
        let mut r = UsageRecord::begin(
            "req_1",
            "POST",
            "/v1/chat/completions",
            "2026-01-01T00:00:00.000Z".into(),
        );
        r.key_id = Some("key_1".into());
        r.stream = true;
        r.status = 200;
        r.tokens = Tokens {
            prompt: 7,
            ..Tokens::default()
        };
        r.usage_source = UsageSource::Upstream;
        r.cost_usd = Some(0.5);
        r.attempts = 1;
        r.response_id = Some("resp_1".into());
        r.duration_ms = 9;
        r
    }

    #[test]
    fn each_placeholder_binds_its_columns_value() {
        let r = record();
        let row = Row {
            record: &r,
            settled: false,
        };
        let sql = upsert_sql();
        let names = sql
            .split_once('(')
            .and_then(|(_, rest)| rest.split_once(')'))
            .unwrap()
            .0
            .split(", ")
            .collect::<Vec<_>>();
        let values = values(&row);
        assert_eq!(names.len(), values.len());
        let at = |name: &str| values[names.iter().position(|n| *n == name).unwrap()];
        assert_eq!(at("request_id"), Cell::Text(Some("req_1")));
        assert_eq!(at("prompt_tokens"), Cell::Int(Some(7)));
        assert_eq!(at("settled"), Cell::Int(Some(0)));
        assert_eq!(at("ttfb_ms"), Cell::Int(None));
        assert_eq!(at("cost_usd"), Cell::Real(Some(0.5)));
        assert_eq!(at("response_id"), Cell::Text(Some("resp_1")));
        // NULL while caching is not in play (issue 17).
        assert_eq!(at("cache"), Cell::Text(None));
        assert_eq!(at("saved_usd"), Cell::Real(None));
        // The key is never overwritten.
        assert!(!sql.contains(" request_id = excluded"));
        assert!(sql.contains("upstream_request_id = excluded.upstream_request_id"));
        assert!(sql.contains("response_id = excluded.response_id"));
    }

    #[test]
    fn the_listing_leaves_out_only_the_response_id() {
        let listed: Vec<&str> = listed().collect();
        assert_eq!(listed.first(), Some(&"started_at"));
        assert_eq!(listed.len(), USAGE.len() - 1);
        assert!(!listed.contains(&"response_id"));
    }
}
