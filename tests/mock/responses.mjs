// The mock OpenAI upstream's Responses API (POST /v1/responses and the stored-response routes),
// speaking the real wire format: `event:` + `data:` lines, `sequence_number` from 0, item ids
// stable across events, and `response.completed` carrying the full output and usage. Behaviour
// is chosen by `model`, like the Chat mock's.
import { sendJson, playSse } from './http.mjs';

export const RESPONSES_WORDS = ['Hello ', 'from ', 'the ', 'mock ', 'Responses ', 'API.'];
const LONG_WORDS = Array.from({ length: 100 }, (_, i) => `w${i} `);
const CALLS = [
  { call_id: 'call_A', name: 'get_weather', chunks: ['{"city":', '"SF"}'] },
  { call_id: 'call_B', name: 'get_weather', chunks: ['{"city":"NYC"}'] },
];

function errorBody(message, type, code = null, param = null) {
  return JSON.stringify({ error: { message, type, param, code } });
}

function inputChars(body) {
  let chars = typeof body.instructions === 'string' ? body.instructions.length : 0;
  if (typeof body.input === 'string') return chars + body.input.length;
  for (const item of Array.isArray(body.input) ? body.input : []) {
    if (typeof item?.content === 'string') chars += item.content.length;
    else if (Array.isArray(item?.content)) for (const p of item.content) chars += typeof p?.text === 'string' ? p.text.length : 0;
  }
  return chars;
}

function usageFor(model, body, output) {
  const cached = model === 'mock-cached';
  const input = 10 + Math.ceil(inputChars(body) / 4);
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: cached ? 4 : 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: cached ? 2 : 0 },
    total_tokens: input + output,
  };
}

const STORED = /^\/v1\/responses\/([A-Za-z0-9_-]+)(?:\/(cancel|input_items))?$/;

export function isResponsesPath(pathname) {
  return pathname === '/v1/responses' || STORED.test(pathname);
}

/** Serves one of the Responses routes (`isResponsesPath`). */
export async function responsesApi({ req, res, rec, n, sleep, isClosed, drop, chunkDelayMs, store }) {
  const pathname = new URL(req.url, 'http://x').pathname;
  const stored = STORED.exec(pathname);
  if (stored) return storedRoute(req, res, store, stored[1], stored[2]);
  if (req.method !== 'POST') return sendJson(res, 405, errorBody('Method not allowed.', 'invalid_request_error'));
  const body = rec.body;
  if (!body || typeof body !== 'object' || typeof body.model !== 'string') {
    return sendJson(res, 400, errorBody("Missing required parameter: 'model'.", 'invalid_request_error', 'missing_required_parameter', 'model'));
  }
  const model = body.model;
  const errMatch = /^mock-error-(\d{3})$/.exec(model);
  if (errMatch) {
    const status = Number(errMatch[1]);
    return sendJson(res, status, errorBody(`mock ${status} error`, status >= 500 ? 'server_error' : 'invalid_request_error', `mock_${status}`));
  }
  if (body.previous_response_id && !store.has(body.previous_response_id)) {
    return sendJson(res, 400, errorBody(`Previous response with id '${body.previous_response_id}' not found.`, 'invalid_request_error', 'previous_response_not_found', 'previous_response_id'));
  }
  const id = `resp_mock${n}`;
  const base = {
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status: 'in_progress',
    background: false,
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    model,
    output: [],
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    store: body.store !== false,
    temperature: body.temperature ?? 1,
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_p: body.top_p ?? 1,
    usage: null,
  };
  const tools = model === 'mock-tools';
  const words = model === 'mock-long' ? LONG_WORDS : RESPONSES_WORDS;
  const output = tools
    ? CALLS.map((c, i) => ({ id: `fc_mock${n}_${i}`, type: 'function_call', status: 'completed', call_id: c.call_id, name: c.name, arguments: c.chunks.join('') }))
    : [{ id: `msg_mock${n}`, type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: words.join(''), annotations: [] }] }];
  const final = { ...base, status: 'completed', output, usage: usageFor(model, body, tools ? 12 : words.length) };
  const entry = { response: final, input: inputItems(body) };
  if (final.store) store.set(id, entry);
  if (body.stream !== true) return sendJson(res, 200, JSON.stringify(final));
  const frames = tools ? toolEvents(base, final) : textEvents(base, final, words);
  if (model === 'mock-hold') {
    // A background response in progress: after `response.in_progress` the stream keeps
    // sending keep-alive comments (so it never looks stalled) until someone retrieves the
    // response by id, bounded at 5 s; a test can then retrieve it while it runs.
    let retrieved = false;
    entry.onRetrieve = () => { retrieved = true; };
    await playSse(res, sleep, isClosed, chunkDelayMs, [...frames.slice(0, 2), null]);
    for (let i = 0; i < 50 && !retrieved && !isClosed(); i++) {
      res.write(': keep-alive\n\n');
      await sleep(100);
    }
    for (const frame of frames.slice(2)) {
      if (isClosed()) return;
      res.write(frame);
    }
    if (!isClosed()) res.end();
    return;
  }
  if (model === 'mock-drop') {
    await playSse(res, sleep, isClosed, chunkDelayMs, [...frames.slice(0, 6), null]);
    if (!isClosed()) { await sleep(chunkDelayMs); drop(); }
    return;
  }
  return playSse(res, sleep, isClosed, chunkDelayMs, frames);
}

