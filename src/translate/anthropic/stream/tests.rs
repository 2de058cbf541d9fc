//! Tests for the Anthropic stream meter and the Messages → Chat stream translator.

use super::*;
use crate::metering::usage::{Outcome, Tokens, UsageSource};
use crate::protocols::sse::SseDecoder;

/// protocol.md §5.4, byte for byte.
const EXAMPLE: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-1-20250805\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}\n",
        "\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n",
        "\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay\"}}\n",
        "\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n",
        "\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"San Francisco, CA\\\"}\"}}\n",
        "\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n",
        "\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n",
        "\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n",
        "\n",
    );

/// The §6.5 worked example payloads (the doc abbreviates the id).
const WANT: [&str; 6] = [
    r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[{"index":0,"delta":{"content":"Okay"},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\":"}}]},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" \"San Francisco, CA\"}"}}]},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}"#,
];
const USAGE_CHUNK: &str = r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[],"usage":{"prompt_tokens":472,"completion_tokens":89,"total_tokens":561,"prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":0}}}"#;

fn translator(include_usage: bool) -> StreamTranslator {
    StreamTranslator::new(
        "rly_1".to_string(),
        1741570283,
        "relay-sonnet".to_string(),
        include_usage,
    )
}

/// Upstream chunks → SseDecoder → translator → client bytes, ending with EOF.
fn run(chunks: &[&[u8]], include_usage: bool) -> (String, StreamTranslator) {
    let mut dec = SseDecoder::new();
    let mut t = translator(include_usage);
    let mut out = Vec::new();
    for c in chunks {
        for ev in dec.feed(c).unwrap() {
            out.extend(t.on_event(&ev));
        }
    }
    if let Some(ev) = dec.finish() {
        out.extend(t.on_event(&ev));
    }
    out.extend(t.finish());
    (String::from_utf8(out).unwrap(), t)
}

fn framed(payloads: &[&str]) -> String {
    payloads.iter().map(|p| format!("data: {p}\n\n")).collect()
}

#[test]
fn t22_section_5_4_example_without_usage() {
    let (out, t) = run(&[EXAMPLE.as_bytes()], false);
    let mut want: Vec<&str> = WANT.to_vec();
    want.push("[DONE]");
    assert_eq!(out, framed(&want));
    let (outcome, tokens, source) = t.meter().settle(0, false);
    assert_eq!((outcome, source), (Outcome::Ok, UsageSource::Upstream));
    assert_eq!((tokens.prompt, tokens.completion), (472, 89));
    assert_eq!(t.meter().stop_reason.as_deref(), Some("tool_use"));
}

#[test]
fn t22_section_5_4_example_with_usage() {
    let (out, _) = run(&[EXAMPLE.as_bytes()], true);
    let with_null: Vec<String> = WANT
        .iter()
        .map(|p| format!("{},\"usage\":null}}", p.strip_suffix('}').unwrap()))
        .collect();
    let mut want: Vec<&str> = with_null.iter().map(String::as_str).collect();
    want.push(USAGE_CHUNK);
    want.push("[DONE]");
    assert_eq!(out, framed(&want));
}

#[test]
fn every_two_way_split_gives_identical_output() {
    let bytes = EXAMPLE.as_bytes();
    let (whole, _) = run(&[bytes], true);
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        let (got, t) = run(&[a, b], true);
        assert_eq!(got, whole, "split at {i}");
        assert_eq!(t.meter().settle(0, false).1.completion, 89);
    }
}

fn ev(kind: &str, data: &str) -> SseEvent {
    SseEvent {
        event: Some(kind.to_string()),
        data: data.to_string(),
        start: 0,
        end: 0,
    }
}

fn start() -> SseEvent {
    ev(
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":10,"output_tokens":1}}}"#,
    )
}

fn payloads(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .split("\n\n")
        .filter(|s| !s.is_empty())
        .map(|s| {
            let p = s.strip_prefix("data: ").unwrap();
            serde_json::from_str(p).unwrap_or(Value::String(p.to_string()))
        })
        .collect()
}

