// Unit tests for the dashboard's data shaping (src/dashboard/shape.js): ranges, query strings,
// figures from report rows, dense chart series, sorting, formatting, error messages, and the
// limits and cache forms and views.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as S from '../../src/dashboard/shape.js';

const NOW = Date.parse('2026-11-22T10:30:00.000Z');

test('presets are day-aligned UTC windows ending today; the API range ends the day after', () => {
  assert.deepEqual(S.preset('today', NOW), { from: '2026-11-22', through: '2026-11-22' });
  assert.deepEqual(S.preset('7d', NOW), { from: '2026-11-16', through: '2026-11-22' });
  assert.deepEqual(S.preset('30d', NOW), { from: '2026-10-24', through: '2026-11-22' });
  // Just before midnight UTC is still the same day, whatever the machine's zone.
  assert.deepEqual(S.preset('today', Date.parse('2026-12-31T23:59:59.999Z')), { from: '2026-12-31', through: '2026-12-31' });
  assert.deepEqual(S.apiRange({ from: '2026-02-27', through: '2026-02-28' }), { from: '2026-02-27', to: '2026-03-01' });
  assert.deepEqual(S.apiRange({ from: '2028-02-28', through: '2028-02-28' }), { from: '2028-02-28', to: '2028-02-29' });
  assert.throws(() => S.preset('90d', NOW));
});

test('range checks name the field; bucket is hourly only for short ranges', () => {
  assert.equal(S.rangeProblem({ from: '2026-11-01', through: '2026-11-02' }), null);
  assert.equal(S.rangeProblem({ from: '2026-11-01', through: '2026-11-01' }), null);
  assert.equal(S.rangeProblem({ from: '2026-11-03', through: '2026-11-02' }), "'From' must not be after 'Through'.");
  assert.equal(S.rangeProblem({ from: '', through: '2026-11-02' }), "'From' must be a date.");
  assert.equal(S.rangeProblem({ from: '2026-11-01', through: '2026-02-30' }), "'Through' must be a date.");
  assert.equal(S.autoBucket({ from: '2026-11-01', through: '2026-11-01' }), 'hour');
  assert.equal(S.autoBucket({ from: '2026-11-01', through: '2026-11-02' }), 'hour');
  assert.equal(S.autoBucket({ from: '2026-11-01', through: '2026-11-03' }), 'day');
});

test('query strings drop empty values and encode the rest', () => {
  assert.equal(S.query({ from: '2026-11-01', to: '2026-11-02', team: '', user: undefined, model: null }), '?from=2026-11-01&to=2026-11-02');
  assert.equal(S.query({ model: 'a b&c', limit: 50 }), '?model=a+b%26c&limit=50');
  assert.equal(S.query({}), '');
  assert.deepEqual(S.filterParams({ team: ' platform ', user: '', model: 'gpt-4o', extra: 'x' }), { team: 'platform', model: 'gpt-4o' });
});

test('figures: tokens are prompt + completion, cost stays unknown when nothing was priced, rates never divide by zero', () => {
  const f = S.figures({ requests: 4, prompt_tokens: 100, completion_tokens: 20, cached_tokens: 30, cost_usd: 0.0125, unpriced_requests: 1, errors: 1, p50_duration_ms: 120, p95_duration_ms: 900 });
  assert.deepEqual(f, {
    requests: 4, prompt: 100, completion: 20, cached: 30, tokens: 120, cost: 0.0125, unpriced: 1, errors: 1, errorRate: 0.25, p50: 120, p95: 900,
    cacheHits: 0, cacheHitRate: null, saved: null,
  });
  const empty = S.totalsOf({ object: 'list', data: [{ requests: 0, prompt_tokens: 0, completion_tokens: 0, cost_usd: null, errors: 0, p50_duration_ms: null }] });
  assert.equal(empty.cost, null);
  assert.equal(empty.errorRate, 0);
  assert.equal(S.totalsOf({ data: [] }).requests, 0);
  assert.equal(S.errorRate(0, 0), 0);
  assert.equal(S.errorRate(1, 3), 1 / 3);
});

