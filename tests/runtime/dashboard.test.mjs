// The dashboard through the real worker on workerd: its files and security headers, and an
// end-to-end run in headless Chromium against seeded usage — sign in, overview figures equal
// to /admin/usage, a team filter that changes the breakdown, sorting, a key created in the page
// and used through the relay, its request in the per-key view, rotation, and revocation in the
// page that makes the next request fail. Screenshots go to build/artifacts/ (RELAY_UPDATE_SCREENSHOT=1
// also refreshes the README's copy, tests/dashboard/screenshot.png).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startRelay, call, ADMIN_TOKEN, ROOT } from './harness.mjs';
import { browserMissing, launchBrowser } from './browser.mjs';
import * as S from '../../src/dashboard/shape.js';

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const ARTIFACTS = join(ROOT, 'build', 'artifacts');
const DAY = 86_400_000;

let relay;

before(async () => {
  relay = await startRelay();
});
after(async () => relay?.close());

const admin = async (path) => {
  const r = await call(relay, path, { method: 'GET', key: ADMIN_TOKEN });
  assert.equal(r.res.status, 200, `${path}: ${r.text}`);
  return r.json;
};

test('the page and its files: security headers, no inline script or style, exact files only', async () => {
  const page = await fetch(`${relay.url}/dashboard`);
  const html = await page.text();
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(page.headers.get('content-security-policy'), CSP);
  assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
  assert.equal(page.headers.get('x-frame-options'), 'DENY');
  assert.equal(page.headers.get('cache-control'), 'no-cache');
  assert.ok(page.headers.get('x-request-id'), 'still a relay answer, with its request id');
  // Nothing the CSP would have to allow: every script is a same-origin file, no handlers or
  // style attributes in the markup.
  const scripts = [...html.matchAll(/<script\b[^>]*>/g)].map((m) => m[0]);
  assert.deepEqual(scripts, ['<script type="module" src="/dashboard/app.js">']);
  assert.doesNotMatch(html, /<script>|\son[a-z]+=|\sstyle=|<style/i);
  assert.doesNotMatch(html, /https?:\/\//, 'no external address');

  for (const [file, type] of [['app.js', 'text/javascript; charset=utf-8'], ['app.css', 'text/css; charset=utf-8']]) {
    const r = await fetch(`${relay.url}/dashboard/${file}`);
    const body = await r.text();
    assert.equal(r.status, 200, file);
    assert.equal(r.headers.get('content-type'), type);
    assert.equal(r.headers.get('content-security-policy'), CSP);
    assert.ok(body.length > 1000, `${file} is the bundle`);
    const again = await fetch(`${relay.url}/dashboard/${file}`, { headers: { 'if-none-match': r.headers.get('etag') } });
    assert.equal(again.status, 304, 'revalidation is a 304');
  }
  const css = await (await fetch(`${relay.url}/dashboard/app.css`)).text();
  assert.match(css, /\.uplot/, "the chart library's stylesheet is bundled");

  const missing = await fetch(`${relay.url}/dashboard/nope.js`);
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get('content-security-policy'), CSP, 'errors carry the headers too');
  assert.deepEqual(await missing.json(), { error: { message: 'Invalid URL (GET /dashboard/nope.js)', type: 'invalid_request_error', param: null, code: null } });
  for (const path of ['/dashboard/.assetsignore', '/v1/dashboard', '/dashboard/a/b.js']) {
    assert.equal((await fetch(`${relay.url}${path}`)).status, 404, path);
  }
  const post = await fetch(`${relay.url}/dashboard`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET');
  // The API keeps its own answers: no page policy on them.
  assert.equal((await fetch(`${relay.url}/health`)).headers.get('content-security-policy'), null);
});

test('without ADMIN_TOKEN the dashboard is absent, like the admin API', async () => {
  const bare = await startRelay({ mock: false, vars: { ADMIN_TOKEN: undefined } });
  try {
    const r = await fetch(`${bare.url}/dashboard`);
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.message, 'Invalid URL (GET /dashboard)');
  } finally {
    await bare.close();
  }
});

test('deployed without [assets], the dashboard is a 404 and the API is unaffected', async () => {
  const bare = await startRelay({ assets: false });
  try {
    const r = await fetch(`${bare.url}/dashboard`);
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.message, 'Invalid URL (GET /dashboard)');
    assert.ok(bare.logs.some((l) => l.includes('no ASSETS binding')), 'the operator is told why');
    const { key } = await bare.seedKey();
    const models = await call(bare, '/v1/models', { method: 'GET', key });
    assert.equal(models.res.status, 200);
  } finally {
    await bare.close();
  }
});

/**
 * Usage for a small organisation over the past four weeks and earlier today, deterministic (a
 * fixed LCG), written straight into D1 as the worker would have.
 */