#[test]
fn t23_midstream_error_is_one_error_event_then_done() {
    let mut t = translator(false);
    let mut out = t.on_event(&start());
    out.extend(t.on_event(&ev(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    )));
    let err = ev(
        "error",
        r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
    );
    let tail = t.on_event(&err);
    assert_eq!(
            String::from_utf8(tail).unwrap(),
            "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":\"overloaded_error\"}}\n\ndata: [DONE]\n\n"
        );
    assert!(t.ended());
    assert!(t
        .on_event(&ev("message_stop", r#"{"type":"message_stop"}"#))
        .is_empty());
    assert!(t.finish().is_empty());
    assert_eq!(
        t.meter().upstream_error.as_deref(),
        Some("overloaded_error")
    );
    assert_eq!(t.meter().settle(40, false).0, Outcome::UpstreamError);
}

fn tool_start(index: u64, id: &str) -> SseEvent {
    ev(
        "content_block_start",
        &format!(
            r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"tool_use","id":"{id}","name":"f","input":{{}}}}}}"#
        ),
    )
}

fn json_delta(index: u64, partial: &str) -> SseEvent {
    ev(
        "content_block_delta",
        &serde_json::json!({"type":"content_block_delta","index":index,
                "delta":{"type":"input_json_delta","partial_json":partial}})
        .to_string(),
    )
}

fn stop(index: u64) -> SseEvent {
    ev(
        "content_block_stop",
        &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
    )
}

fn text_block(index: u64, text: &str) -> Vec<SseEvent> {
    vec![
        ev(
            "content_block_start",
            &format!(
                r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}"#
            ),
        ),
        ev(
            "content_block_delta",
            &format!(
                r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":"{text}"}}}}"#
            ),
        ),
        stop(index),
    ]
}

/// Accumulates tool calls the way the openai SDK does: by index, concatenating strings.
fn accumulate(chunks: &[Value]) -> Vec<(u64, String, String)> {
    let mut calls: Vec<(u64, String, String)> = Vec::new();
    for c in chunks {
        let Some(tcs) = c
            .pointer("/choices/0/delta/tool_calls")
            .and_then(Value::as_array)
        else {
            continue;
        };
        for tc in tcs {
            let idx = tc["index"].as_u64().unwrap();
            let id = tc.get("id").and_then(Value::as_str).unwrap_or("");
            let args = tc["function"]["arguments"].as_str().unwrap_or("");
            match calls.iter_mut().find(|c| c.0 == idx) {
                Some(c) => {
                    c.1.push_str(id);
                    c.2.push_str(args);
                }
                None => calls.push((idx, id.to_string(), args.to_string())),
            }
        }
    }
    calls
}

#[test]
fn t24_empty_tool_input_accumulates_to_braces() {
    let mut t = translator(false);
    let mut out = Vec::new();
    for e in [
        start(),
        tool_start(0, "toolu_A"),
        json_delta(0, ""),
        stop(0),
    ] {
        out.extend(t.on_event(&e));
    }
    let chunks = payloads(&out);
    assert_eq!(
        chunks[2]["choices"][0]["delta"],
        serde_json::json!({"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]})
    );
    assert_eq!(
        accumulate(&chunks),
        vec![(0, "toolu_A".to_string(), "{}".to_string())]
    );
}

#[test]
fn t25_tool_indices_are_dense() {
    let mut t = translator(false);
    let mut events = vec![start()];
    events.extend(text_block(0, "a"));
    events.extend([
        tool_start(1, "toolu_A"),
        json_delta(1, "{\"x\":1}"),
        stop(1),
    ]);
    events.extend(text_block(2, "b"));
    events.extend([
        tool_start(3, "toolu_B"),
        json_delta(3, ""),
        json_delta(3, "{}"),
        stop(3),
    ]);
    events.push(ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}"#,
        ));
    events.push(ev("message_stop", r#"{"type":"message_stop"}"#));
    let mut out = Vec::new();
    for e in &events {
        out.extend(t.on_event(e));
    }
    let chunks = payloads(&out);
    assert_eq!(
        accumulate(&chunks),
        vec![
            (0, "toolu_A".to_string(), "{\"x\":1}".to_string()),
            (1, "toolu_B".to_string(), "{}".to_string())
        ]
    );
    let finishes: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, vec!["tool_calls"]);
    assert_eq!(chunks.last().unwrap(), &Value::String("[DONE]".into()));
}

#[test]
fn thinking_ping_and_unknown_events_send_nothing() {
    let mut t = translator(false);
    t.on_event(&start());
    let quiet = [
        ev("ping", r#"{"type": "ping"}"#),
        ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
        ),
        ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
        ),
        ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"x"}}"#,
        ),
        stop(0),
        ev("brand_new_event", r#"{"type":"brand_new_event"}"#),
    ];
    for e in &quiet {
        assert!(t.on_event(e).is_empty(), "{e:?}");
    }
    assert_eq!(t.meter().completion_chars, 3);
}

