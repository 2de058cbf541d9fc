// The real Claude Code CLI (`claude -p`, npm @anthropic-ai/claude-code, pinned) through the
// relay: once on a Claude model (the mock Messages API), once on an OpenAI-format model (the
// mock that enforces gpt-4o-mini's 16,384-token cap and refuses unknown fields). Scratch HOME,
// CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1, and a dead proxy for anything that is not the
// relay on 127.0.0.1, so the CLI can never reach the internet.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRelay, ROOT } from './harness.mjs';
import { REPLY_TEXT as CLAUDE_REPLY } from '../mock/anthropic.mjs';
import { REPLY_TEXT as OPENAI_REPLY } from '../mock/provider.mjs';

/**
 * The native binary. It ships in the platform package (an optional dependency); the wrapper's
 * bin/claude.exe is a small placeholder until the wrapper's postinstall links the binary over
 * it, and npm skips install scripts that package.json's allowScripts does not approve. So the
 * platform package's own file is used first: it works however npm treated the scripts.
 */
function claudeBinary() {
  const base = join(ROOT, 'node_modules', '@anthropic-ai');
  const candidates = [
    join(base, `claude-code-${process.platform}-${process.arch}`, 'claude'),
    join(base, 'claude-code', 'bin', 'claude.exe'),
  ];
  // The placeholder is a shell script of a few hundred bytes; the real binary is ~400 MB.
  return candidates.find((p) => existsSync(p) && statSync(p).size > 1_000_000) ?? null;
}

const BINARY = claudeBinary();
const missing = BINARY ? false : 'npm package @anthropic-ai/claude-code (platform binary) not installed: run npm ci';
if (missing && process.env.CI === 'true') {
  // CI installs devDependencies with `npm ci`; a missing binary there is a broken install.
  test('claude -p needs its binary', () => assert.fail(missing));
}

let relay;
let key;
let home;

before(async () => {
  if (!BINARY) return;
  relay = await startRelay({ anthropic: { chunkDelayMs: 2 }, mock: { chunkDelayMs: 2 }, vars: { OPENAI_MODELS: 'mock-*,gpt-4o-mini*' } });
  ({ key } = await relay.seedKey({ team: 'cc', user: 'cli' }));
  home = mkdtempSync(join(tmpdir(), 'relay-claude-home-'));
});
after(async () => {
  await relay?.close();
  if (home) rmSync(home, { recursive: true, force: true });
});

/** The CLI's settled usage rows on `provider`, waiting (bounded) for streams' rows to land. */
async function cliRows(provider) {
  const deadline = Date.now() + 8000;
  for (;;) {
    const rows = (await relay.rows()).filter((row) => row.user === 'cli' && row.provider === provider);
    if ((rows.length && rows.every((row) => row.settled === 1)) || Date.now() > deadline) return rows;
    await new Promise((r) => setTimeout(r, 50));
  }
}

function claudeP(model, auth) {
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    TMPDIR: home,
    ANTHROPIC_BASE_URL: relay.url,
    [auth]: key,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    // Anything not bound for the relay goes to a closed local port and fails at once.
    HTTPS_PROXY: 'http://127.0.0.1:9',
    HTTP_PROXY: 'http://127.0.0.1:9',
    NO_PROXY: '127.0.0.1,localhost',
  };
  return new Promise((resolve) => {
    execFile(BINARY, ['-p', 'Reply with one short sentence.', '--model', model], { cwd: home, env, timeout: 90_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? error.code ?? 1 : 0, stdout, stderr });
    });
  });
}

test('claude -p answers through the relay on a Claude model (ANTHROPIC_API_KEY = relay key)', { skip: missing }, async () => {
  relay.claude.reset();
  const r = await claudeP('claude-mock', 'ANTHROPIC_API_KEY');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(CLAUDE_REPLY.replace('.', '\\.')));
  const calls = relay.claude.requests.filter((q) => q.path === '/v1/messages');
  assert.ok(calls.length >= 1);
  assert.equal(calls[0].headers['x-api-key'], 'sk-ant-mock', 'the provider key, never the relay key');
  assert.match(calls[0].headers['anthropic-beta'] ?? '', /claude-code-/, 'betas forwarded to Claude');
  const rows = await cliRows('anthropic');
  assert.ok(rows.length >= 1 && rows.every((row) => row.outcome === 'ok'), JSON.stringify(rows));
});

test('claude -p answers through the relay on an OpenAI-format model (ANTHROPIC_AUTH_TOKEN = relay key)', { skip: missing }, async () => {
  relay.provider.reset();
  const r = await claudeP('gpt-4o-mini', 'ANTHROPIC_AUTH_TOKEN');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(OPENAI_REPLY.replace('.', '\\.')));
  const calls = relay.provider.requests.filter((q) => q.path === '/v1/chat/completions');
  assert.ok(calls.length >= 1);
  const up = calls[0];
  assert.equal(up.headers.authorization, 'Bearer sk-mock');
  const leaked = Object.keys(up.headers).filter((h) => /^(anthropic-|x-claude-code-)/.test(h));
  assert.deepEqual(leaked, [], 'no Claude-only header reaches an OpenAI-format upstream');
  assert.equal(up.body.max_completion_tokens, 16384, 'Claude Code asks for 32000; gpt-4o-mini takes 16384');
  const roles = up.body.messages.map((m) => m.role);
  assert.ok(roles.indexOf('system', 1) > 0, `a mid-conversation system message, kept in place: ${roles}`);
  const rows = await cliRows('openai');
  assert.ok(rows.length >= 1 && rows.every((row) => row.outcome === 'ok' && row.finish_reason === 'end_turn'), JSON.stringify(rows));
});
