//! Seeded generators for the fuzz harness: a splitmix64 PRNG, a JSON writer with the spellings
//! providers use (compact, spaced, pretty, `\u`-escaped), upstream stream transcripts built from
//! realistic event templates, request and answer bodies, and byte and value mutations.

use serde_json::{json, Map, Value};

/// Token counts past 2^53 (up to 2^64 − 1) in provider-reported usage. Off until provider
/// numbers saturate (issue 12 item 6); with it on, today's core overflows at the prompt sum in
/// `anthropic::Usage::tokens`, the `total_tokens` sums of `anthropic::openai_usage` and of
/// `StreamTranslator`'s usage chunk. Flip it once those saturate.
pub const HUGE_NUMBERS: bool = false;

/// splitmix64: tiny, fast, and every seed gives a full-period, well-mixed sequence.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

// ---------------------------------------------------------------------------------------------
// JSON spellings
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Compact,
    /// `{"a": 1, "b": 2}`, as Python's `json.dumps` writes it.
    Spaced,
    /// Multi-line; as SSE data it becomes several `data:` lines.
    Pretty,
    /// Some characters of keys and strings written as `\u` escapes (surrogate pairs for emoji).
    Escaped,
}

const STYLES: [Style; 4] = [Style::Compact, Style::Spaced, Style::Pretty, Style::Escaped];

pub fn style(rng: &mut Rng) -> Style {
    rng.pick(&STYLES)
}

pub fn write_json(rng: &mut Rng, v: &Value, style: Style) -> String {
    let mut out = String::new();
    write_value(rng, v, style, 0, &mut out);
    out
}

