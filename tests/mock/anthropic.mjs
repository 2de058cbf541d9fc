// Mock Anthropic Messages API upstream for the relay's runtime tests: scripted
// /v1/messages behaviours (chosen by `model`), count_tokens, models list, and request recording.
// Wire formats follow protocol.md §5; the OpenAI-side counterpart is ./provider.mjs.
import { listen, track, sendJson, playSse } from './http.mjs';

const REPLY_WORDS = ['Hello ', 'from ', 'Claude ', 'mock.'];
export const REPLY_TEXT = REPLY_WORDS.join('');
const LONG_WORDS = Array.from({ length: 100 }, (_, i) => `w${i} `);
export const API_VERSION = '2023-06-01';
const ERROR_TYPES = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  429: 'rate_limit_error',
  500: 'api_error',
  529: 'overloaded_error',
};
const MOCK_MODELS = [
  'claude-mock', 'claude-mock-cached', 'claude-mock-tools', 'claude-mock-thinking',
  'claude-mock-max', 'claude-mock-slow', 'claude-mock-overloaded', 'claude-mock-drop',
  'claude-mock-patch',
];
// Anthropic sends the ping payload with a space after the colon (§5.4); relays must pass it
// through untouched, so the mock reproduces it byte for byte rather than via JSON.stringify.
export const PING_DATA = '{"type": "ping"}';
export const OVERLOADED_DATA = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}';

// Mirrors §5.2's example: text, then a tool_use whose input streams in fragments, plus a
// second argument-less tool so relays must handle a lone "" fragment (input {}).
const TOOL_TEXT = 'Checking.';
const TOOL_BLOCKS = [
  { id: 'toolu_mock_1', name: 'get_weather', fragments: ['', '{"city":', '"SF"}'], input: { city: 'SF' } },
  { id: 'toolu_mock_2', name: 'get_time', fragments: [''], input: {} },
];
// What claude-mock-patch "writes" with the first string-input tool it was given (a custom tool
// after translation): escapes, quotes and non-ASCII, streamed in fragments that cut through
// the key and escape sequences, as Claude's partial JSON can.
export const PATCH_TEXT = '*** Begin Patch\n*** Update File: "main.py"\n-print(\'hi\')\n+print(\'héllo\')\t# ✓\n*** End Patch';
function patchFragments() {
  const raw = JSON.stringify({ input: PATCH_TEXT });
  // Inside the key, then just after each of the first backslashes of \n, \" and \t.
  const inEscape = ['\\n', '\\"', '\\t'].map((e) => raw.indexOf(e) + 1);
  const cuts = [0, 4, 11, ...inEscape, raw.indexOf('✓'), raw.length - 2, raw.length].sort((a, b) => a - b);
  return cuts.slice(1).map((c, i) => raw.slice(cuts[i], c));
}
const THINKING_TEXT = 'Let me think.';
const THINKING_SIG = 'sig';
const THINKING_REPLY = 'Done.';

function errorJson(type, message, requestId) {
  const o = { type: 'error', error: { type, message } };
  if (requestId) o.request_id = requestId;
  return JSON.stringify(o);
}

// Counts every piece of text the model would read, so relays can be checked for dropping
// system prompts or text blocks when they translate requests.
function textChars(content) {
  if (typeof content === 'string') return content.length;
  if (!Array.isArray(content)) return 0;
  let n = 0;
  for (const b of content) {
    if (b?.type === 'text' && typeof b.text === 'string') n += b.text.length;
    else if (b?.type === 'tool_result') n += textChars(b.content);
  }
  return n;
}

export function inputTokens(body) {
  let chars = textChars(body?.system);
  for (const m of Array.isArray(body?.messages) ? body.messages : []) chars += textChars(m?.content);
  return 10 + Math.ceil(chars / 4);
}

// A value that satisfies `schema`, as a model forced to call a tool produces one: every
// property (required or not), the first enum/const/anyOf choice, local $refs followed.
export function exampleFor(schema, root = schema, depth = 0) {
  if (!schema || typeof schema !== 'object' || depth > 8) return null;
  if (typeof schema.$ref === 'string' && schema.$ref.startsWith('#/')) {
    const target = schema.$ref.slice(2).split('/').reduce((o, k) => o?.[k], root);
    return exampleFor(target, root, depth + 1);
  }
  if ('const' in schema) return schema.const;
  if (Array.isArray(schema.enum)) return schema.enum[0];
  const alt = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(alt)) return exampleFor(alt.find((a) => a?.type !== 'null') ?? alt[0], root, depth + 1);
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'string': return 'mock';
    case 'integer': return 1;
    case 'number': return 1.5;
    case 'boolean': return true;
    case 'null': return null;
    case 'array': return [exampleFor(schema.items ?? {}, root, depth + 1)];
    default: {
      const out = {};
      for (const [k, v] of Object.entries(schema.properties ?? {})) out[k] = exampleFor(v, root, depth + 1);
      return out;
    }
  }
}

