// Optional peers for the benchmark, started only when installed: Portkey's gateway (npm
// `@portkey-ai/gateway`, found in node_modules or PORTKEY_GATEWAY_DIR) and the LiteLLM proxy
// (PyPI `litellm[proxy]`, found as `litellm` on PATH or LITELLM_BIN). Both are pointed at the
// same mock provider on loopback; nothing here installs anything. A peer that is missing or
// does not come up is reported as skipped, with the reason.
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
  if (!existsSync(script)) return { skipped: `not installed (no ${script}; npm install --no-save @portkey-ai/gateway)` };
  const port = await freePort();
  const child = spawn(process.execPath, [script, `--port=${port}`, '--headless'], {
    stdio: 'ignore',
    env: { ...process.env, NODE_ENV: 'production' },
  });
  const close = stopper(child);
  if (!(await waitUp(`http://127.0.0.1:${port}/`, 20000))) {
    await close();
    return { skipped: 'installed, but did not answer within 20 s' };
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
  const probe = spawnSync(bin, ['--version'], { stdio: 'ignore', timeout: 60000 });
  if (probe.status !== 0) return { skipped: probe.error?.code === 'ENOENT' ? `not installed (\`${bin}\` not on PATH; pip install 'litellm[proxy]' or LITELLM_BIN)` : `\`${bin} --version\` failed (status ${probe.status})` };
  const dir = mkdtempSync(join(tmpdir(), 'llm-relay-bench-'));
  const config = join(dir, 'litellm.yaml');
  writeFileSync(
    config,
    ['model_list:', '  - model_name: "*"', '    litellm_params:', '      model: "openai/*"', `      api_base: "${upstream}"`, '      api_key: "sk-mock"', ''].join('\n'),
  );
  const port = await freePort();
  // LiteLLM >= 1.110 refuses to start without a master key, and fetches its model cost map
  // from the network unless told to use the copy it ships with (there is no network here).
  const master = 'sk-bench-master';
  const child = spawn(bin, ['--config', config, '--host', '127.0.0.1', '--port', String(port), '--num_workers', '1'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LITELLM_LOG: 'ERROR', LITELLM_TELEMETRY: 'False', LITELLM_MASTER_KEY: master, LITELLM_LOCAL_MODEL_COST_MAP: 'True' },
  });
  // The last lines it printed, for the reason when it does not come up.
  let stderr = '';
  child.stderr.on('data', (b) => { stderr = (stderr + b).slice(-2000); });
  const close = stopper(child);
  if (!(await waitUp(`http://127.0.0.1:${port}/health/liveliness`, 90000))) {
    await close();
    const last = stderr.trim().split('\n').filter(Boolean).at(-1) || 'no output';
    return { skipped: `did not answer within 90 s (exit ${child.exitCode ?? 'none'}; last output: ${last.slice(0, 200)})` };
  }
  return { name: 'litellm', base: `http://127.0.0.1:${port}/v1`, key: master, pid: child.pid, close };
}

/**
 * The peers that came up, and those that did not with the reason (the bench prints them as
 * skipped rather than leaving them out silently).
 */
export async function startPeers(upstream) {
  const started = [];
  const skipped = [];
  for (const [name, start] of [['portkey', portkey], ['litellm', litellm]]) {
    if (process.env.BENCH_PEERS === '0') {
      skipped.push({ name, reason: 'BENCH_PEERS=0' });
      continue;
    }
    const peer = await start(upstream);
    if (peer.skipped) {
      log(`${name} skipped: ${peer.skipped}`);
      skipped.push({ name, reason: peer.skipped });
    } else started.push(peer);
  }
  return { started, skipped };
}
