//! Usage reporting as data: the `GET /admin/usage` query (filters, time range, grouping) turned
//! into one parameterised SQL statement, and CSV rendering for the export.

use serde_json::Value;

use crate::http::error::RelayError;
use crate::time::{parse_rfc3339, rfc3339};

/// What a report can be grouped by: (query name, SQL expression over `usage`).
const DIMENSIONS: &[(&str, &str)] = &[
    ("team", "team"),
    ("user", "user"),
    ("key", "key_id"),
    ("model", "model_requested"),
    ("provider", "provider"),
    ("outcome", "outcome"),
    ("day", "substr(started_at, 1, 10)"),
    ("hour", "substr(started_at, 1, 13) || ':00'"),
];

/// Equality filters: (query name, column); shared with the per-request listing.
const FILTERS: &[(&str, &str)] = &[
    ("team", "team"),
    ("user", "user"),
    ("key", "key_id"),
    ("model", "model_requested"),
    ("provider", "provider"),
    ("outcome", "outcome"),
];

/// The figures every report row carries, after its group columns.
pub const MEASURES: &[&str] = &[
    "requests",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced_requests",
    "errors",
    "p50_duration_ms",
    "p95_duration_ms",
    "cache_hits",
    "cache_hit_rate",
    "saved_usd",
];

/// Which usage rows a report or listing covers: a time range (`from` inclusive, `to`
/// exclusive, a date meaning 00:00 UTC) and equality filters, shared by `/admin/usage` and
/// `/admin/requests` so both read their query strings and build their WHERE alike.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub from: Option<String>,
    pub to: Option<String>,
    filters: Vec<(&'static str, String)>,
}

impl Scope {
    /// Takes one query parameter if it is `from`, `to` or a filter; false for any other name.
    pub fn take(&mut self, name: &str, v: &str) -> Result<bool, RelayError> {
        match name {
            "from" => self.from = Some(instant("from", v)?),
            "to" => self.to = Some(instant("to", v)?),
            _ => match FILTERS.iter().find(|(n, _)| *n == name) {
                Some((_, col)) => self.filters.push((col, v.to_string())),
                None => return Ok(false),
            },
        }
        Ok(true)
    }

    /// Refuses an empty or inverted range.
    pub fn check(&self) -> Result<(), RelayError> {
        match (&self.from, &self.to) {
            (Some(f), Some(t)) if f >= t => Err(RelayError::invalid(
                "'from' must be before 'to'.",
                Some("from"),
            )),
            _ => Ok(()),
        }
    }

    /// The WHERE conditions; `bind` takes each text parameter and returns its `?N` number.
    pub fn conditions(&self, mut bind: impl FnMut(&str) -> usize) -> Vec<String> {
        let mut conds = Vec::new();
        if let Some(f) = &self.from {
            conds.push(format!("started_at >= ?{}", bind(f)));
        }
        if let Some(t) = &self.to {
            conds.push(format!("started_at < ?{}", bind(t)));
        }
        for (col, v) in &self.filters {
            conds.push(format!("{col} = ?{}", bind(v)));
        }
        conds
    }
}

/// Refuses a query parameter no endpoint reads, by name, as everywhere in the admin API.
pub fn unknown_param(name: &str) -> RelayError {
    RelayError::invalid(format!("Unknown query parameter: '{name}'."), Some(name))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub scope: Scope,
    group_by: Vec<(&'static str, &'static str)>,
}

/// A `from`/`to` value in the one text form `started_at` is stored in.
fn instant(name: &str, v: &str) -> Result<String, RelayError> {
    parse_rfc3339(v).map(rfc3339).ok_or_else(|| {
        RelayError::invalid(
            format!("'{name}' must be a date (2026-11-01) or an RFC 3339 UTC time."),
            Some(name),
        )
    })
}

impl UsageQuery {
    /// Reads the query string. `from` is inclusive, `to` exclusive; a date means 00:00 UTC.
    pub fn parse(pairs: &[(String, String)], extra_allowed: &[&str]) -> Result<Self, RelayError> {
        let mut q = UsageQuery {
            scope: Scope::default(),
            group_by: Vec::new(),
        };
        for (k, v) in pairs {
            if q.scope.take(k, v)? {
                continue;
            }
            match k.as_str() {
                "group_by" => {
                    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        let dim = DIMENSIONS.iter().find(|(n, _)| *n == part).ok_or_else(|| {
                            RelayError::invalid(
                                format!(
                                    "'group_by' may list {}; got '{part}'.",
                                    DIMENSIONS
                                        .iter()
                                        .map(|(n, _)| *n)
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                                Some("group_by"),
                            )
                        })?;
                        if !q.group_by.contains(dim) {
                            q.group_by.push(*dim);
                        }
                    }
                }
                name if extra_allowed.contains(&name) => {}
                name => return Err(unknown_param(name)),
            }
        }
        q.scope.check()?;
        Ok(q)
    }