async function seedUsage(now) {
  let x = 42;
  const rand = () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
  const people = [['platform', 'ann'], ['platform', 'bob'], ['research', 'cy'], ['research', 'dee'], ['support', 'eve']];
  const models = [['gpt-4o', 'openai', 2.5, 10], ['gpt-4o-mini', 'openai', 0.15, 0.6], ['claude-sonnet-4-5', 'anthropic', 3, 15]];
  const today = Date.parse(`${S.isoDate(now)}T00:00:00.000Z`);
  for (let d = 27; d >= 0; d -= 1) {
    const n = d === 0 ? 4 : 3 + Math.floor(rand() * 6);
    for (let i = 0; i < n; i += 1) {
      const [team, user] = people[Math.floor(rand() * people.length)];
      const [model, provider, inPrice, outPrice] = models[Math.floor(rand() * models.length)];
      // Today's rows sit in the minutes before the test, earlier days anywhere in the day.
      const at = d === 0 ? now - (i + 1) * 60_000 : today - d * DAY + Math.floor(rand() * DAY);
      const failed = rand() < 0.08;
      const prompt = failed ? 0 : 200 + Math.floor(rand() * 4000);
      const completion = failed ? 0 : 20 + Math.floor(rand() * 800);
      const cost = (prompt * inPrice + completion * outPrice) / 1e6;
      await relay.db
        .prepare(`INSERT INTO usage (request_id, team, user, method, route, model_requested, model_upstream, provider, status, outcome, prompt_tokens, completion_tokens, usage_source, cost_usd, started_at, duration_ms, ttfb_ms)
          VALUES (?, ?, ?, 'POST', '/v1/chat/completions', ?, ?, ?, ?, ?, ?, ?, 'upstream', ?, ?, ?, ?)`)
        .bind(`seed_${d}_${i}`, team, user, model, model, provider, failed ? 502 : 200, failed ? 'upstream_error' : 'ok', prompt, completion, cost, new Date(at).toISOString(), 300 + Math.floor(rand() * 9000), 150)
        .run();
    }
  }
}

/** The figures a KPI list shows, as raw values and text. */
async function kpis(page, selector) {
  return page.$$eval(`${selector} dd[data-metric]`, (els) => Object.fromEntries(els.map((e) => [e.dataset.metric, { value: e.dataset.value, text: e.textContent }])));
}

const num = (v) => (v === 'null' ? null : Number(v));

/**
 * The figures a page must show for one /admin/usage row, worked out here from the API's own
 * fields rather than with the page's shaping code, so a shaping bug cannot hide itself.
 */
function expected(row) {
  return {
    requests: row.requests,
    tokens: row.prompt_tokens + row.completion_tokens,
    cost: row.cost_usd,
    'error-rate': row.requests ? row.errors / row.requests : 0,
    p50: row.p50_duration_ms,
    'cache-hit-rate': row.cache_hit_rate ?? null,
    saved: row.saved_usd ?? null,
  };
}

/** Asserts a KPI list shows exactly the figures of an /admin/usage total, raw and as text. */
function assertKpis(shown, report, what) {
  assert.equal(report.data.length, 1, `${what}: one row of totals`);
  const want = expected(report.data[0]);
  assert.ok(want.requests > 0, `${what}: the comparison is over real rows`);
  const hits = report.data[0].cache_hits ?? 0;
  const text = {
    requests: S.formatInt,
    tokens: S.formatInt,
    cost: S.formatCost,
    'error-rate': S.formatPercent,
    p50: S.formatDuration,
    'cache-hit-rate': S.formatPercent,
    saved: (v) => `${S.formatInt(hits)} hits · ${S.formatCost(v ?? 0)} saved`,
  };
  assert.deepEqual(
    Object.fromEntries(Object.entries(shown).map(([k, v]) => [k, [num(v.value), v.text]])),
    Object.fromEntries(Object.entries(want).map(([k, v]) => [k, [v, text[k](v)]])),
    what,
  );
}

/** Waits until a view has finished loading from exactly `path` (its data-loaded attribute). */
async function loaded(page, view, path) {
  await page.waitForSelector(`#view-${view}[data-loaded="${path}"]:not([aria-busy])`, { timeout: 15_000 });
}

