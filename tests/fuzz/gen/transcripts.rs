//! Upstream stream transcripts from realistic event templates: OpenAI chat chunks, Anthropic
//! Messages events, and generic SSE field soup.

use serde_json::{json, Value};

use super::{
    ending, fragments, frame, push_event, push_raw, text, tokens, write_string, Rng, Style,
};

/// An OpenAI `usage` object with provider-reported counts.
pub fn openai_usage(rng: &mut Rng) -> Value {
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
