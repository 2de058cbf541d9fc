// `npm run admin` (src/cli/admin.mjs) as an operator runs it: a subprocess against the real worker,
// asserting what it prints, where (stdout or stderr) and how it exits, and that what it does
// through the admin API is real (minted keys work, revoked keys are refused, usage adds up).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelay, call, ADMIN_TOKEN, ROOT } from './harness.mjs';

const CLI = join(ROOT, 'src', 'cli', 'admin.mjs');
const KEY_RE = /lc_[a-z0-9-]+_[a-z0-9-]+_[a-z0-9-]+_[0-9A-Za-z]{32}/;
const USAGE_NUMBERS = ['requests', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'reasoning_tokens', 'cost_usd', 'errors', 'p50_duration_ms', 'p95_duration_ms'];

let relay;
// Every run starts in an empty directory so a developer's own .dev.vars cannot supply a token.
let scratch;

before(async () => {
  relay = await startRelay();
  scratch = mkdtempSync(join(tmpdir(), 'relay-cli-'));
});
after(async () => {
  await relay?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Runs the CLI; resolves to { code, stdout, stderr } whatever the exit code. */
function run(args, { env = {}, cwd = scratch } = {}) {
  const childEnv = { ...process.env };
  delete childEnv.RELAY_URL;
  delete childEnv.RELAY_ADMIN_TOKEN;
  Object.assign(childEnv, env);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, ...args], { cwd, env: childEnv, timeout: 10_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && err.killed) return reject(new Error(`admin ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: err ? err.code : 0, stdout, stderr });
    });
  });
}

/** The CLI pointed at the test relay with the right token, as the brief for these tests asks. */
function admin(...args) {
  return run(['--url', relay.url, '--token', ADMIN_TOKEN, ...args]);
}

function succeeded(r) {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  assert.equal(r.stderr, '');
  return r;
}

/** Mints a key through the CLI's --json output; returns the create response. */
async function mint(team, user, ...extra) {
  const r = succeeded(await admin('keys', 'create', '--team', team, '--user', user, ...extra, '--json'));
  const json = JSON.parse(r.stdout);
  assert.match(json.key, KEY_RE);
  return json;
}

/** The value cell of `field` in a two-column record table. */
function field(stdout, name) {
  const line = stdout.split('\n').find((l) => l.startsWith(`│ ${name} `));
  assert.ok(line, `no '${name}' row in:\n${stdout}`);
  return line.split('│')[2].trim();
}

/** Cells of every table line that starts with a cell equal to `first`. */
function rowsStartingWith(stdout, first) {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('│'))
    .map((l) => l.split('│').slice(1, -1).map((c) => c.trim()))
    .filter((cells) => cells[0] === first);
}

function header(stdout) {
  const line = stdout.split('\n').find((l) => l.startsWith('│'));
  return line.split('│').slice(1, -1).map((c) => c.trim());
}

function chat(key, model = 'relay-echo') {
  return call(relay, '/v1/chat/completions', { key, body: { model, messages: [{ role: 'user', content: 'hi' }] } });
}

test('keys create shows the key once, then the record, and the key works', async () => {
  const r = succeeded(
    await admin(
      'keys', 'create', '--team', 'cli-create', '--user', 'ann', '--env', 'test', '--name', 'laptop',
      '--models', 'relay-echo,mock-*', '--alias', 'fast=relay-echo', '--meta', 'owner=ann', '--meta', 'tier=gold',
    ),
  );
  const lines = r.stdout.split('\n');
  const key = lines[0].match(KEY_RE)?.[0];
  assert.ok(key, `no key in:\n${r.stdout}`);
  assert.equal(lines[0], `Key (shown once): ${key}`);
  assert.ok(key.startsWith('lc_test_cli-create_ann_'));
  assert.equal(r.stdout.split(key).length - 1, 1, 'the key is printed exactly once');

  assert.match(field(r.stdout, 'id'), /^key_[0-9A-Za-z]{16}$/);
  assert.equal(field(r.stdout, 'team'), 'cli-create');
  assert.equal(field(r.stdout, 'user'), 'ann');
  assert.equal(field(r.stdout, 'env'), 'test');
  assert.equal(field(r.stdout, 'name'), 'laptop');
  assert.equal(field(r.stdout, 'status'), 'active');
  assert.equal(field(r.stdout, 'expires_at'), '–');
  assert.equal(field(r.stdout, 'models'), 'relay-echo, mock-*');
  assert.equal(field(r.stdout, 'aliases'), 'fast=relay-echo');
  assert.ok(Math.abs(Date.parse(field(r.stdout, 'created_at')) - Date.now()) < 60_000);
  // Multi-entry maps print one entry per line inside the cell (names chosen so sorted = given).
  assert.match(r.stdout, /│ metadata\s+│ owner=ann\s+│\n│\s+│ tier=gold\s+│/);

  const used = await chat(key);
  assert.equal(used.res.status, 200);
  assert.equal(used.json.choices[0].message.content, 'relay-echo: hi');
});

test('keys list finds a key by team, as JSON and as a table, and never shows the key again', async () => {
  const minted = await mint('cli-list', 'bob');
  const secret = minted.key.split('_').at(-1);

  const asJson = succeeded(await admin('keys', 'list', '--team', 'cli-list', '--json'));
  assert.ok(!asJson.stdout.includes(secret));
  const list = JSON.parse(asJson.stdout);
  assert.equal(list.object, 'list');
  assert.equal(list.next_cursor, null);
  assert.deepEqual(list.data.map((k) => k.id), [minted.id]);
  assert.deepEqual(
    { team: list.data[0].team, user: list.data[0].user, env: list.data[0].env, status: list.data[0].status },
    { team: 'cli-list', user: 'bob', env: 'prod', status: 'active' },
  );
  assert.ok(!('key' in list.data[0]));

  const asTable = succeeded(await admin('keys', 'list', '--team', 'cli-list'));
  assert.ok(!asTable.stdout.includes(secret));
  assert.deepEqual(header(asTable.stdout), ['id', 'team', 'user', 'env', 'name', 'status', 'created_at', 'expires_at']);
  const rows = rowsStartingWith(asTable.stdout, minted.id);
  assert.equal(rows.length, 1);
  const [id, team, user, env, , status, createdAt, expiresAt] = rows[0];
  assert.deepEqual([id, team, user, env, status, createdAt, expiresAt], [minted.id, 'cli-list', 'bob', 'prod', 'active', minted.created_at, '–']);
  assert.ok(!asTable.stdout.includes('next cursor:'));
});

test('keys list pages with --limit and --cursor, and --all follows the cursor to the end', async () => {
  const ids = [];
  for (const user of ['u1', 'u2', 'u3']) ids.push((await mint('cli-page', user)).id);

  const first = succeeded(await admin('keys', 'list', '--team', 'cli-page', '--limit', '2'));
  const firstIds = first.stdout.split('\n').filter((l) => l.startsWith('│ key_')).map((l) => l.split('│')[1].trim());
  assert.equal(firstIds.length, 2);
  const cursor = first.stdout.match(/^next cursor: (\S+)$/m)?.[1];
  assert.ok(cursor, `no next cursor in:\n${first.stdout}`);
  assert.ok(first.stdout.trimEnd().endsWith(`next cursor: ${cursor}`));

  const rest = JSON.parse(succeeded(await admin('keys', 'list', '--team', 'cli-page', '--limit', '2', '--cursor', cursor, '--json')).stdout);
  assert.equal(rest.data.length, 1);
  assert.equal(rest.next_cursor, null);
  assert.deepEqual([...firstIds, rest.data[0].id].sort(), [...ids].sort());

  const all = JSON.parse(succeeded(await admin('keys', 'list', '--team', 'cli-page', '--limit', '2', '--all', '--json')).stdout);
  assert.deepEqual(all.data.map((k) => k.id).sort(), [...ids].sort());
  assert.equal(all.next_cursor, null);

  const allTable = succeeded(await admin('keys', 'list', '--team', 'cli-page', '--limit', '2', '--all'));
  for (const id of ids) assert.equal(rowsStartingWith(allTable.stdout, id).length, 1);
  assert.ok(!allTable.stdout.includes('next cursor:'));
});

test('keys update sends only the given fields; keys show reads them back', async () => {
  const minted = await mint('cli-update', 'cat', '--name', 'before');

  const changed = JSON.parse(
    succeeded(await admin('keys', 'update', minted.id, '--name', 'after', '--meta', 'tier=gold', '--expires', '2099-01-01T00:00:00Z', '--json')).stdout,
  );
  assert.equal(changed.id, minted.id);
  assert.equal(changed.name, 'after');
  assert.deepEqual(changed.metadata, { tier: 'gold' });
  assert.equal(Date.parse(changed.expires_at), Date.parse('2099-01-01T00:00:00Z'));
  assert.deepEqual([changed.team, changed.user, changed.status], ['cli-update', 'cat', 'active']);

  const cleared = JSON.parse(succeeded(await admin('keys', 'update', minted.id, '--expires', 'none', '--json')).stdout);
  assert.equal(cleared.expires_at ?? null, null);
  assert.equal(cleared.name, 'after', 'fields not given are left alone');

  const shown = succeeded(await admin('keys', 'show', minted.id));
  assert.equal(field(shown.stdout, 'id'), minted.id);
  assert.equal(field(shown.stdout, 'name'), 'after');
  assert.equal(field(shown.stdout, 'metadata'), 'tier=gold');
  assert.equal(field(shown.stdout, 'expires_at'), '–');
  assert.ok(!shown.stdout.includes(minted.key.split('_').at(-1)));

  // Nothing to change is refused before any request is made.
  const empty = await admin('keys', 'update', minted.id);
  assert.equal(empty.code, 2);
  assert.equal(empty.stdout, '');
  assert.equal(
    empty.stderr,
    'error: nothing to update: give at least one of --name, --models, --alias, --expires, --status, --meta, --budget, --period, --rpm, --tpm, --max-parallel, --clear-limits, --cache-ttl, --cache-scope, --cache-sampled, --cache-off.\n',
  );
});

test('keys rotate shows a new key once, for the same record, and the new key works', async () => {
  const minted = await mint('cli-rotate', 'dan');
  const r = succeeded(await admin('keys', 'rotate', minted.id));
  const lines = r.stdout.split('\n');
  const key = lines[0].match(KEY_RE)?.[0];
  assert.ok(key, `no key in:\n${r.stdout}`);
  assert.equal(lines[0], `Key (shown once): ${key}`);
  assert.notEqual(key, minted.key);
  assert.ok(key.startsWith('lc_prod_cli-rotate_dan_'));
  assert.equal(field(r.stdout, 'id'), minted.id);

  const models = await call(relay, '/v1/models', { method: 'GET', key });
  assert.equal(models.res.status, 200);
});

test('keys revoke marks the record revoked and the relay refuses the key', async () => {
  // Not used before revoking: a key the isolate has already cached may work for a few seconds more.
  const minted = await mint('cli-revoke', 'eve');
  const r = succeeded(await admin('keys', 'revoke', minted.id));
  assert.equal(field(r.stdout, 'id'), minted.id);
  assert.equal(field(r.stdout, 'status'), 'revoked');

  const refused = await call(relay, '/v1/models', { method: 'GET', key: minted.key });
  assert.equal(refused.res.status, 401);
  assert.equal(refused.json.error.message, 'This API key has been revoked.');

  const revoked = JSON.parse(succeeded(await admin('keys', 'list', '--team', 'cli-revoke', '--status', 'revoked', '--json')).stdout);
  assert.deepEqual(revoked.data.map((k) => [k.id, k.status]), [[minted.id, 'revoked']]);
  const active = JSON.parse(succeeded(await admin('keys', 'list', '--team', 'cli-revoke', '--status', 'active', '--json')).stdout);
  assert.deepEqual(active.data, []);
});

test('usage groups by team, prints cost with 6 decimals, and exports CSV', async () => {
  const { key } = await mint('cli-usage', 'fay');
  const echo = await chat(key);
  const priced = await chat(key, 'mock-ok');
  assert.deepEqual([echo.res.status, priced.res.status], [200, 200]);
  // Rows are written from waitUntil, after the responses above.
  await relay.row(echo.requestId, { timeoutMs: 5000 });
  await relay.row(priced.requestId, { timeoutMs: 5000 });

  let report;
  let row;
  const deadline = Date.now() + 5000;
  for (;;) {
    report = JSON.parse(succeeded(await admin('usage', '--group-by', 'team', '--json')).stdout);
    row = report.data.find((d) => d.team === 'cli-usage');
    if ((row && row.requests >= 2 && row.cost_usd > 0) || Date.now() > deadline) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.equal(report.object, 'list');
  assert.deepEqual(report.group_by, ['team']);
  assert.ok(row, `no row for team cli-usage in ${JSON.stringify(report)}`);
  assert.ok(row.requests >= 2, `requests ${row.requests}`);
  assert.ok(row.prompt_tokens > 0 && row.completion_tokens > 0);
  assert.ok(row.cost_usd > 0, 'mock-ok has a price');
  for (const n of USAGE_NUMBERS) assert.ok(n in row, `${n} missing from ${JSON.stringify(row)}`);

  const table = succeeded(await admin('usage', '--group-by', 'team', '--team', 'cli-usage'));
  // The cache columns are there because the relay reports them.
  assert.deepEqual(header(table.stdout), ['team', ...USAGE_NUMBERS, 'cache_hits', 'cache_hit_rate', 'saved_usd']);
  const rows = rowsStartingWith(table.stdout, 'cli-usage');
  assert.equal(rows.length, 1);
  const cells = Object.fromEntries(['team', ...USAGE_NUMBERS, 'cache_hits', 'cache_hit_rate', 'saved_usd'].map((c, i) => [c, rows[0][i]]));
  // No key of this team caches: no hits, no rate (not 0%), nothing saved.
  assert.deepEqual([cells.cache_hits, cells.cache_hit_rate, cells.saved_usd], ['0', '–', '0.000000']);
  assert.ok(Number(cells.requests) >= 2);
  assert.match(cells.cost_usd, /^\d+\.\d{6}$/);

  const csv = succeeded(await admin('usage', 'export', '--format', 'csv'));
  const head = csv.stdout.split(/\r?\n/)[0];
  assert.ok(head.split(',').map((c) => c.replace(/^"|"$/g, '')).includes('requests'), `CSV header: ${head}`);

  // --format defaults to csv; --out writes the file and keeps stdout empty.
  const out = join(scratch, 'usage.csv');
  const toFile = await admin('usage', 'export', '--team', 'cli-usage', '--out', out);
  assert.equal(toFile.code, 0, toFile.stderr);
  assert.equal(toFile.stdout, '');
  assert.equal(toFile.stderr, `wrote ${out}\n`);
  assert.equal(readFileSync(out, 'utf8').split(/\r?\n/)[0], head);
});

test('audit lists what was done to a key', async () => {
  const minted = await mint('cli-audit', 'gus');
  succeeded(await admin('keys', 'update', minted.id, '--name', 'audited'));
  succeeded(await admin('keys', 'revoke', minted.id));

  const log = JSON.parse(succeeded(await admin('audit', '--key', minted.id, '--json')).stdout);
  assert.equal(log.object, 'list');
  assert.ok(log.data.length >= 2, `expected update and revoke in ${JSON.stringify(log)}`);
  for (const entry of log.data) {
    assert.equal(entry.key_id, minted.id);
    assert.ok(!Number.isNaN(Date.parse(entry.at)));
    assert.equal(typeof entry.action, 'string');
  }
  const one = JSON.parse(succeeded(await admin('audit', '--key', minted.id, '--limit', '1', '--json')).stdout);
  assert.equal(one.data.length, 1);

  const table = succeeded(await admin('audit', '--key', minted.id));
  assert.deepEqual(header(table.stdout), ['at', 'action', 'key_id', 'changes']);
  const ids = table.stdout
    .split('\n')
    .filter((l) => l.startsWith('│') && !l.startsWith('│ at '))
    .map((l) => l.split('│')[3].trim())
    .filter(Boolean);
  assert.ok(ids.length >= 2);
  assert.ok(ids.every((id) => id === minted.id));
});

test("the relay's errors are printed as `error: message (param: x)` with exit 1", async () => {
  const bad = await admin('keys', 'create', '--team', 'Team_1', '--user', 'u1');
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, '');
  assert.equal(bad.stderr, "error: 'team' must be 1-32 characters of a-z, 0-9 and '-'. (param: team)\n");

  const wrong = await run(['--url', relay.url, '--token', `${ADMIN_TOKEN}x`, 'keys', 'list']);
  assert.equal(wrong.code, 1);
  assert.equal(wrong.stdout, '');
  assert.equal(wrong.stderr, 'error: Invalid admin token.\n');

  const unknown = await admin('keys', 'show', 'key_0000000000000000');
  assert.equal(unknown.code, 1);
  assert.equal(unknown.stdout, '');
  assert.match(unknown.stderr, /^error: \S[^\n]*\n$/);
});

test("bad arguments exit 2 with commander's message, before any request", async () => {
  const missing = await admin('keys', 'create', '--user', 'u1');
  assert.equal(missing.code, 2);
  assert.equal(missing.stdout, '');
  assert.match(missing.stderr, /^error: required option '--team <team>' not specified\n/);

  const choice = await admin('keys', 'list', '--status', 'gone');
  assert.equal(choice.code, 2);
  assert.match(choice.stderr, /^error: option '--status <status>' argument 'gone' is invalid\. Allowed choices are active, revoked\.\n/);

  const limit = await admin('keys', 'list', '--limit', '0');
  assert.equal(limit.code, 2);
  assert.match(limit.stderr, /^error: option '--limit <n>' argument '0' is invalid\. expected a positive integer\.\n/);

  const alias = await admin('keys', 'create', '--team', 't', '--user', 'u', '--alias', 'fast');
  assert.equal(alias.code, 2);
  assert.match(alias.stderr, /^error: option '--alias <name=model>' argument 'fast' is invalid\. expected name=model\.\n/);
});

test('the URL and token come from RELAY_URL / RELAY_ADMIN_TOKEN, then from ./.dev.vars', async () => {
  const minted = await mint('cli-env', 'hal');

  const fromEnv = succeeded(
    await run(['keys', 'list', '--team', 'cli-env', '--json'], { env: { RELAY_URL: relay.url, RELAY_ADMIN_TOKEN: ADMIN_TOKEN } }),
  );
  assert.deepEqual(JSON.parse(fromEnv.stdout).data.map((k) => k.id), [minted.id]);

  // A flag beats the environment.
  const flagWins = succeeded(
    await run(['--token', ADMIN_TOKEN, 'keys', 'show', minted.id, '--json'], { env: { RELAY_URL: relay.url, RELAY_ADMIN_TOKEN: 'wrong' } }),
  );
  assert.equal(JSON.parse(flagWins.stdout).id, minted.id);

  const project = join(scratch, 'project');
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, '.dev.vars'), `# written by npm start\nADMIN_TOKEN=${ADMIN_TOKEN}\n# OPENAI_API_KEY=sk-...\n`);
  const fromFile = succeeded(await run(['--url', relay.url, 'keys', 'show', minted.id, '--json'], { cwd: project }));
  assert.equal(JSON.parse(fromFile.stdout).id, minted.id);

  const none = await run(['--url', relay.url, 'keys', 'list']);
  assert.equal(none.code, 2);
  assert.equal(none.stdout, '');
  assert.equal(
    none.stderr,
    'error: no admin token: pass --token <token>, set RELAY_ADMIN_TOKEN, or run from a directory whose .dev.vars has ADMIN_TOKEN=…\n',
  );
});

test('an unreachable relay is named in the error, exit 1', async () => {
  // A port that was free a moment ago: nothing listens there.
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port: p } = s.address();
      s.close(() => resolve(p));
    });
  });
  const r = await run(['--url', `http://127.0.0.1:${port}`, '--token', ADMIN_TOKEN, 'keys', 'list']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, `error: could not reach the relay at http://127.0.0.1:${port} (ECONNREFUSED).\n`);
});