test('end to end in Chromium: sign in, figures equal the API, filter, create, use and revoke a key', { timeout: 180_000 }, async (t) => {
  const missing = browserMissing();
  // CI installs Chromium itself (.ci/run); there a missing browser is a failure, not a skip.
  if (missing && process.env.CI) assert.fail(`browser test cannot run in CI: ${missing}`);
  if (missing) {
    t.skip(missing);
    return;
  }
  const now = Date.now();
  await seedUsage(now);
  const today = S.isoDate(now);
  // A range that ends yesterday: the test's own calls (every request leaves a row) cannot
  // move its figures while the page and the test both read them.
  const past = { from: S.addDays(today, -20), through: S.addDays(today, -1) };
  const pastApi = S.apiRange(past);

  const browser = await launchBrowser();
  const requests = [];
  const problems = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.addInitScript(() => {
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
    });

    // Sign-in: a wrong token is refused with the relay's message and nothing is stored.
    await page.goto(`${relay.url}/dashboard`);
    await page.getByLabel('Admin token').fill('not-the-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Sign-in failed: Invalid admin token.' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);
    await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#app').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('llm-relay.admin-token')), ADMIN_TOKEN);
    assert.equal(await page.evaluate(() => document.cookie), '', 'no cookie');
    assert.ok(!page.url().includes(ADMIN_TOKEN), 'never in the URL');
    assert.equal(await page.getByRole('alert').isHidden(), true, 'the old error is gone');
    // Every control has a label and every button a name (the accessibility tree's view).
    const unlabelled = await page.$$eval('input, select', (els) => els.filter((e) => !e.labels?.length && !e.getAttribute('aria-label')).map((e) => e.id));
    assert.deepEqual(unlabelled, []);
    const nameless = await page.$$eval('button', (els) => els.filter((b) => !b.textContent.trim() && !b.getAttribute('aria-label')).map((b) => b.outerHTML));
    assert.deepEqual(nameless, []);

    // The overview for 30 days, as the README shows it.
    await page.getByRole('button', { name: '30 days' }).click();
    const month = S.apiRange(S.preset('30d', now));
    await loaded(page, 'overview', `/admin/usage${S.query(month)}`);
    await page.locator('#chart canvas').first().waitFor();
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    if (process.env.RELAY_UPDATE_SCREENSHOT === '1') copyFileSync(shot, join(ROOT, 'tests', 'dashboard', 'screenshot.png'));

    // Overview over a past range: every figure equals the API's answer to the same question.
    await page.getByLabel('From', { exact: true }).fill(past.from);
    await page.getByLabel('Through', { exact: true }).fill(past.through);
    await page.getByRole('button', { name: 'Apply' }).click();
    const pastPath = `/admin/usage${S.query(pastApi)}`;
    await loaded(page, 'overview', pastPath);
    assert.equal(await page.getAttribute('#kpis', 'data-from'), pastApi.from);
    assert.equal(await page.getAttribute('#kpis', 'data-to'), pastApi.to);
    const all = await admin(pastPath);
    assertKpis(await kpis(page, '#kpis'), all, 'overview, all teams');
    const byDay = await admin(`/admin/usage${S.query({ ...pastApi, group_by: 'day' })}`);
    const tableDays = await page.$$eval('#series-table tbody tr', (trs) => trs.map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent]));
    assert.deepEqual(tableDays, byDay.data.map((r) => [r.day, S.formatInt(r.requests)]), 'chart data per day = group_by=day');
    assert.ok(tableDays.length >= 15, 'a day-by-day series');
    assert.equal(await page.isVisible('#chart canvas'), true);

    // Filter by team: figures follow, and the fixed windows match the API with the same filter.
    await page.getByLabel('Team', { exact: true }).fill('research');
    await page.getByRole('button', { name: 'Apply' }).click();
    const researchPath = `/admin/usage${S.query({ ...pastApi, team: 'research' })}`;
    await loaded(page, 'overview', researchPath);
    const research = await admin(researchPath);
    assertKpis(await kpis(page, '#kpis'), research, 'overview, team research');
    assert.ok(research.data[0].requests < all.data[0].requests, 'the filter narrows the figures');
    const windows = await page.$$eval('#windows tbody tr', (trs) =>
      trs.map((tr) => ({ from: tr.dataset.from, to: tr.dataset.to, values: [...tr.querySelectorAll('td')].map((td) => td.dataset.value) })),
    );
    assert.equal(windows.length, 3);
    for (const w of windows) {
      // Only seeded rows carry a team, so the test's own traffic cannot move these.
      const [row] = (await admin(`/admin/usage?from=${w.from}&to=${w.to}&team=research`)).data;
      const f = expected(row);
      assert.deepEqual(w.values.map(num), [f.requests, f.tokens, f.cost, f['error-rate']], `window ${w.from}..${w.to}`);
    }

    // Breakdown by team: one team while filtered, every team once the filter is cleared.
    await page.getByRole('link', { name: 'Breakdown' }).click();
    await loaded(page, 'breakdown', `/admin/usage${S.query({ ...pastApi, team: 'research', group_by: 'team' })}`);
    const names = () => page.$$eval('#breakdown tbody tr', (trs) => trs.map((tr) => tr.dataset.name));
    assert.deepEqual(await names(), ['research']);
    // An empty answer is said so, not shown as a blank table.
    await page.getByLabel('Team', { exact: true }).fill('nobody');
    await page.getByRole('button', { name: 'Apply' }).click();
    await loaded(page, 'breakdown', `/admin/usage${S.query({ ...pastApi, team: 'nobody', group_by: 'team' })}`);
    assert.equal(await page.textContent('#breakdown tbody'), 'No usage in this range.');
    await page.getByRole('button', { name: 'Clear filters' }).click();
    const teamsPath = `/admin/usage${S.query({ ...pastApi, group_by: 'team' })}`;
    await loaded(page, 'breakdown', teamsPath);
    const teams = (await admin(teamsPath)).data;
    assert.deepEqual(teams.map((r) => r.team).sort(), ['platform', 'research', 'support']);
    const order = (field, sign) => [...teams].sort((a, b) => sign * (a[field] - b[field]) || (a.team < b.team ? -1 : 1)).map((r) => r.team);
    assert.deepEqual(await names(), order('cost_usd', -1), 'sorted by cost, highest first');
    const cells = await page.$$eval('#breakdown tbody tr', (trs) => trs.map((tr) => [tr.dataset.name, ...[...tr.querySelectorAll('td[data-value]')].map((td) => td.dataset.value)]));
    assert.deepEqual(
      cells.map((c) => [c[0], num(c[1]), num(c[2]), num(c[5])]).sort(),
      teams.map((r) => [r.team, r.requests, r.prompt_tokens + r.completion_tokens, r.cost_usd]).sort(),
      'requests, tokens and cost per team',
    );
    // Sorting by keyboard: the header is a button; aria-sort says the order.
    const requestsHeader = page.getByRole('button', { name: 'Requests' });
    await requestsHeader.focus();
    await page.keyboard.press('Enter');
    assert.equal(await page.getAttribute('#breakdown th:nth-child(2)', 'aria-sort'), 'descending');
    assert.deepEqual(await names(), order('requests', -1));
    await page.keyboard.press('Enter');
    assert.equal(await page.getAttribute('#breakdown th:nth-child(2)', 'aria-sort'), 'ascending');
    assert.deepEqual(await names(), order('requests', 1));
    assert.equal(await page.$$eval('#breakdown th[aria-sort]', (ths) => ths.length), 1);

    // Keys: create one in the page; it is shown once.
    await page.getByRole('link', { name: 'Keys' }).click();
    await loaded(page, 'keys', `/admin/keys${S.query({ status: 'active', limit: 50 })}`);
    // The relay's own validation message reaches the admin, naming the field.
    await page.getByLabel('Team (required)').fill('Bad_Team');
    await page.getByLabel('User (required)').fill('zoe');
    await page.getByRole('button', { name: 'Create key' }).click();
    await page.getByRole('alert').filter({ hasText: "Could not create the key: 'team' must be 1-32 characters of a-z, 0-9 and '-'. (param: team)" }).waitFor();
    await page.getByLabel('Team (required)').fill('research');
    await page.getByLabel('User (required)').fill('zoe');
    await page.getByLabel('Name').fill('Zoe laptop');
    await page.getByRole('button', { name: 'Create key' }).click();
    const dialog = page.getByRole('dialog', { name: 'New key for research/zoe' });
    await dialog.waitFor();
    const key = await dialog.getByLabel('Key').inputValue();
    assert.match(key, /^lc_prod_research_zoe_[0-9A-Za-z]{32}$/);
    await dialog.getByRole('button', { name: 'Copy' }).click();
    await page.locator('#copy-status').filter({ hasText: /Copied|Selected/ }).waitFor();
    await dialog.getByRole('button', { name: 'Done' }).click();
    assert.equal(await page.locator('#secret-value').inputValue(), '', 'the key leaves the page with the dialog');
    await loaded(page, 'keys', `/admin/keys${S.query({ status: 'active', limit: 50 })}`);
    const row = page.locator('#keys tbody tr', { hasText: 'Zoe laptop' });
    const keyId = await row.getAttribute('data-key-id');
    assert.match(keyId, /^key_/);

    // Use it through the relay with the official client, as a team member would.
    // Retries cover connection errors only here (no 408/409/429/5xx is expected, and a 401 is
    // never retried): a request refused before its body is read (a bad key) makes workerd close
    // that connection, and the client's pool may hand the closing socket to the next request.
    const client = new OpenAI({ apiKey: key, baseURL: relay.base, maxRetries: 2 });
    const { data: answer, response } = await client.chat.completions
      .create({ model: 'mock-ok', messages: [{ role: 'user', content: 'hello from the dashboard test' }] })
      .withResponse();
    assert.equal(answer.choices[0].message.content, 'Hello from the mock provider.');
    const requestId = response.headers.get('x-request-id');
    const usageRow = await relay.row(requestId);
    assert.equal(usageRow.key_id, keyId);

    // The per-key view lists that request with its figures.
    await page.getByRole('button', { name: 'Today' }).click();
    await loaded(page, 'keys', `/admin/keys${S.query({ status: 'active', limit: 50 })}`);
    await row.getByRole('link', { name: 'Zoe laptop' }).click();
    const todayApi = S.apiRange(S.preset('today', Date.now()));
    await loaded(page, 'key', `/admin/requests${S.query({ key: keyId, ...todayApi, limit: 50 })}`);
    const listed = page.locator(`#requests tbody tr[data-request-id="${requestId}"]`);
    await listed.waitFor();
    const shown = await listed.evaluate((tr) => ({ cells: [...tr.cells].map((c) => c.textContent), values: [...tr.querySelectorAll('td[data-value]')].map((c) => c.dataset.value) }));
    assert.equal(shown.cells[0], S.formatTime(usageRow.started_at));
    assert.equal(shown.cells[1], 'mock-ok');
    assert.equal(shown.cells[2], '/v1/chat/completions');
    assert.deepEqual(shown.values.map(num), [usageRow.prompt_tokens + usageRow.completion_tokens, usageRow.cost_usd, usageRow.duration_ms]);
    // No cache setting on this key: the cache was not in play, and the row says so.
    assert.equal(shown.cells[5], usageRow.cache ?? '—');
    assert.match(shown.cells[6], /^ok 200/);
    assertKpis(await kpis(page, '#key-kpis'), await admin(`/admin/usage${S.query({ key: keyId, ...todayApi })}`), 'per-key figures');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-key.png'), fullPage: true });

    // Rotate in the page: the new secret is shown once, the old one stops at once.
    await page.locator('#key-actions').getByRole('button', { name: 'Rotate Zoe laptop' }).click();
    const rotate = page.getByRole('dialog', { name: 'Rotate key?' });
    await rotate.waitFor();
    await rotate.getByRole('button', { name: 'Rotate' }).click();
    const secret = page.getByRole('dialog', { name: 'New secret for Zoe laptop' });
    await secret.waitFor();
    const rotated = await secret.getByLabel('Key').inputValue();
    assert.match(rotated, /^lc_prod_research_zoe_[0-9A-Za-z]{32}$/);
    assert.notEqual(rotated, key);
    await secret.getByRole('button', { name: 'Done' }).click();
    await assert.rejects(
      client.chat.completions.create({ model: 'mock-ok', messages: [{ role: 'user', content: 'old secret' }] }),
      (e) => e.status === 401,
    );
    const current = new OpenAI({ apiKey: rotated, baseURL: relay.base, maxRetries: 2 });
    assert.equal((await current.chat.completions.create({ model: 'mock-ok', messages: [{ role: 'user', content: 'new secret' }] })).choices[0].message.content, 'Hello from the mock provider.');

    // Revoke in the page, after a confirmation; the next request with the key is refused.
    await page.locator('#key-actions').getByRole('button', { name: 'Revoke Zoe laptop' }).click();
    const confirm = page.getByRole('dialog', { name: 'Revoke key?' });
    await confirm.waitFor();
    await confirm.getByRole('button', { name: 'Revoke' }).click();
    await page.locator('#key-facts [data-status="revoked"]').waitFor();
    assert.equal(await page.locator('#key-actions').getByRole('button', { name: 'Revoke Zoe laptop' }).isDisabled(), true);
    const audit = await admin(`/admin/audit?key=${keyId}`);
    assert.deepEqual(audit.data.map((e) => e.action), ['revoke', 'rotate', 'create']);
    await assert.rejects(
      current.chat.completions.create({ model: 'mock-ok', messages: [{ role: 'user', content: 'again' }] }),
      (e) => e.status === 401 && e.error?.code === 'invalid_api_key' && /revoked/.test(e.message),
    );

    // A token the relay stops accepting signs the page out with the reason.
    await page.evaluate(() => sessionStorage.setItem('llm-relay.admin-token', 'stale-token'));
    await page.reload();
    await page.getByRole('alert').filter({ hasText: 'The relay refused the admin token: Invalid admin token. Sign in again.' }).waitFor();
    assert.equal(await page.isVisible('#sign-in'), true);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0);

    // The page's own traffic failed only where the test made it fail: no missing file, no
    // malformed call, no server error (every request leaves a row, so the rows tell).
    let outcomes = [];
    // Rows are written after the answer (waitUntil): wait, bounded, for the stale token's.
    for (const deadline = Date.now() + 5000; outcomes.length <= 4 && Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
      const failed = await relay.db
        .prepare("SELECT status, error_code FROM usage WHERE outcome != 'ok' AND started_at >= ? AND request_id NOT LIKE 'seed_%' ORDER BY started_at")
        .bind(new Date(now).toISOString())
        .all();
      outcomes = failed.results.map((r) => `${r.status} ${r.error_code}`);
    }
    assert.deepEqual(outcomes.slice(0, 4), ['401 invalid_admin_token', '400 invalid_request', '401 invalid_api_key', '401 invalid_api_key'], 'wrong token, bad team, old secret, revoked key');
    assert.ok(outcomes.length > 4 && outcomes.slice(4).every((o) => o === '401 invalid_admin_token'), `then only the stale token: ${outcomes}`);
    // Nothing blocked by the CSP, no script errors, and no request left this origin.
    assert.deepEqual(await page.evaluate(() => window.__csp), []);
    assert.deepEqual(problems, []);
    const foreign = requests.filter((u) => !u.startsWith(`${relay.url}/`) && !u.startsWith('data:'));
    assert.deepEqual(foreign, []);
  } finally {
    await browser.close();
  }
});

