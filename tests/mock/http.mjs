// The HTTP plumbing both mock providers share: a loopback server whose handler bugs surface as
// failing responses, a per-request record of what came in and what went out, sleeps that end
// when the connection does, and SSE played frame by frame with real delays.
import http from 'node:http';

/**
 * Serves `handle(req, res)` on 127.0.0.1 (random port). `internalError(message)` renders a bug
 * in the mock as the provider's own 500 body, so it fails the test instead of hanging it.
 */
export async function listen(handle, internalError) {
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent && !res.destroyed) {
        sendJson(res, 500, internalError(`mock internal error: ${err?.message}`));
      } else {
        res.destroy();
      }
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => { server.off('error', reject); resolve(); });
  });
  return {
    port: server.address().port,
    async close() {
      const done = new Promise((resolve) => server.close(() => resolve()));
      server.closeAllConnections?.();
      for (const s of sockets) s.destroy();
      await done;
    },
  };
}

/**
 * Starts recording one exchange into `requests`: the request line and headers now, the body
 * once read (`readInto`), every byte written back (`rec.sent`, for byte-for-byte comparisons),
 * and whether the client went away first (`rec.aborted`; the mock's own `drop()` is not that).
 */
export function track(req, res, requests) {
  const rec = { method: req.method, path: req.url, headers: { ...req.headers }, body: undefined, rawBody: '', aborted: false, sent: '' };
  requests.push(rec);
  const write = res.write.bind(res);
  res.write = (chunk, ...rest) => { rec.sent += String(chunk); return write(chunk, ...rest); };
  const end = res.end.bind(res);
  res.end = (chunk, ...rest) => {
    if (chunk !== undefined && typeof chunk !== 'function') rec.sent += String(chunk);
    return end(chunk, ...rest);
  };
  let closed = false;
  let selfDestroyed = false;
  const wakers = new Set();
  res.on('close', () => {
    closed = true;
    if (!res.writableFinished && !selfDestroyed) rec.aborted = true;
    for (const wake of [...wakers]) wake();
  });
  return {
    rec,
    isClosed: () => closed,
    // Resolves early when the connection closes, so no timer outlives its response.
    sleep: (ms) => new Promise((resolve) => {
      if (closed) return resolve();
      const done = () => { clearTimeout(t); wakers.delete(done); resolve(); };
      const t = setTimeout(done, ms);
      wakers.add(done);
    }),
    drop: () => { selfDestroyed = true; res.socket?.destroy(); },
    /** Reads the body into the record (raw text, and JSON when it parses). */
    async readInto() {
      rec.rawBody = await readBody(req);
      try { rec.body = rec.rawBody === '' ? '' : JSON.parse(rec.rawBody); } catch { rec.body = rec.rawBody; }
      return rec.body;
    },
  };
}

function readBody(req) {
  return new Promise((resolve) => {
    const parts = [];
    req.on('data', (c) => parts.push(c));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    // An aborted upload still yields whatever arrived, so the record is never left pending.
    req.on('error', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('close', () => resolve(Buffer.concat(parts).toString('utf8')));
  });
}

export function sendJson(res, status, text) {
  if (res.destroyed) return;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

// Each frame gets its own write (and delay) so clients see genuinely incremental delivery.
export async function playSse(res, sleep, isClosed, delayMs, frames) {
  if (isClosed()) return;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  let first = true;
  for (const frame of frames) {
    if (!first) await sleep(delayMs);
    if (isClosed()) return;
    first = false;
    if (frame === null) return; // caller finishes the response itself
    res.write(frame);
  }
  if (!isClosed()) res.end();
}
