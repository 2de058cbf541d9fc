// Data shaping for the dashboard, pure (no DOM, no network, no clock of its own): date ranges,
// admin API query strings, totals and rates from /admin/usage rows, dense chart series, sorting,
// number formatting, error messages, and the limits and cache forms and views (what a form's
// text becomes in an API body, what a scope view's state means). Unit-tested with
// `node --test tests/dashboard/`.

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
    cacheHits: n(row.cache_hits),
    // The relay's own rate (hits over rows where the cache was in play); null when it never was,
    // which is not the same as a 0% hit rate.
    cacheHitRate: typeof row.cache_hit_rate === 'number' ? row.cache_hit_rate : null,
    saved: typeof row.saved_usd === 'number' ? row.saved_usd : null,
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
    view: ['overview', 'breakdown', 'keys', 'key', 'limits'].includes(view) ? view : 'overview',
    keyId: view === 'key' ? decodeURIComponent(rest.join('/')) : '',
    // `#/limits/<team>` or `#/limits/<team>/<user>`: the team or user scope being looked at.
    scopeTeam: view === 'limits' && rest[0] ? decodeURIComponent(rest[0]) : '',
    scopeUser: view === 'limits' && rest[0] && rest[1] ? decodeURIComponent(rest[1]) : '',
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
  let path = state.view;
  if (state.view === 'key') path = `key/${encodeURIComponent(state.keyId)}`;
  else if (state.view === 'limits' && state.scopeTeam) {
    path = `limits/${encodeURIComponent(state.scopeTeam)}${state.scopeUser ? `/${encodeURIComponent(state.scopeUser)}` : ''}`;
  }
  const { team, user, model } = filterParams(state);
  const dim = state.view === 'breakdown' && state.dim !== 'team' ? state.dim : undefined;
  return `#/${path}${query({ from: state.from, through: state.through, team, user, model, dim })}`;
}

// ── limits ─────────────────────────────────────────────────────────────────────────────────

export const PERIODS = ['day', 'week', 'month', 'total'];

/** The form's fields, the API's names for them, and what a field's problem calls it. */
const LIMIT_INPUTS = [
  ['rpm', 'rpm', 'Requests per minute'],
  ['tpm', 'tpm', 'Tokens per minute'],
  ['max_parallel', 'max_parallel', 'In flight at once'],
];

/**
 * A limits object from the limits form's text (`budget`, `period`, `rpm`, `tpm`,
 * `max_parallel`): `{ limits }`, or `{ problem }` naming the field when one is not a number (a
 * number the relay would refuse, such as 0, is sent: the relay's message is the one to show).
 * With `clearEmpty` (a key's PATCH, which merges field by field) an empty field is sent as
 * null, so emptying it removes that limit; otherwise (a team's or user's PUT, which replaces)
 * empty fields are left out. The period goes only with a budget.
 */
export function limitsFromForm(fields, { clearEmpty = false } = {}) {
  const out = {};
  const empty = (name) => {
    if (clearEmpty) out[name] = null;
  };
  const budget = String(fields.budget ?? '').trim();
  if (!budget) {
    empty('budget_usd');
    empty('budget_period');
  } else if (!/^\d+(\.\d+)?$/.test(budget)) {
    return { problem: "'Budget (USD)' must be an amount such as 25 or 2.50." };
  } else {
    out.budget_usd = Number(budget);
    const period = String(fields.period ?? '').trim();
    if (period) out.budget_period = period;
    else empty('budget_period');
  }
  for (const [field, name, label] of LIMIT_INPUTS) {
    const v = String(fields[field] ?? '').trim();
    if (!v) empty(name);
    else if (!/^\d+$/.test(v)) return { problem: `'${label}' must be a whole number.` };
    else out[name] = Number(v);
  }
  return { limits: out };
}

/** A limits object as the form's text, for editing what is set now. */
export function limitsFormValues(limits = {}) {
  const text = (v) => (typeof v === 'number' ? String(v) : '');
  return {
    budget: text(limits.budget_usd),
    period: limits.budget_usd !== undefined ? limits.budget_period ?? 'month' : 'month',
    rpm: text(limits.rpm),
    tpm: text(limits.tpm),
    max_parallel: text(limits.max_parallel),
  };
}

/** `$25.00 per month`, `$5.00 in total`, or `none`. */
export function formatBudget(limits = {}) {
  if (typeof limits.budget_usd !== 'number') return 'none';
  const period = limits.budget_period ?? 'month';
  return `${formatCost(limits.budget_usd)} ${period === 'total' ? 'in total' : `per ${period}`}`;
}

/** The limits as [label, text] pairs, every limit listed (unset ones as `none`). */
export function limitRows(limits = {}) {
  const n = (v) => (typeof v === 'number' ? formatInt(v) : 'none');
  return [
    ['Budget', formatBudget(limits)],
    ['Requests per minute', n(limits.rpm)],
    ['Tokens per minute', n(limits.tpm)],
    ['In flight at once', n(limits.max_parallel)],
  ];
}

/** Whether a limits object sets anything. */
export function hasLimits(limits) {
  return Boolean(limits) && Object.values(limits).some((v) => v !== null && v !== undefined);
}

/**
 * The state of a scope view (`GET …/limits`) as figures: money spent and reserved this period,
 * what remains (null without a budget), the share of the budget used or held (spent +
 * reserved over the budget; null without one), when the period resets, and the current minute.
 */