/** Admin API write, for setting up state the page then shows. */
const adminSend = async (method, path, body) => {
  const r = await call(relay, path, { method, key: ADMIN_TOKEN, body });
  assert.ok(r.res.ok, `${method} ${path}: ${r.text}`);
  return r.json;
};

/** A fresh page, signed in; fails the test on any script error or CSP violation. */
async function signedIn(browser, problems) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  await page.goto(`${relay.url}/dashboard`);
  await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#app').waitFor();
  return page;
}

/** The raw values of a state list's cards (`data-metric` → number, a time as given, or null). */
async function stateValues(page, selector) {
  const raw = await page.$$eval(`${selector} dd[data-metric]`, (els) => Object.fromEntries(els.map((e) => [e.dataset.metric, e.dataset.value])));
  return Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, v === 'null' ? null : Number.isNaN(Number(v)) ? v : Number(v)]));
}

test('limits in Chromium: edited on the key page and the Limits view, read back from the API; spend shows after a request', { timeout: 180_000 }, async (t) => {
  const missing = browserMissing();
  if (missing && process.env.CI) assert.fail(`browser test cannot run in CI: ${missing}`);
  if (missing) {
    t.skip(missing);
    return;
  }
  const made = await adminSend('POST', '/admin/keys', { team: 'dash-limits', user: 'lia', name: 'Lia CI', limits: { budget_usd: 2, budget_period: 'day' } });
  const today = S.apiRange(S.preset('today', Date.now()));
  const keyView = `/admin/requests${S.query({ key: made.id, ...today, limit: 50 })}`;
  const browser = await launchBrowser();
  const problems = [];
  try {
    const page = await signedIn(browser, problems);
    await page.goto(`${relay.url}/dashboard#/key/${made.id}?from=${S.preset('today', Date.now()).from}&through=${S.preset('today', Date.now()).through}`);
    await loaded(page, 'key', keyView);

    // The state the API reports, card for card.
    const fresh = await adminGetScope(`/admin/keys/${made.id}/limits`);
    assert.deepEqual(fresh.limits, { budget_usd: 2, budget_period: 'day' });
    assert.deepEqual(await stateValues(page, '#key-limit-state'), {
      spent: 0, reserved: 0, remaining: 2, resets: fresh.state.resets_at, 'in-flight': 0, 'requests-minute': 0, 'tokens-minute': 0,
    });
    assert.equal(await page.textContent('#key-limit-state [data-metric="resets"]'), S.formatTime(fresh.state.resets_at));
    const form = page.locator('#key-limits-form');
    assert.equal(await form.getByLabel('Budget (USD)').inputValue(), '2');
    assert.equal(await form.getByLabel('Period').inputValue(), 'day');
    assert.equal(await form.getByLabel('Requests per minute').inputValue(), '');

    // Edit in the page: a new budget and period, an rpm; the API has exactly that.
    await form.getByLabel('Budget (USD)').fill('3.5');
    await form.getByLabel('Period').selectOption('week');
    await form.getByLabel('Requests per minute').fill('50');
    await form.getByRole('button', { name: 'Save limits' }).click();
    // The view reloads from the relay after saving: the cards show the new limits.
    await page.locator('#key-limit-state [data-metric="spent"] + dd').filter({ hasText: 'of $3.50 per week' }).waitFor();
    await page.locator('#key-limit-state [data-metric="requests-minute"] + dd').filter({ hasText: 'limit 50 a minute' }).waitFor();
    await loaded(page, 'key', keyView);
    assert.deepEqual((await admin(`/admin/keys/${made.id}`)).limits, { budget_usd: 3.5, budget_period: 'week', rpm: 50 });
    // Emptying a field removes that limit (null in the PATCH), the rest stay.
    await form.getByLabel('Requests per minute').fill('');
    await form.getByRole('button', { name: 'Save limits' }).click();
    await page.locator('#key-limit-state [data-metric="requests-minute"] + dd').filter({ hasText: 'no limit' }).waitFor();
    await loaded(page, 'key', keyView);
    assert.deepEqual((await admin(`/admin/keys/${made.id}`)).limits, { budget_usd: 3.5, budget_period: 'week' });
    // A limit the relay refuses: its message, naming the field, and nothing changes.
    await form.getByLabel('In flight at once').fill('0');
    await form.getByRole('button', { name: 'Save limits' }).click();
    await page.getByRole('alert').filter({ hasText: /^Could not save the limits: .*max_parallel/ }).waitFor();
    assert.deepEqual((await admin(`/admin/keys/${made.id}`)).limits, { budget_usd: 3.5, budget_period: 'week' });

    // Spend after a request: the page shows what the scope view says, which is the row's cost.
    const used = await call(relay, '/v1/chat/completions', { key: made.key, body: { model: 'mock-ok', messages: [{ role: 'user', content: 'spend' }] } });
    assert.equal(used.res.status, 200, used.text);
    const row = await relay.row(used.requestId);
    let scope;
    for (let i = 0; i < 50; i += 1) {
      scope = await adminGetScope(`/admin/keys/${made.id}/limits`);
      if (scope.state.spent_usd > 0 && scope.state.reserved_usd === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(Math.abs(scope.state.spent_usd - row.cost_usd) < 1e-9, `spent ${scope.state.spent_usd} = row ${row.cost_usd}`);
    await page.reload();
    await loaded(page, 'key', keyView);
    const shown = await stateValues(page, '#key-limit-state');
    assert.deepEqual([shown.spent, shown.reserved, shown.remaining], [scope.state.spent_usd, 0, scope.state.remaining_usd]);
    assert.equal(await page.textContent('#key-limit-state [data-metric="spent"]'), S.formatCost(scope.state.spent_usd));
    assert.equal(await page.getAttribute('#key-limit-state meter', 'value'), String((scope.state.spent_usd + scope.state.reserved_usd) / 3.5));

    // Team limits: the breakdown by team leads to a team's limits (as does the key's page).
    const day = S.preset('today', Date.now());
    await page.goto(`${relay.url}/dashboard#/breakdown?from=${day.from}&through=${day.through}&team=dash-limits`);
    await loaded(page, 'breakdown', `/admin/usage${S.query({ ...today, team: 'dash-limits', group_by: 'team' })}`);
    await page.getByRole('link', { name: 'Limits of team dash-limits' }).click();
    const teamPath = S.scopePath('dash-limits');
    await loaded(page, 'limits', teamPath);
    await page.goto(`${relay.url}/dashboard#/key/${made.id}?from=${day.from}&through=${day.through}`);
    await loaded(page, 'key', keyView);
    // Set a budget, see it listed; then remove it.
    await page.getByRole('link', { name: 'team dash-limits' }).click();
    await loaded(page, 'limits', teamPath);
    assert.equal(await page.textContent('#scope-title'), 'Team dash-limits');
    const scopeForm = page.locator('#scope-limits-form');
    assert.equal(await page.locator('#scope-delete').isDisabled(), true, 'nothing to remove yet');
    await scopeForm.getByLabel('Budget (USD)').fill('100');
    await scopeForm.getByLabel('Tokens per minute').fill('100000');
    await scopeForm.getByRole('button', { name: 'Save limits' }).click();
    await page.locator('#limits-list tbody tr[data-team="dash-limits"]').waitFor();
    await loaded(page, 'limits', teamPath);
    const teamScope = await adminGetScope(teamPath);
    assert.deepEqual(teamScope.limits, { budget_usd: 100, budget_period: 'month', tpm: 100000 });
    const teamShown = await stateValues(page, '#scope-state');
    assert.deepEqual([teamShown.spent, teamShown.remaining], [teamScope.state.spent_usd, teamScope.state.remaining_usd]);
    const listed = await page.$$eval('#limits-list tbody tr[data-team="dash-limits"]', (trs) => trs.map((tr) => [tr.dataset.scope, ...[...tr.cells].map((c) => c.textContent)]));
    assert.deepEqual(listed, [['team', 'team dash-limits', 'dash-limits', '—', '$100.00 per month', '—', '100,000', '—']]);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-limits.png'), fullPage: true });

    // A user of that team, by name, through the open form.
    await page.getByLabel('Limits of team').fill('dash-limits');
    await page.getByLabel('and user (optional)').fill('lia');
    await page.getByRole('button', { name: 'Open' }).click();
    const userPath = S.scopePath('dash-limits', 'lia');
    await loaded(page, 'limits', userPath);
    assert.equal(await page.textContent('#scope-title'), 'User dash-limits/lia');
    await scopeForm.getByLabel('In flight at once').fill('2');
    await scopeForm.getByRole('button', { name: 'Save limits' }).click();
    await page.locator('#limits-list tbody tr[data-user="lia"]').waitFor();
    assert.deepEqual((await adminGetScope(userPath)).limits, { max_parallel: 2 });

    // Remove the team's limits, after a confirmation; the spend is kept.
    await page.goto(`${relay.url}/dashboard#/limits/dash-limits`);
    await loaded(page, 'limits', teamPath);
    await page.getByRole('button', { name: 'Remove limits' }).click();
    const confirm = page.getByRole('dialog', { name: 'Remove limits?' });
    await confirm.waitFor();
    await confirm.getByRole('button', { name: 'Remove' }).click();
    await page.locator('#limits-list tbody tr[data-scope="team"][data-team="dash-limits"]').waitFor({ state: 'detached' });
    const removed = await adminGetScope(teamPath);
    assert.deepEqual(removed.limits, {});
    assert.deepEqual((await admin('/admin/limits')).data.filter((r) => r.team === 'dash-limits').map((r) => r.scope), ['user']);
    const audit = (await admin('/admin/audit?limit=200')).data.filter((e) => JSON.stringify(e).includes('dash-limits') && e.action.startsWith('limits.'));
    assert.deepEqual(audit.map((e) => e.action), ['limits.delete', 'limits.set', 'limits.set']);

    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

/** A scope view from the API (the same call the page makes). */
async function adminGetScope(path) {
  const view = await admin(path);
  assert.ok(view.state && view.limits, `${path} is a scope view: ${JSON.stringify(view)}`);
  return view;
}

test('the cache setting in Chromium: edited on the key page, read back from the API; a hit and its saving show', { timeout: 180_000 }, async (t) => {
  const missing = browserMissing();
  if (missing && process.env.CI) assert.fail(`browser test cannot run in CI: ${missing}`);
  if (missing) {
    t.skip(missing);
    return;
  }
  const made = await adminSend('POST', '/admin/keys', { team: 'dash-cache', user: 'max', name: 'Max CI' });
  const day = S.preset('today', Date.now());
  const today = S.apiRange(day);
  const keyView = `/admin/requests${S.query({ key: made.id, ...today, limit: 50 })}`;
  const browser = await launchBrowser();
  const problems = [];
  try {
    const page = await signedIn(browser, problems);
    await page.goto(`${relay.url}/dashboard#/key/${made.id}?from=${day.from}&through=${day.through}`);
    await loaded(page, 'key', keyView);
    // The cache: off, then on for the team with a 2-minute TTL, from the page.
    assert.equal(await page.getAttribute('#key-cache-text', 'data-cache'), 'off');
    const cacheForm = page.locator('#key-cache-form');
    // A TTL under KV's minimum: the relay's message, naming the field, and nothing changes.
    await cacheForm.getByLabel('Cache answers').check();
    await cacheForm.getByLabel('Keep answers for (seconds)').fill('30');
    await cacheForm.getByRole('button', { name: 'Save cache' }).click();
    await page.getByRole('alert').filter({ hasText: /^Could not save the cache setting: .*\(param: cache\.ttl_s\)$/ }).waitFor();
    assert.equal((await admin(`/admin/keys/${made.id}`)).cache, null);
    await cacheForm.getByLabel('Cache answers').check();
    await cacheForm.getByLabel('Keep answers for (seconds)').fill('120');
    await cacheForm.getByLabel('Shared with').selectOption('team');
    await cacheForm.getByRole('button', { name: 'Save cache' }).click();
    await page.locator('#key-cache-text').filter({ hasText: "Now: 2 min (120 s), shared with the key's team, temperature 0 only." }).waitFor();
    assert.deepEqual((await admin(`/admin/keys/${made.id}`)).cache, { ttl_s: 120, scope: 'team', sampled: false });
    // The same request twice: the second is a hit, shown in the requests table and the figures.
    const body = { model: 'mock-ok', temperature: 0, messages: [{ role: 'user', content: 'cache me in the browser' }] };
    const first = await call(relay, '/v1/chat/completions', { key: made.key, body });
    const second = await call(relay, '/v1/chat/completions', { key: made.key, body });
    assert.equal(second.res.headers.get('x-relay-cache-status'), 'HIT');
    const hitRow = await relay.row(second.requestId);
    await relay.row(first.requestId);
    await page.reload();
    await loaded(page, 'key', keyView);
    assert.equal(await page.getAttribute(`#requests tr[data-request-id="${second.requestId}"] td[data-cache]`, 'data-cache'), 'hit');
    assert.equal(await page.getAttribute(`#requests tr[data-request-id="${first.requestId}"] td[data-cache]`, 'data-cache'), (await relay.row(first.requestId)).cache);
    assert.equal(await page.textContent(`#requests tr[data-request-id="${second.requestId}"] td[data-cache]`), `hit saved ${S.formatCost(hitRow.saved_usd)}`);
    assertKpis(await kpis(page, '#key-kpis'), await admin(`/admin/usage${S.query({ key: made.id, ...today })}`), 'per-key figures with a hit');
    const figures = await kpis(page, '#key-kpis');
    assert.ok(num(figures['cache-hit-rate'].value) > 0 && num(figures.saved.value) > 0, 'a hit rate and a saving to show');
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-key-cache.png'), fullPage: true });
    // The keys list says it in short.
    await page.goto(`${relay.url}/dashboard#/keys?team=dash-cache`);
    await loaded(page, 'keys', `/admin/keys${S.query({ team: 'dash-cache', status: 'active', limit: 50 })}`);
    assert.equal(await page.textContent(`#keys tr[data-key-id="${made.id}"] td:nth-of-type(6)`), '2 min, team');
    await page.goto(`${relay.url}/dashboard#/key/${made.id}?from=${day.from}&through=${day.through}`);
    await loaded(page, 'key', keyView);
    // Off again: null on the key.
    await cacheForm.getByLabel('Cache answers').uncheck();
    await cacheForm.getByRole('button', { name: 'Save cache' }).click();
    await page.locator('#key-cache-text').filter({ hasText: 'Now: off.' }).waitFor();
    assert.equal((await admin(`/admin/keys/${made.id}`)).cache, null);

    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
