//! Request and answer bodies as clients and providers write them: OpenAI chat requests and
//! completions, Anthropic Messages requests and messages, admin key bodies.

use serde_json::{json, Map, Value};

use super::{openai_usage, text, tokens, Rng};

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