#[test]
fn truncated_stream_ends_with_r2_7_tail() {
    let (out, t) = run(&[&EXAMPLE.as_bytes()[..600]], false);
    assert!(out.ends_with(
        &String::from_utf8(RelayError::UpstreamStreamEnded.openai_stream_tail()).unwrap()
    ));
    assert!(!out.contains("finish_reason\":\"tool_calls"));
    let (outcome, tokens, source) = t.meter().settle(0, false);
    assert_eq!(
        (outcome, source),
        (Outcome::Truncated, UsageSource::Estimated)
    );
    // Input from message_start, output estimated rather than the placeholder 2.
    assert_eq!(tokens.prompt, 472);
    assert_eq!(t.meter().settle(0, true).0, Outcome::ClientCancelled);
}

#[test]
fn meter_overwrites_cumulative_usage() {
    let mut m = AnthropicMeter::default();
    let events = [
        ev(
            "message_start",
            r#"{"type":"message_start","message":{"usage":{"input_tokens":849,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}}"#,
        ),
        ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":30}}"#,
        ),
        ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":900,"cache_creation_input_tokens":7,"cache_read_input_tokens":null,"output_tokens":47}}"#,
        ),
        ev("message_stop", r#"{"type":"message_stop"}"#),
    ];
    for e in &events {
        m.observe(e);
    }
    assert_eq!(
        m.usage,
        Some(Usage {
            input_tokens: 900,
            cache_creation_input_tokens: 7,
            cache_read_input_tokens: 0,
            output_tokens: 47
        })
    );
    let (outcome, tokens, source) = m.settle(0, false);
    assert_eq!((outcome, source), (Outcome::Ok, UsageSource::Upstream));
    assert_eq!(
        tokens,
        Tokens {
            prompt: 907,
            completion: 47,
            cached: 0,
            cache_write: 7,
            reasoning: 0
        }
    );
    assert_eq!(m.stop_reason.as_deref(), Some("end_turn"));
    assert!(m.saw_stop);
    assert_eq!(m.events, 4);
}

#[test]
fn meter_without_usage_estimates() {
    let mut m = AnthropicMeter::default();
    m.observe(&ev(
        "content_block_delta",
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"12345"}}"#,
    ));
    m.observe(&ev("error", "not json"));
    assert_eq!(m.upstream_error.as_deref(), Some("error"));
    assert_eq!(
        m.settle(8, false),
        (
            Outcome::UpstreamError,
            Tokens::estimated(8, 5),
            UsageSource::Estimated
        )
    );
}

fn answer_start(index: u64) -> SseEvent {
    ev(
        "content_block_start",
        &format!(
            r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"tool_use","id":"toolu_a","name":"json_response","input":{{}}}}}}"#
        ),
    )
}

