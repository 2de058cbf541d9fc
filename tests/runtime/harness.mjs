// Shared runtime-test harness: the built worker on real workerd through Miniflare's API, with
// local KV and D1 (migrations applied from migrations/) and the static assets (the dashboard),
// pointed at a mock provider on loopback.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { startMockProvider } from '../mock/provider.mjs';
import { startAnthropicMock } from '../mock/anthropic.mjs';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SHIM = join(ROOT, 'build', 'index.js');
// At least 32 characters: a shorter ADMIN_TOKEN leaves /admin and /dashboard off.
export const ADMIN_TOKEN = 'test-admin-token-0123456789abcdefghij';
export const PROVIDER_KEY = 'sk-mock';

function compatibilityDate() {
  const m = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8').match(/^compatibility_date\s*=\s*"([^"]+)"/m);
  return m ? m[1] : '2026-04-20';
}

/** Every statement of every migration, in file order, as wrangler would apply them. */
function migrationStatements() {
  const dir = join(ROOT, 'migrations');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .flatMap((f) =>
      readFileSync(join(dir, f), 'utf8')
        .replace(/--[^\n]*/g, '')
        .split(/;\s*(?:\n|$)/)
        .map((s) => s.trim())
        .filter(Boolean),
    );
}

/** wrangler.toml's `[[ratelimits]]` as Miniflare's `ratelimits` option. */
export function wranglerRatelimits() {
  const toml = readFileSync(join(ROOT, 'wrangler.toml'), 'utf8');
  const out = {};
  for (const block of toml.split('[[ratelimits]]').slice(1)) {
    const name = /^name\s*=\s*"([^"]+)"/m.exec(block);
    const simple = /^simple\s*=\s*\{\s*limit\s*=\s*(\d+)\s*,\s*period\s*=\s*(\d+)\s*\}/m.exec(block);
    if (name && simple) out[name[1]] = { simple: { limit: Number(simple[1]), period: Number(simple[2]) } };
  }
  return out;
}

function roomyRatelimits() {
  const out = wranglerRatelimits();
  for (const v of Object.values(out)) v.simple.limit = 1000;
  return out;
}

export function sha256(text) {
  return createHash('sha256').update(text).digest('hex');
}

const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
export function makeKey(env = 'test', team = 'team-a', user = 'ann') {
  const secret = Array.from(randomBytes(32), (b) => BASE62[b % 62]).join('');
  return `lc_${env}_${team}_${user}_${secret}`;
}

/**
 * The KV binding of a relay started with `kvFaults`: the real local namespace behind a thin
 * wrapper that asks the test (over the FAULTS service binding, which runs in Node) before each
 * write whether to fail it. It exists only in this harness, as a Miniflare wrapped binding: the
 * relay sees a KEYS binding like any other and carries no fault switch of its own.
 */
const FAULTY_KV = `
class FaultyKv {
  constructor(env) { this.inner = env.INNER; this.faults = env.FAULTS; }
  async refuse(op, key) {
    const r = await this.faults.fetch('http://faults/' + op + '?key=' + encodeURIComponent(key));
    return (await r.text()) === 'fail';
  }
  get(...args) { return this.inner.get(...args); }
  getWithMetadata(...args) { return this.inner.getWithMetadata(...args); }
  list(...args) { return this.inner.list(...args); }
  async put(key, ...rest) {
    if (await this.refuse('put', key)) throw new Error('KV PUT failed: 429 Too Many Requests (injected by the test)');
    return this.inner.put(key, ...rest);
  }
  async delete(key) {
    if (await this.refuse('delete', key)) throw new Error('KV DELETE failed: 429 Too Many Requests (injected by the test)');
    return this.inner.delete(key);
  }
}
export default function (env) { return new FaultyKv(env); }
`;

