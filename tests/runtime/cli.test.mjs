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
  assert.deepEqual(header(table.stdout), ['team', ...USAGE_NUMBERS]);
  const rows = rowsStartingWith(table.stdout, 'cli-usage');
  assert.equal(rows.length, 1);
  const cells = Object.fromEntries(['team', ...USAGE_NUMBERS].map((c, i) => [c, rows[0][i]]));
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