// ── limits and cache (issues 16, 17) ───────────────────────────────────────────────────────

/** Admin API GET, for reading back what the CLI set. */
async function apiGet(path) {
  const r = await call(relay, path, { method: 'GET', key: ADMIN_TOKEN });
  assert.equal(r.res.status, 200, `${path}: ${r.text}`);
  return r.json;
}

/** UTC midnight of the day of `ms`, and of the next day, as unix ms. */
function dayBounds(ms) {
  const start = Date.parse(`${new Date(ms).toISOString().slice(0, 10)}T00:00:00.000Z`);
  return [start, start + 86_400_000];
}

/** `limits show` re-run (bounded) until `done(view)`: settlement is written after the answer. */
async function scopeUntil(args, done) {
  let view;
  for (let i = 0; i < 50; i += 1) {
    view = JSON.parse(succeeded(await admin('limits', 'show', ...args, '--json')).stdout);
    if (done(view)) return view;
    await new Promise((res) => setTimeout(res, 100));
  }
  return view;
}

test('key limits: set by keys create/update, read back from the API and limits show; spend shows after a request', async () => {
  const minted = await mint('cli-limits', 'ivy', '--budget', '5', '--period', 'day', '--rpm', '100', '--max-parallel', '3');
  assert.deepEqual(minted.limits, { budget_usd: 5, budget_period: 'day', rpm: 100, max_parallel: 3 });
  assert.deepEqual((await apiGet(`/admin/keys/${minted.id}`)).limits, minted.limits);

  // update merges: --tpm is added, --rpm none removes only rpm.
  const changed = JSON.parse(succeeded(await admin('keys', 'update', minted.id, '--tpm', '50000', '--rpm', 'none', '--json')).stdout);
  assert.deepEqual(changed.limits, { budget_usd: 5, budget_period: 'day', tpm: 50000, max_parallel: 3 });
  assert.deepEqual((await apiGet(`/admin/keys/${minted.id}`)).limits, changed.limits);
  const record = succeeded(await admin('keys', 'show', minted.id));
  assert.match(record.stdout, /│ limits\s+│ budget_period=day\s+│\n│\s+│ budget_usd=5\s+│\n│\s+│ max_parallel=3\s+│\n│\s+│ tpm=50000\s+│/);

  // Before any request: nothing spent, the whole budget left, today's period.
  const [dayStart, dayEnd] = dayBounds(Date.now());
  const fresh = JSON.parse(succeeded(await admin('limits', 'show', '--key', minted.id, '--json')).stdout);
  assert.deepEqual([fresh.scope, fresh.key_id, fresh.team, fresh.user], ['key', minted.id, 'cli-limits', 'ivy']);
  assert.deepEqual(fresh.limits, changed.limits);
  assert.deepEqual(
    [fresh.state.period, Date.parse(fresh.state.period_start), Date.parse(fresh.state.resets_at), fresh.state.spent_usd, fresh.state.reserved_usd, fresh.state.remaining_usd, fresh.state.in_flight],
    ['day', dayStart, dayEnd, 0, 0, 5, 0],
  );

  const used = await chat(minted.key, 'mock-ok');
  assert.equal(used.res.status, 200, used.text);
  const row = await relay.row(used.requestId, { timeoutMs: 5000 });
  assert.ok(row.cost_usd > 0, 'mock-ok is priced');
  const spent = await scopeUntil(['--key', minted.id], (v) => v.state.spent_usd > 0 && v.state.reserved_usd === 0);
  assert.ok(Math.abs(spent.state.spent_usd - row.cost_usd) < 1e-9, `spent ${spent.state.spent_usd} = the row's cost ${row.cost_usd}`);
  assert.ok(Math.abs(spent.state.remaining_usd - (5 - row.cost_usd)) < 1e-9);
  assert.equal(spent.state.reserved_usd, 0, 'settled: nothing left reserved');
  assert.equal(spent.state.in_flight, 0);
  assert.ok(spent.state.requests_last_minute >= 1);

  // The table: one field a row, dollars to 6 decimals, unset limits as a dash.
  const table = succeeded(await admin('limits', 'show', '--key', minted.id));
  assert.equal(field(table.stdout, 'scope'), 'key');
  assert.equal(field(table.stdout, 'key_id'), minted.id);
  assert.equal(field(table.stdout, 'budget_usd'), '5.000000');
  assert.equal(field(table.stdout, 'budget_period'), 'day');
  assert.equal(field(table.stdout, 'rpm'), '–');
  assert.equal(field(table.stdout, 'tpm'), '50000');
  assert.equal(field(table.stdout, 'spent_usd'), spent.state.spent_usd.toFixed(6));
  assert.equal(field(table.stdout, 'remaining_usd'), spent.state.remaining_usd.toFixed(6));
  assert.equal(Date.parse(field(table.stdout, 'resets_at')), dayEnd);

  const cleared = JSON.parse(succeeded(await admin('keys', 'update', minted.id, '--clear-limits', '--json')).stdout);
  assert.deepEqual(cleared.limits, {});
  assert.deepEqual((await apiGet(`/admin/keys/${minted.id}`)).limits, {});

  // The key's audit entries carry the limits changes.
  const log = JSON.parse(succeeded(await admin('audit', '--key', minted.id, '--json')).stdout);
  const updates = log.data.filter((e) => e.action === 'update');
  assert.equal(updates.length, 2, JSON.stringify(log.data));
  for (const e of updates) assert.ok('limits' in e.changes, JSON.stringify(e.changes));
});

