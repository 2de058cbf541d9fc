// The response cache's latency in `npm run bench` (issue 17): a HIT beside the floor (a bare
// `fetch(upstream)` worker, which must call the provider) and beside the relay's own miss, for
// a non-stream answer and a 100-chunk stream (the mock sends one chunk every 10 ms, so a live
// stream takes ~1 s and a replay does not wait for any of it). Self-contained so bench.mjs
// wires it in with one line: `benchCache({ relay, targets, rounds })` after the main table.
import http from 'node:http';

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
const N = Number(process.env.BENCH_CACHE_N || 100);
const STREAMS = Number(process.env.BENCH_CACHE_STREAMS || 6);

/** One POST; resolves with the time to the first byte, the total, and the cache header. */
function post(url, key, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const payload = JSON.stringify(body);
    const req = http.request(url, {
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), 'accept-encoding': 'identity', authorization: `Bearer ${key}`, ...headers },
    }, (res) => {
      let ttfb;
      res.on('data', () => { ttfb ??= performance.now() - t0; });
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`${url}: status ${res.statusCode}`));
        resolve({ ttfb, total: performance.now() - t0, cache: res.headers['x-relay-cache-status'] });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30000, () => req.destroy(new Error(`${url}: timeout`)));
    req.end(payload);
  });
}

function pct(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN;
}

const fmt = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Sends `body` until the relay answers it from the cache (bounded), so the timed runs are hits. */
async function prime(url, key, body) {
  for (let i = 0; i < 50; i += 1) {
    if ((await post(url, key, body)).cache === 'HIT') return;
    await sleep(100);
  }
  throw new Error('the cache never answered HIT');
}

async function series(n, fn) {
  const out = [];
  for (let i = 0; i < n; i += 1) out.push(await fn(i));
  return out;
}

export async function benchCache({ relay, targets, rounds = 3 }) {
  const floor = targets.find((t) => t.name === 'floor');
  const { key: cached } = await relay.seedKey({ team: 'bench-cache', user: 'hit', cache: { ttl_s: 3600 } });
  const { key: plain } = await relay.seedKey({ team: 'bench-cache', user: 'miss' });
  const messages = [{ role: 'user', content: 'Say hello, from the cache.' }];
  const ns = { model: 'mock-ok', temperature: 0, messages };
  const st = { model: 'mock-long', temperature: 0, stream: true, stream_options: { include_usage: true }, messages };
  const chat = `${relay.base}/chat/completions`;
  await prime(chat, cached, ns);
  await prime(chat, cached, st);

  const runs = { floor: [], miss: [], hit: [] };
  for (let r = 0; r < rounds; r += 1) {
    runs.floor.push({ ns: await series(N, () => post(`${floor.base}/chat/completions`, floor.key, ns)), st: await series(STREAMS, () => post(`${floor.base}/chat/completions`, floor.key, st)) });
    runs.miss.push({ ns: await series(N, () => post(chat, plain, ns)), st: await series(STREAMS, () => post(chat, plain, st)) });
    runs.hit.push({ ns: await series(N, () => post(chat, cached, ns)), st: await series(STREAMS, () => post(chat, cached, st)) });
  }
  const hits = runs.hit.flatMap((x) => [...x.ns, ...x.st]);
  const notHit = hits.filter((h) => h.cache !== 'HIT').length;
  const median = (xs) => pct(xs, 50);
  const summary = {};
  for (const [name, rs] of Object.entries(runs)) {
    summary[name] = {
      ns_p50: median(rs.map((x) => pct(x.ns.map((q) => q.total), 50))),
      ns_p99: median(rs.map((x) => pct(x.ns.map((q) => q.total), 99))),
      st_ttfb50: median(rs.map((x) => pct(x.st.map((q) => q.ttfb), 50))),
      st_total50: median(rs.map((x) => pct(x.st.map((q) => q.total), 50))),
    };
  }
  summary.hit.not_hit = notHit;
  const rows = [
    ['non-stream c=1 p50 ms', 'ns_p50'],
    ['non-stream c=1 p99 ms', 'ns_p99'],
    ['100-chunk stream TTFB p50 ms', 'st_ttfb50'],
    ['100-chunk stream total p50 ms', 'st_total50'],
  ];
  console.log(`\nResponse cache (issue 17; ${rounds} rounds, ${N} non-stream + ${STREAMS} streams each, medians):`);
  console.log('| metric | floor | relay miss (no cache) | relay HIT | HIT ÷ floor |');
  console.log('|---|---|---|---|---|');
  for (const [label, k] of rows) {
    console.log(`| ${label} | ${fmt(summary.floor[k])} | ${fmt(summary.miss[k])} | ${fmt(summary.hit[k])} | ${fmt(summary.hit[k] / summary.floor[k])} |`);
  }
  if (notHit) console.log(`  ${notHit} timed cache requests were not HITs`);
  agent.destroy();
  return summary;
}