/**
 * Starts a mock provider (unless `mock: false`) and the relay. `limits: false` runs it without
 * the LIMITS Durable Object binding. `vars` override bindings;
 * set a var to undefined to leave it unset. `kvFaults: true` puts KEYS behind FAULTY_KV:
 * set `relay.kvFaults.failWrites = n` to fail the next n KV writes (`relay.kvFaults.log` lists
 * every write asked for, failed or not). `ratelimits` overrides the rate-limit bindings.
 */
export async function startRelay({ vars = {}, mock = {}, anthropic = false, assets = true, kvFaults = false, ratelimits, limits = true } = {}) {
  if (!existsSync(SHIM)) throw new Error(`${SHIM} missing: run \`npm run build\` first`);
  const provider = mock === false ? null : await startMockProvider(mock);
  const claude = anthropic ? await startAnthropicMock(anthropic === true ? {} : anthropic) : null;
  const bindings = {
    OPENAI_BASE_URL: provider ? provider.url : 'http://127.0.0.1:9/v1',
    OPENAI_API_KEY: PROVIDER_KEY,
    OPENAI_MODELS: 'mock-*,gpt-4o-mini',
    ADMIN_TOKEN,
    UPSTREAM_TIMEOUT_MS: '3000',
    STREAM_IDLE_MS: '800',
    ...(claude ? { ANTHROPIC_BASE_URL: claude.url, ANTHROPIC_API_KEY: 'sk-ant-mock', ANTHROPIC_MODELS: 'claude-*' } : {}),
    // Prices for two mock models only, so tests see both a computed cost and a NULL one.
    PRICES: JSON.stringify({
      models: {
        'mock-cached': { input: 1.0, cached_input: 0.5, output: 2.0 },
        'mock-ok': { input: 1.0, output: 2.0 },
      },
    }),
    ...vars,
  };
  for (const k of Object.keys(bindings)) if (bindings[k] === undefined) delete bindings[k];
  // workerd's own stdout/stderr (console.log/error of the worker), kept for assertions.
  const logs = [];
  const capture = (stream) => {
    let buf = '';
    stream.on('data', (chunk) => {
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop();
      for (const line of lines) {
        logs.push(line);
        if (process.env.RELAY_TEST_LOGS) process.stderr.write(`[workerd] ${line}\n`);
      }
    });
  };
  const faults = { failWrites: 0, log: [] };
  const relayWorker = {
    scriptPath: SHIM,
    modules: true,
    modulesRules: [
      { type: 'ESModule', include: ['**/*.js'] },
      { type: 'CompiledWasm', include: ['**/*.wasm'] },
    ],
    compatibilityDate: compatibilityDate(),
    kvNamespaces: ['KEYS', 'CACHE'],
    d1Databases: ['DB'],
    // wrangler.toml's [[durable_objects.bindings]] (SQLite-backed, as its migration declares).
    // `limits: false` leaves the binding out: every limits object is then unreachable.
    durableObjects: limits ? { LIMITS: { className: 'LimitsObject', useSQLite: true } } : undefined,
    // wrangler.toml's [[ratelimits]]; by default with room for suites that fail on purpose
    // many times a minute from one address. Throttle tests pass wranglerRatelimits().
    ratelimits: ratelimits ?? roomyRatelimits(),
    bindings,
    // wrangler.toml's [assets]: the dashboard's files, behind the Worker (run_worker_first).
    // `assets: false` deploys without the [assets] section (no dashboard, no asset router).
    assets: assets ? {
      directory: join(ROOT, 'build', 'assets'),
      binding: 'ASSETS',
      routerConfig: { invoke_user_worker_ahead_of_assets: true, has_user_worker: true },
      assetConfig: { html_handling: 'none', not_found_handling: 'none' },
    } : undefined,
  };
  const workers = kvFaults ? {
    workers: [
      // KEYS_DIRECT is the same namespace, unwrapped, for the test's own reads and seeds.
      { ...relayWorker, kvNamespaces: { KEYS_DIRECT: 'KEYS', CACHE: 'CACHE' }, wrappedBindings: { KEYS: 'kv-faults' } },
      {
        name: 'kv-faults',
        modules: true,
        script: FAULTY_KV,
        kvNamespaces: { INNER: 'KEYS' },
        serviceBindings: {
          async FAULTS(request) {
            const u = new URL(request.url);
            const failed = faults.failWrites > 0;
            if (failed) faults.failWrites -= 1;
            faults.log.push({ op: u.pathname.slice(1), key: u.searchParams.get('key'), failed });
            return new Response(failed ? 'fail' : 'ok');
          },
        },
      },
    ],
  } : relayWorker;
  const mf = new Miniflare({
    handleRuntimeStdio(stdout, stderr) {
      capture(stdout);
      capture(stderr);
    },
    cf: false,
    host: '127.0.0.1',
    port: 0,
    ...workers,
  });
  const url = (await mf.ready).toString().replace(/\/$/, '');
  const kv = await mf.getKVNamespace(kvFaults ? 'KEYS_DIRECT' : 'KEYS');
  const cacheKv = await mf.getKVNamespace('CACHE');
  const db = await mf.getD1Database('DB');
  for (const stmt of migrationStatements()) await db.prepare(stmt).run();

  const relay = {
    mf,
    url,
    base: `${url}/v1`,
    kv,
    cacheKv,
    db,
    provider,
    claude,
    logs,
    kvFaults: faults,
    /** Puts a key record straight into KV, as `POST /admin/keys` would. */
    async seedKey({ team = 'team-a', user = 'ann', env = 'test', status = 'active', expires_at, cache } = {}) {
      const key = makeKey(env, team, user);
      const record = { id: `key_${randomBytes(6).toString('hex')}`, team, user, env, created_at: new Date().toISOString(), status };
      if (expires_at) record.expires_at = expires_at;
      if (cache) record.cache = cache;
      await kv.put(`key:${sha256(key)}`, JSON.stringify(record));
      return { key, record };
    },
    async rows() {
      const { results } = await db.prepare('SELECT * FROM usage ORDER BY started_at').all();
      return results;
    },
    async count() {
      const row = await db.prepare('SELECT COUNT(*) AS n FROM usage').first();
      return row.n;
    },
    /** Waits (bounded) until `n` settled rows exist for `route`; returns them, oldest first. */
    async routeRows(route, n) {
      let rows = [];
      for (let i = 0; i < 100 && rows.length < n; i += 1) {
        rows = (await db.prepare('SELECT * FROM usage WHERE route = ? AND settled = 1 ORDER BY started_at').bind(route).all()).results;
        if (rows.length < n) await new Promise((r) => setTimeout(r, 50));
      }
      return rows;
    },
    /** Waits (bounded) for the settled row of one request, found by the relay's x-request-id. */
    async row(requestId, { timeoutMs = 8000, settled = true } = {}) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const r = await db.prepare('SELECT * FROM usage WHERE request_id = ?').bind(requestId).first();
        if (r && (!settled || r.settled === 1)) return r;
        await new Promise((res) => setTimeout(res, 25));
      }
      throw new Error(`no ${settled ? 'settled ' : ''}usage row for ${requestId} within ${timeoutMs} ms`);
    },
    async close() {
      await mf.dispose();
      if (provider) await provider.close();
      if (claude) await claude.close();
    },
  };
  return relay;
}

/** fetch() against the relay with JSON defaults; returns { res, text, json }. */
export async function call(relay, path, { method = 'POST', key, body, headers = {}, raw } = {}) {
  const h = { 'accept-encoding': 'identity', ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  if (body !== undefined && !h['content-type']) h['content-type'] = 'application/json';
  const res = await fetch(`${relay.url}${path}`, {
    method,
    headers: h,
    body: raw !== undefined ? raw : body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { res, text, json, requestId: res.headers.get('x-request-id') };
}