test('breakdown labels rows without a dimension value', () => {
  const rows = S.breakdown({ data: [{ team: null, requests: 2 }, { team: 'platform', requests: 1, cost_usd: 1.5 }] }, 'team');
  assert.deepEqual(rows.map((r) => [r.name, r.label, r.requests, r.cost]), [[null, '(none)', 2, null], ['platform', 'platform', 1, 1.5]]);
});

test('series are dense over the half-open range, zero-filled, in unix seconds', () => {
  const report = {
    data: [
      { day: '2026-11-01', requests: 2, prompt_tokens: 10, completion_tokens: 5, cost_usd: 0.5, errors: 1 },
      { day: '2026-11-03', requests: 1, prompt_tokens: 1, completion_tokens: 1, cost_usd: null, errors: 0 },
      { day: '2026-11-09', requests: 9, prompt_tokens: 9, completion_tokens: 9, cost_usd: 9, errors: 0 },
    ],
  };
  const s = S.series(report, { from: '2026-11-01', to: '2026-11-04' }, 'day');
  assert.deepEqual(s.keys, ['2026-11-01', '2026-11-02', '2026-11-03']);
  assert.deepEqual(s.x, [Date.parse('2026-11-01T00:00:00Z') / 1000, Date.parse('2026-11-02T00:00:00Z') / 1000, Date.parse('2026-11-03T00:00:00Z') / 1000]);
  assert.deepEqual(s.requests, [2, 0, 1]);
  assert.deepEqual(s.tokens, [15, 0, 2]);
  assert.deepEqual(s.cost, [0.5, 0, 0]);
  assert.deepEqual(s.errors, [1, 0, 0]);
  assert.ok(S.hasActivity(s));

  const hourly = S.series({ data: [{ hour: '2026-11-01T23:00', requests: 1, prompt_tokens: 3, completion_tokens: 4, cost_usd: 0.01 }] }, { from: '2026-11-01', to: '2026-11-02' }, 'hour');
  assert.equal(hourly.keys.length, 24);
  assert.equal(hourly.keys[0], '2026-11-01T00:00');
  assert.equal(hourly.keys[23], '2026-11-01T23:00');
  assert.deepEqual([hourly.tokens[23], hourly.cost[23], hourly.requests.slice(0, 23).every((n) => n === 0)], [7, 0.01, true]);
  assert.equal(S.bucketMs('2026-11-01T23:00'), Date.parse('2026-11-01T23:00:00Z'));
  assert.equal(S.bucketKey(Date.parse('2026-11-01T23:59:59Z'), 'hour'), '2026-11-01T23:00');

  assert.ok(!S.hasActivity(S.series({ data: [] }, { from: '2026-11-01', to: '2026-11-02' }, 'day')));
  assert.deepEqual(S.series({ data: [] }, { from: '2026-11-02', to: '2026-11-01' }, 'day').x, []);
  assert.deepEqual(S.series({ data: [] }, { from: '2020-01-01', to: '2026-01-01' }, 'hour').x, [], 'too many buckets is refused, not drawn');
});

test('sorting: numbers as numbers, text by code point, missing last both ways, stable, copy', () => {
  const rows = [
    { label: 'b', cost: 2, requests: 1 },
    { label: 'a', cost: null, requests: 1 },
    { label: 'C', cost: 10, requests: 3 },
    { label: 'd', cost: 2, requests: 2 },
  ];
  const byCost = S.sortRows(rows, 'cost');
  assert.deepEqual(byCost.map((r) => r.label), ['C', 'b', 'd', 'a']);
  assert.deepEqual(S.sortRows(rows, 'cost', 'ascending').map((r) => r.label), ['b', 'd', 'C', 'a']);
  assert.deepEqual(S.sortRows(rows, 'label', 'ascending').map((r) => r.label), ['C', 'a', 'b', 'd']);
  assert.deepEqual(S.sortRows(rows, 'requests', 'descending').map((r) => r.label), ['C', 'd', 'b', 'a']);
  assert.deepEqual(rows.map((r) => r.label), ['b', 'a', 'C', 'd'], 'the input is untouched');
  assert.deepEqual(S.nextSort({ field: 'cost', direction: 'descending' }, 'cost'), { field: 'cost', direction: 'ascending' });
  assert.deepEqual(S.nextSort({ field: 'cost', direction: 'ascending' }, 'cost'), { field: 'cost', direction: 'descending' });
  assert.deepEqual(S.nextSort({ field: 'cost', direction: 'ascending' }, 'requests'), { field: 'requests', direction: 'descending' });
  assert.deepEqual(S.nextSort({ field: 'cost', direction: 'descending' }, 'label'), { field: 'label', direction: 'ascending' });
});

