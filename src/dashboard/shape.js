// Data shaping for the dashboard, pure (no DOM, no network, no clock of its own): date ranges,
// admin API query strings, totals and rates from /admin/usage rows, dense chart series, sorting,
// number formatting and error messages. Unit-tested with `node --test tests/dashboard/`.

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

/** `YYYY-MM-DD` (UTC) of a unix time in ms. */
export function isoDate(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Unix ms of `YYYY-MM-DD` 00:00 UTC, or NaN when it is not a real date. */
export function dateMs(date) {
  if (typeof date !== 'string' || !DATE_RE.test(date)) return NaN;
  const ms = Date.parse(`${date}T00:00:00.000Z`);
  return Number.isFinite(ms) && isoDate(ms) === date ? ms : NaN;
}

export function addDays(date, n) {
  return isoDate(dateMs(date) + n * DAY_MS);
}

/**
 * A named window ending today (UTC), as the inclusive dates the range picker shows:
 * `today`, `7d` (today and the 6 days before) or `30d`. Day-aligned, so the figures match the
 * report's `group_by=day` buckets.
 */
export function preset(name, nowMs) {
  const today = isoDate(nowMs);
  const days = { today: 1, '7d': 7, '30d': 30 }[name];
  if (!days) throw new Error(`unknown preset ${name}`);
  return { from: addDays(today, 1 - days), through: today };
}

/** Checks a picked range; returns an error message, or null when it is usable. */
export function rangeProblem({ from, through }) {
  if (Number.isNaN(dateMs(from))) return "'From' must be a date.";
  if (Number.isNaN(dateMs(through))) return "'Through' must be a date.";
  if (from > through) return "'From' must not be after 'Through'.";
  return null;
}

/** The API's half-open range for inclusive picker dates: `to` is the day after `through`. */
export function apiRange({ from, through }) {
  return { from, to: addDays(through, 1) };
}

/** Hours for short ranges (up to 2 days), days otherwise. */
export function autoBucket({ from, through }) {
  return dateMs(through) - dateMs(from) < 2 * DAY_MS ? 'hour' : 'day';
}

/**
 * A query string for the admin API from a plain object, leaving out empty values, in the
 * order given (so the same view always asks the same URL).
 */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** The filters every view applies: team, user and model, trimmed; empty ones dropped. */
export function filterParams(state) {
  const out = {};
  for (const k of ['team', 'user', 'model']) {
    const v = (state[k] ?? '').trim();
    if (v) out[k] = v;
  }
  return out;
}

/** Error rate as a fraction; 0 when there were no requests. */
export function errorRate(errors, requests) {
  return requests > 0 ? errors / requests : 0;
}

/** Figures of one /admin/usage row (a total or a group), with derived totals and rates. */
export function figures(row = {}) {
  const n = (v) => (typeof v === 'number' ? v : 0);
  const requests = n(row.requests);
  const prompt = n(row.prompt_tokens);
  const completion = n(row.completion_tokens);
  return {
    requests,
    prompt,
    completion,
    cached: n(row.cached_tokens),
    tokens: prompt + completion,
    // null when no row had a price: "unknown", not zero.
    cost: typeof row.cost_usd === 'number' ? row.cost_usd : null,
    unpriced: n(row.unpriced_requests),
    errors: n(row.errors),
    errorRate: errorRate(n(row.errors), requests),
    p50: row.p50_duration_ms ?? null,
    p95: row.p95_duration_ms ?? null,
  };
}

/** The one row of an ungrouped report (an empty one when the answer has none). */
export function totalsOf(report) {
  return figures(report?.data?.[0]);
}

/**
 * Rows of a report grouped by one dimension, each with its name (`(none)` for rows without
 * one, such as admin calls that have no team) and figures.
 */
export function breakdown(report, dim) {
  return (report?.data ?? []).map((row) => ({
    name: row[dim] ?? null,
    label: row[dim] ?? '(none)',
    ...figures(row),
  }));
}

/** Bucket keys as the report writes them: `2026-11-01` by day, `2026-11-01T10:00` by hour. */
export function bucketKey(ms, bucket) {
  const iso = new Date(ms).toISOString();
  return bucket === 'hour' ? `${iso.slice(0, 13)}:00` : iso.slice(0, 10);
}

/** Unix ms of a bucket key. */
export function bucketMs(key) {
  return Date.parse(key.length === 10 ? `${key}T00:00:00.000Z` : `${key}:00.000Z`);
}

/** Most buckets a chart will draw; beyond this the caller should use a coarser bucket. */
export const MAX_BUCKETS = 24 * 93;

/**
 * Dense series for the chart from a report grouped by `day` or `hour`: one point per bucket
 * of the half-open API range `[from, to)`, zero where nothing happened, x in unix seconds
 * (what the chart library takes). Rows outside the range are ignored.
 */
export function series(report, { from, to }, bucket) {
  const step = bucket === 'hour' ? HOUR_MS : DAY_MS;
  const start = dateMs(from);
  const end = dateMs(to);
  const byKey = new Map((report?.data ?? []).map((r) => [r[bucket], r]));
  const out = { x: [], cost: [], tokens: [], requests: [], errors: [], keys: [] };
  if (!(end > start) || (end - start) / step > MAX_BUCKETS) return out;
  for (let t = start; t < end; t += step) {
    const key = bucketKey(t, bucket);
    const f = figures(byKey.get(key));
    out.keys.push(key);
    out.x.push(t / 1000);
    out.cost.push(f.cost ?? 0);
    out.tokens.push(f.tokens);
    out.requests.push(f.requests);
    out.errors.push(f.errors);
  }
  return out;
}

/** Whether a series has any activity at all (for the chart's empty state). */
export function hasActivity(s) {
  return s.requests.some((n) => n > 0);
}

/**
 * Rows sorted by one field, a copy. Numbers compare as numbers, text by code point (stable and
 * locale-independent); missing values go last in both directions; ties keep their order.
 */
export function sortRows(rows, field, direction = 'descending') {
  const sign = direction === 'ascending' ? 1 : -1;
  return rows
    .map((row, i) => ({ row, i }))
    .sort((a, b) => {
      const x = a.row[field];
      const y = b.row[field];
      const xMissing = x === null || x === undefined;
      const yMissing = y === null || y === undefined;
      if (xMissing || yMissing) return xMissing === yMissing ? a.i - b.i : xMissing ? 1 : -1;
      const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x) < String(y) ? -1 : String(x) > String(y) ? 1 : 0;
      return c === 0 ? a.i - b.i : sign * c;
    })
    .map(({ row }) => row);
}