// tool_choice {"type":"tool"} (or "any") obliges the model to call a tool and nothing else:
// no text block first, as Anthropic documents for forced tool use.
function forcedTool(body) {
  const tools = Array.isArray(body?.tools) ? body.tools : [];
  const choice = body?.tool_choice;
  if (choice?.type === 'tool') return tools.find((t) => t?.name === choice.name) ?? null;
  if (choice?.type === 'any') return tools[0] ?? null;
  return null;
}

// One "plan" per behaviour drives both the stream and the non-stream path, so they cannot drift.
function planFor(model, body) {
  const input = inputTokens(body);
  const usage = (output, cacheWrite = 0, cacheRead = 0) => ({
    input_tokens: input,
    cache_creation_input_tokens: cacheWrite,
    cache_read_input_tokens: cacheRead,
    output_tokens: output,
  });
  const text = (words) => ({ type: 'text', words });
  const forced = forcedTool(body);
  if (forced) {
    const input = exampleFor(forced.input_schema);
    const raw = JSON.stringify(input);
    const third = Math.ceil(raw.length / 3);
    const fragments = ['', raw.slice(0, third), raw.slice(third, 2 * third), raw.slice(2 * third)];
    return {
      blocks: [{ type: 'tool_use', id: 'toolu_mock_forced', name: forced.name, fragments, input }],
      stop: 'tool_use',
      usage: usage(20),
    };
  }
  switch (model) {
    case 'claude-mock-cached':
      // Current API versions repeat the cumulative input/cache counts in message_delta (§5.4).
      return { blocks: [text(REPLY_WORDS)], stop: 'end_turn', usage: usage(4, 12, 60), repeatInput: true };
    case 'claude-mock-tools':
      return {
        blocks: [text([TOOL_TEXT]), ...TOOL_BLOCKS.map((t) => ({ type: 'tool_use', ...t }))],
        stop: 'tool_use',
        usage: usage(30),
      };
    case 'claude-mock-patch': {
      const tool = (body.tools ?? []).find((t) => t.input_schema?.properties?.input?.type === 'string');
      if (!tool) return { blocks: [text(REPLY_WORDS)], stop: 'end_turn', usage: usage(4) };
      return {
        blocks: [text(['Patching.']), { type: 'tool_use', id: 'toolu_mock_patch', name: tool.name,
          fragments: patchFragments(), input: { input: PATCH_TEXT } }],
        stop: 'tool_use',
        usage: usage(40),
      };
    }
    case 'claude-mock-thinking':
      return {
        blocks: [{ type: 'thinking', thinking: THINKING_TEXT, signature: THINKING_SIG }, text([THINKING_REPLY])],
        stop: 'end_turn',
        usage: usage(10),
      };
    case 'claude-mock-max':
      return { blocks: [text(REPLY_WORDS)], stop: 'max_tokens', usage: usage(4) };
    case 'claude-mock-long':
      // 100 text deltas, as the OpenAI mock's mock-long: the bench's translation stream.
      return { blocks: [text(LONG_WORDS)], stop: 'end_turn', usage: usage(100) };
    default:
      return { blocks: [text(REPLY_WORDS)], stop: 'end_turn', usage: usage(4) };
  }
}

function messageBody(ctx, plan) {
  const content = plan.blocks.map((b) => {
    if (b.type === 'text') return { type: 'text', text: b.words.join('') };
    if (b.type === 'tool_use') return { type: 'tool_use', id: b.id, name: b.name, input: b.input };
    return { type: 'thinking', thinking: b.thinking, signature: b.signature };
  });
  return {
    id: ctx.id, type: 'message', role: 'assistant', model: ctx.model, content,
    stop_reason: plan.stop, stop_sequence: null, usage: plan.usage,
  };
}