fn write_value(rng: &mut Rng, v: &Value, style: Style, depth: usize, out: &mut String) {
    // Before item `i` of a container at `depth`: the comma, and the space or new line.
    let gap = |out: &mut String, i: usize| {
        if i > 0 {
            out.push(',');
            if style == Style::Spaced {
                out.push(' ');
            }
        }
        if style == Style::Pretty {
            out.push('\n');
            out.push_str(&"  ".repeat(depth + 1));
        }
    };
    let close = |out: &mut String, empty: bool, bracket: char| {
        if style == Style::Pretty && !empty {
            out.push('\n');
            out.push_str(&"  ".repeat(depth));
        }
        out.push(bracket);
    };
    match v {
        Value::String(s) => write_string(rng, s, style, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                gap(out, i);
                write_value(rng, item, style, depth + 1, out);
            }
            close(out, items.is_empty(), ']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                gap(out, i);
                write_string(rng, k, style, out);
                out.push(':');
                if matches!(style, Style::Spaced | Style::Pretty) {
                    out.push(' ');
                }
                write_value(rng, item, style, depth + 1, out);
            }
            close(out, map.is_empty(), '}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(rng: &mut Rng, s: &str, style: Style, out: &mut String) {
    if style != Style::Escaped {
        out.push_str(&Value::String(s.to_string()).to_string());
        return;
    }
    out.push('"');
    for c in s.chars() {
        let plain = Value::String(c.to_string()).to_string();
        if plain.len() > 3 || !rng.chance(40) {
            // Already an escape (quote, backslash, control) or left as it is.
            out.push_str(&plain[1..plain.len() - 1]);
            continue;
        }
        let mut units = [0u16; 2];
        for u in c.encode_utf16(&mut units) {
            out.push_str(&format!("\\u{:04x}", u));
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------

/// Text that stresses decoders: multi-byte UTF-8, emoji, escapes, empty strings.
const TEXTS: &[&str] = &[
    "Hello",
    " world",
    "",
    "Héllo",
    " wörld",
    "日本語のテキスト",
    "🦀 crab",
    "👩‍💻",
    "\"quoted\"",
    "back\\slash",
    "line\nbreak",
    "tab\there",
    "\u{7f}\u{1}",
    "data: [DONE]",
    "\"content\":\"fake\"",
    "{\"usage\":{\"prompt_tokens\":1}}",
    "event: error",
    "\r\n\r\n",
];

pub fn text(rng: &mut Rng) -> String {
    let n = 1 + rng.below(3);
    (0..n).map(|_| rng.pick(TEXTS)).collect()
}

/// A token count as a provider reports it.
pub fn tokens(rng: &mut Rng) -> u64 {
    if HUGE_NUMBERS && rng.chance(25) {
        rng.pick(&[1u64 << 53, 1 << 62, 1 << 63, u64::MAX, u64::MAX - 1])
    } else {
        rng.pick(&[0u64, 1, 2, 9, 100, 4096, 123_456, 1_000_000])
    }
}

/// `s` cut into 1–4 fragments at random char boundaries, as a provider streams a string (or
/// the JSON text of tool arguments, so fragments end inside escapes too).
pub fn fragments(rng: &mut Rng, s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let mut cuts: Vec<usize> = (0..rng.below(4))
        .map(|_| rng.below(chars.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut at = 0;
    for c in cuts {
        out.push(chars[at..c].iter().collect());
        at = c;
    }
    out.push(chars[at..].iter().collect());
    out
}

/// SSE framing for one event.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub eol: &'static str,
    pub style: Style,
    /// Write an `event:` line (Anthropic does; OpenAI does not).
    pub named: bool,
}

pub fn frame(rng: &mut Rng, named: bool) -> Frame {
    Frame {
        eol: rng.pick(&["\n", "\n", "\r\n", "\r"]),
        style: style(rng),
        named,
    }
}

fn push_event(rng: &mut Rng, out: &mut String, f: Frame, name: Option<&str>, data: &Value) {
    if rng.chance(8) {
        out.push_str(&format!(": keep-alive{}{}", f.eol, f.eol));
    }
    if let (true, Some(name)) = (f.named, name) {
        out.push_str(&format!("event: {name}{}", f.eol));
    }
    if rng.chance(5) {
        out.push_str(&format!("id: {}{}", rng.below(100), f.eol));
    }
    let text = write_json(rng, data, f.style);
    for line in text.split('\n') {
        let sep = if rng.chance(20) { "data:" } else { "data: " };
        out.push_str(&format!("{sep}{line}{}", f.eol));
    }
    out.push_str(f.eol);
}

fn push_raw(out: &mut String, f: Frame, data: &str) {
    out.push_str(&format!("data: {data}{}{}", f.eol, f.eol));
}

/// Ends a transcript the way real streams end: cleanly, cut mid-event, or with no final blank
/// line.
fn ending(rng: &mut Rng, mut s: String) -> String {
    match rng.below(10) {
        0 => {
            let cut = rng.below(s.len() + 1);
            let mut cut = cut;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s
        }
        1 => {
            let trimmed = s.trim_end_matches(['\r', '\n']).len();
            s.truncate(trimmed);
            s
        }
        _ => s,
    }
}

// ---------------------------------------------------------------------------------------------
// Stream transcripts
// ---------------------------------------------------------------------------------------------

fn openai_usage(rng: &mut Rng) -> Value {
    let (p, c) = (tokens(rng), tokens(rng));
    let mut u =
        json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p.saturating_add(c)});
    if rng.chance(50) {
        u["prompt_tokens_details"] = json!({"cached_tokens": tokens(rng)});
        u["completion_tokens_details"] = json!({"reasoning_tokens": tokens(rng)});
    }
    u
}

/// An OpenAI chat-completions stream: role, content and tool-call deltas, a finish chunk, the
/// usage chunk, in-band errors, keep-alives and `[DONE]`.
pub fn openai_transcript(rng: &mut Rng) -> String {
    let f = frame(rng, false);
    let mut out = String::new();
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut v = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": choices});
        if let Some(u) = usage {
            v["usage"] = u;
        }
        v
    };
    let role = chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        rng.chance(50).then_some(Value::Null),
    );
    push_event(rng, &mut out, f, None, &role);
    let mut finish = "stop";
    for _ in 0..rng.below(6) {
        match rng.below(5) {
            0 | 1 => {
                let delta = json!({"content": text(rng)});
                push_event(
                    rng,
                    &mut out,
                    f,
                    None,
                    &chunk(
                        json!([{"index": 0, "delta": delta, "finish_reason": null}]),
                        None,
                    ),
                );
            }
            2 => {
                finish = "tool_calls";
                let idx = rng.below(3);
                let args = json!({"city": text(rng), "n": rng.below(5)}).to_string();
                let first = json!({"tool_calls": [{"index": idx, "id": format!("call_{idx}"), "type": "function", "function": {"name": "get_weather", "arguments": ""}}]});
                push_event(
                    rng,
                    &mut out,
                    f,
                    None,
                    &chunk(
                        json!([{"index": 0, "delta": first, "finish_reason": null}]),
                        None,
                    ),
                );
                for frag in fragments(rng, &args) {
                    let d =
                        json!({"tool_calls": [{"index": idx, "function": {"arguments": frag}}]});
                    push_event(
                        rng,
                        &mut out,
                        f,
                        None,
                        &chunk(
                            json!([{"index": 0, "delta": d, "finish_reason": null}]),
                            None,
                        ),
                    );
                }
            }
            3 => {
                let delta = json!({"refusal": text(rng)});
                push_event(
                    rng,
                    &mut out,
                    f,
                    None,
                    &chunk(json!([{"index": 0, "delta": delta}]), None),
                );
            }
            _ => {
                let err = json!({"error": {"message": text(rng), "type": "server_error", "param": null, "code": rng.pick(&[Value::Null, json!("boom")])}});
                push_event(rng, &mut out, f, None, &err);
            }
        }
    }
    let finish = rng.pick(&[finish, "length", "content_filter"]);
    push_event(
        rng,
        &mut out,
        f,
        None,
        &chunk(
            json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
            None,
        ),
    );
    if rng.chance(70) {
        let usage = openai_usage(rng);
        push_event(rng, &mut out, f, None, &chunk(json!([]), Some(usage)));
    }
    if rng.chance(85) {
        push_raw(&mut out, f, "[DONE]");
    }
    ending(rng, out)
}

/// An Anthropic Messages stream; `custom` names a custom tool whose `input` string streams as
/// `{"input":"…"}` fragments.
pub fn anthropic_transcript(rng: &mut Rng, custom: &str) -> String {
    let named = rng.chance(85);
    let f = frame(rng, named);
    let mut out = String::new();
    let mut usage = json!({"input_tokens": tokens(rng), "output_tokens": 1});
    if rng.chance(50) {
        usage["cache_read_input_tokens"] = json!(tokens(rng));
        usage["cache_creation_input_tokens"] = json!(tokens(rng));
    }
    let start = json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage}});
    push_event(rng, &mut out, f, Some("message_start"), &start);
    if rng.chance(30) {
        push_event(rng, &mut out, f, Some("ping"), &json!({"type": "ping"}));
    }
    let mut stop = "end_turn";
    for index in 0..rng.below(5) {
        let delta = |d: Value| json!({"type": "content_block_delta", "index": index, "delta": d});
        match rng.below(5) {
            0 | 1 => {
                let block = json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}});
                push_event(rng, &mut out, f, Some("content_block_start"), &block);
                for _ in 0..1 + rng.below(3) {
                    let d = delta(json!({"type": "text_delta", "text": text(rng)}));
                    push_event(rng, &mut out, f, Some("content_block_delta"), &d);
                }
            }
            2 | 3 => {
                stop = "tool_use";
                let is_custom = rng.chance(50);
                let name = if is_custom { custom } else { "get_weather" };
                let input = if is_custom {
                    let mut s = String::new();
                    let t = text(rng);
                    write_string(rng, &t, Style::Escaped, &mut s);
                    format!("{{\"input\":{s}}}")
                } else {
                    json!({"city": text(rng)}).to_string()
                };
                let block = json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": format!("toolu_{index}"), "name": name, "input": {}}});
                push_event(rng, &mut out, f, Some("content_block_start"), &block);
                for frag in fragments(rng, &input) {
                    let d = delta(json!({"type": "input_json_delta", "partial_json": frag}));
                    push_event(rng, &mut out, f, Some("content_block_delta"), &d);
                }
            }
            _ => {
                let block = json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": ""}});
                push_event(rng, &mut out, f, Some("content_block_start"), &block);
                let d = delta(json!({"type": "thinking_delta", "thinking": text(rng)}));
                push_event(rng, &mut out, f, Some("content_block_delta"), &d);
                let d = delta(json!({"type": "signature_delta", "signature": "c2ln"}));
                push_event(rng, &mut out, f, Some("content_block_delta"), &d);
            }
        }
        let end = json!({"type": "content_block_stop", "index": index});
        push_event(rng, &mut out, f, Some("content_block_stop"), &end);
    }
    if rng.chance(10) {
        let err =
            json!({"type": "error", "error": {"type": "overloaded_error", "message": text(rng)}});
        push_event(rng, &mut out, f, Some("error"), &err);
    }
    let stop = rng.pick(&[stop, "max_tokens", "stop_sequence", "refusal"]);
    let mut delta_usage = json!({"output_tokens": tokens(rng)});
    if rng.chance(30) {
        delta_usage["input_tokens"] = json!(tokens(rng));
    }
    let md = json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": delta_usage});
    push_event(rng, &mut out, f, Some("message_delta"), &md);
    if rng.chance(85) {
        push_event(
            rng,
            &mut out,
            f,
            Some("message_stop"),
            &json!({"type": "message_stop"}),
        );
    }
    ending(rng, out)
}