/** Next sort state after activating a column: the same column flips, a new one starts high. */
export function nextSort(current, field) {
  if (current.field === field) {
    return { field, direction: current.direction === 'descending' ? 'ascending' : 'descending' };
  }
  return { field, direction: field === 'label' ? 'ascending' : 'descending' };
}

const INT = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function formatInt(n) {
  return typeof n === 'number' && Number.isFinite(n) ? INT.format(n) : '—';
}

/**
 * Dollars: two decimals from a dollar up, four below (a single request often costs a fraction
 * of a cent), two significant digits for smaller amounts (`$0.000028`), and `—` when unknown
 * (no priced request).
 */
export function formatCost(usd) {
  if (typeof usd !== 'number' || !Number.isFinite(usd)) return '—';
  if (usd === 0) return '$0.00';
  if (Math.abs(usd) < 1e-10) return '<$0.0000000001';
  if (Math.abs(usd) < 0.0001) return `$${usd.toFixed(Math.min(10, 1 - Math.floor(Math.log10(Math.abs(usd)))))}`;
  const digits = Math.abs(usd) >= 1 ? 2 : 4;
  return `$${usd.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })}`;
}

/**
 * Dollars on a chart axis: ticks are close together, so they get the digits that tell them
 * apart (`$0.000020`, `$0.0015`, `$12.50`) rather than formatCost's rounding.
 */
