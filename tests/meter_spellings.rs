//! The meters must read JSON, not bytes: the same events written compact, with spaces after
//! `:` and `,` (Python's `json.dumps`), pretty-printed over several `data:` lines, and with
//! every key and non-ASCII character `\u`-escaped (an emoji as a surrogate pair) must give the
//! same completion characters, finish reason, usage, error and stripped usage chunk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use llm_relay::metering::usage::{Outcome, Tokens, UsageSource};
use llm_relay::protocols::messages::PassThrough;
use llm_relay::protocols::sse::SseDecoder;
use llm_relay::protocols::stream::{Relay, StreamRelay};
use llm_relay::translate::anthropic::StreamTranslator;
use serde_json::{json, Value};

#[derive(Clone, Copy, Debug)]
enum Spelling {
    Compact,
    Spaced,
    Pretty,
    Escaped,
}

const SPELLINGS: [Spelling; 4] = [
    Spelling::Compact,
    Spelling::Spaced,
    Spelling::Pretty,
    Spelling::Escaped,
];

/// A JSON string literal with every character outside printable ASCII (and, for keys, every
/// character) written as `\uXXXX`, astral ones as surrogate pairs.
fn escaped_string(s: &str, all: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        let plain = !all && (' '..='~').contains(&c) && c != '"' && c != '\\';
        if plain {
            out.push(c);
            continue;
        }
        let mut units = [0u16; 2];
        for u in c.encode_utf16(&mut units) {
            out.push_str(&format!("\\u{u:04x}"));
        }
    }
    out.push('"');
    out
}

fn spaced(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), spaced(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(spaced).collect();
            format!("[{}]", parts.join(", "))
        }
        other => other.to_string(),
    }
}

fn escaped(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}:{}", escaped_string(k, true), escaped(v)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(escaped).collect();
            format!("[{}]", parts.join(","))
        }
        Value::String(s) => escaped_string(s, false),
        other => other.to_string(),
    }
}

/// One SSE event carrying `v` (with `event:` when `name` is given).
fn event(name: Option<&str>, v: &Value, s: Spelling) -> String {
    let head = name.map(|n| format!("event: {n}\n")).unwrap_or_default();
    let data = match s {
        Spelling::Compact => format!("data: {v}\n"),
        Spelling::Spaced => format!("data: {}\n", spaced(v)),
        Spelling::Escaped => format!("data: {}\n", escaped(v)),
        Spelling::Pretty => serde_json::to_string_pretty(v)
            .unwrap()
            .lines()
            .map(|l| format!("data: {l}\n"))
            .collect(),
    };
    format!("{head}{data}\n")
}