test('formatting', () => {
  assert.equal(S.formatInt(1234567), '1,234,567');
  assert.equal(S.formatInt(0), '0');
  assert.equal(S.formatInt(null), '—');
  assert.equal(S.formatCost(null), '—');
  assert.equal(S.formatCost(0), '$0.00');
  assert.equal(S.formatCost(0.000028), '$0.000028');
  assert.equal(S.formatCost(0.00009999), '$0.000100');
  assert.equal(S.formatCost(1e-8), '$0.000000010');
  assert.equal(S.formatCost(1e-12), '<$0.0000000001');
  assert.equal(S.formatCost(0.0031234), '$0.0031');
  assert.equal(S.formatCost(0.5), '$0.5000');
  assert.equal(S.formatCost(1234.5), '$1,234.50');
  assert.equal(S.formatCostTick(0), '$0');
  assert.equal(S.formatCostTick(0.00002), '$0.000020');
  assert.equal(S.formatCostTick(0.0015), '$0.0015');
  assert.equal(S.formatCostTick(0.25), '$0.25');
  assert.equal(S.formatCostTick(12.5), '$12.50');
  assert.equal(S.formatTick(Date.parse('2026-11-22T10:00:00Z') / 1000, 'hour'), '10:00');
  assert.equal(S.formatTick(Date.parse('2026-11-22T00:00:00Z') / 1000, 'hour'), '11-22');
  assert.equal(S.formatTick(Date.parse('2026-11-22T00:00:00Z') / 1000, 'day'), '11-22');
  assert.equal(S.formatPercent(0), '0%');
  assert.equal(S.formatPercent(0.0125), '1.3%');
  assert.equal(S.formatPercent(0.25), '25%');
  assert.equal(S.formatPercent(1), '100%');
  assert.equal(S.formatDuration(null), '—');
  assert.equal(S.formatDuration(120), '120 ms');
  assert.equal(S.formatDuration(2140), '2.14 s');
  assert.equal(S.formatDuration(12345), '12.3 s');
  assert.equal(S.formatTime('2026-11-22T10:04:05.123Z'), '2026-11-22 10:04:05');
  assert.equal(S.formatTime(null), '—');
});

test('error messages come from the relay body, with the parameter it names', () => {
  const body = JSON.stringify({ error: { message: "'team' must be 1-32 characters of a-z, 0-9 and '-'.", type: 'invalid_request_error', param: 'team', code: null } });
  assert.equal(S.errorMessage(400, body), "'team' must be 1-32 characters of a-z, 0-9 and '-'. (param: team)");
  assert.equal(S.errorMessage(401, JSON.stringify({ error: { message: 'Invalid admin token.', param: null } })), 'Invalid admin token.');
  assert.equal(S.errorMessage(502, 'Bad gateway'), 'The relay answered 502: Bad gateway.');
  assert.equal(S.errorMessage(500, ''), 'The relay answered 500.');
});

test('new key bodies: trimmed, optional fields only when given, models split, expiry at end of day', () => {
  assert.deepEqual(S.newKeyBody({ team: ' platform ', user: 'ann', name: '', env: '', models: '', expires: '' }), { team: 'platform', user: 'ann' });
  assert.deepEqual(S.newKeyBody({ team: 't', user: 'u', name: 'Laptop', env: 'dev', models: 'gpt-4o*, o4-mini,,', expires: '2026-12-31' }), {
    team: 't', user: 'u', env: 'dev', name: 'Laptop', models: ['gpt-4o*', 'o4-mini'], expires_at: '2026-12-31T23:59:59Z',
  });
});

