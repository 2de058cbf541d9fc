#!/usr/bin/env node
// `npm run admin -- <command>`: the operator's command line for the relay's admin HTTP API
// (keys, usage, audit). It owns argument parsing, token discovery and output formatting only;
// every rule about keys and usage lives in the worker, so this file never second-guesses it.
import { createWriteStream, existsSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import Table from 'cli-table3';

const DEFAULT_URL = 'http://127.0.0.1:8787';
// A relay that accepts the connection but never answers should not hang a script forever.
const REQUEST_TIMEOUT_MS = 60_000;
// `--all` against a server whose cursor never ends must still terminate.
const MAX_PAGES = 1000;
const DASH = '–';

const KEY_FIELDS = ['id', 'team', 'user', 'env', 'name', 'status', 'created_at', 'updated_at', 'expires_at', 'models', 'aliases', 'metadata'];
const KEY_LIST_COLUMNS = ['id', 'team', 'user', 'env', 'name', 'status', 'created_at', 'expires_at'];
const USAGE_NUMBERS = ['requests', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'reasoning_tokens', 'cost_usd', 'errors', 'p50_duration_ms', 'p95_duration_ms'];
const AUDIT_COLUMNS = ['at', 'action', 'key_id', 'changes'];

/** A failure already worded for the operator; `exitCode` 2 means "called wrongly", 1 "it failed". */
class CliError extends Error {
  constructor(message, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

// ---------------------------------------------------------------------------------------------
// Option parsers (commander calls them with the raw value and the previous value).

function positiveInt(value) {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer.');
  return Number(value);
}

function commaList(value) {
  return value.split(',').map((s) => s.trim()).filter(Boolean);
}

/** Repeatable `name=value` options collected into one object; a repeated name is a mistake, not an override. */
function pairs(what) {
  return (value, previous) => {
    const at = value.indexOf('=');
    if (at < 1) throw new InvalidArgumentError(`expected ${what}.`);
    const name = value.slice(0, at).trim();
    const out = { ...(previous ?? {}) };
    if (Object.hasOwn(out, name)) throw new InvalidArgumentError(`'${name}' given twice.`);
    out[name] = value.slice(at + 1).trim();
    return out;
  };
}

// ---------------------------------------------------------------------------------------------
// Connection: where to send requests and with which token.

/** ADMIN_TOKEN from a dotenv-style `.dev.vars` (what `npm start` writes), or undefined. */
function tokenFromDevVars(dir) {
  const path = join(dir, '.dev.vars');
  if (!existsSync(path)) return undefined;
  for (const raw of readFileSync(path, 'utf8').split(/\r?\n/)) {
    const m = raw.match(/^\s*(?:export\s+)?ADMIN_TOKEN\s*=\s*(.*)$/);
    if (!m) continue;
    let value = m[1].trim();
    const quoted = value.match(/^(['"])(.*)\1$/);
    value = quoted ? quoted[2] : value.replace(/\s+#.*$/, '');
    if (value) return value;
  }
  return undefined;
}

function connection(cmd) {
  const opts = cmd.optsWithGlobals();
  let parsed;
  try {
    parsed = new URL(opts.url);
  } catch {
    throw new CliError(`--url '${opts.url}' is not a URL (expected e.g. ${DEFAULT_URL}).`, 2);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new CliError(`--url must be http:// or https://, got '${parsed.protocol}'.`, 2);
  }
  // fetch() refuses them anyway, and its message would echo the password back.
  if (parsed.username || parsed.password) throw new CliError('--url must not contain credentials; pass the admin token with --token.', 2);
  // An empty RELAY_ADMIN_TOKEN is more likely an unset shell variable than a real token. The
  // local .dev.vars token is only ever sent to a local relay, never to a remote one.
  const local = ['127.0.0.1', 'localhost', '[::1]'].includes(parsed.hostname);
  const token = opts.token || (local ? tokenFromDevVars(process.cwd()) : undefined);
  if (!token) {
    throw new CliError(
      'no admin token: pass --token <token>, set RELAY_ADMIN_TOKEN, or run from a directory whose .dev.vars has ADMIN_TOKEN=…',
      2,
    );
  }
  // Keeps a path prefix (a relay behind a proxy) but never doubles the slash.
  const base = opts.url.replace(/\/+$/, '');
  const shown = `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
  return { base, shown, token, json: Boolean(opts.json) };
}

function queryString(params) {
  const parts = [];
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    // Commas are legal in a query and keep `group_by=team,model` readable in relay logs.
    parts.push(`${name}=${encodeURIComponent(String(value)).replace(/%2C/gi, ',')}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

/** A transport failure, worded by whether it happened before the response (`connect`) or during it. */
function unreachable(conn, err, phase = 'connect') {
  if (err?.name === 'TimeoutError') return new CliError(`no answer from the relay at ${conn.shown} within ${REQUEST_TIMEOUT_MS / 1000} s.`);
  const cause = err?.cause;
  const why = cause?.code || cause?.message || err?.message || String(err);
  if (phase === 'body') return new CliError(`the response from the relay at ${conn.shown} was cut off (${why}).`);
  return new CliError(`could not reach the relay at ${conn.shown} (${why}).`);
}

/** The relay's OpenAI-shaped error as one line, or the HTTP status when the body is something else. */
function describeFailure(res, text) {
  let error;
  try {
    error = JSON.parse(text)?.error;
  } catch {
    error = undefined;
  }
  if (error && typeof error.message === 'string') {
    return error.param ? `${error.message} (param: ${error.param})` : error.message;
  }
  const body = text.trim().replace(/\s+/g, ' ').slice(0, 200);
  return `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}${body ? `: ${body}` : ''}`;
}

/** Sends one admin request; resolves to the Response once its status is known to be 2xx. */
async function send(conn, method, path, { query = {}, body } = {}) {
  const url = `${conn.base}${path}${queryString(query)}`;
  let res;
  try {
    res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${conn.token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (err) {
    throw unreachable(conn, err);
  }
  if (!res.ok) {
    let text = '';
    try {
      text = await res.text();
    } catch {
      // The status alone still says what went wrong.
    }
    throw new CliError(describeFailure(res, text));
  }
  return res;
}

async function sendJson(conn, method, path, options) {
  const res = await send(conn, method, path, options);
  let text;
  try {
    text = await res.text();
  } catch (err) {
    throw unreachable(conn, err, 'body');
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(`the relay at ${conn.shown} answered ${method} ${path} with something that is not JSON.`);
  }
}

function expectList(json, path) {
  if (!json || !Array.isArray(json.data)) throw new CliError(`unexpected response from ${path}: no 'data' list.`);
  return json;
}

// ---------------------------------------------------------------------------------------------
// Output.

function print(text) {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

function printJson(value) {
  print(JSON.stringify(value, null, 2));
}

function cell(value) {
  if (value === null || value === undefined) return DASH;
  if (Array.isArray(value)) return value.length ? value.map((v) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v))).join(', ') : '(none)';
  if (typeof value === 'object') {
    const entries = Object.entries(value);
    if (!entries.length) return '(none)';
    return entries.map(([k, v]) => `${k}=${typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`).join('\n');
  }
  return String(value);
}

// No colours: output is read by scripts and tests as often as by people.
function newTable(options = {}) {
  return new Table({ style: { head: [], border: [] }, ...options });
}

function recordTable(record) {
  const fields = [...KEY_FIELDS.filter((f) => f in record), ...Object.keys(record).filter((f) => !KEY_FIELDS.includes(f) && f !== 'key')];
  const t = newTable();
  for (const f of fields) t.push([f, cell(record[f])]);
  return t.toString();
}

function rowsTable(columns, rows, aligns = columns.map(() => 'left')) {
  const t = newTable({ head: columns, colAligns: aligns });
  for (const row of rows) t.push(columns.map((c) => row[c]));
  return t.toString();
}

/** A freshly minted or rotated key, then its record: the only time the key is ever visible. */
function printMinted(conn, json) {
  if (conn.json) return printJson(json);
  if (typeof json.key !== 'string') throw new CliError('the relay did not return a key.');
  print(`Key (shown once): ${json.key}`);
  print('Store it now: the relay keeps only its hash and cannot show it again.\n');
  print(recordTable(json));
}

function printRecord(conn, json) {
  if (conn.json) return printJson(json);
  print(recordTable(json));
}

// ---------------------------------------------------------------------------------------------
// Commands.

function keyPath(id) {
  return `/admin/keys/${encodeURIComponent(id)}`;
}

async function keysCreate(opts, cmd) {
  const conn = connection(cmd);
  const body = { team: opts.team, user: opts.user };
  if (opts.env !== undefined) body.env = opts.env;
  if (opts.name !== undefined) body.name = opts.name;
  // "none" reads naturally as "no expiry"; a new key without expires_at has none.
  if (opts.expires !== undefined && opts.expires !== 'none') body.expires_at = opts.expires;
  if (opts.models !== undefined) body.models = opts.models;
  if (opts.alias !== undefined) body.aliases = opts.alias;
  if (opts.meta !== undefined) body.metadata = opts.meta;
  printMinted(conn, await sendJson(conn, 'POST', '/admin/keys', { body }));
}

async function keysList(opts, cmd) {
  const conn = connection(cmd);
  const filters = { team: opts.team, user: opts.user, status: opts.status, limit: opts.limit };
  const data = [];
  let cursor = opts.cursor;
  let pages = 0;
  let first;
  do {
    const page = expectList(await sendJson(conn, 'GET', '/admin/keys', { query: { ...filters, cursor } }), '/admin/keys');
    first ??= page;
    data.push(...page.data);
    cursor = page.next_cursor ?? null;
    pages += 1;
  } while (opts.all && cursor && pages < MAX_PAGES);
  if (opts.all && cursor) {
    process.stderr.write(`warning: stopped after ${MAX_PAGES} pages; continue with --cursor ${cursor}\n`);
  }
  if (conn.json) return printJson(opts.all ? { object: 'list', data, next_cursor: cursor } : first);
  print(data.length ? rowsTable(KEY_LIST_COLUMNS, data.map((r) => Object.fromEntries(KEY_LIST_COLUMNS.map((c) => [c, cell(r[c])])))) : '(no keys)');
  if (!opts.all && cursor) print(`next cursor: ${cursor}`);
}

async function keysShow(id, _opts, cmd) {
  const conn = connection(cmd);
  printRecord(conn, await sendJson(conn, 'GET', keyPath(id)));
}

async function keysUpdate(id, opts, cmd) {
  const conn = connection(cmd);
  const body = {};
  if (opts.name !== undefined) body.name = opts.name;
  if (opts.models !== undefined) body.models = opts.models;
  if (opts.alias !== undefined) body.aliases = opts.alias;
  if (opts.expires !== undefined) body.expires_at = opts.expires === 'none' ? null : opts.expires;
  if (opts.status !== undefined) body.status = opts.status;
  if (opts.meta !== undefined) body.metadata = opts.meta;
  // An empty PATCH would look like success while changing nothing.
  if (!Object.keys(body).length) throw new CliError('nothing to update: give at least one of --name, --models, --alias, --expires, --status, --meta.', 2);
  printRecord(conn, await sendJson(conn, 'PATCH', keyPath(id), { body }));
}

async function keysRotate(id, _opts, cmd) {
  const conn = connection(cmd);
  printMinted(conn, await sendJson(conn, 'POST', `${keyPath(id)}/rotate`));
}

async function keysRevoke(id, _opts, cmd) {
  const conn = connection(cmd);
  printRecord(conn, await sendJson(conn, 'DELETE', keyPath(id)));
}

/** Filters may sit on `usage` itself or after `usage export`; the nearer one wins. */
function usageFilters(cmd) {
  const own = cmd.opts();
  const parent = cmd.parent && cmd.parent.name() === 'usage' ? cmd.parent.opts() : {};
  const merged = { ...parent, ...own };
  return {
    from: merged.from,
    to: merged.to,
    team: merged.team,
    user: merged.user,
    key: merged.key,
    model: merged.model,
    provider: merged.provider,
    outcome: merged.outcome,
  };
}

function usageCell(column, value) {
  if (column === 'cost_usd') return value === null || value === undefined ? DASH : Number(value).toFixed(6);
  return cell(value);
}

async function usageReport(opts, cmd) {
  const conn = connection(cmd);
  const query = { ...usageFilters(cmd), group_by: opts.groupBy?.join(',') };
  const json = expectList(await sendJson(conn, 'GET', '/admin/usage', { query }), '/admin/usage');
  if (conn.json) return printJson(json);
  // The server's own group_by is the truth (it may add or reorder); the request is a fallback.
  const groups = Array.isArray(json.group_by) ? json.group_by : opts.groupBy ?? [];
  const columns = [...groups, ...USAGE_NUMBERS];
  if (!json.data.length) return print('(no usage matches)');
  const rows = json.data.map((r) => Object.fromEntries(columns.map((c) => [c, usageCell(c, r[c])])));
  print(rowsTable(columns, rows, columns.map((c) => (USAGE_NUMBERS.includes(c) ? 'right' : 'left'))));
}

async function usageExport(opts, cmd) {
  const conn = connection(cmd);
  const query = { format: opts.format, ...usageFilters(cmd) };
  const res = await send(conn, 'GET', '/admin/usage/export', { query });
  // Streamed, so a large export never has to fit in memory.
  const body = res.body ? Readable.fromWeb(res.body) : Readable.from([]);
  try {
    if (opts.out) {
      await pipeline(body, createWriteStream(opts.out));
    } else {
      for await (const chunk of body) {
        if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
      }
    }
  } catch (err) {
    // A half-written export looks complete to whoever opens it later.
    if (opts.out) rmSync(opts.out, { force: true });
    // Local file errors carry a syscall; a broken download surfaces as fetch's TypeError.
    if (err?.syscall) throw new CliError(`cannot write ${opts.out ?? 'stdout'}: ${err.message}`);
    throw unreachable(conn, err, 'body');
  }
  if (opts.out) process.stderr.write(`wrote ${opts.out}\n`);
}

/** `{field: {from, to}}` (the relay's diff shape) as `field: old → new`; anything else as a map. */
function changesCell(changes) {
  if (!changes || typeof changes !== 'object' || Array.isArray(changes)) return cell(changes);
  const entries = Object.entries(changes);
  if (!entries.length) return '(none)';
  const scalar = (v) => (typeof v === 'object' && v !== null ? JSON.stringify(v) : cell(v));
  return entries
    .map(([k, v]) => {
      const isDiff = v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 2 && 'from' in v && 'to' in v;
      return isDiff ? `${k}: ${scalar(v.from)} → ${scalar(v.to)}` : `${k}=${scalar(v)}`;
    })
    .join('\n');
}

async function audit(opts, cmd) {
  const conn = connection(cmd);
  const json = expectList(await sendJson(conn, 'GET', '/admin/audit', { query: { key: opts.key, limit: opts.limit } }), '/admin/audit');
  if (conn.json) return printJson(json);
  if (!json.data.length) return print('(no audit entries)');
  print(rowsTable(AUDIT_COLUMNS, json.data.map((r) => Object.fromEntries(AUDIT_COLUMNS.map((c) => [c, c === 'changes' ? changesCell(r[c]) : cell(r[c])])))));
}

// ---------------------------------------------------------------------------------------------
// Command tree.

function addUsageFilters(cmd) {
  return cmd
    .option('--from <time>', 'start, inclusive (date or RFC 3339 time)')
    .option('--to <time>', 'end (date or RFC 3339 time)')
    .option('--team <team>', 'only this team')
    .option('--user <user>', 'only this user')
    .option('--key <id>', 'only this key id')
    .option('--model <model>', 'only this model')
    .option('--provider <provider>', 'only this provider')
    .option('--outcome <outcome>', 'only this outcome');
}

function buildProgram() {
  const program = new Command('admin')
    .description('Manage an llm-relay through its admin API.')
    .addOption(new Option('--url <url>', 'relay base URL').env('RELAY_URL').default(DEFAULT_URL))
    .addOption(new Option('--token <token>', 'admin token (falls back to ADMIN_TOKEN in ./.dev.vars)').env('RELAY_ADMIN_TOKEN'))
    .option('--json', 'print the JSON response instead of a table')
    .showHelpAfterError('(run with --help for usage)')
    // --url/--token/--json work after any subcommand too, so its help should list them.
    .configureHelp({ showGlobalOptions: true })
    // Throw instead of exiting so usage errors get exit code 2, distinct from API failures (1).
    .exitOverride();

  const keys = program.command('keys').description('create, list, change and revoke relay keys');
  const status = () => new Option('--status <status>', 'key status').choices(['active', 'revoked']);

  keys
    .command('create')
    .description('mint a key; it is shown once')
    .requiredOption('--team <team>', 'team slug')
    .requiredOption('--user <user>', 'user slug')
    .option('--env <env>', 'environment slug (relay default: prod)')
    .option('--name <name>', 'human-readable name')
    .option('--expires <time>', 'expiry, RFC 3339 (e.g. 2027-01-01T00:00:00Z)')
    .option('--models <list>', 'allowed models, comma-separated; a trailing * matches a family', commaList)
    .option('--alias <name=model>', 'model alias (repeatable)', pairs('name=model'))
    .option('--meta <key=value>', 'metadata entry (repeatable)', pairs('key=value'))
    .action(keysCreate);

  keys
    .command('list')
    .description('list keys (never shows the keys themselves)')
    .option('--team <team>', 'only this team')
    .option('--user <user>', 'only this user')
    .addOption(status())
    .option('--limit <n>', 'page size', positiveInt)
    .option('--cursor <cursor>', 'continue from a previous page')
    .option('--all', `follow the cursor through every page (at most ${MAX_PAGES})`)
    .action(keysList);

  keys.command('show').description('show one key record').argument('<id>', 'key id').action(keysShow);

  keys
    .command('update')
    .description('change a key; only the given fields are sent')
    .argument('<id>', 'key id')
    .option('--name <name>', 'human-readable name')
    .option('--models <list>', 'allowed models, comma-separated', commaList)
    .option('--alias <name=model>', 'model alias (repeatable; replaces the set sent)', pairs('name=model'))
    .option('--expires <time>', "expiry, RFC 3339, or 'none' to clear it")
    .addOption(status())
    .option('--meta <key=value>', 'metadata entry (repeatable)', pairs('key=value'))
    .action(keysUpdate);

  keys.command('rotate').description('replace the secret of a key; the new key is shown once').argument('<id>', 'key id').action(keysRotate);
  keys.command('revoke').description('revoke a key').argument('<id>', 'key id').action(keysRevoke);

  const usage = addUsageFilters(program.command('usage').description('usage totals, optionally grouped'))
    .option('--group-by <columns>', 'group by these columns, comma-separated (e.g. team,model)', commaList)
    // Without this, `usage` would swallow the filters written after `usage export`.
    .enablePositionalOptions()
    .action(usageReport);

  addUsageFilters(usage.command('export').description('raw usage export to stdout or a file'))
    .option('--format <format>', 'export format', 'csv')
    .option('--out <file>', 'write to this file instead of stdout')
    .action(usageExport);

  program
    .command('audit')
    .description('the admin audit log')
    .option('--key <id>', 'only changes to this key')
    .option('--limit <n>', 'at most this many entries', positiveInt)
    .action(audit);

  return program;
}

// `admin … | head` closes the pipe early; that is not an error worth a stack trace.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // Commander has already printed its message (or the help).
    process.exitCode = err.exitCode === 0 ? 0 : 2;
  } else if (err instanceof CliError) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`error: unexpected failure: ${err?.stack ?? err}\n`);
    process.exitCode = 1;
  }
}