test('team and user limits: limits set / list / show / delete through the CLI, read back from the API, enforced', async () => {
  const team = 'cli-scope';
  const teamView = JSON.parse(succeeded(await admin('limits', 'set', '--team', team, '--budget', '10', '--json')).stdout);
  assert.deepEqual([teamView.scope, teamView.team], ['team', team]);
  // The relay writes down the default period.
  assert.deepEqual(teamView.limits, { budget_usd: 10, budget_period: 'month' });
  assert.equal(teamView.state.period, 'month');
  assert.deepEqual((await apiGet(`/admin/limits/teams/${team}`)).limits, teamView.limits);

  const userTable = succeeded(await admin('limits', 'set', '--team', team, '--user', 'jo', '--rpm', '2'));
  assert.equal(field(userTable.stdout, 'scope'), 'user');
  assert.equal(field(userTable.stdout, 'team'), team);
  assert.equal(field(userTable.stdout, 'user'), 'jo');
  assert.equal(field(userTable.stdout, 'rpm'), '2');
  assert.equal(field(userTable.stdout, 'budget_usd'), '–');
  assert.equal(field(userTable.stdout, 'remaining_usd'), '–', 'no budget, nothing to remain');
  assert.deepEqual((await apiGet(`/admin/limits/teams/${team}/users/jo`)).limits, { rpm: 2 });

  const list = JSON.parse(succeeded(await admin('limits', 'list', '--json')).stdout);
  const ours = list.data.filter((r) => r.team === team);
  assert.deepEqual(ours, [
    { scope: 'team', team, limits: { budget_usd: 10, budget_period: 'month' } },
    { scope: 'user', team, user: 'jo', limits: { rpm: 2 } },
  ]);
  const listTable = succeeded(await admin('limits', 'list'));
  assert.deepEqual(header(listTable.stdout), ['scope', 'team', 'user', 'budget_usd', 'budget_period', 'rpm', 'tpm', 'max_parallel']);
  assert.deepEqual(rowsStartingWith(listTable.stdout, 'user').filter((c) => c[1] === team), [['user', team, 'jo', '–', '–', '2', '–', '–']]);

  // Both scopes bind a key of that team and user: spend counts on the team, the third request
  // in a minute is refused by the user's rpm.
  const { key } = await mint(team, 'jo');
  const first = await chat(key, 'mock-ok');
  const second = await chat(key, 'mock-ok');
  assert.deepEqual([first.res.status, second.res.status], [200, 200]);
  const third = await chat(key, 'mock-ok');
  assert.equal(third.res.status, 429, third.text);
  assert.equal(third.json.error.code, 'rate_limit_exceeded');
  const refused = await relay.row(third.requestId, { timeoutMs: 5000 });
  assert.deepEqual([refused.outcome, refused.limit_scope, refused.limit_name], ['limited', 'user', 'rpm']);
  // requests --outcome limited says which scope and limit refused it.
  const limited = succeeded(await admin('requests', '--team', team, '--outcome', 'limited'));
  const limitedRows = rowsStartingWith(limited.stdout, refused.started_at);
  assert.equal(limitedRows.length, 1, limited.stdout);
  assert.deepEqual(limitedRows[0].slice(1, 8), [third.requestId, refused.key_id, 'mock-ok', '429', 'limited', 'rate_limit_exceeded', 'user rpm']);
  const rows = [await relay.row(first.requestId), await relay.row(second.requestId)];
  const cost = rows[0].cost_usd + rows[1].cost_usd;
  const spent = await scopeUntil(['--team', team], (v) => Math.abs(v.state.spent_usd - cost) < 1e-9);
  assert.ok(Math.abs(spent.state.spent_usd - cost) < 1e-9, `team spent ${spent.state.spent_usd}, rows ${cost}`);
  const user = JSON.parse(succeeded(await admin('limits', 'show', '--team', team, '--user', 'jo', '--json')).stdout);
  assert.equal(user.state.requests_last_minute, 2, 'the refused request is not counted');

  // Delete: the limits go, the spend stays, and the user's requests pass again.
  const deleted = JSON.parse(succeeded(await admin('limits', 'delete', '--team', team, '--user', 'jo', '--json')).stdout);
  assert.deepEqual([deleted.scope, deleted.limits], ['user', {}]);
  assert.deepEqual((await apiGet(`/admin/limits/teams/${team}/users/jo`)).limits, {});
  const afterDelete = await chat(key, 'mock-ok');
  assert.equal(afterDelete.res.status, 200, afterDelete.text);
  const teamAfter = JSON.parse(succeeded(await admin('limits', 'delete', '--team', team, '--json')).stdout);
  assert.deepEqual(teamAfter.limits, {});
  assert.ok(teamAfter.state.spent_usd >= cost - 1e-9, 'spend so far is kept');
  assert.deepEqual((await apiGet('/admin/limits')).data.filter((r) => r.team === team), []);

  // Every change is in the audit log under its scope's name, which `audit --key` takes.
  const teamLog = JSON.parse(succeeded(await admin('audit', '--key', `team:${team}`, '--json')).stdout);
  assert.deepEqual(teamLog.data.map((e) => [e.action, e.key_id]), [['limits.delete', `team:${team}`], ['limits.set', `team:${team}`]]);
  const userLog = succeeded(await admin('audit', '--key', `user:${team}/jo`));
  assert.deepEqual(
    userLog.stdout.split('\n').filter((l) => l.includes('limits.')).map((l) => l.split('│')[2].trim()),
    ['limits.delete', 'limits.set'],
  );
  assert.match(userLog.stdout, /rpm/, 'what changed is shown');
});