fn tool_use_end(t: &mut StreamTranslator) -> Vec<u8> {
    let mut out = t.on_event(&ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#,
        ));
    out.extend(t.on_event(&ev("message_stop", r#"{"type":"message_stop"}"#)));
    out
}

/// `response_format` on Claude: the answer tool's input streams as `content` fragments, no
/// tool call reaches the client, and the turn finishes with `stop`.
#[test]
fn answer_tool_streams_as_content_and_finishes_with_stop() {
    let answer = r#"{"steps":["8x = -29"],"final_answer":"x = -29/8"}"#;
    let mut t = translator(false).with_answer_tool(true);
    let mut out = t.on_event(&start());
    out.extend(t.on_event(&answer_start(0)));
    for piece in [&answer[..0], &answer[..9], &answer[9..30], &answer[30..]] {
        out.extend(t.on_event(&json_delta(0, piece)));
    }
    out.extend(t.on_event(&stop(0)));
    out.extend(tool_use_end(&mut t));
    let chunks = payloads(&out);
    let content: String = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(content, answer);
    assert!(
        chunks
            .iter()
            .all(|c| c.pointer("/choices/0/delta/tool_calls").is_none()),
        "no tool call leaks to the client"
    );
    assert_eq!(
        chunks.iter().rev().nth(1).unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(t.finish_reason(), Some("stop"));
    assert_eq!(t.meter().stop_reason.as_deref(), Some("tool_use"));

    // Input given whole in the start block and nothing streamed: sent at the block's end.
    let mut t = translator(false).with_answer_tool(true);
    let mut out = t.on_event(&start());
    out.extend(t.on_event(&ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_a","name":"json_response","input":{"a":1}}}"#,
        )));
    out.extend(t.on_event(&stop(0)));
    out.extend(tool_use_end(&mut t));
    let content: Vec<String> = payloads(&out)
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/content")
                .and_then(Value::as_str)
        })
        .map(str::to_string)
        .collect();
    assert_eq!(content, ["", r#"{"a":1}"#]);

    // Without response_format a tool of that name is an ordinary call.
    let mut t = translator(false);
    let mut out = t.on_event(&start());
    out.extend(t.on_event(&answer_start(0)));
    out.extend(t.on_event(&stop(0)));
    out.extend(tool_use_end(&mut t));
    assert_eq!(t.finish_reason(), Some("tool_calls"));
}

/// With the client's own tools in play, a real call alongside the answer keeps `tool_calls`.
#[test]
fn answer_tool_next_to_a_real_call_keeps_tool_calls() {
    let mut t = translator(false).with_answer_tool(true);
    let mut out = t.on_event(&start());
    out.extend(t.on_event(&tool_start(0, "toolu_f")));
    out.extend(t.on_event(&stop(0)));
    out.extend(t.on_event(&answer_start(1)));
    out.extend(t.on_event(&json_delta(1, "{}")));
    out.extend(t.on_event(&stop(1)));
    out.extend(tool_use_end(&mut t));
    assert_eq!(accumulate(&payloads(&out)).len(), 1);
    assert_eq!(t.finish_reason(), Some("tool_calls"));
}

#[test]
fn custom_tool_use_streams_as_custom_call_input() {
    let patch = "*** Begin Patch\n*** Update File: \"a.rs\"\n+é\n*** End Patch";
    let raw = serde_json::json!({"input": patch}).to_string();
    let mut t = translator(false).with_custom_tools(vec!["ApplyPatch".to_string()]);
    let mut out = t.on_event(&start());
    out.extend(t.on_event(&tool_start(0, "toolu_f")));
    out.extend(t.on_event(&stop(0)));
    out.extend(t.on_event(&ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_p","name":"ApplyPatch","input":{}}}"#,
        )));
    // Fragments cut mid-key, mid-escape and mid-character.
    let cuts = [0, 3, 12, 27, 28, raw.len() - 3, raw.len()];
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let (a, b) = (
            (a..=b).find(|i| raw.is_char_boundary(*i)).unwrap(),
            (b..=raw.len()).find(|i| raw.is_char_boundary(*i)).unwrap(),
        );
        out.extend(t.on_event(&json_delta(1, &raw[a..b])));
    }
    out.extend(t.on_event(&stop(1)));
    out.extend(t.on_event(&ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}"#,
        )));
    out.extend(t.on_event(&ev("message_stop", r#"{"type":"message_stop"}"#)));
    let chunks = payloads(&out);
    // The function tool is still a function call, at index 0.
    assert_eq!(
        accumulate(&chunks)[0],
        (0, "toolu_f".to_string(), "{}".to_string())
    );
    let custom: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
        .filter(|tc| tc["index"] == 1)
        .collect();
    assert_eq!(
        custom[0],
        &serde_json::json!({"index":1,"id":"toolu_p","type":"custom",
                                "custom":{"name":"ApplyPatch","input":""}})
    );
    let input: String = custom[1..]
        .iter()
        .map(|tc| {
            assert_eq!(
                tc.as_object().unwrap().len(),
                2,
                "later fragments: index + custom"
            );
            tc["custom"]["input"].as_str().unwrap()
        })
        .collect();
    assert_eq!(input, patch);
    assert!(custom.len() > 3, "the input streamed in pieces: {custom:?}");
    assert_eq!(
        chunks.iter().rev().nth(1).unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}