    /// Output columns in order: the group names, then `MEASURES`.
    pub fn columns(&self) -> Vec<&'static str> {
        self.group_by
            .iter()
            .map(|(n, _)| *n)
            .chain(MEASURES.iter().copied())
            .collect()
    }

    /// One statement and its text parameters. Percentiles are nearest-rank over each group's
    /// durations (SQLite has no percentile function; window functions do it in one pass).
    pub fn sql(&self) -> (String, Vec<String>) {
        let mut params = Vec::new();
        let conds = self.scope.conditions(|v| {
            params.push(v.to_string());
            params.len()
        });
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let groups: Vec<String> = self
            .group_by
            .iter()
            .map(|(name, expr)| format!("{expr} AS g_{name}"))
            .collect();
        let gcols: Vec<String> = self
            .group_by
            .iter()
            .map(|(n, _)| format!("g_{n}"))
            .collect();
        let partition = if gcols.is_empty() {
            String::new()
        } else {
            format!("PARTITION BY {} ", gcols.join(", "))
        };
        let select_groups: Vec<String> = self
            .group_by
            .iter()
            .map(|(n, _)| format!("g_{n} AS \"{n}\""))
            .collect();
        let mut sql = format!(
            "WITH f AS (SELECT {groups}duration_ms, prompt_tokens, completion_tokens, cached_tokens, \
             cache_write_tokens, reasoning_tokens, cost_usd, outcome, cache, saved_usd FROM usage{filter}), \
             r AS (SELECT f.*, ROW_NUMBER() OVER ({partition}ORDER BY duration_ms) AS rn, \
             COUNT(*) OVER ({partition_trim}) AS cnt FROM f) \
             SELECT {select_groups}COUNT(*) AS requests, \
             {sum_prompt_tokens} AS prompt_tokens, \
             {sum_completion_tokens} AS completion_tokens, \
             {sum_cached_tokens} AS cached_tokens, \
             {sum_cache_write_tokens} AS cache_write_tokens, \
             {sum_reasoning_tokens} AS reasoning_tokens, \
             SUM(cost_usd) AS cost_usd, \
             COALESCE(SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END), 0) AS unpriced_requests, \
             COALESCE(SUM(CASE WHEN outcome != 'ok' THEN 1 ELSE 0 END), 0) AS errors, \
             MIN(CASE WHEN rn * 100 >= cnt * 50 THEN duration_ms END) AS p50_duration_ms, \
             MIN(CASE WHEN rn * 100 >= cnt * 95 THEN duration_ms END) AS p95_duration_ms, \
             {hits} AS cache_hits, \
             CAST({hits} AS REAL) / NULLIF({cached}, 0) AS cache_hit_rate, \
             TOTAL(saved_usd) AS saved_usd \
             FROM r",
            // Hit rate over the rows where caching was in play (`cache` not NULL); NULL if none.
            hits = "COALESCE(SUM(CASE WHEN cache = 'hit' THEN 1 ELSE 0 END), 0)",
            cached = "SUM(CASE WHEN cache IS NOT NULL THEN 1 ELSE 0 END)",
            groups = groups.iter().map(|g| format!("{g}, ")).collect::<String>(),
            sum_prompt_tokens = token_sum("prompt_tokens"),
            sum_completion_tokens = token_sum("completion_tokens"),
            sum_cached_tokens = token_sum("cached_tokens"),
            sum_cache_write_tokens = token_sum("cache_write_tokens"),
            sum_reasoning_tokens = token_sum("reasoning_tokens"),
            partition_trim = partition.trim_end(),
            select_groups = select_groups.iter().map(|g| format!("{g}, ")).collect::<String>(),
        );
        // Without groups this is one row of totals (0 requests when nothing matched).
        if !gcols.is_empty() {
            sql.push_str(&format!(" GROUP BY {0} ORDER BY {0}", gcols.join(", ")));
        }
        (sql, params)
    }
}

/// Largest sum a report states: JSON numbers above 2^53 lose precision in JavaScript clients.
pub const MAX_REPORTED_SUM: u64 = (1 << 53) - 1;

/// A token column's sum that cannot fail: `TOTAL` adds in floating point (SQLite's `SUM` of
/// integers raises "integer overflow" past i64, which rows written before counts were capped
/// can reach), clamped to `MAX_REPORTED_SUM` and returned as an integer.
fn token_sum(col: &str) -> String {
    format!("CAST(MIN(TOTAL({col}), {MAX_REPORTED_SUM}) AS INTEGER)")
}

