// Builds the worker with worker-build, pointing it at local wasm-bindgen, wasm-opt and esbuild
// instead of letting it download them (there is no GitHub here; toolchain.md). Used by
// `npm run build`, `npm test`, and wrangler's [build] command (which runs in a fresh shell,
// so the variables must be set here, not in the caller's terminal).
// RELAY_BUILD=dev builds without optimisation (faster); the default is --release. A build that
// is newer than every source file, in the same mode, is reused: wrangler dev runs this hook
// again at start-up and on file events, and a release build takes over a minute on 2 cores.
// The dashboard (src/dashboard/) is bundled separately with esbuild into build/assets, the
// Worker's static assets; it has its own freshness check, so editing it never rebuilds the wasm.
// A release build's wasm loses its `name` section (function names) before upload; the named
// copy stays at build/index_bg.wasm.names.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { ROOT, ensureRust, log, run, toolEnv } from './toolchain.mjs';

const OUTPUT = join(ROOT, 'build', 'index.js');
const WASM = join(ROOT, 'build', 'index_bg.wasm');
/** The release wasm as wasm-opt left it, names included, to symbolicate a `wasm-function[N]`. */
export const WASM_WITH_NAMES = join(ROOT, 'build', 'index_bg.wasm.names');
const MODE_FILE = join(ROOT, 'build', '.mode');
const DASHBOARD_SRC = join(ROOT, 'src', 'dashboard');
/** wrangler.toml's [assets] directory; the dashboard's files go under its dashboard/. */
export const ASSETS_DIR = join(ROOT, 'build', 'assets');
const DASHBOARD_OUT = join(ASSETS_DIR, 'dashboard');
const DASHBOARD_FILES = ['index.html', 'app.js', 'app.css'];

/** Newest mtime of the files under `dir`, skipping the directories in `skip`. */
function newestIn(dir, skip = []) {
  let newest = 0;
  const walk = (d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) {
        if (!skip.includes(p)) walk(p);
      } else newest = Math.max(newest, statSync(p).mtimeMs);
    }
  };
  walk(dir);
  return newest;
}

function newestSource() {
  let newest = newestIn(join(ROOT, 'src'), [DASHBOARD_SRC]);
  for (const f of ['Cargo.toml', 'Cargo.lock']) newest = Math.max(newest, statSync(join(ROOT, f)).mtimeMs);
  return newest;
}

/**
 * Bundles the dashboard: src/dashboard/app.js with its imports (the charting library and the
 * CSS, which esbuild emits as app.css) into build/assets/dashboard, plus index.html as is.
 * Everything the page needs is in these three files, so it works offline under its CSP.
 */
export function buildDashboard() {
  const outputs = DASHBOARD_FILES.map((f) => join(DASHBOARD_OUT, f));
  // package-lock.json: a new version of the charting library is a new bundle.
  const inputs = Math.max(newestIn(DASHBOARD_SRC), statSync(join(ROOT, 'package-lock.json')).mtimeMs);
  if (outputs.every((f) => existsSync(f) && statSync(f).mtimeMs > inputs)) {
    log('dashboard bundle is up to date');
    return;
  }
  const esbuild = join(ROOT, 'node_modules', '.bin', 'esbuild');
  if (!existsSync(esbuild)) throw new Error(`${esbuild} missing: run npm ci first`);
  log('bundling dashboard…');
  rmSync(DASHBOARD_OUT, { recursive: true, force: true });
  mkdirSync(DASHBOARD_OUT, { recursive: true });
  run(esbuild, [
    join(DASHBOARD_SRC, 'app.js'),
    '--bundle',
    '--format=esm',
    '--target=es2020',
    '--minify',
    '--legal-comments=eof',
    '--log-level=warning',
    `--outdir=${DASHBOARD_OUT}`,
  ]);
  copyFileSync(join(DASHBOARD_SRC, 'index.html'), join(DASHBOARD_OUT, 'index.html'));
  for (const f of outputs) if (!existsSync(f)) throw new Error(`dashboard bundle is missing ${f}`);
}

function isFresh(mode) {
  if (!existsSync(OUTPUT) || !existsSync(MODE_FILE)) return false;
  if (readFileSync(MODE_FILE, 'utf8').trim() !== mode) return false;
  return statSync(OUTPUT).mtimeMs > newestSource();
}

/**
 * Upload budget for the worker bundle (wasm + js, gzip), enforced by `npm test`. Issue 3's
 * target is 350 KiB; with spend limits (a Durable Object, issue 16) and the response cache
 * (issue 17) it is 348.6 KiB after 24 KiB of cuts (README Performance, Bundle), 1.4 KiB
 * of margin: new edge code should follow the cuts listed there.
 */
export const BUNDLE_BUDGET_GZIP = 350 * 1024;

/** Size of what Workers uploads: the glue JS and the wasm, raw and gzip-compressed. */
export function bundleSize() {
  const files = ['index.js', 'index_bg.wasm'].map((f) => join(ROOT, 'build', f));
  return {
    raw: files.reduce((n, f) => n + statSync(f).size, 0),
    gzip: files.reduce((n, f) => n + gzipSync(readFileSync(f)).length, 0),
  };
}

/** Reads the unsigned LEB128 at `bytes[at]`; returns [value, offset after it]. */
function leb128(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    if (at >= bytes.length || shift > 28) throw new Error('malformed wasm: bad LEB128');
    const b = bytes[at];
    at += 1;
    value += (b & 0x7f) * 2 ** shift;
    if (!(b & 0x80)) return [value, at];
    shift += 7;
  }
}

/**
 * `bytes` (a wasm module) without its custom sections named in `drop`; every other section is
 * copied byte for byte, in order. worker-build runs wasm-opt with `--debuginfo` whatever the
 * profile says, so a release build carries the `name` section: function names only a stack
 * trace reads, ~36 KiB of the gzip bundle, no part of the code that runs.
 */
export function withoutCustomSections(bytes, drop = ['name']) {
  if (bytes.length < 8 || bytes.readUInt32LE(0) !== 0x6d736100) throw new Error('not a wasm module');
  const kept = [bytes.subarray(0, 8)];
  let at = 8;
  while (at < bytes.length) {
    const start = at;
    const id = bytes[at];
    const [size, body] = leb128(bytes, at + 1);
    const end = body + size;
    if (end > bytes.length) throw new Error('malformed wasm: section runs past the end');
    let name = null;
    if (id === 0) {
      const [len, text] = leb128(bytes, body);
      name = bytes.subarray(text, text + len).toString('utf8');
    }
    if (!drop.includes(name)) kept.push(bytes.subarray(start, end));
    at = end;
  }
  return Buffer.concat(kept);
}

export function build(mode = process.env.RELAY_BUILD || 'release') {
  buildDashboard();
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
  if (mode !== 'dev') {
    // Upload only what runs; keep the names beside it, outside what wrangler bundles.
    renameSync(WASM, WASM_WITH_NAMES);
    writeFileSync(WASM, withoutCustomSections(readFileSync(WASM_WITH_NAMES)));
  } else rmSync(WASM_WITH_NAMES, { force: true });
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
