// `node tests/bench/native-paths.mjs`: the client paths a pass-through stream could take without
// per-chunk user code, measured on this workerd (README: "CPU per stream, by path"). For each
// path it reports the workerd process CPU per 100-chunk stream (10 ms gaps, concurrency 8) and
// what a client sees when the provider drops the connection mid-stream: a transport error, the
// relay's tail, or a clean end (silent truncation, which rules the path out). Plain JS workers,
// no relay; re-run it on a newer workerd to see whether the native path has become usable.
// NATIVE_STREAMS (default 24) and NATIVE_ROUNDS (default 3) size it. Loopback only, bounded.
import http from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import { Miniflare } from 'miniflare';
import { startMockProvider } from '../mock/provider.mjs';

const STREAMS = Number(process.env.NATIVE_STREAMS || 24);
const ROUNDS = Number(process.env.NATIVE_ROUNDS || 3);
const CONCURRENCY = 8;

// Each path forwards the provider's stream; `tail` is what the relay would append in-band when
// the upstream ends without its terminal event, written where the path allows it.
const SCRIPT = `
const TAIL = new TextEncoder().encode('data: {"error":{"code":"upstream_stream_error"}}\\n\\ndata: [DONE]\\n\\n');
const SSE = { headers: { 'content-type': 'text/event-stream' } };
async function upstream(env, model) {
  return fetch(env.UPSTREAM + '/chat/completions', {
    method: 'POST',
    headers: { authorization: 'Bearer sk-mock', 'content-type': 'application/json' },
    body: JSON.stringify({ model, stream: true, messages: [{ role: 'user', content: 'hi' }], stream_options: { include_usage: true } }),
  });
}
// The meter's branch, drained once per 250 ms tick with a BYOB read (one wake takes all queued).
function meter(ctx, branch) {
  const reader = branch.getReader({ mode: 'byob' });
  ctx.waitUntil((async () => {
    for (let i = 0; i < 400; i++) {
      await scheduler.wait(250);
      try {
        const r = await reader.read(new Uint8Array(65536));
        if (r.done) return;
      } catch {
        return;
      }
    }
  })());
}
const PATHS = {
  // The platform floor: the provider's body as the response, nothing else.
  floor: (up) => new Response(up.body, SSE),
  // tee(): client branch piped into an IdentityTransformStream (a hang-up rejects the pipe),
  // meter branch drained per tick; the tail is written when the pipe ends cleanly.
  identity: (up, ctx) => {
    const [client, metered] = up.body.tee();
    const its = new IdentityTransformStream();
    client.pipeTo(its.writable, { preventClose: true, preventAbort: true }).then(
      async () => { const w = its.writable.getWriter(); await w.write(TAIL); await w.close(); },
      () => {},
    );
    meter(ctx, metered);
    return new Response(its.readable, SSE);
  },
  // The same, with a standard TransformStream ahead of the pipe so an upstream error can be
  // caught (preventAbort is honoured there) and the tail still written.
  bridge: (up, ctx) => {
    const [client, metered] = up.body.tee();
    const ts = new TransformStream();
    const its = new IdentityTransformStream();
    const end = () => ts.writable.getWriter().close().catch(() => {});
    client.pipeTo(ts.writable, { preventClose: true, preventAbort: true }).then(end, end);
    ts.readable.pipeTo(its.writable, { preventClose: true }).then(
      async () => { const w = its.writable.getWriter(); await w.write(TAIL); await w.close(); },
      () => {},
    );
    meter(ctx, metered);
    return new Response(its.readable, SSE);
  },
  // A JS loop reading each chunk and writing it on: per-chunk JS, no parsing.
  loop: (up, ctx) => {
    const reader = up.body.getReader();
    const its = new IdentityTransformStream();
    const w = its.writable.getWriter();
    ctx.waitUntil((async () => {
      try {
        for (;;) { const r = await reader.read(); if (r.done) break; await w.write(r.value); }
        await w.close();
      } catch {
        try { await w.write(TAIL); await w.close(); } catch {}
      }
    })());
    return new Response(its.readable, SSE);
  },
};
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const up = await upstream(env, url.searchParams.get('model'));
    return PATHS[url.searchParams.get('path')](up, ctx);
  },
};`;

function workerdPid(before) {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || before.has(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (stat.includes('(workerd)') && Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) return d;
    } catch {
      // process went away while listing
    }
  }
  return null;
}

function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/**
 * One stream on its own connection (a reused keep-alive socket the server has closed would
 * read as a transport error): its text, and how it ended ('clean' or the error).
 */
function fetchStream(base, path, model) {
  return new Promise((resolve) => {
    const req = http.get(`${base}?path=${path}&model=${model}`, { agent: false, headers: { 'accept-encoding': 'identity' } }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ text, end: res.complete ? 'clean' : 'incomplete' }));
      res.on('error', (e) => resolve({ text, end: e.message }));
    });
    req.on('error', (e) => resolve({ text: '', end: e.message }));
    req.setTimeout(30000, () => req.destroy(new Error('timeout')));
  });
}

const provider = await startMockProvider({ chunkDelayMs: 10 });
const before = new Set(readdirSync('/proc'));
const mf = new Miniflare({ script: SCRIPT, modules: true, compatibilityDate: '2026-04-20', cf: false, host: '127.0.0.1', port: 0, bindings: { UPSTREAM: provider.url } });
try {
  const base = (await mf.ready).toString();
  const pid = workerdPid(before);
  const paths = ['floor', 'identity', 'bridge', 'loop'];
  const cpu = Object.fromEntries(paths.map((p) => [p, []]));
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const path of round % 2 ? [...paths].reverse() : paths) {
      const c0 = cpuMs(pid);
      let next = 0;
      await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
        while (next < STREAMS) {
          next += 1;
          await fetchStream(base, path, 'mock-long');
        }
      }));
      cpu[path].push((cpuMs(pid) - c0) / STREAMS);
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`| client path | CPU ms per 100-chunk stream (median of ${ROUNDS}) | ÷ floor | provider drops mid-stream: the client sees |`);
  console.log('|---|---|---|---|');
  for (const path of paths) {
    const dropped = await fetchStream(base, path, 'mock-drop');
    const seen = dropped.end !== 'clean' ? `transport error (${dropped.end}) after ${dropped.text.length} bytes` : dropped.text.includes('upstream_stream_error') ? 'the in-band error tail' : 'a clean end: silent truncation';
    console.log(`| ${path} | ${median(cpu[path]).toFixed(1)} | ${(median(cpu[path]) / median(cpu.floor)).toFixed(2)} | ${seen} |`);
  }
} finally {
  await mf.dispose();
  await provider.close();
}