test('the URL fragment round-trips view, range and filters, and falls back on nonsense', () => {
  const state = { view: 'breakdown', keyId: '', scopeTeam: '', scopeUser: '', from: '2026-11-01', through: '2026-11-07', team: 'platform', user: '', model: 'a b', dim: 'model' };
  const hash = S.formatHash(state);
  assert.equal(hash, '#/breakdown?from=2026-11-01&through=2026-11-07&team=platform&model=a+b&dim=model');
  assert.deepEqual(S.parseHash(hash, NOW), state);
  const key = S.parseHash(S.formatHash({ ...state, view: 'key', keyId: 'key_1' }), NOW);
  assert.deepEqual([key.view, key.keyId, key.dim], ['key', 'key_1', 'team']);
  const fallback = S.parseHash('#/nowhere?from=garbage', NOW);
  assert.deepEqual([fallback.view, fallback.from, fallback.through, fallback.team], ['overview', '2026-11-16', '2026-11-22', '']);
  assert.equal(S.parseHash('#/key/', NOW).view, 'keys');
  assert.equal(S.parseHash('', NOW).view, 'overview');
});

test('cache figures: hits, the relay\'s hit rate and saved cost; null rate when caching never applied', () => {
  const f = S.figures({ requests: 10, cache_hits: 3, cache_hit_rate: 0.375, saved_usd: 0.0042 });
  assert.deepEqual([f.cacheHits, f.cacheHitRate, f.saved], [3, 0.375, 0.0042]);
  // Zero hits out of rows that used the cache is 0%, not unknown.
  assert.equal(S.figures({ requests: 2, cache_hits: 0, cache_hit_rate: 0, saved_usd: null }).cacheHitRate, 0);
  assert.equal(S.figures({ requests: 2, cache_hits: 0, cache_hit_rate: null }).cacheHitRate, null);
  assert.deepEqual(S.breakdown({ data: [{ team: 't', cache_hit_rate: 0.5, saved_usd: 1 }] }, 'team').map((r) => [r.cacheHitRate, r.saved]), [[0.5, 1]]);
});

test('limits form: a key PATCH sends null for every empty field, a scope PUT leaves them out', () => {
  const fields = { budget: ' 25 ', period: 'week', rpm: '', tpm: '200000', max_parallel: '' };
  assert.deepEqual(S.limitsFromForm(fields, { clearEmpty: true }), { limits: { budget_usd: 25, budget_period: 'week', rpm: null, tpm: 200000, max_parallel: null } });
  assert.deepEqual(S.limitsFromForm(fields), { limits: { budget_usd: 25, budget_period: 'week', tpm: 200000 } });
  // No budget: the period is not sent on its own (a key's is cleared with it).
  assert.deepEqual(S.limitsFromForm({ budget: '', period: 'day', rpm: '3' }), { limits: { rpm: 3 } });
  assert.deepEqual(S.limitsFromForm({ budget: '', period: 'day', rpm: '3' }, { clearEmpty: true }), {
    limits: { budget_usd: null, budget_period: null, rpm: 3, tpm: null, max_parallel: null },
  });
  assert.deepEqual(S.limitsFromForm({ budget: '2.50', period: '' }), { limits: { budget_usd: 2.5 } });
  // Out-of-range numbers go to the relay, whose message names the field; text never becomes null.
  assert.deepEqual(S.limitsFromForm({ rpm: '0' }), { limits: { rpm: 0 } });
  assert.deepEqual(S.limitsFromForm({ budget: 'ten' }), { problem: "'Budget (USD)' must be an amount such as 25 or 2.50." });
  assert.deepEqual(S.limitsFromForm({ budget: '-1' }), { problem: "'Budget (USD)' must be an amount such as 25 or 2.50." });
  assert.deepEqual(S.limitsFromForm({ tpm: '1e5' }), { problem: "'Tokens per minute' must be a whole number." });
  assert.deepEqual(S.limitsFromForm({ max_parallel: '1.5' }), { problem: "'In flight at once' must be a whole number." });
  assert.deepEqual(S.limitsFromForm({}), { limits: {} });
});