// The event name is taken from data.type so the two can never disagree (§5.4).
const frame = (obj) => `event: ${obj.type}\ndata: ${JSON.stringify(obj)}\n\n`;
const PING_FRAME = `event: ping\ndata: ${PING_DATA}\n\n`;
const ERROR_FRAME = `event: error\ndata: ${OVERLOADED_DATA}\n\n`;

function messageStart(ctx, usage) {
  return frame({
    type: 'message_start',
    message: {
      id: ctx.id, type: 'message', role: 'assistant', model: ctx.model, content: [],
      stop_reason: null, stop_sequence: null,
      // output_tokens is a placeholder at message_start, as on the real API.
      usage: { ...usage, output_tokens: 1 },
    },
  });
}

const blockStart = (index, content_block) => frame({ type: 'content_block_start', index, content_block });
const blockDelta = (index, delta) => frame({ type: 'content_block_delta', index, delta });
const blockStop = (index) => frame({ type: 'content_block_stop', index });

function* blockFrames(index, b) {
  if (b.type === 'text') {
    yield blockStart(index, { type: 'text', text: '' });
    if (index === 0) yield PING_FRAME; // where §5.4's example puts it: after the first block opens
    for (const w of b.words) yield blockDelta(index, { type: 'text_delta', text: w });
  } else if (b.type === 'tool_use') {
    yield blockStart(index, { type: 'tool_use', id: b.id, name: b.name, input: {} });
    for (const f of b.fragments) yield blockDelta(index, { type: 'input_json_delta', partial_json: f });
  } else {
    yield blockStart(index, { type: 'thinking', thinking: '', signature: '' });
    yield blockDelta(index, { type: 'thinking_delta', thinking: b.thinking });
    yield blockDelta(index, { type: 'signature_delta', signature: b.signature });
  }
  yield blockStop(index);
}

function* streamFrames(ctx, plan) {
  yield messageStart(ctx, plan.usage);
  for (let i = 0; i < plan.blocks.length; i++) yield* blockFrames(i, plan.blocks[i]);
  const usage = plan.repeatInput ? { ...plan.usage } : { output_tokens: plan.usage.output_tokens };
  yield frame({ type: 'message_delta', delta: { stop_reason: plan.stop, stop_sequence: null }, usage });
  yield frame({ type: 'message_stop' });
}

function* overloadedFrames(ctx, plan) {
  yield messageStart(ctx, plan.usage);
  yield blockStart(0, { type: 'text', text: '' });
  yield blockDelta(0, { type: 'text_delta', text: REPLY_WORDS[0] });
  yield ERROR_FRAME;
}

function* dropFrames(ctx, plan) {
  yield messageStart(ctx, plan.usage);
  yield blockStart(0, { type: 'text', text: '' });
  for (const w of REPLY_WORDS.slice(0, 2)) yield blockDelta(0, { type: 'text_delta', text: w });
  yield null; // caller destroys the socket instead of ending the response
}

// Returns the message naming the first missing/mistyped field, like the API's validation errors.
function validate(body, { needMaxTokens }) {
  if (!body || typeof body !== 'object' || Array.isArray(body)) return 'body: Input should be a valid JSON object';
  if (body.model === undefined) return 'model: Field required';
  if (typeof body.model !== 'string') return 'model: Input should be a valid string';
  if (needMaxTokens) {
    if (body.max_tokens === undefined) return 'max_tokens: Field required';
    if (typeof body.max_tokens !== 'number') return 'max_tokens: Input should be a valid integer';
  }
  if (body.messages === undefined) return 'messages: Field required';
  if (!Array.isArray(body.messages)) return 'messages: Input should be a valid list';
  // Tools and tool_use blocks are checked the way the API checks them, so a translation that
  // forgets a schema or sends a string input fails here as it would there.
  for (const [i, t] of (Array.isArray(body.tools) ? body.tools : []).entries()) {
    if (typeof t?.name !== 'string') return `tools.${i}.name: Field required`;
    if (t.input_schema?.type !== 'object') return `tools.${i}.input_schema: Input should be a valid dictionary with type object`;
  }
  for (const [i, m] of body.messages.entries()) {
    for (const [j, b] of (Array.isArray(m?.content) ? m.content : []).entries()) {
      if (b?.type === 'tool_use' && (typeof b.input !== 'object' || b.input === null || Array.isArray(b.input))) {
        return `messages.${i}.content.${j}.tool_use.input: Input should be a valid dictionary`;
      }
    }
  }
  return null;
}

