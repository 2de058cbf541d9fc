// Builds the worker with worker-build, pointing it at local wasm-bindgen, wasm-opt and esbuild
// instead of letting it download them (there is no GitHub here; toolchain.md). Used by
// `npm run build`, the tests, and wrangler's [build] command (which runs in a fresh shell,
// so the variables must be set here, not in the caller's terminal).
// RELAY_BUILD=dev builds without optimisation (faster); the default is --release.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, ensureRust, log, run, toolEnv } from './toolchain.mjs';
import { execFileSync } from 'node:child_process';

export function build(mode = process.env.RELAY_BUILD || 'release') {
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
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    // `npm test` builds once, then runs `wrangler deploy --dry-run`, whose [build] hook lands
    // here again: RELAY_SKIP_BUILD reuses the bundle just built.
    if (process.env.RELAY_SKIP_BUILD && existsSync(join(ROOT, 'build', 'index.js'))) {
      log('reusing the existing build (RELAY_SKIP_BUILD)');
      process.exit(0);
    }
    build();
  } catch (e) {
    log(e.message);
    process.exit(1);
  }
}
