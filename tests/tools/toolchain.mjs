// Pinned toolchain and the idempotent installer that `npm start`, `npm test` and the wrangler
// build command share. Each step is skipped when the right version is already there, because
// the two `cargo install`s take several minutes on 2 cores (docs: toolchain.md).
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const WORKER_BUILD_VERSION = '0.8.7';
// Must equal the wasm-bindgen crate in Cargo.lock (Cargo.toml pins it with `=`).
export const WASM_BINDGEN_VERSION = '0.2.130';
const CARGO_BIN = join(process.env.CARGO_HOME || join(process.env.HOME || '/root', '.cargo'), 'bin');

export function log(msg) {
  process.stderr.write(`\x1b[1m[llm-relay]\x1b[0m ${msg}\n`);
}

export function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', cwd: ROOT, ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
  }
}

function output(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], env: toolEnv() });
  } catch {
    return '';
  }
}

/** PATH with cargo's bin dir, so freshly installed tools are found in this same process. */
export function toolEnv(extra = {}) {
  const path = process.env.PATH || '';
  return {
    ...process.env,
    PATH: path.split(':').includes(CARGO_BIN) ? path : `${CARGO_BIN}:${path}`,
    // Wrangler otherwise tries to send usage metrics, which this network cannot reach.
    WRANGLER_SEND_METRICS: 'false',
    ...extra,
  };
}

function ensureCargoTool(bin, crate, version) {
  if (output(bin, ['--version']).includes(version)) return;
  log(`installing ${crate} ${version} (one time, several minutes)…`);
  // No --locked: a locked transitive version is missing from the index (toolchain.md).
  run('cargo', ['install', crate, '--version', version], { env: toolEnv() });
}

export function ensureRust() {
  if (!output('rustup', ['target', 'list', '--installed']).split('\n').includes('wasm32-unknown-unknown')) {
    log('adding rustup target wasm32-unknown-unknown…');
    run('rustup', ['target', 'add', 'wasm32-unknown-unknown']);
  }
  ensureCargoTool('worker-build', 'worker-build', WORKER_BUILD_VERSION);
  ensureCargoTool('wasm-bindgen', 'wasm-bindgen-cli', WASM_BINDGEN_VERSION);
}

/**
 * `npm ci` when node_modules is missing or older than the lockfile. A node_modules that is a
 * symlink belongs to another checkout (a git worktree sharing it): `npm ci` would empty that
 * checkout's install, so it is left alone.
 */
export function ensureNodeModules() {
  const dir = join(ROOT, 'node_modules');
  const marker = join(dir, '.package-lock.json');
  const lock = join(ROOT, 'package-lock.json');
  if (existsSync(dir) && lstatSync(dir).isSymbolicLink()) return;
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  log('installing npm packages (npm ci)…');
  run('npm', ['ci', '--no-audit', '--no-fund']);
}

/** Where the browser test finds Chromium: Debian's package, never a browser a tool downloads. */
export const CHROMIUM = '/usr/bin/chromium';

function canRun(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Debian's `chromium` for the dashboard's browser test (tests/runtime/dashboard.test.mjs), with
 * apt when it is missing: as root, or through sudo. The package index is refreshed only when
 * the first attempt fails. Returns whether Chromium is there; when it cannot be installed
 * (no apt, no root) the browser test skips and says why.
 */
export function ensureChromium() {
  if (existsSync(CHROMIUM)) return true;
  if (!canRun('apt-get')) {
    log(`${CHROMIUM} missing and no apt-get here: the browser test will be skipped`);
    return false;
  }
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root && !canRun('sudo')) {
    log(`${CHROMIUM} missing, not root and no sudo: the browser test will be skipped`);
    return false;
  }
  const apt = (args) => {
    const full = ['apt-get', '-o', 'DPkg::Lock::Timeout=300', ...args];
    const [cmd, rest] = root ? [full[0], full.slice(1)] : ['sudo', ['-n', 'env', 'DEBIAN_FRONTEND=noninteractive', ...full]];
    return spawnSync(cmd, rest, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
  };
  const install = ['install', '-y', '--no-install-recommends', 'chromium'];
  log('installing Debian chromium for the browser test (one time)…');
  if (!apt(install) && !(apt(['update']) && apt(install))) {
    log('could not install chromium: the browser test will be skipped');
  }
  return existsSync(CHROMIUM);
}

export function ensureAll() {
  ensureNodeModules();
  ensureRust();
}

export function wranglerBin() {
  return join(ROOT, 'node_modules', '.bin', 'wrangler');
}

export function readJson(path) {
  return JSON.parse(readFileSync(path, 'utf8'));
}

// `node tests/tools/toolchain.mjs chromium`: the browser install alone (.ci/run).
if (import.meta.url === `file://${process.argv[1]}` && process.argv[2] === 'chromium') {
  ensureChromium();
}
