//! Tests for the A→O direction: request, non-stream answer and stream translation.

use serde_json::{json, Value};

use super::stream::anthropic_error_type;
use super::*;
use crate::http::error::RelayError;
use crate::http::ids::sha256_hex;
use crate::metering::usage::{Outcome, Tokens, UsageSource};
use crate::protocols::messages::TRUNCATED_TAIL;
use crate::protocols::sse::SseDecoder;
use crate::protocols::stream::Relay;

// ---- request ------------------------------------------------------------------------------

fn req(body: Value) -> Value {
    to_chat_request(&body, "gpt-4o", true).unwrap()
}

fn param_of(body: Value) -> Option<String> {
    match to_chat_request(&body, "gpt-4o", true) {
        Err(RelayError::InvalidRequest { param, .. }) => param,
        other => Some(format!("not a 400: {other:?}")),
    }
}

#[test]
fn request_with_no_content_left_is_refused() {
    // Found by tests/fuzz: an empty assistant turn alone became Chat's `messages: []`,
    // which the provider refuses after the relay had already spent an attempt on it.
    let empty = json!({"model":"m","max_tokens":1,"messages":[{"role":"assistant","content":[]}]});
    assert_eq!(param_of(empty).as_deref(), Some("messages"));
    let thinking = json!({"model":"m","max_tokens":1,"messages":[{"role":"assistant",
            "content":[{"type":"thinking","thinking":"hm","signature":"s"}]}]});
    assert_eq!(param_of(thinking).as_deref(), Some("messages"));
    // A system prompt is content enough for Chat.
    let with_system = json!({"model":"m","max_tokens":1,"system":"Be brief.",
            "messages":[{"role":"assistant","content":[]}]});
    assert_eq!(
        req(with_system)["messages"].as_array().map(Vec::len),
        Some(1)
    );
}