export function scopeFigures(view = {}) {
  const st = view.state ?? {};
  const limits = view.limits ?? {};
  const money = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
  const spent = money(st.spent_usd);
  const reserved = money(st.reserved_usd);
  const budget = typeof limits.budget_usd === 'number' ? limits.budget_usd : null;
  return {
    period: st.period ?? null,
    periodStart: st.period_start ?? null,
    resetsAt: st.resets_at ?? null,
    spent,
    reserved,
    remaining: typeof st.remaining_usd === 'number' ? st.remaining_usd : null,
    budget,
    used: budget ? Math.min(1, (spent + reserved) / budget) : null,
    inFlight: money(st.in_flight),
    requestsLastMinute: money(st.requests_last_minute),
    tokensLastMinute: money(st.tokens_last_minute),
  };
}

/** `key key_9sQ…`, `team platform`, `user platform/ann`: what a scope view is about. */
export function scopeLabel(view = {}) {
  if (view.scope === 'key') return `key ${view.key_id ?? ''}`.trim();
  if (view.scope === 'user') return `user ${view.team}/${view.user}`;
  return `team ${view.team}`;
}

/** The admin API path of a team or user scope. */
export function scopePath(team, user) {
  const t = `/admin/limits/teams/${encodeURIComponent(team)}`;
  return user ? `${t}/users/${encodeURIComponent(user)}` : t;
}

/** When a period resets: the time, or `never` for a total budget (and `—` with no period). */
export function formatResets(f) {
  if (f.resetsAt) return formatTime(f.resetsAt);
  return f.period === 'total' ? 'never' : '—';
}

// ── cache ──────────────────────────────────────────────────────────────────────────────────

export const CACHE_SCOPES = ['key', 'user', 'team'];
export const CACHE_TTL_MIN = 60;
export const CACHE_TTL_MAX = 2_592_000;

/**
 * A key's `cache` setting from the cache form (`enabled` checkbox, `ttl`, `scope`, `sampled`):
 * `{ cache: null }` when caching is off, `{ cache: {ttl_s, scope, sampled} }`, or `{ problem }`
 * when the TTL is not a whole number of seconds (its range is the relay's to check).
 */
export function cacheFromForm(fields) {
  if (!fields.enabled) return { cache: null };
  const ttl = String(fields.ttl ?? '').trim();
  if (!/^\d+$/.test(ttl)) return { problem: `'Keep answers for (seconds)' must be a whole number, ${CACHE_TTL_MIN} to ${CACHE_TTL_MAX}.` };
  const scope = CACHE_SCOPES.includes(fields.scope) ? fields.scope : 'key';
  return { cache: { ttl_s: Number(ttl), scope, sampled: Boolean(fields.sampled) } };
}

/** `5 min`, `1 h 30 min`, `30 d`: a TTL a person can read (the exact seconds are shown beside it). */
export function formatTtl(s) {
  if (typeof s !== 'number' || !Number.isFinite(s)) return '—';
  if (s % 86_400 === 0) return `${s / 86_400} d`;
  if (s >= 3600) return `${Math.floor(s / 3600)} h${s % 3600 ? ` ${Math.round((s % 3600) / 60)} min` : ''}`;
  if (s >= 60 && s % 60 === 0) return `${s / 60} min`;
  return `${s} s`;
}

/** A key's cache setting in words: `off`, or TTL, who shares the answers, and sampling. */
export function cacheText(cache) {
  if (!cache) return 'off';
  const shared = { key: 'this key only', user: "the key's user", team: "the key's team" }[cache.scope ?? 'key'] ?? cache.scope;
  return `${formatTtl(cache.ttl_s)} (${cache.ttl_s} s), shared with ${shared}, ${cache.sampled ? 'sampled requests too' : 'temperature 0 only'}`;
}

/**
 * What a request row says about the cache and limits: `hit`/`miss`/`stored`/`bypass` (or
 * null when caching was not in play), and for a refused request which scope and limit.
 */
export function requestNotes(row = {}) {
  return {
    cache: typeof row.cache === 'string' ? row.cache : null,
    saved: typeof row.saved_usd === 'number' ? row.saved_usd : null,
    limit: row.outcome === 'limited' && row.limit_scope ? `${row.limit_scope} ${row.limit_name ?? 'limit'}` : null,
  };
}

/** A one-line summary for the keys table: `$25.00/month · 60 rpm · 4 parallel`, or `none`. */
export function limitsSummary(limits) {
  if (!hasLimits(limits)) return 'none';
  const parts = [];
  if (typeof limits.budget_usd === 'number') parts.push(`${formatCost(limits.budget_usd)}/${limits.budget_period ?? 'month'}`);
  if (typeof limits.rpm === 'number') parts.push(`${formatInt(limits.rpm)} rpm`);
  if (typeof limits.tpm === 'number') parts.push(`${formatInt(limits.tpm)} tpm`);
  if (typeof limits.max_parallel === 'number') parts.push(`${formatInt(limits.max_parallel)} parallel`);
  return parts.join(' · ');
}

/** A key's cache setting for the keys table: `off`, or its TTL and sharing (`5 min, team`). */
export function cacheSummary(cache) {
  if (!cache) return 'off';
  return `${formatTtl(cache.ttl_s)}, ${cache.scope ?? 'key'}${cache.sampled ? ', sampled' : ''}`;
}
