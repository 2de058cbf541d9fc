// Unit tests for the dashboard's data shaping (src/dashboard/shape.js): ranges, query strings,
// figures from report rows, dense chart series, sorting, formatting and error messages.
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
  assert.deepEqual(f, { requests: 4, prompt: 100, completion: 20, cached: 30, tokens: 120, cost: 0.0125, unpriced: 1, errors: 1, errorRate: 0.25, p50: 120, p95: 900 });
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
  const state = { view: 'breakdown', keyId: '', from: '2026-11-01', through: '2026-11-07', team: 'platform', user: '', model: 'a b', dim: 'model' };
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