test('cache settings: set by keys create/update, read back; hits and saved cost show in usage', async () => {
  const minted = await mint('cli-cache', 'kim', '--cache-ttl', '300');
  assert.deepEqual(minted.cache, { ttl_s: 300, scope: 'key', sampled: false });
  assert.deepEqual((await apiGet(`/admin/keys/${minted.id}`)).cache, minted.cache);

  // --cache-scope alone keeps the TTL.
  const team = JSON.parse(succeeded(await admin('keys', 'update', minted.id, '--cache-scope', 'team', '--json')).stdout);
  assert.deepEqual(team.cache, { ttl_s: 300, scope: 'team', sampled: false });
  const sampled = JSON.parse(succeeded(await admin('keys', 'update', minted.id, '--cache-sampled', '--cache-ttl', '600', '--json')).stdout);
  assert.deepEqual(sampled.cache, { ttl_s: 600, scope: 'team', sampled: true });
  assert.deepEqual((await apiGet(`/admin/keys/${minted.id}`)).cache, sampled.cache);
  const shown = succeeded(await admin('keys', 'show', minted.id));
  // One entry a line, in the record's (sorted) order.
  assert.match(shown.stdout, /│ cache\s+│ sampled=true\s+│\n│\s+│ scope=team\s+│\n│\s+│ ttl_s=600\s+│/);

  const off = JSON.parse(succeeded(await admin('keys', 'update', minted.id, '--cache-off', '--json')).stdout);
  assert.equal(off.cache, null);
  assert.equal(field(succeeded(await admin('keys', 'show', minted.id)).stdout, 'cache'), 'off');

  // A TTL under KV's minimum is the relay's to refuse, and its message names the field.
  const short = await admin('keys', 'update', minted.id, '--cache-ttl', '30');
  assert.equal(short.code, 1);
  assert.match(short.stderr, /^error: .*\(param: cache\.ttl_s\)\n$/);

  // The same deterministic request twice: a miss that is stored, then a hit that saved its cost.
  succeeded(await admin('keys', 'update', minted.id, '--cache-ttl', '300', '--no-cache-sampled'));
  const body = { model: 'mock-ok', temperature: 0, messages: [{ role: 'user', content: 'cache me' }] };
  const a = await call(relay, '/v1/chat/completions', { key: minted.key, body });
  const b = await call(relay, '/v1/chat/completions', { key: minted.key, body });
  assert.deepEqual([a.res.status, b.res.status], [200, 200]);
  assert.equal(b.res.headers.get('x-relay-cache-status'), 'HIT');
  const stored = await relay.row(a.requestId, { timeoutMs: 5000 });
  const hit = await relay.row(b.requestId, { timeoutMs: 5000 });
  assert.equal(hit.cache, 'hit');

  const report = JSON.parse(succeeded(await admin('usage', '--key', minted.id, '--json')).stdout);
  const [totals] = report.data;
  assert.equal(totals.cache_hits, 1);
  assert.equal(totals.cache_hit_rate, 0.5);
  assert.ok(Math.abs(totals.saved_usd - stored.cost_usd) < 1e-9, `saved ${totals.saved_usd} = the stored answer's cost ${stored.cost_usd}`);
  const table = succeeded(await admin('usage', '--key', minted.id, '--group-by', 'key'));
  assert.deepEqual(header(table.stdout), ['key', ...USAGE_NUMBERS, 'cache_hits', 'cache_hit_rate', 'saved_usd']);
  const [cells] = rowsStartingWith(table.stdout, minted.id);
  assert.deepEqual(cells.slice(-3), ['1', '50.0%', totals.saved_usd.toFixed(6)]);

  // requests: one row each, newest first, with its cache status and what a hit saved.
  const listed = succeeded(await admin('requests', '--key', minted.id));
  assert.deepEqual(header(listed.stdout), ['started_at', 'request_id', 'key_id', 'model_requested', 'status', 'outcome', 'error_code', 'limit', 'cache', 'cost_usd', 'saved_usd', 'duration_ms']);
  const byId = (id) => listed.stdout.split('\n').filter((l) => l.includes(id)).map((l) => l.split('│').slice(1, -1).map((c) => c.trim()))[0];
  const [hitCells, storedCells] = [byId(b.requestId), byId(a.requestId)];
  assert.deepEqual(hitCells.slice(4, 11), ['200', 'ok', '–', '–', 'hit', '0.000000', hit.saved_usd.toFixed(6)]);
  assert.deepEqual(storedCells.slice(4, 11), ['200', 'ok', '–', '–', stored.cache, stored.cost_usd.toFixed(6), '–']);
  assert.ok(listed.stdout.indexOf(b.requestId) < listed.stdout.indexOf(a.requestId), 'newest first');
  const one = succeeded(await admin('requests', '--key', minted.id, '--limit', '1'));
  assert.match(one.stdout, /\nnext cursor: \S+\n$/);
  const page2 = JSON.parse(succeeded(await admin('requests', '--key', minted.id, '--limit', '1', '--cursor', one.stdout.match(/next cursor: (\S+)/)[1], '--json')).stdout);
  assert.deepEqual(page2.data.map((r) => r.request_id), [a.requestId]);
});

