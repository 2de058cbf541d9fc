// `npm test`: every check CI runs, in order — install what is missing (Chromium included, for
// the dashboard's browser test), Rust format/lint/unit tests, the dashboard's unit tests, a
// release build of the worker and the dashboard, the runtime tests on workerd (node --test),
// and a `wrangler deploy --dry-run` so a bundle Workers would reject fails here.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, ensureAll, ensureChromium, log, run, toolEnv, wranglerBin } from './toolchain.mjs';
import { build, bundleSize, BUNDLE_BUDGET_GZIP } from './build.mjs';

const steps = [
  ['install toolchain and npm packages', () => ensureAll()],
  ['install Chromium (browser test)', () => ensureChromium()],
  ['cargo fmt --check', () => run('cargo', ['fmt', '--check'])],
  ['cargo clippy (host)', () => run('cargo', ['clippy', '--all-targets', '--', '-D', 'warnings'])],
  ['cargo clippy (wasm32)', () => run('cargo', ['clippy', '--target', 'wasm32-unknown-unknown', '--', '-D', 'warnings'])],
  ['cargo test', () => run('cargo', ['test', '--lib', '--tests'])],
  ['dashboard unit tests', () => run(process.execPath, ['--test', 'tests/dashboard/'])],
  ['build worker', () => build()],
  ['runtime tests (workerd + Miniflare)', () =>
    run(process.execPath, ['--test', '--test-concurrency=1', 'tests/mock/', 'tests/runtime/'], { env: toolEnv() })],
  ['wrangler deploy --dry-run', () => {
    const out = join(ROOT, 'build', 'dry-run');
    rmSync(out, { recursive: true, force: true });
    // The [build] hook finds the bundle (and the dashboard's assets) just built up to date.
    run(wranglerBin(), ['deploy', '--dry-run', '--outdir', out], { env: toolEnv() });
  }],
  ['bundle size budget', () => {
    const { raw, gzip } = bundleSize();
    const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
    log(`   bundle: ${kib(raw)} raw, ${kib(gzip)} gzip (budget ${kib(BUNDLE_BUDGET_GZIP)} gzip)`);
    if (gzip > BUNDLE_BUDGET_GZIP) throw new Error(`bundle is ${kib(gzip)} gzip, over the ${kib(BUNDLE_BUDGET_GZIP)} budget`);
  }],
];

for (const [name, fn] of steps) {
  log(`── ${name}`);
  const t0 = Date.now();
  try {
    fn();
  } catch (e) {
    log(`FAILED: ${name}: ${e.message}`);
    process.exit(1);
  }
  log(`   ok (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}
log('all checks passed');
