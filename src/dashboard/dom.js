// Small DOM helpers for the dashboard: element building from attributes and text (never HTML
// strings, so API data can never become markup), table cells and empty states, and the KPI
// cards every view shows.
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
    note ? h('dd', { class: 'note' }, note) : null,
  );
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
  );
}

export function emptyRow(tbody, columns, text) {
  tbody.replaceChildren(h('tr', {}, h('td', { colspan: columns, class: 'empty' }, text)));
}

export function cell(text, { num = false, value } = {}) {
  return h('td', { class: num ? 'num' : null, dataset: value === undefined ? undefined : { value: value === null ? 'null' : value } }, text);
}