export async function startAnthropicMock(opts = {}) {
  const apiKey = opts.apiKey ?? 'sk-ant-mock';
  const chunkDelayMs = opts.chunkDelayMs ?? 10;
  const slowMs = opts.slowMs ?? 1500;
  const requests = [];
  let counter = 0;

  async function handle(req, res) {
    const n = ++counter;
    const requestId = `req_mock_${n}`;
    const { rec, isClosed, sleep, drop, readInto } = track(req, res, requests);
    const fail = (status, type, message) => sendJson(res, status, errorJson(type, message, requestId));

    res.setHeader('request-id', requestId);

    await readInto();
    if (isClosed()) return;

    // Key before version: a wrong key is the more useful diagnosis when both are off.
    if (req.headers['x-api-key'] !== apiKey) return fail(401, 'authentication_error', 'invalid x-api-key');
    if (!req.headers['anthropic-version']) return fail(400, 'invalid_request_error', 'anthropic-version: header is required');

    const pathname = new URL(req.url, 'http://x').pathname;
    if (req.method === 'GET' && pathname === '/v1/models') {
      return sendJson(res, 200, JSON.stringify({
        data: MOCK_MODELS.map((id) => ({ type: 'model', id, display_name: id, created_at: '2025-01-01T00:00:00Z' })),
        has_more: false,
        first_id: MOCK_MODELS[0],
        last_id: MOCK_MODELS.at(-1),
      }));
    }
    const isCount = pathname === '/v1/messages/count_tokens';
    if (req.method !== 'POST' || (pathname !== '/v1/messages' && !isCount)) {
      return fail(404, 'not_found_error', `Not found: ${req.method} ${pathname}`);
    }

    const body = rec.body;
    if (typeof body === 'string') return fail(400, 'invalid_request_error', 'There was an error parsing the body of your request.');
    const invalid = validate(body, { needMaxTokens: !isCount });
    if (invalid) return fail(400, 'invalid_request_error', invalid);
    if (isCount) return sendJson(res, 200, JSON.stringify({ input_tokens: inputTokens(body) }));

    const model = body.model;
    const stream = body.stream === true;
    const ctx = { id: `msg_mock_${n}`, model };

    const errMatch = /^claude-mock-error-(\d{3})$/.exec(model);
    if (errMatch && ERROR_TYPES[errMatch[1]]) {
      const status = Number(errMatch[1]);
      if (status === 429) res.setHeader('retry-after', '1');
      return fail(status, ERROR_TYPES[status], `mock ${status} error`);
    }

    const plan = planFor(model, body);
    const play = (frames, delayMs = chunkDelayMs) => playSse(res, sleep, isClosed, delayMs, frames);
    switch (model) {
      case 'claude-mock-overloaded':
        // §5.5: the streaming twin of an HTTP 529.
        if (!stream) return fail(529, 'overloaded_error', 'Overloaded');
        return play(overloadedFrames(ctx, plan));
      case 'claude-mock-drop':
        if (!stream) { await sleep(chunkDelayMs); if (!isClosed()) drop(); return; }
        await play(dropFrames(ctx, plan));
        if (!isClosed()) { await sleep(chunkDelayMs); if (!isClosed()) drop(); }
        return;
      case 'claude-mock-headers':
        // Anthropic's own extras: its infrastructure, the relay's organization and limits.
        res.setHeader('server', 'cloudflare');
        res.setHeader('anthropic-organization-id', 'org-relay-account');
        res.setHeader('anthropic-ratelimit-requests-remaining', '49');
        res.setHeader('anthropic-ratelimit-tokens-reset', '2026-01-01T00:00:00Z');
        res.setHeader('cf-ray', '8f00000000000001-SJC');
        res.setHeader('set-cookie', '_cfuvid=abc; path=/');
        break;
      case 'claude-mock-slow':
        await sleep(slowMs);
        if (isClosed()) return;
        if (!stream) break;
        return play(streamFrames(ctx, plan), 100);
      default:
        break;
    }
    if (!stream) return sendJson(res, 200, JSON.stringify(messageBody(ctx, plan)));
    return play(streamFrames(ctx, plan));
  }

  const { port, close } = await listen(handle, (m) => errorJson('api_error', m));

  return {
    // No /v1 suffix: Anthropic clients append /v1/messages themselves.
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    reset() { requests.length = 0; },
    close,
  };
}