function numbered() {
  let seq = 0;
  return (type, payload) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: seq++, ...payload })}\n\n`;
}

function textEvents(base, final, words) {
  const ev = numbered();
  const item = final.output[0];
  const ids = { item_id: item.id, output_index: 0, content_index: 0 };
  const out = [
    ev('response.created', { response: base }),
    ev('response.in_progress', { response: base }),
    ev('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress', content: [] } }),
    ev('response.content_part.added', { ...ids, part: { type: 'output_text', text: '', annotations: [] } }),
  ];
  for (const w of words) out.push(ev('response.output_text.delta', { ...ids, delta: w }));
  const text = words.join('');
  out.push(
    ev('response.output_text.done', { ...ids, text }),
    ev('response.content_part.done', { ...ids, part: item.content[0] }),
    ev('response.output_item.done', { output_index: 0, item }),
    ev('response.completed', { response: final }),
  );
  return out;
}

function toolEvents(base, final) {
  const ev = numbered();
  const out = [ev('response.created', { response: base }), ev('response.in_progress', { response: base })];
  CALLS.forEach((c, i) => {
    const item = final.output[i];
    const ids = { item_id: item.id, output_index: i };
    out.push(ev('response.output_item.added', { output_index: i, item: { ...item, status: 'in_progress', arguments: '' } }));
    for (const delta of c.chunks) out.push(ev('response.function_call_arguments.delta', { ...ids, delta }));
    out.push(ev('response.function_call_arguments.done', { ...ids, arguments: item.arguments }));
    out.push(ev('response.output_item.done', { output_index: i, item }));
  });
  out.push(ev('response.completed', { response: final }));
  return out;
}

function inputItems(body) {
  const items = typeof body.input === 'string' ? [{ role: 'user', content: [{ type: 'input_text', text: body.input }] }] : body.input ?? [];
  return items.map((it, i) => ({ id: `msg_in${i}`, type: 'message', status: 'completed', ...it }));
}

function storedRoute(req, res, store, id, action) {
  const entry = store.get(id);
  if (!entry) return sendJson(res, 404, errorBody(`Response with id '${id}' not found.`, 'invalid_request_error', null, 'response_id'));
  if (!action && req.method === 'GET') {
    entry.onRetrieve?.();
    return sendJson(res, 200, JSON.stringify(entry.response));
  }
  if (!action && req.method === 'DELETE') {
    store.delete(id);
    return sendJson(res, 200, JSON.stringify({ id, object: 'response', deleted: true }));
  }
  if (action === 'cancel' && req.method === 'POST') {
    // Only background responses can be cancelled; a finished one is answered as OpenAI does.
    return sendJson(res, 400, errorBody('Cannot cancel a response that is not in progress.', 'invalid_request_error'));
  }
  if (action === 'input_items' && req.method === 'GET') {
    const data = entry.input;
    return sendJson(res, 200, JSON.stringify({ object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: false }));
  }
  return sendJson(res, 405, errorBody('Method not allowed.', 'invalid_request_error'));
}
