// `npm start`: install what is missing, prepare local secrets, apply migrations to local D1,
// make sure a demo key exists in local KV, then serve the relay with `wrangler dev` on
// embedded (Miniflare) KV and D1 and the dashboard's static assets. Wrangler runs the build
// itself ([build] in wrangler.toml).
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, ensureAll, log, run, toolEnv, wranglerBin } from './toolchain.mjs';
import { buildDashboard } from './build.mjs';

const PORT = process.env.PORT || '8787';
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function base62(len) {
  let out = '';
  // Rejection sampling keeps every symbol equally likely (same rule as src/keys/auth.rs).
  while (out.length < len) {
    for (const b of randomBytes(len * 2)) {
      if (b < 248 && out.length < len) out += BASE62[b % 62];
    }
  }
  return out;
}

function ensureDevVars() {
  const path = join(ROOT, '.dev.vars');
  if (existsSync(path)) return;
  const example = readFileSync(join(ROOT, '.dev.vars.example'), 'utf8');
  writeFileSync(path, example.replace(/^ADMIN_TOKEN=.*$/m, `ADMIN_TOKEN=${base62(40)}`));
  log('created .dev.vars with a random ADMIN_TOKEN (edit it to add OPENAI_API_KEY)');
}

function wrangler(args, opts = {}) {
  return spawnSync(wranglerBin(), args, { cwd: ROOT, encoding: 'utf8', env: toolEnv(), ...opts });
}

/** A demo key kept in .wrangler/demo-key so every `npm start` prints the same one. */
function ensureDemoKey() {
  const dir = join(ROOT, '.wrangler');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'demo-key');
  let key = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
  if (!key) {
    key = `lc_dev_demo_you_${base62(32)}`;
    writeFileSync(file, `${key}\n`, { mode: 0o600 });
  }
  const hash = createHash('sha256').update(key).digest('hex');
  const name = `key:${hash}`;
  const got = wrangler(['kv', 'key', 'get', '--binding', 'KEYS', '--local', name]);
  if (got.status === 0 && got.stdout.includes('"status"')) return key;
  const now = new Date().toISOString();
  const record = { id: 'key_demo', team: 'demo', user: 'you', env: 'dev', created_at: now, status: 'active', name: 'npm start demo key', updated_at: now };
  const json = JSON.stringify(record);
  run(wranglerBin(), ['kv', 'key', 'put', '--binding', 'KEYS', '--local', name, json], { env: toolEnv() });
  run(wranglerBin(), ['kv', 'key', 'put', '--binding', 'KEYS', '--local', 'id:key_demo', hash], { env: toolEnv() });
  // The admin API lists keys from D1, so the demo key is recorded there too.
  const sql = `INSERT OR REPLACE INTO keys (id, hash, team, user, status, created_at, record) VALUES ('key_demo', '${hash}', 'demo', 'you', 'active', '${now}', '${json.replace(/'/g, "''")}')`;
  run(wranglerBin(), ['d1', 'execute', 'DB', '--local', '--command', sql], { env: toolEnv({ CI: 'true' }) });
  return key;
}

function main() {
  ensureAll();
  ensureDevVars();
  log('applying migrations to local D1…');
  run(wranglerBin(), ['d1', 'migrations', 'apply', 'DB', '--local'], { env: toolEnv({ CI: 'true' }) });
  const key = ensureDemoKey();
  // wrangler checks that the [assets] directory exists before it runs the [build] hook.
  buildDashboard();
  const base = `http://127.0.0.1:${PORT}/v1`;
  log('');
  log(`relay base URL : ${base}`);
  log(`demo key       : ${key}`);
  log(`try it         : curl ${base}/chat/completions -H "Authorization: Bearer ${key}" \\`);
  log(`                   -H 'content-type: application/json' -d '{"model":"relay-echo","messages":[{"role":"user","content":"hello"}]}'`);
  log(`dashboard      : http://127.0.0.1:${PORT}/dashboard (sign in with ADMIN_TOKEN from .dev.vars)`);
  log('');
  const dev = spawn(wranglerBin(), ['dev', '--ip', '127.0.0.1', '--port', PORT], {
    cwd: ROOT,
    stdio: 'inherit',
    env: toolEnv(),
  });
  for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => dev.kill(sig));
  dev.on('exit', (code) => process.exit(code ?? 0));
}

try {
  main();
} catch (e) {
  log(e.message);
  process.exit(1);
}
