// Optional peers for the benchmark, started only when installed: Portkey's gateway (npm
// `@portkey-ai/gateway`, found in node_modules or PORTKEY_GATEWAY_DIR) and the LiteLLM proxy
// (PyPI `litellm[proxy]`, found as `litellm` on PATH or LITELLM_BIN). Both are pointed at the
// same mock provider on loopback; nothing here installs anything.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, log } from '../tools/toolchain.mjs';

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Polls until the URL answers (any status), bounded by `ms`. */
async function waitUp(url, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      await fetch(url, { signal: AbortSignal.timeout(1000) });
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  return false;
}

function stopper(child) {
  return () =>
    new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 3000).unref();
    });
}

async function portkey(upstream) {
  const dir = process.env.PORTKEY_GATEWAY_DIR || join(ROOT, 'node_modules', '@portkey-ai', 'gateway');
  const script = join(dir, 'build', 'start-server.js');
  if (!existsSync(script)) return null;
  const port = await freePort();
  const child = spawn(process.execPath, [script, `--port=${port}`, '--headless'], {
    stdio: 'ignore',
    env: { ...process.env, NODE_ENV: 'production' },
  });
  const close = stopper(child);
  if (!(await waitUp(`http://127.0.0.1:${port}/`, 20000))) {
    await close();
    log('portkey gateway did not start; skipping it');
    return null;
  }
  return {
    name: 'portkey',
    base: `http://localhost:${port}/v1`,
    key: 'sk-mock',
    headers: { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': upstream },
    pid: child.pid,
    close,
  };
}

async function litellm(upstream) {
  const bin = process.env.LITELLM_BIN || 'litellm';
  if (spawnSync(bin, ['--version'], { stdio: 'ignore', timeout: 60000 }).status !== 0) return null;
  const dir = mkdtempSync(join(tmpdir(), 'llm-relay-bench-'));
  const config = join(dir, 'litellm.yaml');
  writeFileSync(
    config,
    ['model_list:', '  - model_name: "*"', '    litellm_params:', '      model: "openai/*"', `      api_base: "${upstream}"`, '      api_key: "sk-mock"', ''].join('\n'),
  );
  const port = await freePort();
  const child = spawn(bin, ['--config', config, '--host', '127.0.0.1', '--port', String(port), '--num_workers', '1'], {
    stdio: 'ignore',
    env: { ...process.env, LITELLM_LOG: 'ERROR', LITELLM_TELEMETRY: 'False' },
  });
  const close = stopper(child);
  if (!(await waitUp(`http://127.0.0.1:${port}/health/liveliness`, 90000))) {
    await close();
    log('litellm proxy did not start; skipping it');
    return null;
  }
  return { name: 'litellm', base: `http://127.0.0.1:${port}/v1`, key: 'sk-anything', pid: child.pid, close };
}

export async function startPeers(upstream) {
  if (process.env.BENCH_PEERS === '0') return [];
  const peers = [];
  for (const start of [portkey, litellm]) {
    const peer = await start(upstream);
    if (peer) peers.push(peer);
  }
  return peers;
}
