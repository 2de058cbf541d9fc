#!/usr/bin/env node
// `npm run admin -- <command>`: the operator's command line for the relay's admin HTTP API
// (keys with their limits and cache settings, team and user limits, usage, requests, audit).
// It owns argument parsing, token discovery and output formatting only; every rule about keys,
// limits and usage lives in the worker, so this file never second-guesses it: it checks the
// syntax of what it sends, the relay checks the ranges.
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

const KEY_FIELDS = ['id', 'team', 'user', 'env', 'name', 'status', 'created_at', 'updated_at', 'expires_at', 'models', 'aliases', 'metadata', 'limits', 'cache'];
const KEY_LIST_COLUMNS = ['id', 'team', 'user', 'env', 'name', 'status', 'created_at', 'expires_at'];
const USAGE_NUMBERS = ['requests', 'prompt_tokens', 'completion_tokens', 'cached_tokens', 'reasoning_tokens', 'cost_usd', 'errors', 'p50_duration_ms', 'p95_duration_ms'];
// Shown only when the relay reports them (a relay without the response cache has none).
const CACHE_NUMBERS = ['cache_hits', 'cache_hit_rate', 'saved_usd'];
const DOLLARS = new Set(['cost_usd', 'saved_usd', 'spent_usd', 'reserved_usd', 'remaining_usd', 'budget_usd']);
const AUDIT_COLUMNS = ['at', 'action', 'key_id', 'changes'];
const LIMIT_FIELDS = ['budget_usd', 'budget_period', 'rpm', 'tpm', 'max_parallel'];
const PERIODS = ['day', 'week', 'month', 'total'];
const STATE_FIELDS = ['period', 'period_start', 'resets_at', 'spent_usd', 'reserved_usd', 'remaining_usd', 'in_flight', 'requests_last_minute', 'tokens_last_minute'];
const LIMITS_LIST_COLUMNS = ['scope', 'team', 'user', ...LIMIT_FIELDS];
// What an operator asks of one request: what it was, how it ended, which limit refused it, and
// whether the cache answered it.
const REQUEST_COLUMNS = ['started_at', 'request_id', 'key_id', 'model_requested', 'status', 'outcome', 'error_code', 'limit', 'cache', 'cost_usd', 'saved_usd', 'duration_ms'];
const CACHE_SCOPES = ['key', 'user', 'team'];

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

// What `none` parses to. Not null: commander stores a parser's null as ''.
const NONE = Symbol('none');

/** `none` (clear the field; sent as JSON null) or what `parse` makes of the value. */
function orNone(parse) {
  return (value) => (value === 'none' ? NONE : parse(value));
}

/** An amount in USD as plain decimal digits; the relay decides whether it is in range. */
function dollars(value) {
  if (!/^\d+(\.\d+)?$/.test(value)) throw new InvalidArgumentError('expected an amount in USD such as 25 or 2.50.');
  return Number(value);
}

/** A whole number; the relay decides whether it is in range (so 0 gets its message, not ours). */
function wholeNumber(value) {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number.');
  return Number(value);
}

function seconds(value) {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a number of seconds.');
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
  // A key record's `cache: null` means caching is off, which says more than a dash.
  for (const f of fields) t.push([f, f === 'cache' && record[f] === null ? 'off' : cell(record[f])]);
  return t.toString();
}

/** Dollars to the micro-dollar (a single request often costs a fraction of a cent). */
function dollarCell(value) {
  return typeof value === 'number' && Number.isFinite(value) ? value.toFixed(6) : DASH;
}

/** A fraction as a percentage with one decimal; `–` when there is nothing to divide. */
function percentCell(value) {
  return typeof value === 'number' && Number.isFinite(value) ? `${(value * 100).toFixed(1)}%` : DASH;
}

/**
 * A scope view (`GET …/limits`): who it is, each limit (`–` when unset), then the state of the
 * current period and minute, one field a row so scripts can pick one out.
 */
