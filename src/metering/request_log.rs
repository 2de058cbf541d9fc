//! The per-request listing behind `GET /admin/requests`: one usage row per request, newest
//! first, with the same filters and time range as the usage report, paged by a cursor that
//! carries the position of the last row seen (so a page never repeats or skips a row, even
//! while new rows arrive at the top).

use serde_json::Value;

use crate::http::error::RelayError;
use crate::metering::columns;
use crate::metering::report::{unknown_param, Scope};
use crate::time::parse_rfc3339;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 200;

/// A column as listed: token counts are clamped to what a JavaScript number holds exactly,
/// whatever rows written before counts were capped contain.
fn select_column(col: &str) -> String {
    if col.ends_with("_tokens") {
        format!(
            "MIN({col}, {}) AS {col}",
            crate::metering::report::MAX_REPORTED_SUM
        )
    } else {
        col.to_string()
    }
}

/// Where the previous page ended: its last row's start time and request id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Position {
    started_at: String,
    request_id: String,
}

const CURSOR_SEPARATOR: char = '~';

impl Position {
    fn encode(&self) -> String {
        format!("{}{CURSOR_SEPARATOR}{}", self.started_at, self.request_id)
    }

    fn decode(cursor: &str) -> Option<Position> {
        let (at, id) = cursor.split_once(CURSOR_SEPARATOR)?;
        let id_ok = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        // The time must already be in stored form: the comparison is on text.
        let at_ok = parse_rfc3339(at).is_some_and(|ms| crate::time::rfc3339(ms) == at);
        (id_ok && at_ok).then(|| Position {
            started_at: at.to_string(),
            request_id: id.to_string(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestsQuery {
    pub scope: Scope,
    pub limit: usize,
    after: Option<Position>,
}

impl RequestsQuery {
    /// Reads `from`, `to`, the report's equality filters, `limit` and `cursor`; anything else
    /// is refused by name, as everywhere in the admin API.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, RelayError> {
        let mut q = RequestsQuery {
            scope: Scope::default(),
            limit: DEFAULT_LIMIT,
            after: None,
        };
        for (k, v) in pairs {
            if q.scope.take(k, v)? {
                continue;
            }
            match k.as_str() {
                "limit" => {
                    q.limit = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            RelayError::invalid(
                                format!("'limit' must be 1-{MAX_LIMIT}."),
                                Some("limit"),
                            )
                        })?
                }
                "cursor" => {
                    q.after = Some(Position::decode(v).ok_or_else(|| {
                        RelayError::invalid(
                            "'cursor' must be a next_cursor from a previous page.",
                            Some("cursor"),
                        )
                    })?)
                }
                name => return Err(unknown_param(name)),
            }
        }
        q.scope.check()?;
        Ok(q)
    }

    /// One statement and its parameters. It asks for one row more than the page so the answer
    /// knows whether another page follows without a second query. Filtered listings read the
    /// same `(column, started_at)` indexes as the usage report.
    pub fn sql(&self) -> (String, Vec<Value>) {
        let mut params: Vec<Value> = Vec::new();
        // Binds a parameter and returns its 1-based number for `?N`.
        let bind = |v: Value, params: &mut Vec<Value>| {
            params.push(v);
            params.len()
        };
        let mut conds = self.scope.conditions(|v| bind(Value::from(v), &mut params));
        if let Some(p) = &self.after {
            let at = bind(Value::from(p.started_at.as_str()), &mut params);
            let id = bind(Value::from(p.request_id.as_str()), &mut params);
            conds.push(format!("(started_at, request_id) < (?{at}, ?{id})"));
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let n = bind(Value::from(self.limit + 1), &mut params);
        let select: Vec<String> = columns::listed().map(select_column).collect();
        let sql = format!(
            "SELECT {} FROM usage{filter} ORDER BY started_at DESC, request_id DESC LIMIT ?{n}",
            select.join(", ")
        );
        (sql, params)
    }

    /// Cuts the extra row off and turns the last kept row into the next page's cursor.
    pub fn page(&self, mut rows: Vec<Value>) -> (Vec<Value>, Option<String>) {
        if rows.len() <= self.limit {
            return (rows, None);
        }
        rows.truncate(self.limit);
        let next = rows.last().and_then(|r| {
            Some(
                Position {
                    started_at: r.get("started_at")?.as_str()?.to_string(),
                    request_id: r.get("request_id")?.as_str()?.to_string(),
                }
                .encode(),
            )
        });
        (rows, next)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Result<RequestsQuery, RelayError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        RequestsQuery::parse(&pairs)
    }

    #[test]
    fn builds_filtered_newest_first_sql() {
        let query = q(&[
            ("key", "key_1"),
            ("from", "2026-11-01"),
            ("to", "2026-11-02"),
            ("model", "gpt-4o"),
            ("limit", "2"),
            ("cursor", "2026-11-01T10:00:00.000Z~req_9"),
        ])
        .unwrap();
        let (sql, params) = query.sql();
        assert!(sql.starts_with("SELECT started_at, request_id, key_id, team,"));
        assert!(sql.contains(
            " FROM usage WHERE started_at >= ?1 AND started_at < ?2 AND key_id = ?3 \
             AND model_requested = ?4 AND (started_at, request_id) < (?5, ?6) \
             ORDER BY started_at DESC, request_id DESC LIMIT ?7"
        ));
        assert_eq!(
            params,
            vec![
                json!("2026-11-01T00:00:00.000Z"),
                json!("2026-11-02T00:00:00.000Z"),
                json!("key_1"),
                json!("gpt-4o"),
                json!("2026-11-01T10:00:00.000Z"),
                json!("req_9"),
                json!(3),
            ]
        );
        let (all, none) = q(&[]).unwrap().sql();
        assert!(!all.contains("WHERE"));
        assert_eq!(none, vec![json!(DEFAULT_LIMIT + 1)]);
    }

    #[test]
    fn pages_with_a_cursor_of_the_last_row() {
        let query = q(&[("limit", "2")]).unwrap();
        let row = |at: &str, id: &str| json!({"started_at": at, "request_id": id});
        let rows = vec![
            row("2026-11-03T00:00:00.000Z", "req_c"),
            row("2026-11-02T00:00:00.000Z", "req_b"),
            row("2026-11-01T00:00:00.000Z", "req_a"),
        ];
        let (kept, next) = query.page(rows.clone());
        assert_eq!(kept, rows[..2]);
        assert_eq!(next.as_deref(), Some("2026-11-02T00:00:00.000Z~req_b"));
        let follow = q(&[("cursor", next.as_deref().unwrap())]).unwrap();
        assert_eq!(
            follow.after,
            Some(Position {
                started_at: "2026-11-02T00:00:00.000Z".into(),
                request_id: "req_b".into()
            })
        );
        let (last, none) = query.page(rows[2..].to_vec());
        assert_eq!((last.len(), none), (1, None));
    }

    #[test]
    fn rejections() {
        let cases = [
            (("limit", "0"), "'limit' must be 1-200.", "limit"),
            (("limit", "201"), "'limit' must be 1-200.", "limit"),
            (("limit", "ten"), "'limit' must be 1-200.", "limit"),
            (
                ("cursor", "req_1"),
                "'cursor' must be a next_cursor from a previous page.",
                "cursor",
            ),
            (
                ("cursor", "2026-11-01~req_1"),
                "'cursor' must be a next_cursor from a previous page.",
                "cursor",
            ),
            (
                ("cursor", "2026-11-01T00:00:00.000Z~req 1"),
                "'cursor' must be a next_cursor from a previous page.",
                "cursor",
            ),
            (
                ("group_by", "team"),
                "Unknown query parameter: 'group_by'.",
                "group_by",
            ),
            (
                ("from", "yesterday"),
                "'from' must be a date (2026-11-01) or an RFC 3339 UTC time.",
                "from",
            ),
        ];
        for ((k, v), message, param) in cases {
            assert_eq!(
                q(&[(k, v)]).unwrap_err(),
                RelayError::invalid(message, Some(param)),
                "{k}={v}"
            );
        }
        assert_eq!(
            q(&[("from", "2026-11-02"), ("to", "2026-11-02")]).unwrap_err(),
            RelayError::invalid("'from' must be before 'to'.", Some("from"))
        );
    }
}
