// The real Codex CLI (`@openai/codex`, `codex exec`) against the relay, configured as a user
// would (a custom provider with `wire_api = "responses"`), for an OpenAI model (pass-through), an
// OpenAI-compatible model and a Claude model (both translated through Chat). Codex runs with a
// scratch HOME/CODEX_HOME and everything that would reach the internet switched off (update
// check, analytics, the plugin marketplace sync, apps); it talks to 127.0.0.1 only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelay, ROOT } from './harness.mjs';
import { startMockProvider } from '../mock/provider.mjs';
import { RESPONSES_WORDS } from '../mock/responses.mjs';
import { REPLY_TEXT as CLAUDE_TEXT } from '../mock/anthropic.mjs';

const CODEX = join(ROOT, 'node_modules', '.bin', 'codex');
const RUN_TIMEOUT_MS = 90_000;

let relay;
let compat;
let key;
let scratch;

before(async () => {
  compat = await startMockProvider({ apiKey: 'sk-compat' });
  const providers = {
    compat: { kind: 'openai-compatible', base_url: compat.url, key_secret: 'COMPAT_KEY', models: ['compat-*'] },
  };
  relay = await startRelay({ anthropic: true, vars: { PROVIDERS: JSON.stringify(providers), COMPAT_KEY: 'sk-compat' } });
  ({ key } = await relay.seedKey({ team: 'codex', user: 'dev' }));
  scratch = mkdtempSync(join(tmpdir(), 'relay-codex-'));
});
after(async () => {
  await relay?.close();
  await compat?.close();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** The config.toml a user writes (README "Codex CLI"), plus the offline switches. */
function configToml(model) {
  return `model = "${model}"
model_provider = "relay"
check_for_update_on_startup = false

[model_providers.relay]
name = "llm-relay"
base_url = "${relay.base}"
env_key = "RELAY_API_KEY"
wire_api = "responses"

[analytics]
enabled = false

[features]
plugins = false
remote_plugin = false
plugin_sharing = false
apps = false
in_app_updates = false
api_key_model_discovery = false
skill_mcp_dependency_install = false
`;
}

/** Runs `codex exec prompt` for `model` in a fresh home; resolves { code, stdout, stderr }. */
function codexExec(model, prompt) {
  const home = join(scratch, model);
  const codexHome = join(home, '.codex');
  const work = join(home, 'work');
  mkdirSync(codexHome, { recursive: true });
  mkdirSync(work, { recursive: true });
  writeFileSync(join(codexHome, 'config.toml'), configToml(model));
  const env = { PATH: process.env.PATH, HOME: home, CODEX_HOME: codexHome, RELAY_API_KEY: key, NO_COLOR: '1' };
  return new Promise((resolve, reject) => {
    const child = spawn(CODEX, ['exec', '--skip-git-repo-check', '--ephemeral', '--color', 'never', '-C', work, prompt], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

async function rowsFor(model, n) {
  for (let i = 0; i < 400; i++) {
    const rows = (await relay.rows()).filter((r) => r.model_requested === model);
    if (rows.length >= n && rows.every((r) => r.settled === 1)) return rows;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no settled rows for ${model}`);
}

const cases = [
  { model: 'mock-ok', provider: 'openai', answer: RESPONSES_WORDS.join('') },
  { model: 'compat-ok', provider: 'compat', answer: 'Hello from the mock provider.' },
  { model: 'claude-mock', provider: 'anthropic', answer: CLAUDE_TEXT },
];

for (const { model, provider, answer } of cases) {
  test(`codex exec prints the ${provider} model's answer and leaves one usage row per request`, async () => {
    relay.provider.reset();
    compat.reset();
    relay.claude.reset();
    const run = await codexExec(model, 'Say hi');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim(), answer, run.stderr);
    const upstream = { openai: relay.provider, compat, anthropic: relay.claude }[provider].requests;
    assert.ok(upstream.length >= 1);
    if (provider === 'openai') assert.equal(upstream[0].path, '/v1/responses');
    if (provider === 'compat') {
      assert.equal(upstream[0].path, '/v1/chat/completions');
      assert.ok(upstream[0].body.messages.some((m) => m.role === 'user'));
      assert.ok(!upstream[0].body.tools.some((t) => t.type !== 'function'), 'hosted tools left out');
    }
    if (provider === 'anthropic') assert.equal(upstream[0].path, '/v1/messages');
    const rows = await rowsFor(model, upstream.length);
    assert.equal(rows.length, upstream.length, 'one row per request');
    for (const row of rows) {
      assert.deepEqual(
        [row.route, row.client_shape, row.provider, row.stream, row.status, row.outcome, row.usage_source],
        ['/v1/responses', 'responses', provider, 1, 200, 'ok', 'upstream'],
      );
      assert.ok(row.prompt_tokens > 0 && row.completion_tokens > 0);
    }
  });
}