/// First characters that make a spreadsheet read a cell as a formula (OWASP "CSV Injection").
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// One cell. Text that a spreadsheet would run as a formula gets a leading `'`, so a key
/// holder's model name such as `=HYPERLINK(…)` opens as text. Numbers come from the report's
/// measures (D1 numbers, never client text) and are written as they are, so `-1` stays a number.
fn csv_field(v: &Value) -> String {
    let text = match v {
        Value::Null => String::new(),
        Value::String(s) if s.starts_with(FORMULA_STARTS) => format!("'{s}"),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// RFC 4180 CSV with a header row, columns in `columns` order.
pub fn csv(columns: &[&str], rows: &[Value]) -> String {
    let mut out = columns.join(",");
    out.push_str("\r\n");
    for row in rows {
        let line: Vec<String> = columns
            .iter()
            .map(|c| csv_field(row.get(*c).unwrap_or(&Value::Null)))
            .collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> Result<UsageQuery, RelayError> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        UsageQuery::parse(&pairs, &["format"])
    }

    #[test]
    fn parses_filters_and_groups() {
        let query = q(&[
            ("from", "2026-11-01"),
            ("to", "2026-11-02T12:00:00Z"),
            ("team", "a"),
            ("group_by", "team,model,team"),
            ("format", "csv"),
        ])
        .unwrap();
        assert_eq!(
            query.scope.from.as_deref(),
            Some("2026-11-01T00:00:00.000Z")
        );
        assert_eq!(query.columns()[..3], ["team", "model", "requests"]);
        let (sql, params) = query.sql();
        assert_eq!(
            params,
            vec!["2026-11-01T00:00:00.000Z", "2026-11-02T12:00:00.000Z", "a"]
        );
        assert!(sql.contains("started_at >= ?1 AND started_at < ?2 AND team = ?3"));
        assert!(sql.contains("GROUP BY g_team, g_model ORDER BY g_team, g_model"));
        assert!(sql.contains("AS cache_hits") && sql.contains("NULLIF("));
        assert_eq!(
            query.columns()[query.columns().len() - 3..],
            ["cache_hits", "cache_hit_rate", "saved_usd"]
        );
        let (total, none) = q(&[]).unwrap().sql();
        assert!(none.is_empty());
        assert!(!total.contains("GROUP BY") && !total.contains("WHERE"));
    }

    #[test]
    fn rejections() {
        assert_eq!(
            q(&[("group_by", "team,colour")]).unwrap_err(),
            RelayError::invalid("'group_by' may list team, user, key, model, provider, outcome, day, hour; got 'colour'.", Some("group_by"))
        );
        assert_eq!(
            q(&[("since", "x")]).unwrap_err(),
            RelayError::invalid("Unknown query parameter: 'since'.", Some("since"))
        );
        assert_eq!(
            q(&[("from", "yesterday")]).unwrap_err(),
            RelayError::invalid(
                "'from' must be a date (2026-11-01) or an RFC 3339 UTC time.",
                Some("from")
            )
        );
        assert_eq!(
            q(&[("from", "2026-11-02"), ("to", "2026-11-01")]).unwrap_err(),
            RelayError::invalid("'from' must be before 'to'.", Some("from"))
        );
    }

    #[test]
    fn csv_quotes_per_rfc4180() {
        let rows = vec![
            json!({"team": "a,b", "requests": 2, "cost_usd": null}),
            json!({"team": "say \"hi\"", "requests": 1, "cost_usd": 0.5}),
        ];
        assert_eq!(
            csv(&["team", "requests", "cost_usd"], &rows),
            "team,requests,cost_usd\r\n\"a,b\",2,\r\n\"say \"\"hi\"\"\",1,0.5\r\n"
        );
    }

    #[test]
    fn csv_neutralises_formulas_in_text_but_not_numbers() {
        let rows = vec![
            json!({"model": "=HYPERLINK(\"https://evil\",\"x\")", "requests": -1}),
            json!({"model": "+1", "requests": 0}),
            json!({"model": "-1", "requests": -2.5}),
            json!({"model": "@SUM(A1)", "requests": 1}),
            json!({"model": "\tx", "requests": 1}),
            json!({"model": "\rx", "requests": 1}),
            json!({"model": "gpt-4o=x", "requests": 1}),
        ];
        assert_eq!(
            csv(&["model", "requests"], &rows),
            "model,requests\r\n\"'=HYPERLINK(\"\"https://evil\"\",\"\"x\"\")\",-1\r\n'+1,0\r\n'-1,-2.5\r\n'@SUM(A1),1\r\n'\tx,1\r\n\"'\rx\",1\r\ngpt-4o=x,1\r\n"
        );
    }
}