function scopeTable(view) {
  const limits = view.limits && typeof view.limits === 'object' ? view.limits : {};
  const state = view.state && typeof view.state === 'object' ? view.state : {};
  const t = newTable();
  t.push(['scope', cell(view.scope)]);
  for (const f of ['key_id', 'team', 'user']) if (f in view) t.push([f, cell(view[f])]);
  for (const f of LIMIT_FIELDS) t.push([f, f === 'budget_usd' ? dollarCell(limits[f]) : cell(limits[f])]);
  for (const f of STATE_FIELDS) t.push([f, DOLLARS.has(f) ? dollarCell(state[f]) : cell(state[f])]);
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

/**
 * The limits object from `--budget`, `--period`, `--rpm`, `--tpm`, `--max-parallel` (each may
 * be `none`, which clears that field), or undefined when none was given.
 */
function limitsFrom(opts) {
  const names = { budget: 'budget_usd', period: 'budget_period', rpm: 'rpm', tpm: 'tpm', maxParallel: 'max_parallel' };
  const out = {};
  for (const [opt, field] of Object.entries(names)) if (opts[opt] !== undefined) out[field] = opts[opt] === NONE ? null : opts[opt];
  return Object.keys(out).length ? out : undefined;
}

/** The cache options given (`--cache-ttl`, `--cache-scope`, `--cache-sampled`), or undefined. */
function cacheFrom(opts) {
  const out = {};
  if (opts.cacheTtl !== undefined) out.ttl_s = opts.cacheTtl;
  if (opts.cacheScope !== undefined) out.scope = opts.cacheScope;
  if (opts.cacheSampled !== undefined) out.sampled = opts.cacheSampled;
  return Object.keys(out).length ? out : undefined;
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
  const limits = limitsFrom(opts);
  if (limits) body.limits = limits;
  const cache = cacheFrom(opts);
  if (cache) body.cache = cache;
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
  const limits = limitsFrom(opts);
  if (opts.clearLimits && limits) throw new CliError('--clear-limits clears every limit; it cannot be combined with --budget, --period, --rpm, --tpm or --max-parallel.', 2);
  // The relay merges limits field by field, so only the fields given change.
  if (opts.clearLimits) body.limits = null;
  else if (limits) body.limits = limits;
  const cache = cacheFrom(opts);
  if (opts.cacheOff && cache) throw new CliError('--cache-off turns caching off; it cannot be combined with --cache-ttl, --cache-scope or --cache-sampled.', 2);
  // An empty PATCH would look like success while changing nothing.
  if (!Object.keys(body).length && !cache && !opts.cacheOff) {
    throw new CliError(
      'nothing to update: give at least one of --name, --models, --alias, --expires, --status, --meta, --budget, --period, --rpm, --tpm, --max-parallel, --clear-limits, --cache-ttl, --cache-scope, --cache-sampled, --cache-off.',
      2,
    );
  }
  if (opts.cacheOff) body.cache = null;
  else if (cache) {
    // `cache` is one setting, so `--cache-scope team` alone keeps the key's current TTL and
    // sampling: they are read first and sent with it.
    const current = await sendJson(conn, 'GET', keyPath(id));
    const had = current && typeof current.cache === 'object' && current.cache !== null ? current.cache : {};
    body.cache = { ...had, ...cache };
  }
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
  if (DOLLARS.has(column)) return value === null || value === undefined ? DASH : Number(value).toFixed(6);
  if (column === 'cache_hit_rate') return percentCell(value);
  return cell(value);
}

async function usageReport(opts, cmd) {
  const conn = connection(cmd);
  const query = { ...usageFilters(cmd), group_by: opts.groupBy?.join(',') };
  const json = expectList(await sendJson(conn, 'GET', '/admin/usage', { query }), '/admin/usage');
  if (conn.json) return printJson(json);
  // The server's own group_by is the truth (it may add or reorder); the request is a fallback.
  const groups = Array.isArray(json.group_by) ? json.group_by : opts.groupBy ?? [];
  if (!json.data.length) return print('(no usage matches)');
  const cacheColumns = CACHE_NUMBERS.filter((c) => json.data.some((r) => c in r));
  const numbers = [...USAGE_NUMBERS, ...cacheColumns];
  const columns = [...groups, ...numbers];
  const rows = json.data.map((r) => Object.fromEntries(columns.map((c) => [c, usageCell(c, r[c])])));
  print(rowsTable(columns, rows, columns.map((c) => (numbers.includes(c) ? 'right' : 'left'))));
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

function requestCell(column, row) {
  if (column === 'limit') return row.limit_scope ? `${row.limit_scope} ${row.limit_name ?? ''}`.trim() : DASH;
  return usageCell(column, row[column]);
}

async function requests(opts, cmd) {
  const conn = connection(cmd);
  const query = { ...usageFilters(cmd), limit: opts.limit, cursor: opts.cursor };
  const json = expectList(await sendJson(conn, 'GET', '/admin/requests', { query }), '/admin/requests');
  if (conn.json) return printJson(json);
  if (!json.data.length) print('(no requests match)');
  else {
    const rows = json.data.map((r) => Object.fromEntries(REQUEST_COLUMNS.map((c) => [c, requestCell(c, r)])));
    const right = new Set(['status', 'cost_usd', 'saved_usd', 'duration_ms']);
    print(rowsTable(REQUEST_COLUMNS, rows, REQUEST_COLUMNS.map((c) => (right.has(c) ? 'right' : 'left'))));
  }
  if (json.next_cursor) print(`next cursor: ${json.next_cursor}`);
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

/** `/admin/limits/teams/{team}` or `…/users/{user}`: the path of a team or user scope. */
function scopePath(opts) {
  if (!opts.team) throw new CliError('give --team <team> (and --user <user> for one user of it).', 2);
  const team = `/admin/limits/teams/${encodeURIComponent(opts.team)}`;
  return opts.user ? `${team}/users/${encodeURIComponent(opts.user)}` : team;
}

function printScope(conn, json) {
  if (conn.json) return printJson(json);
  print(scopeTable(json));
}

async function limitsList(_opts, cmd) {
  const conn = connection(cmd);
  const json = expectList(await sendJson(conn, 'GET', '/admin/limits'), '/admin/limits');
  if (conn.json) return printJson(json);
  if (!json.data.length) return print('(no team or user limits; key limits are on the keys)');
  const rows = json.data.map((r) => {
    const limits = r.limits ?? {};
    return Object.fromEntries(LIMITS_LIST_COLUMNS.map((c) => [c, c in r ? cell(r[c]) : c === 'budget_usd' ? dollarCell(limits[c]) : cell(limits[c])]));
  });
  print(rowsTable(LIMITS_LIST_COLUMNS, rows));
}

async function limitsShow(opts, cmd) {
  const conn = connection(cmd);
  if (opts.key && (opts.team || opts.user)) throw new CliError('give either --key <id> or --team <team> [--user <user>], not both.', 2);
  if (!opts.key && !opts.team) throw new CliError('give --key <id>, or --team <team> (and --user <user> for one user of it).', 2);
  const path = opts.key ? `${keyPath(opts.key)}/limits` : scopePath(opts);
  printScope(conn, await sendJson(conn, 'GET', path));
}

async function limitsSet(opts, cmd) {
  const conn = connection(cmd);
  const path = scopePath(opts);
  const limits = limitsFrom(opts);
  // PUT replaces the scope's limits, so an empty one would silently clear them all.
  if (!limits) throw new CliError('nothing to set: give at least one of --budget, --period, --rpm, --tpm, --max-parallel (limits delete clears them all).', 2);
  printScope(conn, await sendJson(conn, 'PUT', path, { body: limits }));
}

async function limitsDelete(opts, cmd) {
  const conn = connection(cmd);
  printScope(conn, await sendJson(conn, 'DELETE', scopePath(opts)));
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

/** `--period`: one of the periods (or `none`, sent as null); the choices also show in the help. */
function periodOption(clearable, none) {
  const option = new Option('--period <period>', `budget period, calendar UTC (relay default: month)${none}`).choices(clearable ? [...PERIODS, 'none'] : PERIODS);
  // choices() installs the check as the parser; keep it and map `none` after it.
  const check = option.parseArg;
  return option.argParser((value, previous) => {
    const picked = check(value, previous);
    return picked === 'none' ? NONE : picked;
  });
}

/** The five limit options; `clearable` adds `none` (clear) to what each accepts. */
function addLimitOptions(cmd, { clearable }) {
  const none = clearable ? ", or 'none' to clear it" : '';
  const parse = (fn) => (clearable ? orNone(fn) : fn);
  return cmd
    .option('--budget <usd>', `spend budget in USD per period${none}`, parse(dollars))
    .addOption(periodOption(clearable, none))
    .option('--rpm <n>', `requests per minute${none}`, parse(wholeNumber))
    .option('--tpm <n>', `tokens per minute${none}`, parse(wholeNumber))
    .option('--max-parallel <n>', `requests in flight at once${none}`, parse(wholeNumber));
}

function addCacheOptions(cmd) {
  return cmd
    .option('--cache-ttl <seconds>', 'cache answers for this long (60 to 2592000); turns caching on', seconds)
    .addOption(new Option('--cache-scope <scope>', 'who shares cached answers (relay default: key)').choices(CACHE_SCOPES))
    .option('--cache-sampled', 'also cache sampled requests (temperature absent or above 0)')
    .option('--no-cache-sampled', 'cache only requests with temperature 0');
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

  const create = keys
    .command('create')
    .description('mint a key; it is shown once')
    .requiredOption('--team <team>', 'team slug')
    .requiredOption('--user <user>', 'user slug')
    .option('--env <env>', 'environment slug (relay default: prod)')
    .option('--name <name>', 'human-readable name')
    .option('--expires <time>', 'expiry, RFC 3339 (e.g. 2027-01-01T00:00:00Z)')
    .option('--models <list>', 'allowed models, comma-separated; a trailing * matches a family', commaList)
    .option('--alias <name=model>', 'model alias (repeatable)', pairs('name=model'))
    .option('--meta <key=value>', 'metadata entry (repeatable)', pairs('key=value'));
  addCacheOptions(addLimitOptions(create, { clearable: false })).action(keysCreate);

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

  const update = keys
    .command('update')
    .description('change a key; only the given fields are sent')
    .argument('<id>', 'key id')
    .option('--name <name>', 'human-readable name')
    .option('--models <list>', 'allowed models, comma-separated', commaList)
    .option('--alias <name=model>', 'model alias (repeatable; replaces the set sent)', pairs('name=model'))
    .option('--expires <time>', "expiry, RFC 3339, or 'none' to clear it")
    .addOption(status())
    .option('--meta <key=value>', 'metadata entry (repeatable)', pairs('key=value'));
  addCacheOptions(addLimitOptions(update, { clearable: true }))
    .option('--clear-limits', 'remove every limit of the key')
    .option('--cache-off', 'stop caching answers for the key')
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

  addUsageFilters(program.command('requests').description('usage rows one by one, newest first: outcome, the limit that refused one, cache status'))
    .option('--limit <n>', 'page size (relay: 1-200, default 50)', positiveInt)
    .option('--cursor <cursor>', 'continue from a previous page')
    .action(requests);

  const limits = program.command('limits').description('limits of teams, users and keys, and their spend so far');
  limits.command('list').description('every team and user that has limits').action(limitsList);
  limits
    .command('show')
    .description("a scope's limits and state: spent, reserved and remaining this period, reset time, in flight, last minute")
    .option('--key <id>', 'a key')
    .option('--team <team>', 'a team')
    .option('--user <user>', 'a user of --team')
    .action(limitsShow);
  addLimitOptions(
    limits
      .command('set')
      .description("replace a team's or user's limits (limits not given are removed); key limits: keys update")
      .requiredOption('--team <team>', 'team slug')
      .option('--user <user>', 'a user of the team'),
    { clearable: false },
  ).action(limitsSet);
  limits
    .command('delete')
    .description("remove a team's or user's limits (spend so far is kept)")
    .requiredOption('--team <team>', 'team slug')
    .option('--user <user>', 'a user of the team')
    .action(limitsDelete);

  program
    .command('audit')
    .description('the admin audit log')
    .option('--key <id>', 'only changes to this key, or to a scope\'s limits (team:<team>, user:<team>/<user>)')
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