/// A generic SSE byte stream: every field kind, every line ending, a BOM, blank and odd lines.
pub fn sse_bytes(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    if rng.chance(10) {
        out.extend_from_slice(b"\xEF\xBB\xBF");
    }
    for _ in 0..rng.below(12) {
        let eol: &[u8] = rng.pick(&[b"\n" as &[u8], b"\r\n", b"\r"]);
        match rng.below(8) {
            0..=2 => {
                out.extend_from_slice(rng.pick(&[b"data: " as &[u8], b"data:", b"data"]));
                out.extend_from_slice(text(rng).replace(['\r', '\n'], " ").as_bytes());
            }
            3 => out.extend_from_slice(
                format!(
                    "event: {}",
                    rng.pick(&["message_start", "", "error", "ping"])
                )
                .as_bytes(),
            ),
            4 => out.extend_from_slice(b": comment"),
            5 => out.extend_from_slice(
                format!(
                    "{}: {}",
                    rng.pick(&["id", "retry", "unknown", ""]),
                    rng.below(1000)
                )
                .as_bytes(),
            ),
            _ => {}
        }
        out.extend_from_slice(eol);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Bodies
// ---------------------------------------------------------------------------------------------

/// Makes one optional field's value.
type Make = fn(&mut Rng) -> Value;

fn tool_def(rng: &mut Rng) -> Value {
    match rng.below(3) {
        0 => {
            json!({"type": "function", "function": {"name": "get_weather", "description": "d", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
        }
        1 => {
            json!({"type": "custom", "custom": {"name": "ApplyPatch", "description": "patch", "format": {"type": "text"}}})
        }
        _ => json!({"type": "function", "name": "read_file", "parameters": {"type": "object"}}),
    }
}

fn chat_part(rng: &mut Rng) -> Value {
    match rng.below(4) {
        0 | 1 => json!({"type": "text", "text": text(rng)}),
        2 => {
            json!({"type": "image_url", "image_url": {"url": rng.pick(&["data:image/png;base64,iVBORw0KGgo=", "https://example.com/a.png", "data:,", "data:image/png;base64"]), "detail": "auto"}})
        }
        _ => json!({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
    }
}

fn chat_content(rng: &mut Rng) -> Value {
    match rng.below(3) {
        0 => Value::Null,
        1 => json!(text(rng)),
        _ => Value::Array((0..rng.below(3)).map(|_| chat_part(rng)).collect()),
    }
}

/// An OpenAI chat-completions request body, from plain chat to tool loops.
pub fn chat_request(rng: &mut Rng) -> Value {
    let mut messages = Vec::new();
    if rng.chance(50) {
        messages.push(
            json!({"role": rng.pick(&["system", "developer"]), "content": chat_content(rng)}),
        );
    }
    for i in 0..rng.below(5) {
        messages.push(match rng.below(4) {
            0 | 1 => json!({"role": "user", "content": chat_content(rng)}),
            2 => json!({"role": "assistant", "content": chat_content(rng), "tool_calls": [{"id": format!("call_{i}"), "type": "function", "function": {"name": "get_weather", "arguments": rng.pick(&["{\"city\":\"SF\"}", "", "not json", "[]"])}}]}),
            _ => json!({"role": "tool", "tool_call_id": format!("call_{}", rng.below(3)), "content": chat_content(rng)}),
        });
    }
    let mut body =
        json!({"model": rng.pick(&["m", "claude-x", "gpt-4o", ""]), "messages": messages});
    let extras: &[(&str, Make)] = &[
        ("stream", |r| json!(r.chance(50))),
        ("stream_options", |r| json!({"include_usage": r.chance(50)})),
        ("max_tokens", |r| json!(r.pick(&[1u64, 8192, u64::MAX]))),
        ("max_completion_tokens", |r| json!(r.below(100_000))),
        (
            "temperature",
            |r| json!(r.pick(&[0.0, 0.7, 1.5, 2.0, -1.0])),
        ),
        ("top_p", |_| json!(0.9)),
        ("n", |r| json!(r.below(3))),
        ("stop", |r| {
            if r.chance(50) {
                json!("END")
            } else {
                json!(["a", "b", "c", "d", "e"])
            }
        }),
        ("tools", |r| {
            Value::Array((0..r.below(3)).map(|_| tool_def(r)).collect())
        }),
        ("tool_choice", |r| {
            r.pick(&[
                json!("auto"),
                json!("none"),
                json!("required"),
                json!({"type": "function", "function": {"name": "get_weather"}}),
                json!({"type": "function", "name": "read_file"}),
            ])
        }),
        ("parallel_tool_calls", |r| json!(r.chance(50))),
        ("response_format", |_| json!({"type": "json_object"})),
        ("reasoning_effort", |_| json!("high")),
        ("user", |_| json!("u-1")),
        ("metadata", |_| json!({"a": "b"})),
        ("previous_response_id", |_| json!("resp_1")),
    ];
    for (k, make) in extras {
        if rng.chance(25) {
            body[*k] = make(rng);
        }
    }
    body
}

fn anthropic_block(rng: &mut Rng, role: &str, i: usize) -> Value {
    match (role, rng.below(4)) {
        (_, 0) => json!({"type": "text", "text": text(rng)}),
        ("user", 1) => {
            json!({"type": "image", "source": rng.pick(&[json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}), json!({"type": "url", "url": "https://example.com/a.png"})])})
        }
        ("user", _) => {
            json!({"type": "tool_result", "tool_use_id": format!("toolu_{}", rng.below(3)), "content": if rng.chance(50) { json!(text(rng)) } else { json!([{"type": "text", "text": text(rng)}]) }, "is_error": rng.chance(20)})
        }
        (_, 1) => json!({"type": "thinking", "thinking": text(rng), "signature": "c2ln"}),
        _ => {
            json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": rng.pick(&["get_weather", "ApplyPatch"]), "input": {"city": text(rng)}})
        }
    }
}

/// An Anthropic Messages request body (what Claude Code and the SDKs send).
pub fn messages_request(rng: &mut Rng) -> Value {
    let mut messages = Vec::new();
    for i in 0..rng.below(5) {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        let content = if rng.chance(30) {
            json!(text(rng))
        } else {
            Value::Array(
                (0..rng.below(3))
                    .map(|_| anthropic_block(rng, role, i))
                    .collect(),
            )
        };
        messages.push(json!({"role": role, "content": content}));
    }
    let mut body = json!({"model": rng.pick(&["claude-x", "m", ""]), "max_tokens": rng.pick(&[1u64, 1024, u64::MAX]), "messages": messages});
    let extras: &[(&str, Make)] = &[
        ("system", |r| {
            if r.chance(50) {
                json!(text(r))
            } else {
                json!([{"type": "text", "text": text(r), "cache_control": {"type": "ephemeral"}}])
            }
        }),
        ("stream", |r| json!(r.chance(50))),
        ("temperature", |_| json!(0.5)),
        ("top_k", |_| json!(5)),
        ("stop_sequences", |_| json!(["END"])),
        (
            "tools",
            |r| json!([{"name": "get_weather", "description": "d", "input_schema": {"type": "object"}}, {"type": r.pick(&["custom", "web_search_20250305", "bash_20250124"]), "name": "ApplyPatch", "input_schema": {"type": "object"}}]),
        ),
        ("tool_choice", |r| {
            r.pick(&[
                json!({"type": "auto"}),
                json!({"type": "any"}),
                json!({"type": "none"}),
                json!({"type": "tool", "name": "get_weather"}),
                json!({"type": "auto", "disable_parallel_tool_use": true}),
            ])
        }),
        (
            "thinking",
            |_| json!({"type": "enabled", "budget_tokens": 1024}),
        ),
        ("metadata", |_| json!({"user_id": "u"})),
    ];
    for (k, make) in extras {
        if rng.chance(30) {
            body[*k] = make(rng);
        }
    }
    body
}

/// A non-stream OpenAI chat completion (what an OpenAI-format provider answers).
pub fn chat_completion(rng: &mut Rng) -> Value {
    let mut message = json!({"role": "assistant", "content": if rng.chance(80) { json!(text(rng)) } else { Value::Null }});
    if rng.chance(40) {
        message["tool_calls"] = Value::Array(
            (0..1 + rng.below(2))
                .map(|i| json!({"id": format!("call_{i}"), "type": rng.pick(&["function", "custom"]), "function": {"name": "get_weather", "arguments": rng.pick(&["{\"city\":\"SF\"}", "", "{", "[1]"])}, "custom": {"name": "ApplyPatch", "input": text(rng)}}))
                .collect(),
        );
    }
    if rng.chance(10) {
        message["refusal"] = json!(text(rng));
    }
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m", "choices": [{"index": 0, "message": message, "finish_reason": rng.pick(&["stop", "length", "tool_calls", "content_filter"])}], "usage": openai_usage(rng)})
}

/// A non-stream Anthropic message (what Claude answers).
pub fn anthropic_message(rng: &mut Rng, custom: &str) -> Value {
    let content: Vec<Value> = (0..rng.below(4))
        .map(|i| match rng.below(4) {
            0 | 1 => json!({"type": "text", "text": text(rng)}),
            2 => json!({"type": "tool_use", "id": format!("toolu_{i}"), "name": rng.pick(&["get_weather", custom]), "input": if rng.chance(50) { json!({"input": text(rng)}) } else { json!({"city": "SF"}) }}),
            _ => json!({"type": "thinking", "thinking": text(rng), "signature": "s"}),
        })
        .collect();
    let mut usage = json!({"input_tokens": tokens(rng), "output_tokens": tokens(rng)});
    if rng.chance(50) {
        usage["cache_read_input_tokens"] = json!(tokens(rng));
        usage["cache_creation_input_tokens"] = json!(tokens(rng));
    }
    json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x", "content": content, "stop_reason": rng.pick(&["end_turn", "tool_use", "max_tokens", "pause_turn"]), "stop_sequence": null, "usage": usage})
}

/// An admin key-creation or change body.
pub fn admin_body(rng: &mut Rng) -> Value {
    let mut body = Map::new();
    let fields: &[(&str, Make)] = &[
        ("team", |r| {
            json!(r
                .pick(&["platform", "a", "", "Team A", "x".repeat(200).as_str()])
                .to_string())
        }),
        ("user", |r| {
            json!(r.pick(&["ann", "b-ob", "日本"]).to_string())
        }),
        ("env", |r| {
            json!(r.pick(&["prod", "test", "dev_1"]).to_string())
        }),
        ("name", |r| json!(text(r))),
        ("expires_at", |r| {
            json!(r
                .pick(&[
                    "2030-01-01T00:00:00Z",
                    "2030-02-30T00:00:00Z",
                    "9999-12-31T23:59:59Z",
                    "0000-01-01T00:00:00Z",
                    "2030-01-01",
                    "2030-01-01T24:00:00+25:00",
                    "yesterday",
                    "-1-01-01T00:00:00Z"
                ])
                .to_string())
        }),
        ("models", |r| {
            if r.chance(30) {
                Value::Null
            } else {
                json!(["gpt-*", "claude-x", "*", ""])
            }
        }),
        (
            "aliases",
            |r| json!({"fast": "mock-ok", "": "x", "k": text(r)}),
        ),
        ("metadata", |r| json!({"cost_center": "42", "n": text(r)})),
        ("status", |r| {
            json!(r.pick(&["active", "revoked", "disabled"]).to_string())
        }),
    ];
    for (k, make) in fields {
        if rng.chance(60) {
            body.insert((*k).to_string(), make(rng));
        }
    }
    Value::Object(body)
}

// ---------------------------------------------------------------------------------------------
// Mutations
// ---------------------------------------------------------------------------------------------

/// A random JSON value. `huge` allows numbers a u64/i64 cannot hold or sums overflow.
pub fn any_value(rng: &mut Rng, depth: usize, huge: bool) -> Value {
    let leaf = depth > 2 || rng.chance(60);
    match rng.below(if leaf { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => {
            let small = [
                json!(0),
                json!(-1),
                json!(1.5),
                json!(-0.0),
                json!(1e308),
                json!(42),
                json!(4294967296u64),
            ];
            let big = [json!(u64::MAX), json!(i64::MIN), json!(1u64 << 63)];
            if huge && rng.chance(40) {
                rng.pick(&big)
            } else {
                rng.pick(&small)
            }
        }
        3 | 4 => json!(text(rng)),
        5 => Value::Array(
            (0..rng.below(4))
                .map(|_| any_value(rng, depth + 1, huge))
                .collect(),
        ),
        _ => {
            let keys = [
                "type",
                "text",
                "content",
                "role",
                "input",
                "name",
                "id",
                "usage",
                "index",
                "arguments",
                "x",
            ];
            Value::Object(
                (0..rng.below(4))
                    .map(|_| (rng.pick(&keys).to_string(), any_value(rng, depth + 1, huge)))
                    .collect(),
            )
        }
    }
}

/// Changes one random node of `v`: a new value, a removed key, a duplicated array item.
pub fn mutate_value(rng: &mut Rng, v: &mut Value, huge: bool) {
    let mut node = v;
    loop {
        let children = match node {
            Value::Array(a) => a.len(),
            Value::Object(o) => o.len(),
            _ => 0,
        };
        if children == 0 || rng.chance(30) {
            break;
        }
        let i = rng.below(children);
        if rng.chance(15) {
            match node {
                Value::Array(a) => {
                    let item = a[i].clone();
                    a.insert(i, item);
                }
                Value::Object(o) => {
                    let k = o.keys().nth(i).cloned().unwrap_or_default();
                    o.remove(&k);
                }
                _ => {}
            }
            return;
        }
        node = match node {
            Value::Array(a) => &mut a[i],
            Value::Object(o) => o.values_mut().nth(i).unwrap(),
            _ => unreachable!(),
        };
    }
    *node = any_value(rng, 0, huge);
}

/// Byte-level damage: flips, inserts, deletions, duplicated and swapped ranges.
pub fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        let at = rng.below(len + 1);
        match rng.below(6) {
            0 if at < len => bytes[at] ^= 1 << rng.below(8),
            1 => {
                let ins: &[u8] = rng.pick(&[
                    b"\n" as &[u8],
                    b"\r",
                    b"\"",
                    b"\\",
                    b"\\u",
                    b"\xF0\x9F",
                    b"\xFF",
                    b"{",
                    b"}",
                    b"[",
                    b",",
                    b"0",
                    b"data: ",
                    b"\n\n",
                ]);
                bytes.splice(at..at, ins.iter().copied());
            }
            2 if at < len => {
                let end = (at + 1 + rng.below(16)).min(len);
                bytes.drain(at..end);
            }
            3 if at < len => {
                let end = (at + 1 + rng.below(64)).min(len);
                let copy = bytes[at..end].to_vec();
                let to = rng.below(len + 1);
                bytes.splice(to..to, copy);
            }
            4 => bytes.truncate(at),
            _ => {
                let n = rng.below(8);
                let noise: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                bytes.splice(at..at, noise);
            }
        }
    }
}
