// The dashboard's single-page app: sign-in, a router over the URL fragment (view, date range
// and filters; never the token), and five views drawn from the admin API — overview,
// breakdown, keys, one key (with its limits and cache setting) and team/user limits. Data
// shaping lives in shape.js, element building in dom.js (text and attributes, never HTML
// strings), the modal dialogs in dialogs.js.
import './app.css';
import { api, ApiError, session } from './api.js';
import { Chart } from './chart.js';
import { confirmAction, copySecret, showSecret } from './dialogs.js';
import { $, cell, emptyRow, h, renderKpis, renderScopeState } from './dom.js';
import * as S from './shape.js';

let state = S.parseHash(location.hash, Date.now());
/** Bumped on every render, so an answer for a view the admin has left is dropped. */
let generation = 0;
let breakdownSort = { field: 'cost', direction: 'descending' };
let chart = null;
const pages = { keys: null, requests: null };

// ── status, errors, session ────────────────────────────────────────────────────────────────

function announce(message) {
  $('#status').textContent = message;
}

function showError(message) {
  const alert = $('#alert');
  alert.textContent = message;
  alert.hidden = false;
}

function clearError() {
  const alert = $('#alert');
  alert.hidden = true;
  alert.textContent = '';
}

function signOut(message) {
  session.signOut();
  generation += 1;
  $('#app').hidden = true;
  $('#session').hidden = true;
  $('#sign-in').hidden = false;
  announce('');
  if (message) showError(message);
  else clearError();
  $('#token').focus();
}

/**
 * Runs one view's loading: marks it busy, announces it, and shows any failure. A refused token
 * signs out (with the relay's reason); every other error stays on screen until the next load.
 */
async function guarded(section, label, load) {
  const gen = generation;
  section.setAttribute('aria-busy', 'true');
  delete section.dataset.loaded;
  announce(`Loading ${label}…`);
  try {
    const shown = await load(gen);
    if (gen !== generation) return;
    // The API call behind what is on screen, so anyone can check the figures against it.
    if (shown) section.dataset.loaded = shown;
    announce(`${label[0].toUpperCase()}${label.slice(1)} loaded.`);
  } catch (e) {
    if (gen !== generation) return;
    announce('');
    if (e instanceof ApiError && e.status === 401) {
      signOut(`The relay refused the admin token: ${e.message} Sign in again.`);
    } else if (e instanceof ApiError && e.status === 404 && /Invalid URL/.test(e.message)) {
      showError('This relay has no admin API: set the ADMIN_TOKEN secret to enable it.');
    } else {
      showError(`Could not load ${label}: ${e.message}`);
    }
  } finally {
    section.removeAttribute('aria-busy');
  }
}

// ── shared pieces ──────────────────────────────────────────────────────────────────────────

const range = () => S.apiRange(state);
const filters = () => S.filterParams(state);

function hashFor(patch) {
  return S.formatHash({ ...state, ...patch });
}

// ── overview ───────────────────────────────────────────────────────────────────────────────