/// An OpenAI chat stream: text with é and an emoji, a tool call, a finish, the usage chunk.
fn chat_events() -> Vec<Value> {
    vec![
        json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null}),
        json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Héllo 😀"},"finish_reason":null}],"usage":null}),
        json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"f","arguments":"{\"a\": \"ü\"}"}}]},"finish_reason":null}],"usage":null}),
        json!({"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"refusal":"no"},"finish_reason":"tool_calls"}],"usage":null}),
        json!({"id":"c1","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":7,"total_tokens":16,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":1}}}),
    ]
}

fn chat_stream(events: &[Value], s: Spelling) -> String {
    let mut out: String = events.iter().map(|v| event(None, v, s)).collect();
    out.push_str("data: [DONE]\n\n");
    out
}

fn run(relay: &mut dyn Relay, bytes: &str) -> String {
    // Two chunks, cut mid-stream, so events also span a chunk boundary.
    let (a, b) = bytes.as_bytes().split_at(bytes.len() / 2);
    let mut out = relay.feed(a.to_vec());
    out.extend(relay.feed(b.to_vec()));
    out.extend(relay.finish());
    String::from_utf8(out).unwrap()
}

/// Data payloads of the client's stream, parsed.
fn payloads(sse: &str) -> Vec<Value> {
    let mut dec = SseDecoder::new();
    let mut evs = dec.feed(sse.as_bytes()).unwrap();
    evs.extend(dec.finish());
    evs.iter()
        .map(|e| serde_json::from_str(&e.data).unwrap_or(Value::String(e.data.clone())))
        .collect()
}

#[test]
fn openai_chat_stream_meters_alike_in_every_spelling() {
    // "Héllo 😀" 7 + arguments {"a": "ü"} 10 + "no" 2 characters.
    let want_chars = 7 + 10 + 2;
    let want_tokens = Tokens {
        prompt: 9,
        completion: 7,
        cached: 3,
        cache_write: 0,
        reasoning: 1,
    };
    for s in SPELLINGS {
        let bytes = chat_stream(&chat_events(), s);
        for strip in [false, true] {
            let mut relay = StreamRelay::new(strip);
            let out = run(&mut relay, &bytes);
            let m = relay.meter();
            assert_eq!(m.completion_chars, want_chars, "{s:?} strip={strip}");
            assert_eq!(m.finish_reason.as_deref(), Some("tool_calls"), "{s:?}");
            assert_eq!(m.usage, Some(want_tokens), "{s:?}");
            assert!(m.saw_done && m.upstream_error.is_none(), "{s:?}");
            let settled = Relay::settle(&relay, 0, false);
            assert_eq!(
                (settled.outcome, settled.source),
                (Outcome::Ok, UsageSource::Upstream)
            );
            let got = payloads(&out);
            let with_usage = got
                .iter()
                .filter(|p| p.get("usage").is_some_and(|u| !u.is_null()))
                .count();
            if strip {
                // The injected usage chunk is gone; everything else is the stream as sent.
                assert_eq!(with_usage, 0, "{s:?}: usage chunk not stripped");
                assert_eq!(out, bytes.replace(&event(None, &chat_events()[4], s), ""));
            } else {
                assert_eq!(with_usage, 1);
                assert_eq!(out, bytes);
            }
        }
    }
}

#[test]
fn openai_in_band_error_found_in_every_spelling() {
    let events = vec![
        chat_events()[1].clone(),
        json!({"error":{"message":"Überlastet","type":"server_error","code":"overloaded"}}),
    ];
    for s in SPELLINGS {
        let mut relay = StreamRelay::new(true);
        run(&mut relay, &chat_stream(&events, s));
        assert_eq!(
            relay.meter().upstream_error.as_deref(),
            Some("overloaded"),
            "{s:?}"
        );
        assert_eq!(relay.meter().completion_chars, 7, "{s:?}");
        assert_eq!(
            Relay::settle(&relay, 0, false).outcome,
            Outcome::UpstreamError
        );
    }
}

#[test]
fn legacy_completion_text_meters_alike() {
    let events = vec![
        json!({"id":"x","object":"text_completion","choices":[{"text":"naïve 😀","index":0,"finish_reason":null}]}),
        json!({"id":"x","object":"text_completion","choices":[{"text":"!","index":0,"finish_reason":"length"}]}),
    ];
    for s in SPELLINGS {
        let mut relay = StreamRelay::new(false);
        run(&mut relay, &chat_stream(&events, s));
        assert_eq!(relay.meter().completion_chars, 8, "{s:?}");
        assert_eq!(relay.meter().finish_reason.as_deref(), Some("length"));
        // No usage: the estimate comes from what was streamed.
        let settled = Relay::settle(&relay, 8, false);
        assert_eq!(settled.tokens, Tokens::estimated(8, 8));
    }
}

/// A native Anthropic stream: text with an emoji, tool input, thinking, cumulative usage.
fn anthropic_stream(s: Spelling, with_error: bool) -> String {
    let mut evs = vec![
        (
            "message_start",
            json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"usage":{"input_tokens":40,"cache_creation_input_tokens":5,"cache_read_input_tokens":20,"output_tokens":1}}}),
        ),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Grüße 😀"}}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        ),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"f","input":{}}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"q\": \"é\"}"}}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":1}),
        ),
    ];
    if with_error {
        evs.push((
            "error",
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        ));
    } else {
        evs.push(("message_delta", json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":30}})));
        evs.push(("message_stop", json!({"type":"message_stop"})));
    }
    evs.iter().map(|(n, v)| event(Some(n), v, s)).collect()
}

#[test]
fn anthropic_streams_meter_alike_in_every_spelling() {
    let want = Tokens {
        prompt: 65,
        completion: 30,
        cached: 20,
        cache_write: 5,
        reasoning: 0,
    };
    for s in SPELLINGS {
        let bytes = anthropic_stream(s, false);
        let mut pass = PassThrough::new();
        assert_eq!(
            run(&mut pass, &bytes),
            bytes,
            "{s:?}: pass-through is byte-faithful"
        );
        // "Grüße 😀" 7 + {"q": "é"} 10 characters.
        assert_eq!(pass.meter().completion_chars, 17, "{s:?}");
        let settled = pass.settle(0, false);
        assert_eq!(
            (settled.outcome, settled.tokens, settled.source),
            (Outcome::Ok, want, UsageSource::Upstream),
            "{s:?}"
        );
        assert_eq!(settled.finish_reason.as_deref(), Some("tool_use"));

        let mut t = StreamTranslator::new("id".into(), 1, "m".into(), true);
        let mut dec = SseDecoder::new();
        let mut out = Vec::new();
        for ev in dec.feed(bytes.as_bytes()).unwrap() {
            out.extend(t.on_event(&ev));
        }
        let chunks = payloads(&String::from_utf8(out).unwrap());
        assert_eq!(t.meter().completion_chars, 17, "{s:?}");
        assert_eq!(t.meter().settle(0, false).1, want, "{s:?}");
        let usage = chunks.iter().find(|c| c["choices"] == json!([])).unwrap();
        assert_eq!(usage["usage"]["prompt_tokens"], 65);

        let mut err = PassThrough::new();
        run(&mut err, &anthropic_stream(s, true));
        assert_eq!(
            err.meter().upstream_error.as_deref(),
            Some("overloaded_error"),
            "{s:?}"
        );
    }
}