export function formatCostTick(usd) {
  if (typeof usd !== 'number' || !Number.isFinite(usd)) return '';
  if (usd === 0) return '$0';
  const digits = Math.min(8, Math.max(2, 1 - Math.floor(Math.log10(Math.abs(usd)))));
  return `$${usd.toFixed(digits)}`;
}

/**
 * A bucket's start (unix seconds) as a short axis label: `11-22` by day; by hour `10:00`, with
 * the date instead at midnight so a multi-day chart still says which day is which.
 */
export function formatTick(seconds, bucket) {
  const iso = new Date(seconds * 1000).toISOString();
  const hour = iso.slice(11, 16);
  return bucket === 'hour' && hour !== '00:00' ? hour : iso.slice(5, 10);
}

export function formatPercent(fraction) {
  if (typeof fraction !== 'number' || !Number.isFinite(fraction)) return '—';
  const pct = fraction * 100;
  return `${pct === 0 || pct >= 10 ? pct.toFixed(0) : pct.toFixed(1)}%`;
}

export function formatDuration(ms) {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) return '—';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** `2026-11-22 10:04:05` from a stored RFC 3339 UTC time (the page says "UTC" once). */
export function formatTime(iso) {
  return typeof iso === 'string' && iso.length >= 19 ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}` : '—';
}

/**
 * What to tell the admin about a failed API call: the relay's OpenAI-shaped error message with
 * the parameter it names, or the status when the body is something else.
 */
export function errorMessage(status, text) {
  let err;
  try {
    err = JSON.parse(text)?.error;
  } catch {
    err = undefined;
  }
  if (err && typeof err.message === 'string') {
    return err.param ? `${err.message} (param: ${err.param})` : err.message;
  }
  return `The relay answered ${status}${text ? `: ${String(text).slice(0, 200)}` : ''}.`;
}

/**
 * A key-creation body from the form's fields: required team and user, optional name and env,
 * `models` from a comma-separated list, `expires_at` from a date (end of that day, UTC).
 */
export function newKeyBody(fields) {
  const body = { team: fields.team.trim(), user: fields.user.trim() };
  if (fields.env?.trim()) body.env = fields.env.trim();
  if (fields.name?.trim()) body.name = fields.name.trim();
  const models = (fields.models ?? '')
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean);
  if (models.length) body.models = models;
  if (fields.expires?.trim()) body.expires_at = `${fields.expires.trim()}T23:59:59Z`;
  return body;
}

/** The view state kept in the URL fragment (never the token): view, key id, range, filters. */
export function parseHash(hash, nowMs) {
  const [path, qs = ''] = hash.replace(/^#\/?/, '').split('?');
  const [view, ...rest] = path.split('/');
  const p = new URLSearchParams(qs);
  const fallback = preset('7d', nowMs);
  const range = { from: p.get('from') ?? fallback.from, through: p.get('through') ?? fallback.through };
  const state = {
    view: ['overview', 'breakdown', 'keys', 'key'].includes(view) ? view : 'overview',
    keyId: view === 'key' ? decodeURIComponent(rest.join('/')) : '',
    ...(rangeProblem(range) ? fallback : range),
    team: p.get('team') ?? '',
    user: p.get('user') ?? '',
    model: p.get('model') ?? '',
    dim: ['team', 'user', 'model', 'provider'].includes(p.get('dim')) ? p.get('dim') : 'team',
  };
  if (state.view === 'key' && !state.keyId) state.view = 'keys';
  return state;
}

export function formatHash(state) {
  const path = state.view === 'key' ? `key/${encodeURIComponent(state.keyId)}` : state.view;
  const { team, user, model } = filterParams(state);
  const dim = state.view === 'breakdown' && state.dim !== 'team' ? state.dim : undefined;
  return `#/${path}${query({ from: state.from, through: state.through, team, user, model, dim })}`;
}
