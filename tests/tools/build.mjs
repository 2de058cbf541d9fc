// Builds the worker with worker-build, pointing it at local wasm-bindgen, wasm-opt and esbuild
// instead of letting it download them (there is no GitHub here; toolchain.md). Used by
// `npm run build`, `npm test`, and wrangler's [build] command (which runs in a fresh shell,
// so the variables must be set here, not in the caller's terminal).
// RELAY_BUILD=dev builds without optimisation (faster); the default is --release. A build that
// is newer than every source file, in the same mode, is reused: wrangler dev runs this hook
// again at start-up and on file events, and a release build takes over a minute on 2 cores.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { ROOT, ensureRust, log, run, toolEnv } from './toolchain.mjs';

const OUTPUT = join(ROOT, 'build', 'index.js');
const MODE_FILE = join(ROOT, 'build', '.mode');

function newestSource() {
  let newest = 0;
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(join(ROOT, 'src'));
  for (const f of ['Cargo.toml', 'Cargo.lock']) newest = Math.max(newest, statSync(join(ROOT, f)).mtimeMs);
  return newest;
}

function isFresh(mode) {
  if (!existsSync(OUTPUT) || !existsSync(MODE_FILE)) return false;
  if (readFileSync(MODE_FILE, 'utf8').trim() !== mode) return false;
  return statSync(OUTPUT).mtimeMs > newestSource();
}

/** Upload budget for the worker bundle (wasm + js, gzip), enforced by `npm test` (issue 3). */
export const BUNDLE_BUDGET_GZIP = 350 * 1024;

/** Size of what Workers uploads: the glue JS and the wasm, raw and gzip-compressed. */
export function bundleSize() {
  const files = ['index.js', 'index_bg.wasm'].map((f) => join(ROOT, 'build', f));
  return {
    raw: files.reduce((n, f) => n + statSync(f).size, 0),
    gzip: files.reduce((n, f) => n + gzipSync(readFileSync(f)).length, 0),
  };
}

export function build(mode = process.env.RELAY_BUILD || 'release') {
  if (isFresh(mode)) {
    log(`worker build (${mode}) is up to date`);
    return;
  }
  ensureRust();
  const bin = (name) => join(ROOT, 'node_modules', '.bin', name);
  for (const tool of ['wasm-opt', 'esbuild']) {
    if (!existsSync(bin(tool))) throw new Error(`${bin(tool)} missing: run npm ci first`);
  }
  const wasmBindgen = execFileSync('sh', ['-c', 'command -v wasm-bindgen'], { encoding: 'utf8', env: toolEnv() }).trim();
  log(`building worker (${mode})…`);
  run('worker-build', [mode === 'dev' ? '--dev' : '--release'], {
    env: toolEnv({
      WASM_BINDGEN_BIN: wasmBindgen,
      WASM_OPT_BIN: bin('wasm-opt'),
      ESBUILD_BIN: bin('esbuild'),
    }),
  });
  writeFileSync(MODE_FILE, `${mode}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    build();
  } catch (e) {
    log(e.message);
    process.exit(1);
  }
}