test('limits form values and text: what is set, as the form and the page show it', () => {
  assert.deepEqual(S.limitsFormValues({ budget_usd: 25, budget_period: 'week', rpm: 60 }), { budget: '25', period: 'week', rpm: '60', tpm: '', max_parallel: '' });
  assert.deepEqual(S.limitsFormValues({}), { budget: '', period: 'month', rpm: '', tpm: '', max_parallel: '' });
  assert.equal(S.formatBudget({ budget_usd: 25, budget_period: 'month' }), '$25.00 per month');
  assert.equal(S.formatBudget({ budget_usd: 5, budget_period: 'total' }), '$5.00 in total');
  assert.equal(S.formatBudget({ budget_usd: 0.5 }), '$0.5000 per month');
  assert.equal(S.formatBudget({}), 'none');
  assert.deepEqual(S.limitRows({ rpm: 60, tpm: 200000 }), [['Budget', 'none'], ['Requests per minute', '60'], ['Tokens per minute', '200,000'], ['In flight at once', 'none']]);
  assert.equal(S.limitsSummary({ budget_usd: 25, budget_period: 'day', rpm: 60, max_parallel: 4 }), '$25.00/day · 60 rpm · 4 parallel');
  assert.equal(S.limitsSummary({}), 'none');
  assert.equal(S.limitsSummary(undefined), 'none');
  assert.equal(S.hasLimits({ rpm: null }), false);
  assert.equal(S.hasLimits({ rpm: 1 }), true);
});

test('scope state: spent, reserved, remaining and the share of the budget used or held', () => {
  const view = {
    scope: 'user', team: 'platform', user: 'ann', limits: { budget_usd: 10, budget_period: 'month', rpm: 60 },
    state: { period: 'month', period_start: '2026-11-01T00:00:00Z', resets_at: '2026-12-01T00:00:00Z', spent_usd: 6, reserved_usd: 1.5, remaining_usd: 2.5, in_flight: 2, requests_last_minute: 7, tokens_last_minute: 900 },
  };
  const f = S.scopeFigures(view);
  assert.deepEqual(f, {
    period: 'month', periodStart: '2026-11-01T00:00:00Z', resetsAt: '2026-12-01T00:00:00Z', spent: 6, reserved: 1.5, remaining: 2.5,
    budget: 10, used: 0.75, inFlight: 2, requestsLastMinute: 7, tokensLastMinute: 900,
  });
  assert.equal(S.formatResets(f), '2026-12-01 00:00:00');
  // Over budget (a request's actual cost may exceed its reservation): the meter stops at full.
  assert.equal(S.scopeFigures({ limits: { budget_usd: 1 }, state: { spent_usd: 1.2, reserved_usd: 0 } }).used, 1);
  const none = S.scopeFigures({ scope: 'team', team: 't', limits: {}, state: { period: null, resets_at: null, spent_usd: 0, remaining_usd: null } });
  assert.deepEqual([none.budget, none.used, none.remaining, S.formatResets(none)], [null, null, null, '—']);
  assert.equal(S.formatResets(S.scopeFigures({ limits: { budget_usd: 5, budget_period: 'total' }, state: { period: 'total', resets_at: null } })), 'never');
  assert.equal(S.scopeFigures({}).spent, 0);
  assert.equal(S.scopeLabel(view), 'user platform/ann');
  assert.equal(S.scopeLabel({ scope: 'team', team: 'platform' }), 'team platform');
  assert.equal(S.scopeLabel({ scope: 'key', key_id: 'key_1' }), 'key key_1');
  assert.equal(S.scopePath('platform'), '/admin/limits/teams/platform');
  assert.equal(S.scopePath('a b', 'c/d'), '/admin/limits/teams/a%20b/users/c%2Fd');
});

