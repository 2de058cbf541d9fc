// `npm run fuzz`: the native fuzz harness (tests/fuzz/) at length, in a debug build so integer
// overflow panics. A fresh random seed each run unless FUZZ_SEED is set; FUZZ_SECONDS (per
// target, default 60) bounds it; FUZZ_ITERS and FUZZ_TARGET pass through. A failure prints the
// case's seed and its shrunk input, and the command that replays it.
import { randomBytes } from 'node:crypto';
import { log, run, toolEnv } from './toolchain.mjs';

const seed = process.env.FUZZ_SEED || randomBytes(4).toString('hex');
const seconds = process.env.FUZZ_SECONDS || (process.env.FUZZ_ITERS ? '' : '60');
log(`fuzz: seed ${seed}, ${seconds ? `${seconds} s per target` : `${process.env.FUZZ_ITERS} cases per target`}`);
try {
  run('cargo', ['test', '--test', 'fuzz', '--', '--nocapture', '--test-threads', '2'], {
    env: toolEnv({ FUZZ_SEED: seed, FUZZ_SECONDS: seconds }),
  });
} catch (e) {
  log(`fuzz failed (seed ${seed}): ${e.message}`);
  process.exit(1);
}