#[test]
fn request_golden_tool_round_trip() {
    let schema =
        json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]});
    let anthropic = json!({"model":"relay-gpt","max_tokens":1024,"temperature":0.2,"top_p":0.9,
            "top_k":40,"stop_sequences":["END"],"metadata":{"user_id":"user_abc"},"stream":true,
            "thinking":{"type":"enabled","budget_tokens":2048},"service_tier":"auto","unknown":1,
            "system":[{"type":"text","text":"You are terse.","cache_control":{"type":"ephemeral"}},
                      {"type":"text","text":"Answer in English."}],
            "tools":[{"name":"get_weather","description":"Get weather","input_schema":schema,
                      "cache_control":{"type":"ephemeral"}}],
            "tool_choice":{"type":"any","disable_parallel_tool_use":true},
            "messages":[
                {"role":"user","content":"Weather in SF?"},
                {"role":"assistant","content":[
                    {"type":"thinking","thinking":"hmm","signature":"sig"},
                    {"type":"text","text":"Checking."},
                    {"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{"city":"SF"}}]},
                {"role":"user","content":[
                    {"type":"tool_result","tool_use_id":"toolu_01A",
                     "content":[{"type":"text","text":"15°C"},{"type":"text","text":"fog"}]},
                    {"type":"text","text":"And tomorrow?"}]},
                {"role":"assistant","content":[
                    {"type":"tool_use","id":"toolu_01B","name":"get_weather","input":{}}]},
                {"role":"user","content":[
                    {"type":"tool_result","tool_use_id":"toolu_01B","content":"rain","is_error":false},
                    {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0KGgo="}},
                    {"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}]});
    let want = json!({"model":"gpt-4o","max_completion_tokens":1024,"temperature":0.2,"top_p":0.9,
            "stop":["END"],"user":sha256_hex("user_abc"),"stream":true,
            "stream_options":{"include_usage":true},
            "messages":[
                {"role":"system","content":"You are terse.\nAnswer in English."},
                {"role":"user","content":"Weather in SF?"},
                {"role":"assistant","content":"Checking.","tool_calls":[
                    {"id":"toolu_01A","type":"function",
                     "function":{"name":"get_weather","arguments":"{\"city\":\"SF\"}"}}]},
                {"role":"tool","tool_call_id":"toolu_01A","content":"15°C\nfog"},
                {"role":"user","content":"And tomorrow?"},
                {"role":"assistant","content":null,"tool_calls":[
                    {"id":"toolu_01B","type":"function",
                     "function":{"name":"get_weather","arguments":"{}"}}]},
                {"role":"tool","tool_call_id":"toolu_01B","content":"rain"},
                {"role":"user","content":[
                    {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}},
                    {"type":"image_url","image_url":{"url":"https://example.com/a.png"}}]}],
            "tools":[{"type":"function","function":{"name":"get_weather","description":"Get weather",
                "parameters":schema}}],
            "tool_choice":"required","parallel_tool_calls":false});
    assert_eq!(req(anthropic.clone()), want);

    // A provider without include_usage support gets no stream_options.
    let plain = to_chat_request(&anthropic, "gpt-4o", false).unwrap();
    assert_eq!(plain.get("stream_options"), None);
    assert_eq!(plain["stream"], true);
}

#[test]
fn request_minimal_and_tool_choices() {
    let out = req(json!({"model":"m","max_tokens":5,"system":"Be brief.",
            "messages":[{"role":"user","content":"hi"}]}));
    assert_eq!(
        out,
        json!({"model":"gpt-4o","max_completion_tokens":5,"messages":[
                {"role":"system","content":"Be brief."},{"role":"user","content":"hi"}]})
    );
    let tools = json!([{"name":"f","input_schema":{"type":"object"}}]);
    let rows = [
        (json!({"type":"auto"}), json!("auto"), None),
        (json!({"type":"none"}), json!("none"), None),
        (
            json!({"type":"tool","name":"f","disable_parallel_tool_use":true}),
            json!({"type":"function","function":{"name":"f"}}),
            Some(json!(false)),
        ),
    ];
    for (choice, want, parallel) in rows {
        let out = req(
            json!({"model":"m","messages":[{"role":"user","content":"x"}],
                "tools":tools,"tool_choice":choice}),
        );
        assert_eq!(out["tool_choice"], want);
        assert_eq!(out.get("parallel_tool_calls"), parallel.as_ref());
        assert_eq!(
            out["tools"][0]["function"]["parameters"],
            json!({"type":"object"})
        );
    }
    // Without tools, tool_choice is validated but not sent; an empty system is not sent.
    let out = req(json!({"model":"m","system":[],"tool_choice":{"type":"any"},
            "messages":[{"role":"user","content":"x"}],"stream":false}));
    assert_eq!(
        out,
        json!({"model":"gpt-4o","stream":false,"messages":[{"role":"user","content":"x"}]})
    );
}

#[test]
fn request_tool_result_images_follow_the_tool_message() {
    let out = req(json!({"model":"m","messages":[
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[
                {"type":"text","text":"shot:"},
                {"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"AAA"}}]},
                {"type":"text","text":"What is it?"}]}]}));
    assert_eq!(
        out["messages"],
        json!([
                {"role":"tool","tool_call_id":"t1","content":"shot:"},
                {"role":"user","content":[
                    {"type":"image_url","image_url":{"url":"data:image/jpeg;base64,AAA"}},
                    {"type":"text","text":"What is it?"}]}])
    );
}

/// Claude Code's shape for a model it does not know: a system message after the first user
/// turn, blocks with `cache_control`, another after a tool round trip. Each stays where it
/// was, as a Chat `system` message; the top-level `system` still leads.
#[test]
fn mid_conversation_system_messages_keep_their_place() {
    let out = req(json!({"model":"m","max_tokens":32000,
            "system":[{"type":"text","text":"You are Claude Code."}],
            "messages":[
                {"role":"user","content":[{"type":"text","text":"<system-reminder>r</system-reminder>"},
                    {"type":"text","text":"what does hello.txt say"}]},
                {"role":"system","content":[{"type":"text","text":"# Environment","cache_control":{"type":"ephemeral"}},
                    {"type":"text","text":"cwd: /tmp"}]},
                {"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},
                    {"type":"tool_use","id":"toolu_1","name":"Read","input":{"file_path":"hello.txt"}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"hello",
                    "cache_control":{"type":"ephemeral"}}]},
                {"role":"system","content":"Be brief."},
                {"role":"system","content":""}]}));
    assert_eq!(
        out["messages"],
        json!([
                {"role":"system","content":"You are Claude Code."},
                {"role":"user","content":"<system-reminder>r</system-reminder>\nwhat does hello.txt say"},
                {"role":"system","content":"# Environment\ncwd: /tmp"},
                {"role":"assistant","content":null,"tool_calls":[{"id":"toolu_1","type":"function",
                    "function":{"name":"Read","arguments":"{\"file_path\":\"hello.txt\"}"}}]},
                {"role":"tool","tool_call_id":"toolu_1","content":"hello"},
                {"role":"system","content":"Be brief."}])
    );
}

#[test]
fn request_invalid_shapes_name_the_param() {
    let user = |content: Value| json!({"role":"user","content":content});
    let rows: Vec<(Value, &str)> = vec![
        (json!({"model":"m"}), "messages"),
        (json!({"model":"m","messages":[]}), "messages"),
        (json!({"model":"m","messages":"hi"}), "messages"),
        (
            json!({"model":"m","messages":[{"role":"tool","content":"x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model":"m","messages":[user(json!("a")),
                    {"role":"system","content":[{"type":"image","source":{}}]}]}),
            "messages[1].content[0].type",
        ),
        (
            json!({"model":"m","messages":[user(json!("a")),{"role":"system","content":7}]}),
            "messages[1].content",
        ),
        (
            json!({"model":"m","messages":[{"role":"user"}]}),
            "messages[0].content",
        ),
        (
            json!({"model":"m","messages":[user(json!("a")),{"role":"assistant","content":"b"},
                    user(json!([{"type":"document","source":{}}]))]}),
            "messages[2].content[0].type",
        ),
        (
            json!({"model":"m","messages":[user(json!([{"type":"text"}]))]}),
            "messages[0].content[0].text",
        ),
        (
            json!({"model":"m","messages":[user(json!([{"type":"image","source":{"type":"file","file_id":"f"}}]))]}),
            "messages[0].content[0].source.type",
        ),
        (
            json!({"model":"m","messages":[user(json!([{"type":"image","source":{"type":"base64","data":"A"}}]))]}),
            "messages[0].content[0].source.media_type",
        ),
        (
            json!({"model":"m","messages":[user(json!([{"type":"tool_result","content":"x"}]))]}),
            "messages[0].content[0].tool_use_id",
        ),
        (
            json!({"model":"m","messages":[user(json!([{"type":"tool_result","tool_use_id":"t",
                    "content":[{"type":"document"}]}]))]}),
            "messages[0].content[0].content[0].type",
        ),
        (
            json!({"model":"m","messages":[user(json!("a")),{"role":"assistant","content":[
                    {"type":"tool_use","id":"t","name":"f","input":"{}"}]}]}),
            "messages[1].content[0].input",
        ),
        (
            json!({"model":"m","messages":[user(json!("a")),{"role":"assistant","content":[
                    {"type":"tool_use","id":"t","input":{}}]}]}),
            "messages[1].content[0].name",
        ),
        (
            json!({"model":"m","system":[{"type":"image"}],"messages":[user(json!("a"))]}),
            "system[0].type",
        ),
        (
            json!({"model":"m","max_tokens":"9","messages":[user(json!("a"))]}),
            "max_tokens",
        ),
        (
            json!({"model":"m","temperature":"hot","messages":[user(json!("a"))]}),
            "temperature",
        ),
        (
            json!({"model":"m","stop_sequences":["a",1],"messages":[user(json!("a"))]}),
            "stop_sequences[1]",
        ),
        (
            json!({"model":"m","stream":"yes","messages":[user(json!("a"))]}),
            "stream",
        ),
        (
            json!({"model":"m","messages":[user(json!("a"))],
                    "tools":[{"type":"web_search_20250305","name":"web_search"}]}),
            "tools[0].type",
        ),
        (
            json!({"model":"m","messages":[user(json!("a"))],"tools":[{"input_schema":{}}]}),
            "tools[0].name",
        ),
        (
            json!({"model":"m","messages":[user(json!("a"))],"tool_choice":{"type":"bogus"}}),
            "tool_choice.type",
        ),
        (
            json!({"model":"m","messages":[user(json!("a"))],"tool_choice":{"type":"tool"}}),
            "tool_choice.name",
        ),
    ];
    for (body, want) in rows {
        assert_eq!(param_of(body.clone()).as_deref(), Some(want), "{body}");
    }
    assert_eq!(
        to_chat_request(&json!([]), "m", true).unwrap_err().status(),
        400
    );
}

// ---- non-stream response ----------------------------------------------------------------

#[test]
fn non_stream_response_maps_to_message() {
    let completion = json!({"id":"chatcmpl-B9a","object":"chat.completion","created":1,
            "model":"gpt-4o-2024-08-06","choices":[{"index":0,"logprobs":null,"finish_reason":"tool_calls",
                "message":{"role":"assistant","content":"Let me check.","refusal":null,
                    "tool_calls":[
                        {"id":"call_A","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"SF\"}"}},
                        {"id":"call_B","type":"function","function":{"name":"broken","arguments":"{not json"}},
                        {"type":"function","function":{"name":"no_id","arguments":""}}]}}],
            "usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,
                "prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":5}}});
    let want = json!({"id":"msg_B9a","type":"message","role":"assistant","model":"relay-gpt",
            "content":[
                {"type":"text","text":"Let me check."},
                {"type":"tool_use","id":"call_A","name":"get_weather","input":{"city":"SF"}},
                {"type":"tool_use","id":"call_B","name":"broken","input":{}},
                {"type":"tool_use","id":"toolu_B9a_2","name":"no_id","input":{}}],
            "stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":18,"cache_creation_input_tokens":0,"cache_read_input_tokens":64,
                "output_tokens":17}});
    assert_eq!(to_message(&completion, "relay-gpt"), want);

    // Cache writes come out of input_tokens too, so the three input fields sum to prompt.
    let cached = json!({"id":"gen-1","choices":[{"message":{"content":"ok"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":100,"completion_tokens":3,
                "prompt_tokens_details":{"cached_tokens":60,"cache_write_tokens":12}}});
    let m = to_message(&cached, "m");
    assert_eq!(m["id"], "gen-1");
    assert_eq!(
        m["usage"],
        json!({"input_tokens":28,"cache_creation_input_tokens":12,"cache_read_input_tokens":60,"output_tokens":3})
    );

    // Nothing usable: an empty message with zero usage; a refusal is shown as text.
    let empty = to_message(&json!({}), "m");
    assert_eq!(
        empty,
        json!({"id":"msg_relay","type":"message","role":"assistant","model":"m","content":[],
                "stop_reason":"end_turn","stop_sequence":null,
                "usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}})
    );
    let refusal = json!({"id":"chatcmpl-r","choices":[{"message":{"content":null,
            "refusal":"I can't help with that."},"finish_reason":"content_filter"}]});
    let m = to_message(&refusal, "m");
    assert_eq!(
        m["content"],
        json!([{"type":"text","text":"I can't help with that."}])
    );
    assert_eq!(m["stop_reason"], "refusal");
}

// ---- stream -------------------------------------------------------------------------------

fn chunk(body: &str) -> String {
    format!(
            "data: {{\"id\":\"chatcmpl-B9a\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o\",\"choices\":[{body}],\"usage\":null}}\n\n"
        )
}

fn delta(d: &str) -> String {
    chunk(&format!(
        "{{\"index\":0,\"delta\":{d},\"logprobs\":null,\"finish_reason\":null}}"
    ))
}

fn finish_chunk(reason: &str) -> String {
    chunk(&format!(
        "{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"{reason}\"}}"
    ))
}

const USAGE: &str = "data: {\"id\":\"chatcmpl-B9a\",\"object\":\"chat.completion.chunk\",\"created\":1741570283,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":82,\"completion_tokens\":17,\"total_tokens\":99,\"prompt_tokens_details\":{\"cached_tokens\":64},\"completion_tokens_details\":{\"reasoning_tokens\":5}}}\n\n";
const DONE: &str = "data: [DONE]\n\n";

/// An OpenAI stream with text, then one tool call, then the usage chunk and `[DONE]`.
fn t28_upstream() -> String {
    [
            delta(r#"{"role":"assistant","content":"","refusal":null}"#),
            delta(r#"{"content":"Let me check"}"#),
            delta(r#"{"content":" the weather."}"#),
            delta(
                r#"{"tool_calls":[{"index":0,"id":"call_A","type":"function","function":{"name":"get_weather","arguments":""}}]}"#,
            ),
            delta(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#),
            delta(r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"SF\"}"}}]}"#),
            finish_chunk("tool_calls"),
            USAGE.to_string(),
            DONE.to_string(),
        ]
        .concat()
}

const T28_WANT: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_B9a\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"relay-gpt\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n",
        "\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check\"}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" the weather.\"}}\n",
        "\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n",
        "\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_A\",\"name\":\"get_weather\",\"input\":{}}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\":\"}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"SF\\\"}\"}}\n",
        "\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n",
        "\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":18,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":64,\"output_tokens\":17}}\n",
        "\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n",
        "\n",
    );

fn translator() -> ReverseTranslator {
    ReverseTranslator::new("msg_rly_1".to_string(), "relay-gpt".to_string())
}

/// Upstream chunks → translator → client bytes, ending with EOF.
fn run(chunks: &[&[u8]]) -> (String, ReverseTranslator) {
    let mut t = translator();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(t.feed(c.to_vec()));
    }
    out.extend(t.finish());
    (String::from_utf8(out).unwrap(), t)
}

/// Rebuilds the final message the way the Anthropic SDK's `accumulate_event` does, checking
/// on the way that every `event:` name equals `data.type` and blocks are dense and ordered.
fn accumulate(bytes: &str) -> (Vec<String>, Value) {
    let mut dec = SseDecoder::new();
    let mut events = dec.feed(bytes.as_bytes()).unwrap();
    events.extend(dec.finish());
    let mut names = Vec::new();
    let mut msg = Value::Null;
    let mut json_buf: Vec<String> = Vec::new();
    let mut open: Option<u64> = None;
    for ev in events {
        let v: Value = serde_json::from_str(&ev.data).unwrap();
        let name = ev.event.clone().unwrap();
        assert_eq!(v["type"], name.as_str(), "event line vs data.type");
        names.push(name.clone());
        match name.as_str() {
            "message_start" => msg = v["message"].clone(),
            "content_block_start" => {
                let content = msg["content"].as_array_mut().unwrap();
                assert_eq!(v["index"], content.len(), "dense block indices");
                assert_eq!(open, None, "a block was still open");
                open = v["index"].as_u64();
                content.push(v["content_block"].clone());
                json_buf.push(String::new());
            }
            "content_block_delta" => {
                let i = v["index"].as_u64().unwrap();
                assert_eq!(open, Some(i), "delta for a block that is not open");
                let i = i as usize;
                let d = &v["delta"];
                match d["type"].as_str().unwrap() {
                    "text_delta" => {
                        let block = &mut msg["content"][i];
                        let text = format!(
                            "{}{}",
                            block["text"].as_str().unwrap(),
                            d["text"].as_str().unwrap()
                        );
                        block["text"] = json!(text);
                    }
                    other => {
                        assert_eq!(other, "input_json_delta");
                        json_buf[i].push_str(d["partial_json"].as_str().unwrap())
                    }
                }
            }
            "content_block_stop" => {
                let i = v["index"].as_u64().unwrap();
                assert_eq!(open, Some(i));
                open = None;
                let i = i as usize;
                if msg["content"][i]["type"] == "tool_use" && !json_buf[i].is_empty() {
                    msg["content"][i]["input"] = serde_json::from_str(&json_buf[i]).unwrap();
                }
            }
            "message_delta" => {
                msg["stop_reason"] = v["delta"]["stop_reason"].clone();
                msg["stop_sequence"] = v["delta"]["stop_sequence"].clone();
                for (k, n) in v["usage"].as_object().unwrap() {
                    if !n.is_null() {
                        msg["usage"][k] = n.clone();
                    }
                }
            }
            _ => {}
        }
    }
    (names, msg)
}

#[test]
fn t28_text_then_tool_call_exact_events() {
    let upstream = t28_upstream();
    let (out, t) = run(&[upstream.as_bytes()]);
    assert_eq!(out, T28_WANT);

    let (names, msg) = accumulate(&out);
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    // The streamed message equals the non-stream mapping of the same answer.
    let completion = json!({"id":"chatcmpl-B9a","choices":[{"index":0,"finish_reason":"tool_calls",
            "message":{"role":"assistant","content":"Let me check the weather.","tool_calls":[
                {"id":"call_A","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"SF\"}"}}]}}],
            "usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,
                "prompt_tokens_details":{"cached_tokens":64}}});
    assert_eq!(msg, to_message(&completion, "relay-gpt"));

    let s = t.settle(0, false);
    assert_eq!(
        (s.outcome, s.source, s.finish_reason.as_deref()),
        (Outcome::Ok, UsageSource::Upstream, Some("tool_use"))
    );
    assert_eq!(
        s.tokens,
        Tokens {
            prompt: 82,
            completion: 17,
            cached: 64,
            cache_write: 0,
            reasoning: 5
        }
    );
    assert!(t.ended());
}

#[test]
fn every_two_way_split_gives_identical_output() {
    let upstream = t28_upstream();
    let bytes = upstream.as_bytes();
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        let (got, t) = run(&[a, b]);
        assert_eq!(got, T28_WANT, "split at {i}");
        assert_eq!(t.settle(0, false).outcome, Outcome::Ok, "split at {i}");
    }
}

#[test]
fn t29_finish_reason_table() {
    let rows = [
        (Some("stop"), "end_turn"),
        (Some("length"), "max_tokens"),
        (Some("tool_calls"), "tool_use"),
        (Some("function_call"), "tool_use"),
        (Some("content_filter"), "refusal"),
        (Some("something_new"), "end_turn"),
        (None, "end_turn"),
    ];
    for (finish, want) in rows {
        assert_eq!(stop_reason(finish), want, "{finish:?}");
        let completion = json!({"choices":[{"message":{"content":"x"},"finish_reason":finish}]});
        assert_eq!(to_message(&completion, "m")["stop_reason"], want);

        let mut upstream = delta(r#"{"content":"x"}"#);
        if let Some(f) = finish {
            upstream.push_str(&finish_chunk(f));
        }
        upstream.push_str(DONE);
        let (out, t) = run(&[upstream.as_bytes()]);
        let (_, msg) = accumulate(&out);
        assert_eq!(msg["stop_reason"], want, "{finish:?}");
        assert_eq!(t.settle(0, false).finish_reason.as_deref(), Some(want));
    }
}

#[test]
fn without_usage_output_is_estimated_at_done() {
    let upstream = [
        delta(r#"{"role":"assistant","content":"12345678"}"#),
        finish_chunk("stop"),
        DONE.to_string(),
    ]
    .concat();
    let (out, t) = run(&[upstream.as_bytes()]);
    assert!(out.ends_with(concat!(
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n"
        )));
    let s = t.settle(40, false);
    assert_eq!(
        (s.outcome, s.source, s.tokens),
        (
            Outcome::Ok,
            UsageSource::Estimated,
            Tokens::estimated(40, 8)
        )
    );
}

#[test]
fn usage_on_the_finish_chunk_ends_without_waiting_for_done() {
    let mut t = translator();
    let mut out = t.feed(delta(r#"{"content":"hi"}"#).into_bytes());
    out.extend(t.feed(
            "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n"
                .as_bytes()
                .to_vec(),
        ));
    assert!(t.ended());
    let (_, msg) = accumulate(&String::from_utf8(out).unwrap());
    assert_eq!(msg["stop_reason"], "max_tokens");
    assert_eq!(msg["usage"]["input_tokens"], 5);
    // The upstream then closes without [DONE]: nothing more, and the client had it all.
    assert!(t.feed(DONE.as_bytes().to_vec()).is_empty());
    assert!(t.finish().is_empty());
    assert_eq!(t.settle(0, false).outcome, Outcome::Ok);
}

#[test]
fn first_chunk_usage_and_fallback_id_fill_message_start() {
    let mut t = translator();
    let out = t.feed(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":0,\"prompt_tokens_details\":{\"cached_tokens\":4}}}\n\n"
                .to_vec(),
        );
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with(concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_rly_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"relay-gpt\",\"stop_reason\":null,\"stop_sequence\":null,",
            "\"usage\":{\"input_tokens\":6,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":4,\"output_tokens\":0}}}\n\n"
        )));
}

#[test]
fn in_band_error_closes_the_block_and_ends() {
    let upstream = [
            delta(r#"{"content":"Hel"}"#),
            "data: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n".to_string(),
            DONE.to_string(),
        ]
        .concat();
    let (out, t) = run(&[upstream.as_bytes()]);
    assert!(out.ends_with(concat!(
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: error\n",
            "data: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"The server had an error while processing your request.\"}}\n\n"
        )));
    assert!(!out.contains("message_stop"));
    let s = t.settle(0, false);
    assert_eq!(s.outcome, Outcome::UpstreamError);
    assert_eq!(s.upstream_error.as_deref(), Some("server_error"));
    assert_eq!(s.source, UsageSource::Estimated);
}

#[test]
fn error_type_mapping_section_6_7() {
    let rows = [
        (
            json!({"type":"invalid_request_error","code":"context_length_exceeded"}),
            "invalid_request_error",
        ),
        (
            json!({"type":"requests","code":"rate_limit_exceeded"}),
            "rate_limit_error",
        ),
        (
            json!({"type":"insufficient_quota","code":"insufficient_quota"}),
            "api_error",
        ),
        (
            json!({"type":"server_error","code":"overloaded"}),
            "overloaded_error",
        ),
        (
            json!({"type":"server_error","code":"timeout"}),
            "timeout_error",
        ),
        (
            json!({"type":"invalid_request_error","code":"model_not_found"}),
            "not_found_error",
        ),
        (json!({"code":429,"message":"slow"}), "rate_limit_error"),
        (json!({"code":503}), "overloaded_error"),
        (json!({"code":401}), "api_error"),
        (json!({"code":413}), "request_too_large"),
        (json!({"message":"?"}), "api_error"),
        (json!("plain string"), "api_error"),
    ];
    for (err, want) in rows {
        assert_eq!(anthropic_error_type(&err), want, "{err}");
    }
    // A string error object still yields a message.
    let mut t = translator();
    let out = t.feed(b"data: {\"error\":\"boom\"}\n\n".to_vec());
    assert_eq!(
            String::from_utf8(out).unwrap(),
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}\n\n"
        );
    assert_eq!(t.settle(0, false).upstream_error.as_deref(), Some("error"));
}

#[test]
fn truncated_stream_closes_the_block_and_errors() {
    let upstream = t28_upstream();
    // Cut inside the second argument fragment: the tool block is open.
    let cut = upstream.find("\\\"SF").unwrap();
    let (out, t) = run(&[&upstream.as_bytes()[..cut]]);
    let tail = concat!(
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: error\n",
            "data: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Upstream stream ended unexpectedly.\"}}\n\n"
        );
    assert!(out.ends_with(tail), "{out}");
    assert!(!out.contains("message_delta"));
    let s = t.settle(20, false);
    assert_eq!(
        (s.outcome, s.source, s.finish_reason),
        (Outcome::Truncated, UsageSource::Estimated, None)
    );
    // "Let me check the weather." + "{\"city\":" = 25 + 8 chars.
    assert_eq!(s.tokens, Tokens::estimated(20, 33));
    assert_eq!(t.settle(20, true).outcome, Outcome::ClientCancelled);

    // After finish_reason but before usage and [DONE]: still cut short.
    let cut = upstream.find(USAGE).unwrap();
    let (out, t) = run(&[&upstream.as_bytes()[..cut]]);
    assert!(out.ends_with(std::str::from_utf8(TRUNCATED_TAIL).unwrap()));
    assert!(!out.contains("message_delta"));
    assert_eq!(t.settle(0, false).outcome, Outcome::Truncated);
    assert_eq!(
        t.settle(0, false).finish_reason.as_deref(),
        Some("tool_use")
    );

    // Nothing at all: only the error.
    let (out, _) = run(&[]);
    assert_eq!(out.as_bytes(), TRUNCATED_TAIL);
}

#[test]
fn abort_and_a_final_event_without_blank_line() {
    let mut t = translator();
    t.feed(delta(r#"{"content":"a"}"#).into_bytes());
    let tail = t.abort();
    assert!(String::from_utf8(tail)
        .unwrap()
        .starts_with("event: content_block_stop\n"));
    assert!(t.abort().is_empty() && t.finish().is_empty() && t.ended());
    assert!(t.feed(DONE.as_bytes().to_vec()).is_empty());
    assert_eq!(t.settle(0, false).outcome, Outcome::Truncated);

    // V10: `[DONE]` with no blank line at EOF still completes the message.
    let upstream = [delta(r#"{"content":"a"}"#), "data: [DONE]".to_string()].concat();
    let (out, t) = run(&[upstream.as_bytes()]);
    assert!(out.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    assert_eq!(t.settle(0, false).outcome, Outcome::Ok);
}

#[test]
fn tool_calls_in_odd_shapes_stay_whole() {
    let upstream = [
            // Name arrives after the first argument fragment: buffered until the block opens.
            delta(r#"{"tool_calls":[{"index":0,"id":"call_1","function":{"arguments":"{\"a\""}}]}"#),
            delta(r#"{"tool_calls":[{"index":0,"function":{"name":"f","arguments":":1}"}}]}"#),
            // Index reused for a second call with its own id.
            delta(r#"{"tool_calls":[{"index":0,"id":"call_2","type":"function","function":{"name":"g","arguments":"{}"}}]}"#),
            // No index at all: an id starts a call, no id continues the latest.
            delta(r#"{"tool_calls":[{"id":"call_3","function":{"name":"h","arguments":"{\"b\":"}}]}"#),
            delta(r#"{"tool_calls":[{"function":{"arguments":"2}"}}]}"#),
            // Two complete calls in one chunk, then one that never gets a name.
            delta(
                r#"{"tool_calls":[{"index":5,"id":"call_4","function":{"name":"i","arguments":"{}"}},{"index":6,"id":"call_5","function":{"name":"j","arguments":""}}]}"#,
            ),
            delta(r#"{"tool_calls":[{"index":7,"function":{"arguments":"{\"z\":0}"}}]}"#),
            finish_chunk("tool_calls"),
            DONE.to_string(),
        ]
        .concat();
    let (out, t) = run(&[upstream.as_bytes()]);
    let (_, msg) = accumulate(&out);
    let calls: Vec<(String, String, Value)> = msg["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert_eq!(b["type"], "tool_use");
            (
                b["id"].as_str().unwrap().to_string(),
                b["name"].as_str().unwrap().to_string(),
                b["input"].clone(),
            )
        })
        .collect();
    let want = vec![
        ("call_1", "f", json!({"a":1})),
        ("call_2", "g", json!({})),
        ("call_3", "h", json!({"b":2})),
        ("call_4", "i", json!({})),
        ("call_5", "j", json!({})),
        ("toolu_B9a_5", "", json!({"z":0})),
    ];
    let want: Vec<(String, String, Value)> = want
        .into_iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c))
        .collect();
    assert_eq!(calls, want);
    assert_eq!(msg["stop_reason"], "tool_use");
    assert_eq!(t.settle(0, false).outcome, Outcome::Ok);
}

#[test]
fn refusal_and_reasoning_deltas() {
    let upstream = [
        delta(r#"{"role":"assistant","reasoning_content":"thinking..."}"#),
        delta(r#"{"refusal":"I can't."}"#),
        finish_chunk("content_filter"),
        DONE.to_string(),
    ]
    .concat();
    let (out, _) = run(&[upstream.as_bytes()]);
    let (_, msg) = accumulate(&out);
    assert_eq!(msg["content"], json!([{"type":"text","text":"I can't."}]));
    assert_eq!(msg["stop_reason"], "refusal");
}