test('cache form: off is null, on needs a whole-second TTL; sharing and sampling carried over', () => {
  assert.deepEqual(S.cacheFromForm({ enabled: false, ttl: '300' }), { cache: null });
  assert.deepEqual(S.cacheFromForm({ enabled: true, ttl: ' 300 ', scope: 'team', sampled: true }), { cache: { ttl_s: 300, scope: 'team', sampled: true } });
  assert.deepEqual(S.cacheFromForm({ enabled: true, ttl: '60', scope: 'nonsense' }), { cache: { ttl_s: 60, scope: 'key', sampled: false } });
  // A TTL under KV's 60 s minimum is the relay's to refuse, with its message.
  assert.deepEqual(S.cacheFromForm({ enabled: true, ttl: '5' }), { cache: { ttl_s: 5, scope: 'key', sampled: false } });
  assert.deepEqual(S.cacheFromForm({ enabled: true, ttl: '' }), { problem: "'Keep answers for (seconds)' must be a whole number, 60 to 2592000." });
  assert.deepEqual(S.cacheFromForm({ enabled: true, ttl: '5m' }), { problem: "'Keep answers for (seconds)' must be a whole number, 60 to 2592000." });
  assert.deepEqual([60, 300, 3600, 5400, 86_400, 2_592_000, 90].map(S.formatTtl), ['1 min', '5 min', '1 h', '1 h 30 min', '1 d', '30 d', '90 s']);
  assert.equal(S.cacheText(null), 'off');
  assert.equal(S.cacheText({ ttl_s: 300, scope: 'team', sampled: false }), "5 min (300 s), shared with the key's team, temperature 0 only");
  assert.equal(S.cacheText({ ttl_s: 60, scope: 'key', sampled: true }), '1 min (60 s), shared with this key only, sampled requests too');
  assert.equal(S.cacheSummary({ ttl_s: 300, scope: 'user', sampled: true }), '5 min, user, sampled');
  assert.equal(S.cacheSummary(null), 'off');
});

test('request notes: cache status and saved cost, and which scope and limit refused a request', () => {
  assert.deepEqual(S.requestNotes({ outcome: 'ok', cache: 'hit', saved_usd: 0.01 }), { cache: 'hit', saved: 0.01, limit: null });
  assert.deepEqual(S.requestNotes({ outcome: 'limited', limit_scope: 'team', limit_name: 'budget', cache: null }), { cache: null, saved: null, limit: 'team budget' });
  assert.deepEqual(S.requestNotes({ outcome: 'ok' }), { cache: null, saved: null, limit: null });
});

test('the limits view round-trips its team and user through the URL fragment', () => {
  const base = S.parseHash('', NOW);
  const hash = S.formatHash({ ...base, view: 'limits', scopeTeam: 'platform', scopeUser: 'ann/b' });
  assert.equal(hash, '#/limits/platform/ann%2Fb?from=2026-11-16&through=2026-11-22');
  const back = S.parseHash(hash, NOW);
  assert.deepEqual([back.view, back.scopeTeam, back.scopeUser], ['limits', 'platform', 'ann/b']);
  const team = S.parseHash(S.formatHash({ ...base, view: 'limits', scopeTeam: 'platform', scopeUser: '' }), NOW);
  assert.deepEqual([team.view, team.scopeTeam, team.scopeUser], ['limits', 'platform', '']);
  assert.equal(S.formatHash({ ...base, view: 'limits' }), '#/limits?from=2026-11-16&through=2026-11-22');
  // A user without a team means nothing: the list.
  assert.equal(S.formatHash({ ...base, view: 'limits', scopeTeam: '', scopeUser: 'ann' }), '#/limits?from=2026-11-16&through=2026-11-22');
  assert.deepEqual([S.parseHash('#/key/x', NOW).scopeTeam, S.parseHash('#/limits', NOW).scopeTeam], ['', '']);
});