test("limits and cache: the relay's range errors are printed; bad syntax exits 2 before any request", async () => {
  const zero = await admin('limits', 'set', '--team', 'cli-bad', '--rpm', '0');
  assert.equal(zero.code, 1);
  assert.equal(zero.stdout, '');
  assert.match(zero.stderr, /^error: 'rpm' must be an integer from 1 to \d+, or null\. \(param: rpm\)\n$/);
  assert.deepEqual((await apiGet('/admin/limits/teams/cli-bad')).limits, {}, 'nothing was set');

  for (const [args, message] of [
    [['keys', 'update', 'key_x', '--budget', 'ten'], "error: option '--budget <usd>' argument 'ten' is invalid. expected an amount in USD such as 25 or 2.50.\n"],
    [['keys', 'update', 'key_x', '--period', 'year'], "error: option '--period <period>' argument 'year' is invalid. Allowed choices are day, week, month, total, none.\n"],
    [['keys', 'create', '--team', 't', '--user', 'u', '--rpm', 'none'], "error: option '--rpm <n>' argument 'none' is invalid. expected a whole number.\n"],
    [['keys', 'update', 'key_x', '--cache-scope', 'world'], "error: option '--cache-scope <scope>' argument 'world' is invalid. Allowed choices are key, user, team.\n"],
    [['keys', 'update', 'key_x', '--clear-limits', '--rpm', '3'], 'error: --clear-limits clears every limit; it cannot be combined with --budget, --period, --rpm, --tpm or --max-parallel.\n'],
    [['keys', 'update', 'key_x', '--cache-off', '--cache-ttl', '60'], 'error: --cache-off turns caching off; it cannot be combined with --cache-ttl, --cache-scope or --cache-sampled.\n'],
    [['limits', 'set', '--team', 't'], 'error: nothing to set: give at least one of --budget, --period, --rpm, --tpm, --max-parallel (limits delete clears them all).\n'],
    [['limits', 'show'], 'error: give --key <id>, or --team <team> (and --user <user> for one user of it).\n'],
    [['limits', 'show', '--key', 'key_x', '--team', 't'], 'error: give either --key <id> or --team <team> [--user <user>], not both.\n'],
  ]) {
    const r = await admin(...args);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stdout, '');
    assert.ok(r.stderr.startsWith(message), `${args.join(' ')}:\n${r.stderr}`);
  }
});