const WINDOWS = [
  ['today', 'Today'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
];

async function loadOverview(gen) {
  const r = range();
  const f = filters();
  const choice = $('#bucket').value;
  const bucket = choice === 'auto' ? S.autoBucket(state) : choice;
  const now = Date.now();
  const windows = WINDOWS.map(([name, label]) => ({ name, label, ...S.apiRange(S.preset(name, now)) }));
  const main = `/admin/usage${S.query({ ...r, ...f })}`;
  const [total, byBucket, ...fixed] = await Promise.all([
    api('GET', main),
    api('GET', `/admin/usage${S.query({ ...r, ...f, group_by: bucket })}`),
    ...windows.map((w) => api('GET', `/admin/usage${S.query({ from: w.from, to: w.to, ...f })}`)),
  ]);
  if (gen !== generation) return;
  renderKpis($('#kpis'), S.totalsOf(total), r);

  $('#windows tbody').replaceChildren(
    ...windows.map((w, i) => {
      const t = S.totalsOf(fixed[i]);
      return h(
        'tr',
        { dataset: { window: w.name, from: w.from, to: w.to } },
        h('th', { scope: 'row' }, w.label),
        cell(S.formatInt(t.requests), { num: true, value: t.requests }),
        cell(S.formatInt(t.tokens), { num: true, value: t.tokens }),
        cell(S.formatCost(t.cost), { num: true, value: t.cost }),
        cell(S.formatPercent(t.errorRate), { num: true, value: t.errorRate }),
      );
    }),
  );

  const s = S.series(byBucket, r, bucket);
  const active = S.hasActivity(s);
  $('#chart-empty').hidden = active;
  $('#chart').hidden = !active;
  $('#chart').setAttribute('aria-label', `Cost and tokens per ${bucket} from ${state.from} through ${state.through} (UTC); the same figures are in the table below`);
  if (active) {
    chart ??= new Chart($('#chart'));
    chart.draw(s, bucket);
  }
  const rows = s.keys
    .map((key, i) => ({ key, i }))
    .filter(({ i }) => s.requests[i] > 0)
    .map(({ key, i }) =>
      h(
        'tr',
        {},
        h('th', { scope: 'row' }, key.replace('T', ' ')),
        cell(S.formatInt(s.requests[i]), { num: true }),
        cell(S.formatInt(s.tokens[i]), { num: true }),
        cell(S.formatCost(s.cost[i]), { num: true }),
        cell(S.formatInt(s.errors[i]), { num: true }),
      ),
    );
  if (rows.length) $('#series-table tbody').replaceChildren(...rows);
  else emptyRow($('#series-table tbody'), 5, 'No usage in this range.');
  return main;
}

/** Suggestions for the filter fields: the teams, users and models seen in the range. */
async function loadFilterOptions() {
  const report = await api('GET', `/admin/usage${S.query({ ...range(), group_by: 'team,user,model' })}`);
  for (const [dim, list] of [['team', '#teams'], ['user', '#users'], ['model', '#models']]) {
    const names = [...new Set(report.data.map((r) => r[dim]).filter(Boolean))].sort();
    $(list).replaceChildren(...names.map((n) => h('option', { value: n })));
  }
}

// ── breakdown ──────────────────────────────────────────────────────────────────────────────

const BREAKDOWN_COLUMNS = [
  ['label', 'Name', (r) => r.label, false],
  ['requests', 'Requests', (r) => S.formatInt(r.requests), true],
  ['tokens', 'Tokens', (r) => S.formatInt(r.tokens), true],
  ['prompt', 'Prompt', (r) => S.formatInt(r.prompt), true],
  ['completion', 'Completion', (r) => S.formatInt(r.completion), true],
  ['cost', 'Cost', (r) => S.formatCost(r.cost), true],
  ['errorRate', 'Error rate', (r) => S.formatPercent(r.errorRate), true],
  ['p50', 'p50', (r) => S.formatDuration(r.p50), true],
  ['p95', 'p95', (r) => S.formatDuration(r.p95), true],
  ['cacheHitRate', 'Cache hits', (r) => S.formatPercent(r.cacheHitRate), true],
  ['saved', 'Saved', (r) => S.formatCost(r.saved), true],
];

let breakdownRows = [];

function renderBreakdown() {
  const table = $('#breakdown');
  const dim = state.dim;
  table.dataset.dim = dim;
  table.tHead.replaceChildren(
    h(
      'tr',
      {},
      ...BREAKDOWN_COLUMNS.map(([field, label, , num]) => {
        const sorted = breakdownSort.field === field;
        const name = field === 'label' ? dim[0].toUpperCase() + dim.slice(1) : label;
        return h(
          'th',
          { scope: 'col', class: num ? 'num' : null, 'aria-sort': sorted ? breakdownSort.direction : null },
          h(
            'button',
            {
              type: 'button',
              class: 'sort',
              dataset: { field },
              onclick: () => {
                breakdownSort = S.nextSort(breakdownSort, field);
                renderBreakdown();
                table.querySelector(`button[data-field="${field}"]`)?.focus();
              },
            },
            name,
            h('span', { 'aria-hidden': 'true', class: 'arrow' }, sorted ? (breakdownSort.direction === 'ascending' ? ' ▲' : ' ▼') : ''),
          ),
        );
      }),
      h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')),
    ),
  );
  if (!breakdownRows.length) {
    emptyRow(table.tBodies[0], BREAKDOWN_COLUMNS.length + 1, 'No usage in this range.');
    return;
  }
  const rows = S.sortRows(breakdownRows, breakdownSort.field, breakdownSort.direction);
  table.tBodies[0].replaceChildren(
    ...rows.map((r) =>
      h(
        'tr',
        { dataset: { name: r.label } },
        h('th', { scope: 'row' }, r.label),
        ...BREAKDOWN_COLUMNS.slice(1).map(([field, , fmt]) => cell(fmt(r), { num: true, value: r[field] })),
        h(
          'td',
          { class: 'row-actions' },
          r.name !== null && ['team', 'user', 'model'].includes(dim)
            ? h('a', { href: hashFor({ view: 'overview', [dim]: r.name }) }, 'Filter', h('span', { class: 'sr-only' }, ` by ${dim} ${r.label}`))
            : null,
          // A team's row leads to its limits; a user's would need its team, which the row lacks.
          r.name !== null && dim === 'team'
            ? h('a', { href: hashFor({ view: 'limits', scopeTeam: r.name, scopeUser: '' }) }, 'Limits', h('span', { class: 'sr-only' }, ` of team ${r.label}`))
            : null,
        ),
      ),
    ),
  );
}

async function loadBreakdown(gen) {
  const path = `/admin/usage${S.query({ ...range(), ...filters(), group_by: state.dim })}`;
  const report = await api('GET', path);
  if (gen !== generation) return;
  breakdownRows = S.breakdown(report, state.dim);
  renderBreakdown();
  return path;
}

// ── keys ───────────────────────────────────────────────────────────────────────────────────

function keyRow(k) {
  const label = k.name || k.id;
  return h(
    'tr',
    { dataset: { keyId: k.id } },
    h('th', { scope: 'row' }, h('a', { href: hashFor({ view: 'key', keyId: k.id }) }, label)),
    h('td', {}, k.team),
    h('td', {}, k.user),
    h('td', {}, k.env),
    h('td', {}, h('span', { class: `badge ${k.status}` }, k.status)),
    h('td', { dataset: { limits: JSON.stringify(k.limits ?? {}) } }, S.limitsSummary(k.limits)),
    h('td', {}, S.cacheSummary(k.cache)),
    h('td', {}, S.formatTime(k.created_at)),
    h('td', {}, k.expires_at ? S.formatTime(k.expires_at) : 'never'),
    h('td', { class: 'row-actions' }, keyActions(k, label)),
  );
}

/** Rotate and revoke buttons for one key; their names say which key for screen readers. */
function keyActions(k, label) {
  const revoked = k.status === 'revoked';
  return [
    h('button', { type: 'button', class: 'secondary', disabled: revoked, 'aria-label': `Rotate ${label}`, onclick: () => rotateKey(k, label) }, 'Rotate'),
    h('button', { type: 'button', class: 'danger', disabled: revoked, 'aria-label': `Revoke ${label}`, onclick: () => revokeKey(k, label) }, 'Revoke'),
  ];
}

async function loadKeys(gen, { more = false } = {}) {
  const status = $('#key-status').value;
  const { team, user } = filters();
  const cursor = more ? pages.keys : undefined;
  const path = `/admin/keys${S.query({ team, user, status, limit: 50, cursor })}`;
  const page = await api('GET', path);
  if (gen !== generation) return;
  const tbody = $('#keys tbody');
  const rows = page.data.map(keyRow);
  if (more) tbody.append(...rows);
  else if (rows.length) tbody.replaceChildren(...rows);
  else emptyRow(tbody, 10, 'No keys match. Create one above.');
  pages.keys = page.next_cursor;
  $('#keys-more').hidden = !page.next_cursor;
  return path;
}

async function createKey(form) {
  const fields = Object.fromEntries(new FormData(form));
  if (!fields.team.trim() || !fields.user.trim()) {
    showError('A key needs a team and a user.');
    (fields.team.trim() ? form.user : form.team).focus();
    return;
  }
  clearError();
  try {
    const made = await api('POST', '/admin/keys', S.newKeyBody(fields));
    form.reset();
    announce(`Key created for ${made.team}/${made.user}.`);
    await showSecret(made.key, `New key for ${made.team}/${made.user}`, made.warnings);
    render();
  } catch (e) {
    handleActionError('create the key', e);
  }
}

async function rotateKey(k, label) {
  const ok = await confirmAction('Rotate key?', `A new secret replaces the current one of ${label} (${k.team}/${k.user}); the current secret stops working at once. Usage history stays with the key.`, 'Rotate');
  if (!ok) return;
  clearError();
  try {
    const made = await api('POST', `/admin/keys/${encodeURIComponent(k.id)}/rotate`);
    announce(`Key ${label} rotated.`);
    await showSecret(made.key, `New secret for ${label}`);
    render();
  } catch (e) {
    handleActionError('rotate the key', e);
  }
}

async function revokeKey(k, label) {
  const ok = await confirmAction('Revoke key?', `Requests with ${label} (${k.team}/${k.user}) will be refused from now on. This cannot be undone.`, 'Revoke');
  if (!ok) return;
  clearError();
  try {
    await api('DELETE', `/admin/keys/${encodeURIComponent(k.id)}`);
    announce(`Key ${label} revoked.`);
    render();
  } catch (e) {
    handleActionError('revoke the key', e);
  }
}

function handleActionError(what, e) {
  if (e instanceof ApiError && e.status === 401) signOut(`The relay refused the admin token: ${e.message} Sign in again.`);
  else showError(`Could not ${what}: ${e.message}`);
}

// ── one key ────────────────────────────────────────────────────────────────────────────────

function requestRow(r) {
  const model = r.model_upstream && r.model_upstream !== r.model_requested ? `${r.model_requested ?? '—'} → ${r.model_upstream}` : r.model_requested ?? '—';
  const tokens = (r.prompt_tokens ?? 0) + (r.completion_tokens ?? 0);
  const notes = S.requestNotes(r);
  const outcomeClass = r.outcome === 'ok' ? 'ok' : r.outcome === 'limited' ? 'limited' : 'bad';
  return h(
    'tr',
    { dataset: { requestId: r.request_id } },
    h('td', {}, h('time', { datetime: r.started_at }, S.formatTime(r.started_at))),
    h('td', {}, model),
    h('td', {}, r.route),
    cell(S.formatInt(tokens), { num: true, value: tokens }),
    cell(S.formatCost(r.cost_usd), { num: true, value: r.cost_usd }),
    h(
      'td',
      { dataset: { cache: notes.cache ?? '' } },
      notes.cache ? h('span', { class: `badge ${notes.cache === 'hit' ? 'hit' : 'ok'}` }, notes.cache) : '—',
      notes.saved !== null ? h('span', { class: 'muted' }, ` saved ${S.formatCost(notes.saved)}`) : null,
    ),
    h(
      'td',
      {},
      h('span', { class: `badge ${outcomeClass}` }, r.outcome),
      ` ${r.status}`,
      r.error_code ? h('span', { class: 'muted' }, ` ${r.error_code}`) : null,
      notes.limit ? h('span', { class: 'muted' }, ` (${notes.limit})`) : null,
    ),
    cell(S.formatDuration(r.duration_ms), { num: true, value: r.duration_ms }),
  );
}

async function loadKey(gen, { more = false } = {}) {
  const id = state.keyId;
  const q = { key: id, ...range(), ...filters() };
  if (more) {
    const path = `/admin/requests${S.query({ ...q, limit: 50, cursor: pages.requests })}`;
    const page = await api('GET', path);
    if (gen !== generation) return;
    $('#requests tbody').append(...page.data.map(requestRow));
    pages.requests = page.next_cursor;
    $('#requests-more').hidden = !page.next_cursor;
    return path;
  }
  const path = `/admin/requests${S.query({ ...q, limit: 50 })}`;
  const [k, usage, page, scope] = await Promise.all([
    api('GET', `/admin/keys/${encodeURIComponent(id)}`),
    api('GET', `/admin/usage${S.query(q)}`),
    api('GET', path),
    // The limits panel says its own failure; the rest of the key's page still shows.
    api('GET', `/admin/keys/${encodeURIComponent(id)}/limits`).catch((e) => {
      if (e instanceof ApiError && e.status === 401) throw e;
      return e;
    }),
  ]);
  if (gen !== generation) return;
  const label = k.name || k.id;
  $('#key-title').textContent = `Key ${label}`;
  const fact = (term, value) => [h('dt', {}, term), h('dd', {}, value)];
  $('#key-facts').replaceChildren(
    ...fact('Id', h('code', {}, k.id)),
    ...fact('Team / user', `${k.team} / ${k.user}`),
    ...fact('Environment', k.env),
    ...fact('Status', h('span', { class: `badge ${k.status}`, dataset: { status: k.status } }, k.status)),
    ...fact('Created', S.formatTime(k.created_at)),
    ...fact('Expires', k.expires_at ? S.formatTime(k.expires_at) : 'never'),
    ...fact('Models', k.models ? k.models.join(', ') : 'all'),
  );
  $('#key-actions').replaceChildren(...keyActions(k, label));
  renderKeyLimits(k, scope);
  renderKeyCache(k);
  renderKpis($('#key-kpis'), S.totalsOf(usage), range());
  const tbody = $('#requests tbody');
  if (page.data.length) tbody.replaceChildren(...page.data.map(requestRow));
  else emptyRow(tbody, 8, 'No requests with this key in this range.');
  pages.requests = page.next_cursor;
  $('#requests-more').hidden = !page.next_cursor;
  return path;
}

/** Puts text values into a form's fields by name (checkboxes take booleans). */
function fillForm(form, values) {
  for (const [name, value] of Object.entries(values)) {
    const el = form.elements[name];
    if (!el) continue;
    if (el.type === 'checkbox') el.checked = Boolean(value);
    else el.value = value;
  }
}

/** Which key the key view shows, for its forms (set each time the view loads). */
let shownKey = null;

function renderKeyLimits(k, scope) {
  shownKey = k;
  const stateList = $('#key-limit-state');
  if (scope instanceof Error) {
    delete stateList.dataset.scope;
    stateList.replaceChildren(h('div', { class: 'kpi' }, h('dt', {}, 'State'), h('dd', { class: 'note', dataset: { problem: 'true' } }, `Could not load the key's limits state: ${scope.message}`)));
  } else {
    renderScopeState(stateList, scope);
  }
  fillForm($('#key-limits-form'), S.limitsFormValues(k.limits ?? (scope instanceof Error ? {} : scope.limits) ?? {}));
  $('#key-scope-links').replaceChildren(
    'Requests with this key must also pass the limits of ',
    h('a', { href: hashFor({ view: 'limits', scopeTeam: k.team, scopeUser: '' }) }, `team ${k.team}`),
    ' and of ',
    h('a', { href: hashFor({ view: 'limits', scopeTeam: k.team, scopeUser: k.user }) }, `user ${k.team}/${k.user}`),
    '.',
  );
}

function renderKeyCache(k) {
  const text = $('#key-cache-text');
  text.textContent = `Now: ${S.cacheText(k.cache)}.`;
  text.dataset.cache = k.cache ? JSON.stringify(k.cache) : 'off';
  fillForm($('#key-cache-form'), {
    enabled: Boolean(k.cache),
    ttl: k.cache ? String(k.cache.ttl_s) : '',
    scope: k.cache?.scope ?? 'key',
    sampled: Boolean(k.cache?.sampled),
  });
}

/** Sends one change of the key shown (`{limits}` or `{cache}`), then reloads the view. */
async function changeShownKey(body, what) {
  if (!shownKey) return;
  const label = shownKey.name || shownKey.id;
  clearError();
  try {
    await api('PATCH', `/admin/keys/${encodeURIComponent(shownKey.id)}`, body);
    announce(`${what[0].toUpperCase()}${what.slice(1)} of ${label} saved.`);
    render();
  } catch (e) {
    handleActionError(`save the ${what}`, e);
  }
}

function saveKeyLimits(form) {
  const { limits, problem } = S.limitsFromForm(Object.fromEntries(new FormData(form)), { clearEmpty: true });
  if (problem) return showError(problem);
  return changeShownKey({ limits }, 'limits');
}

function saveKeyCache(form) {
  const fields = Object.fromEntries(new FormData(form));
  const { cache, problem } = S.cacheFromForm({ ...fields, enabled: form.elements.enabled.checked, sampled: form.elements.sampled.checked });
  if (problem) {
    showError(problem);
    form.elements.ttl.focus();
    return undefined;
  }
  return changeShownKey({ cache }, 'cache setting');
}

// ── team and user limits ───────────────────────────────────────────────────────────────────

function limitsListRow(r) {
  const l = r.limits ?? {};
  const n = (v) => (typeof v === 'number' ? S.formatInt(v) : '—');
  const href = hashFor({ view: 'limits', scopeTeam: r.team, scopeUser: r.user ?? '' });
  const name = r.scope === 'user' ? `${r.team}/${r.user}` : r.team;
  return h(
    'tr',
    { dataset: { scope: r.scope, team: r.team, user: r.user ?? '' } },
    h('th', { scope: 'row' }, h('a', { href }, r.scope, h('span', { class: 'sr-only' }, ` ${name}`))),
    h('td', {}, r.team),
    h('td', {}, r.user ?? '—'),
    h('td', {}, S.formatBudget(l)),
    cell(n(l.rpm), { num: true, value: l.rpm ?? null }),
    cell(n(l.tpm), { num: true, value: l.tpm ?? null }),
    cell(n(l.max_parallel), { num: true, value: l.max_parallel ?? null }),
  );
}

async function loadLimits(gen) {
  const team = state.scopeTeam;
  const user = state.scopeUser;
  const form = $('#open-scope');
  form.elements.team.value = team;
  form.elements.user.value = user;
  const scopePath = team ? S.scopePath(team, user) : null;
  const [list, scope] = await Promise.all([api('GET', '/admin/limits'), scopePath ? api('GET', scopePath) : null]);
  if (gen !== generation) return;
  const tbody = $('#limits-list tbody');
  if (list.data.length) tbody.replaceChildren(...list.data.map(limitsListRow));
  else emptyRow(tbody, 7, 'No team or user has limits yet. Open one above to set some.');
  const panel = $('#scope-panel');
  panel.hidden = !scope;
  if (scope) {
    $('#scope-title').textContent = `${S.scopeLabel(scope)[0].toUpperCase()}${S.scopeLabel(scope).slice(1)}`;
    renderScopeState($('#scope-state'), scope);
    fillForm($('#scope-limits-form'), S.limitsFormValues(scope.limits));
    $('#scope-delete').disabled = !S.hasLimits(scope.limits);
  }
  return scopePath ?? '/admin/limits';
}

async function saveScopeLimits(form) {
  const { limits, problem } = S.limitsFromForm(Object.fromEntries(new FormData(form)));
  if (problem) return showError(problem);
  const label = S.scopeLabel({ scope: state.scopeUser ? 'user' : 'team', team: state.scopeTeam, user: state.scopeUser });
  clearError();
  try {
    await api('PUT', S.scopePath(state.scopeTeam, state.scopeUser), limits);
    announce(`Limits of ${label} saved.`);
    render();
  } catch (e) {
    handleActionError(`save the limits of ${label}`, e);
  }
  return undefined;
}

async function deleteScopeLimits() {
  const label = S.scopeLabel({ scope: state.scopeUser ? 'user' : 'team', team: state.scopeTeam, user: state.scopeUser });
  const ok = await confirmAction('Remove limits?', `Every limit of ${label} is removed; its spend so far is kept and counts again if a budget is set later.`, 'Remove');
  if (!ok) return;
  clearError();
  try {
    await api('DELETE', S.scopePath(state.scopeTeam, state.scopeUser));
    announce(`Limits of ${label} removed.`);
    render();
  } catch (e) {
    handleActionError(`remove the limits of ${label}`, e);
  }
}

function openScope(form) {
  const team = form.elements.team.value.trim();
  const user = form.elements.user.value.trim();
  if (!team) {
    showError('Give a team (and a user of it, for one user).');
    form.elements.team.focus();
    return;
  }
  navigate({ view: 'limits', scopeTeam: team, scopeUser: user });
}

// ── router ─────────────────────────────────────────────────────────────────────────────────

const VIEWS = {
  overview: ['overview', loadOverview],
  breakdown: ['breakdown', loadBreakdown],
  keys: ['keys', loadKeys],
  key: ['key', loadKey],
  limits: ['limits', loadLimits],
};

function syncControls() {
  const form = $('#filters');
  for (const name of ['from', 'through', 'team', 'user', 'model']) form.elements[name].value = state[name];
  $('#dim').value = state.dim;
  for (const a of document.querySelectorAll('nav.views a')) {
    a.href = hashFor({ view: a.dataset.view, scopeTeam: '', scopeUser: '' });
    if (a.dataset.view === state.view || (state.view === 'key' && a.dataset.view === 'keys')) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  $('#back-to-keys').href = hashFor({ view: 'keys' });
}

let shownView = null;
let optionsFor = null;

function render() {
  if (!session.token) return;
  generation += 1;
  clearError();
  syncControls();
  const [label, load] = VIEWS[state.view];
  for (const name of Object.keys(VIEWS)) $(`#view-${name}`).hidden = name !== state.view;
  const section = $(`#view-${state.view}`);
  if (shownView !== null && shownView !== state.view) section.querySelector('h2').focus();
  shownView = state.view;
  guarded(section, label, load);
  const key = `${state.from}/${state.through}`;
  if (optionsFor !== key) {
    optionsFor = key;
    // Suggestions only: a failure here must not hide the view's own result or error.
    loadFilterOptions().catch(() => {
      optionsFor = null;
    });
  }
}

function navigate(patch) {
  const next = S.formatHash({ ...state, ...patch });
  if (next === location.hash) {
    state = S.parseHash(next, Date.now());
    render();
  } else {
    location.hash = next;
  }
}

function applyFilters(form) {
  const picked = {
    from: form.elements.from.value,
    through: form.elements.through.value,
    team: form.elements.team.value.trim(),
    user: form.elements.user.value.trim(),
    model: form.elements.model.value.trim(),
  };
  const problem = S.rangeProblem(picked);
  if (problem) {
    showError(problem);
    form.elements.from.focus();
    return;
  }
  navigate(picked);
}

function showApp() {
  $('#sign-in').hidden = true;
  $('#app').hidden = false;
  $('#session').hidden = false;
  render();
}

function wire() {
  $('#sign-in-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const token = $('#token').value.trim();
    if (!token) {
      showError('Enter the admin token.');
      $('#token').focus();
      return;
    }
    const button = ev.submitter ?? $('#sign-in-form button');
    button.disabled = true;
    announce('Signing in…');
    try {
      // Any admin call checks the token; this one is cheap.
      await api('GET', '/admin/keys?limit=1', undefined, token);
      session.signIn(token);
      $('#token').value = '';
      clearError();
      showApp();
    } catch (e) {
      announce('');
      if (e instanceof ApiError && e.status === 401) showError(`Sign-in failed: ${e.message}`);
      else if (e instanceof ApiError && e.status === 404) showError('This relay has no admin API: set the ADMIN_TOKEN secret to enable it.');
      else showError(`Sign-in failed: ${e.message}`);
      $('#token').focus();
    } finally {
      button.disabled = false;
    }
  });
  $('#sign-out').addEventListener('click', () => signOut());
  $('#filters').addEventListener('submit', (ev) => {
    ev.preventDefault();
    applyFilters(ev.target);
  });
  for (const b of document.querySelectorAll('[data-preset]')) {
    b.addEventListener('click', () => {
      const form = $('#filters');
      const r = S.preset(b.dataset.preset, Date.now());
      form.elements.from.value = r.from;
      form.elements.through.value = r.through;
      applyFilters(form);
    });
  }
  $('#clear-filters').addEventListener('click', () => {
    const form = $('#filters');
    for (const name of ['team', 'user', 'model']) form.elements[name].value = '';
    applyFilters(form);
  });
  $('#bucket').addEventListener('change', () => render());
  $('#dim').addEventListener('change', (ev) => navigate({ dim: ev.target.value }));
  $('#key-status').addEventListener('change', () => render());
  $('#create-key').addEventListener('submit', (ev) => {
    ev.preventDefault();
    createKey(ev.target);
  });
  $('#key-limits-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    saveKeyLimits(ev.target);
  });
  $('#key-cache-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    saveKeyCache(ev.target);
  });
  $('#open-scope').addEventListener('submit', (ev) => {
    ev.preventDefault();
    openScope(ev.target);
  });
  $('#scope-limits-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    saveScopeLimits(ev.target);
  });
  $('#scope-delete').addEventListener('click', () => deleteScopeLimits());
  $('#keys-more').addEventListener('click', () => guarded($('#view-keys'), 'more keys', (gen) => loadKeys(gen, { more: true })));
  $('#requests-more').addEventListener('click', () => guarded($('#view-key'), 'more requests', (gen) => loadKey(gen, { more: true })));
  $('#copy-secret').addEventListener('click', copySecret);
  $('#close-secret').addEventListener('click', () => {
    $('#secret-value').value = '';
    $('#secret-dialog').close();
  });
  window.addEventListener('hashchange', () => {
    state = S.parseHash(location.hash, Date.now());
    render();
  });
  for (const section of document.querySelectorAll('.view h2')) section.setAttribute('tabindex', '-1');
}

wire();
if (session.token) showApp();
else $('#token').focus();
