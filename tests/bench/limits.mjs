// What a limits check adds to a request (issue 16): the same non-stream request from a key with
// no limits (no Durable Object call), from a key whose own scope has limits (one object round
// trip to reserve, one to settle from wait_until) and from a key whose key, user and team all
// have limits (three objects, asked in parallel). Interleaved rounds on one relay, loopback
// only, bounded. Run alone with `node tests/bench/limits.mjs` (after a build) or from
// `npm run bench`, which calls `benchLimits()`.
import http from 'node:http';
import { startRelay, call, ADMIN_TOKEN } from '../runtime/harness.mjs';
import { log } from '../tools/toolchain.mjs';

const ROUNDS = Number(process.env.BENCH_LIMITS_ROUNDS || 5);
const PER_ROUND = Number(process.env.BENCH_LIMITS_N || 100);
// Never refused: the bench measures the check, not a refusal.
const ROOMY = { budget_usd: 1e6, rpm: 1_000_000, max_parallel: 1000 };

const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

function once(url, key) {
  const payload = JSON.stringify({ model: 'mock-ok', messages: [{ role: 'user', content: 'Say hello.' }] });
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.request(url, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), authorization: `Bearer ${key}` },
    }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error('timeout')));
    req.end(payload);
  });
}

function p50(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)];
}

async function mint(relay, team, user, limits) {
  const r = await call(relay, '/admin/keys', { key: ADMIN_TOKEN, body: { team, user, ...(limits ? { limits } : {}) } });
  if (r.res.status !== 201) throw new Error(`mint: ${r.text}`);
  return r.json.key;
}

/** Runs the scenario and prints its table; returns the p50s (ms) by case. */
export async function benchLimits() {
  const relay = await startRelay({ vars: { STREAM_IDLE_MS: '10000' } });
  try {
    const put = (path) => call(relay, path, { key: ADMIN_TOKEN, method: 'PUT', body: ROOMY });
    await put('/admin/limits/teams/bench-all');
    await put('/admin/limits/teams/bench-all/users/ann');
    const cases = {
      none: await mint(relay, 'bench-none', 'ann', null),
      one_scope: await mint(relay, 'bench-one', 'ann', ROOMY),
      three_scopes: await mint(relay, 'bench-all', 'ann', ROOMY),
    };
    const url = `${relay.base}/chat/completions`;
    // Warm-up: the wasm compiles, each object starts and loads its ledger.
    for (const key of Object.values(cases)) for (let i = 0; i < 20; i += 1) await once(url, key);
    const runs = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
    for (let round = 0; round < ROUNDS; round += 1) {
      const order = round % 2 === 0 ? Object.keys(cases) : Object.keys(cases).reverse();
      for (const name of order) {
        const lat = [];
        for (let i = 0; i < PER_ROUND; i += 1) lat.push(await once(url, cases[name]));
        runs[name].push(p50(lat));
      }
    }
    const out = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, p50(v)]));
    console.log('\nLimits check (non-stream c=1, p50 ms, median of rounds):');
    console.log('| key | p50 ms | added over no limits |');
    console.log('|---|---|---|');
    for (const [k, v] of Object.entries(out)) console.log(`| ${k} | ${v.toFixed(2)} | ${(v - out.none).toFixed(2)} |`);
    const added = out.one_scope - out.none;
    console.log(`  ${added < 1 ? 'met   ' : 'MISSED'} one scope adds under 1 ms p50 (${added.toFixed(2)} ms)`);
    return out;
  } finally {
    await relay.close();
    agent.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  benchLimits().catch((e) => {
    log(`limits bench failed: ${e.stack || e.message}`);
    process.exit(1);
  });
}
