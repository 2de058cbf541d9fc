// Small DOM helpers for the dashboard: element building from attributes and text (never HTML
// strings, so API data can never become markup), table cells and empty states, the KPI cards
// every view shows, and the state cards of a limits scope.
import * as S from './shape.js';

export const $ = (sel) => document.querySelector(sel);

/** A DOM element: `h('td', { class: 'num' }, 'text', child)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = String(dv);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function metric(name, label, value, text, note) {
  return h(
    'div',
    { class: 'kpi' },
    h('dt', {}, label),
    h('dd', { dataset: { metric: name, value: value === null ? 'null' : value } }, text),
    note ? (note instanceof Node ? note : h('dd', { class: 'note' }, note)) : null,
  );
}

/** A card's note that carries a raw value of its own (`data-metric`), like the saved cost. */
function valuedNote(name, value, text) {
  return h('dd', { class: 'note', dataset: { metric: name, value: value === null ? 'null' : value } }, text);
}

/** Requests, tokens, cost, error rate and latency of one report row, as definition cards. */
export function renderKpis(dl, f, { from, to }) {
  dl.dataset.from = from;
  dl.dataset.to = to;
  dl.replaceChildren(
    metric('requests', 'Requests', f.requests, S.formatInt(f.requests)),
    metric('tokens', 'Tokens', f.tokens, S.formatInt(f.tokens), `${S.formatInt(f.prompt)} prompt (${S.formatInt(f.cached)} cached) · ${S.formatInt(f.completion)} completion`),
    metric('cost', 'Cost', f.cost, S.formatCost(f.cost), f.unpriced ? `${S.formatInt(f.unpriced)} unpriced requests` : null),
    metric('error-rate', 'Error rate', f.errorRate, S.formatPercent(f.errorRate), `${S.formatInt(f.errors)} errors`),
    metric('p50', 'Median duration', f.p50, S.formatDuration(f.p50), `p95 ${S.formatDuration(f.p95)}`),
    metric('cache-hit-rate', 'Cache hit rate', f.cacheHitRate, S.formatPercent(f.cacheHitRate), valuedNote('saved', f.saved, `${S.formatInt(f.cacheHits)} hits · ${S.formatCost(f.saved ?? 0)} saved`)),
  );
}

/**
 * The state of a limits scope: spent, reserved and remaining this period (with a meter of the
 * budget used or held), when it resets, requests in flight and the last minute's traffic.
 */
export function renderScopeState(dl, view) {
  const f = S.scopeFigures(view);
  const limits = view.limits ?? {};
  const of = (limit, unit) => (typeof limit === 'number' ? `limit ${S.formatInt(limit)}${unit}` : 'no limit');
  const meter =
    f.used === null
      ? null
      : h('dd', { class: 'note' }, h('meter', { min: 0, max: 1, low: 0.5, high: 0.8, optimum: 0, value: f.used, 'aria-label': `${S.formatPercent(f.used)} of the budget spent or reserved` }));
  dl.dataset.scope = view.scope ?? '';
  dl.replaceChildren(
    metric('spent', f.period === 'total' ? 'Spent in total' : 'Spent this period', f.spent, S.formatCost(f.spent), f.budget === null ? 'no budget' : `of ${S.formatBudget(limits)}`),
    metric('reserved', 'Reserved in flight', f.reserved, S.formatCost(f.reserved), 'held for requests not yet settled'),
    h(
      'div',
      { class: 'kpi' },
      h('dt', {}, 'Remaining'),
      h('dd', { dataset: { metric: 'remaining', value: f.remaining === null ? 'null' : f.remaining } }, f.remaining === null ? '—' : S.formatCost(f.remaining)),
      meter,
    ),
    metric('resets', 'Resets', f.resetsAt, S.formatResets(f), f.periodStart ? `period from ${S.formatTime(f.periodStart)}` : null),
    metric('in-flight', 'In flight', f.inFlight, S.formatInt(f.inFlight), of(limits.max_parallel, '')),
    metric('requests-minute', 'Requests, last minute', f.requestsLastMinute, S.formatInt(f.requestsLastMinute), of(limits.rpm, ' a minute')),
    metric('tokens-minute', 'Tokens, last minute', f.tokensLastMinute, S.formatInt(f.tokensLastMinute), of(limits.tpm, ' a minute')),
  );
}

export function emptyRow(tbody, columns, text) {
  tbody.replaceChildren(h('tr', {}, h('td', { colspan: columns, class: 'empty' }, text)));
}

export function cell(text, { num = false, value } = {}) {
  return h('td', { class: num ? 'num' : null, dataset: value === undefined ? undefined : { value: value === null ? 'null' : value } }, text);
}
