//! Native replay of recorded Chat and Messages transcripts through the Responses stream
//! translator, and of a recorded Responses stream through the pass-through, each split at every
//! byte offset (and byte by byte): the client's events and the usage must not depend on where the
//! network cut the stream. The event sequences are checked against protocol.md §4.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use serde_json::{json, Value};

use llm_relay::metering::usage::{Outcome, Tokens, UsageSource};
use llm_relay::protocols::responses::answer::Skeleton;
use llm_relay::protocols::responses::passthrough::PassThrough;
use llm_relay::protocols::responses::translate::ChatToResponses;
use llm_relay::protocols::responses::{self, parse};
use llm_relay::protocols::stream::{Relay, Settled, StreamRelay};
use llm_relay::translate::anthropic::{ChatRelay, StreamTranslator};

const CHAT_TEXT: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Héllo\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    ": keep-alive\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" wörld\"},\"finish_reason\":null}],\"usage\":null}\r\n\r\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":3},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n",
    "data: [DONE]\n\n",
);

const CHAT_TOOLS: &str = concat!(
    "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_A\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"SF\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_B\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"NYC\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"c9\",\"choices\":[],\"usage\":{\"prompt_tokens\":20,\"completion_tokens\":12,\"total_tokens\":32}}\n\n",
    "data: [DONE]\n\n",
);

const CHAT_LENGTH: &str = concat!(
    "data: {\"id\":\"c4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c4\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
    "data: [DONE]\n\n",
);

const CHAT_ERROR: &str = concat!(
    "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"},\"finish_reason\":null}]}\n\n",
    "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
    "data: [DONE]\n\n",
);

/// Ends inside its second event: no `[DONE]`.
const CHAT_TRUNCATED: &str = concat!(
    "data: {\"id\":\"c3\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcdefgh\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c3\",\"choices\":[{\"index\":0,\"del",
);

const MESSAGES: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":2,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\ndata: {\"type\":\"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" thére\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"ls\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"d\\\":\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"1}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

/// A recorded OpenAI Responses stream (shape of the API reference's example).
const NATIVE: &str = concat!(
    "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_67c9\",\"object\":\"response\",\"created_at\":1741290958,\"status\":\"in_progress\",\"model\":\"gpt-4.1\",\"output\":[],\"usage\":null}}\n\n",
    "event: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{\"id\":\"resp_67c9\",\"object\":\"response\",\"status\":\"in_progress\",\"output\":[],\"usage\":null}}\n\n",
    "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":2,\"output_index\":0,\"item\":{\"id\":\"msg_67c9\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n",
    "event: response.content_part.added\ndata: {\"type\":\"response.content_part.added\",\"sequence_number\":3,\"item_id\":\"msg_67c9\",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":4,\"item_id\":\"msg_67c9\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n",
    "event: response.output_text.delta\r\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":5,\"item_id\":\"msg_67c9\",\"output_index\":0,\"content_index\":0,\"delta\":\" thére\"}\r\n\r\n",
    "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"sequence_number\":6,\"item_id\":\"msg_67c9\",\"output_index\":0,\"content_index\":0,\"text\":\"Hi thére\"}\n\n",
    "event: response.content_part.done\ndata: {\"type\":\"response.content_part.done\",\"sequence_number\":7,\"item_id\":\"msg_67c9\",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"Hi thére\",\"annotations\":[]}}\n\n",
    "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"sequence_number\":8,\"output_index\":0,\"item\":{\"id\":\"msg_67c9\",\"type\":\"message\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi thére\",\"annotations\":[]}]}}\n\n",
    "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":9,\"response\":{\"id\":\"resp_67c9\",\"object\":\"response\",\"status\":\"completed\",\"output\":[],\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{\"cached_tokens\":4},\"output_tokens\":87,\"output_tokens_details\":{\"reasoning_tokens\":9},\"total_tokens\":123}}}\n\n",
);

fn skeleton() -> Skeleton {
    let req = parse(br#"{"model":"alias","input":"hi","stream":true}"#).unwrap();
    Skeleton::new("r1", 1700000000, &req)
}

fn chat_translator() -> Box<dyn Relay> {
    Box::new(ChatToResponses::new(
        Box::new(StreamRelay::new(false)),
        skeleton(),
    ))
}

fn claude_translator() -> Box<dyn Relay> {
    let inner = ChatRelay::new(StreamTranslator::new(
        "chatcmpl-r1".into(),
        1,
        "alias".into(),
        true,
    ));
    Box::new(ChatToResponses::new(Box::new(inner), skeleton()))
}

fn replay(make: fn() -> Box<dyn Relay>, chunks: &[&[u8]]) -> (Vec<u8>, Settled) {
    let mut relay = make();
    let mut out = Vec::new();
    for c in chunks {
        out.extend(relay.feed(c.to_vec()));
    }
    out.extend(relay.finish());
    assert!(relay.ended());
    (out, relay.settle(0, false))
}

/// Every 2-way split and the byte-by-byte feed give the single-chunk bytes and settlement.
fn all_splits(make: fn() -> Box<dyn Relay>, transcript: &str) -> (Vec<u8>, Settled) {
    common::every_split(transcript.as_bytes(), "settlement", |chunks| {
        replay(make, chunks)
    })
}

/// The client's events; each must have `event:` equal to `data.type` and sequence numbers
/// counting from 0.
fn events(bytes: &[u8]) -> Vec<Value> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.is_empty()) {
        let (name, data) = block.split_once('\n').unwrap();
        let name = name.strip_prefix("event: ").unwrap();
        let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(v["type"], name);
        assert_eq!(v["sequence_number"], out.len() as u64, "{name}");
        out.push(v);
    }
    out
}

fn names(evs: &[Value]) -> Vec<&str> {
    evs.iter().map(|e| e["type"].as_str().unwrap()).collect()
}

#[test]
fn chat_text_stream_becomes_the_responses_sequence() {
    let (bytes, settled) = all_splits(chat_translator, CHAT_TEXT);
    let evs = events(&bytes);
    assert_eq!(
        names(&evs),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(evs[0]["response"]["id"], "resp_r1");
    assert_eq!(evs[0]["response"]["status"], "in_progress");
    assert_eq!(evs[0]["response"]["output"], json!([]));
    assert_eq!(
        evs[2]["item"],
        json!({"id": "msg_r1_0", "type": "message", "status": "in_progress", "role": "assistant", "content": []})
    );
    for e in &evs[3..8] {
        assert_eq!(e["item_id"], "msg_r1_0");
        assert_eq!(e["output_index"], 0);
        assert_eq!(e["content_index"], 0);
    }
    assert_eq!(evs[4]["delta"], "Héllo");
    assert_eq!(evs[5]["delta"], " wörld");
    assert_eq!(evs[6]["text"], "Héllo wörld");
    let item = json!({"id": "msg_r1_0", "type": "message", "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": "Héllo wörld", "annotations": [], "logprobs": []}]});
    assert_eq!(evs[8]["item"], item);
    let done = &evs[9]["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["store"], false);
    assert_eq!(done["output"], json!([item]));
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 9, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": 2,
               "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 11})
    );
    assert_eq!(
        settled,
        Settled {
            outcome: Outcome::Ok,
            tokens: Tokens {
                prompt: 9,
                completion: 2,
                cached: 3,
                cache_write: 0,
                reasoning: 1
            },
            source: UsageSource::Upstream,
            finish_reason: Some("stop".into()),
            upstream_error: None,
        }
    );
}

#[test]
fn chat_tool_calls_become_one_item_each() {
    let (bytes, settled) = all_splits(chat_translator, CHAT_TOOLS);
    let evs = events(&bytes);
    assert_eq!(
        names(&evs),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(
        evs[2]["item"],
        json!({"id": "fc_r1_0", "type": "function_call", "status": "in_progress", "call_id": "call_A",
               "name": "get_weather", "arguments": ""})
    );
    assert_eq!(evs[5]["arguments"], "{\"city\":\"SF\"}");
    assert_eq!(evs[8]["item_id"], "fc_r1_1");
    assert_eq!(evs[8]["output_index"], 1);
    let output = json!([
        {"id": "fc_r1_0", "type": "function_call", "status": "completed", "call_id": "call_A",
         "name": "get_weather", "arguments": "{\"city\":\"SF\"}"},
        {"id": "fc_r1_1", "type": "function_call", "status": "completed", "call_id": "call_B",
         "name": "get_weather", "arguments": "{\"city\":\"NYC\"}"},
    ]);
    assert_eq!(evs[6]["item"], output[0]);
    assert_eq!(evs[10]["item"], output[1]);
    assert_eq!(evs[11]["response"]["output"], output);
    assert_eq!(evs[11]["response"]["usage"]["total_tokens"], 32);
    assert_eq!(settled.outcome, Outcome::Ok);
    assert_eq!(settled.tokens.prompt, 20);
}

#[test]
fn claude_stream_goes_through_the_chat_hub() {
    let (bytes, settled) = all_splits(claude_translator, MESSAGES);
    let evs = events(&bytes);
    assert_eq!(
        names(&evs),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    let done = &evs[14]["response"];
    assert_eq!(
        done["output"],
        json!([
            {"id": "msg_r1_0", "type": "message", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Hi thére", "annotations": [], "logprobs": []}]},
            {"id": "fc_r1_1", "type": "function_call", "status": "completed", "call_id": "toolu_1",
             "name": "ls", "arguments": "{\"d\":1}"},
        ])
    );
    // Cache reads and writes count in the input, as Chat's prompt_tokens does (§6.4).
    assert_eq!(
        done["usage"],
        json!({"input_tokens": 17, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": 7,
               "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 24})
    );
    assert_eq!(settled.outcome, Outcome::Ok);
    assert_eq!(
        settled.tokens,
        Tokens {
            prompt: 17,
            completion: 7,
            cached: 3,
            cache_write: 2,
            reasoning: 0
        }
    );
    // The Chat hub's word (the row records what the Chat side was told), not Claude's `tool_use`.
    assert_eq!(settled.finish_reason.as_deref(), Some("tool_calls"));
}

#[test]
fn length_finish_is_incomplete() {
    let (bytes, _) = all_splits(chat_translator, CHAT_LENGTH);
    let evs = events(&bytes);
    let last = evs.last().unwrap();
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(
        last["response"]["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
}

#[test]
fn failures_after_the_first_byte_end_with_response_failed() {
    let (bytes, settled) = all_splits(chat_translator, CHAT_ERROR);
    let evs = events(&bytes);
    let n = evs.len();
    assert_eq!(names(&evs)[n - 2..], ["error", "response.failed"]);
    assert_eq!(
        evs[n - 2],
        json!({"type": "error", "code": "server_error", "message": "boom", "param": null,
               "sequence_number": n - 2})
    );
    let failed = &evs[n - 1]["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(
        failed["error"],
        json!({"code": "server_error", "message": "boom"})
    );
    assert_eq!(failed["output"][0]["content"][0]["text"], "par");
    assert_eq!(settled.outcome, Outcome::UpstreamError);

    let (bytes, settled) = all_splits(chat_translator, CHAT_TRUNCATED);
    let evs = events(&bytes);
    let n = evs.len();
    assert_eq!(names(&evs)[n - 2..], ["error", "response.failed"]);
    assert_eq!(evs[n - 2]["code"], "upstream_stream_error");
    assert_eq!(settled.outcome, Outcome::Truncated);
    assert_eq!(settled.source, UsageSource::Estimated);
}

#[test]
fn bytes_after_the_terminal_event_still_meter_alike_for_every_split() {
    // The usage chunk comes after the in-band error: the client's stream ends at the error, but
    // the row must not depend on whether the usage arrived in the same network chunk.
    let transcript = format!(
        "{CHAT_ERROR}{}",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n"
    );
    let transcript: &'static str = Box::leak(transcript.into_boxed_str());
    let (bytes, settled) = all_splits(chat_translator, transcript);
    assert_eq!(events(&bytes).last().unwrap()["type"], "response.failed");
    assert_eq!(settled.outcome, Outcome::UpstreamError);
    assert_eq!(
        settled.tokens.prompt, 7,
        "the usage after the error is metered"
    );
}

#[test]
fn idle_timeout_ends_with_a_timeout_failure() {
    let mut relay = chat_translator();
    let first = CHAT_TEXT
        .split_inclusive("\n\n")
        .take(2)
        .collect::<String>();
    let mut out = relay.feed(first.into_bytes());
    out.extend(relay.timeout());
    assert!(relay.ended());
    let evs = events(&out);
    let n = evs.len();
    assert_eq!(evs[n - 2]["code"], "timeout");
    assert_eq!(evs[n - 1]["type"], "response.failed");
    assert!(relay.feed(b"data: [DONE]\n\n".to_vec()).is_empty());
}

#[test]
fn native_stream_passes_byte_for_byte_and_reads_terminal_usage() {
    fn pass() -> Box<dyn Relay> {
        Box::new(PassThrough::new())
    }
    let (bytes, settled) = all_splits(pass, NATIVE);
    assert_eq!(bytes, NATIVE.as_bytes());
    assert_eq!(
        settled,
        Settled {
            outcome: Outcome::Ok,
            tokens: Tokens {
                prompt: 36,
                completion: 87,
                cached: 4,
                cache_write: 0,
                reasoning: 9
            },
            source: UsageSource::Upstream,
            finish_reason: Some("completed".into()),
            upstream_error: None,
        }
    );
}

#[test]
fn native_stream_cut_short_gets_response_failed_after_the_last_event() {
    fn pass() -> Box<dyn Relay> {
        Box::new(PassThrough::new())
    }
    // Cut in the middle of the second text delta.
    let cut = NATIVE.find("\" thére").unwrap();
    let truncated = &NATIVE[..cut];
    let (bytes, settled) = all_splits(pass, truncated);
    assert!(bytes.starts_with(truncated.as_bytes()));
    let tail = String::from_utf8(bytes[truncated.len()..].to_vec()).unwrap();
    let tail = tail.strip_prefix("\n\n").unwrap();
    let evs: Vec<Value> = tail
        .split("\n\n")
        .filter(|b| !b.is_empty())
        .map(|b| serde_json::from_str(b.split_once("\ndata: ").unwrap().1).unwrap())
        .collect();
    assert_eq!(
        evs[0],
        json!({"type": "error", "code": "upstream_stream_error",
               "message": "Upstream stream ended unexpectedly.", "param": null, "sequence_number": 6})
    );
    // The cut event (number 5) already reached the client in part, so the tail numbers after it.
    assert_eq!(evs[1]["type"], "response.failed");
    assert_eq!(evs[1]["sequence_number"], 7);
    assert_eq!(evs[1]["response"]["id"], "resp_67c9");
    assert_eq!(evs[1]["response"]["status"], "failed");
    assert_eq!(settled.outcome, Outcome::Truncated);
    assert_eq!(settled.source, UsageSource::Estimated);
    assert_eq!(
        settled.tokens.completion, 1,
        "\"Hi\" counts for the estimate"
    );
}

#[test]
fn native_failed_event_is_an_upstream_error_with_its_usage() {
    let failed = "event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":3,\"response\":{\"id\":\"resp_1\",\"status\":\"failed\",\"error\":{\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\"},\"usage\":{\"input_tokens\":5,\"output_tokens\":0}}}\n\n";
    let mut relay = PassThrough::new();
    assert_eq!(relay.feed(failed.as_bytes().to_vec()), failed.as_bytes());
    assert!(relay.finish().is_empty());
    let s = relay.settle(0, false);
    assert_eq!(s.outcome, Outcome::UpstreamError);
    assert_eq!(s.upstream_error.as_deref(), Some("rate_limit_exceeded"));
    assert_eq!(s.tokens.prompt, 5);
    assert_eq!(
        responses::tokens_from_usage(&json!({"input_tokens": 5})),
        Some(Tokens {
            prompt: 5,
            ..Tokens::default()
        })
    );
}

#[test]
fn native_stream_names_the_response_it_creates_from_response_created() {
    let bytes = NATIVE.as_bytes();
    let created_end = NATIVE.find("\n\n").unwrap() + 2;
    for cut in [created_end - 1, created_end, bytes.len()] {
        let mut relay = PassThrough::new();
        relay.feed(bytes[..cut].to_vec());
        // Known as soon as `response.created` is complete, before the stream ends.
        let want = (cut >= created_end).then_some("resp_67c9");
        assert_eq!(relay.response_id(), want, "cut at {cut}");
    }
    // No `response.created` (a stream that skipped it): the terminal event names it.
    let terminal = NATIVE
        .lines()
        .skip_while(|l| !l.contains("response.completed"));
    let tail: String = terminal.map(|l| format!("{l}\n")).collect::<String>() + "\n";
    let mut relay = PassThrough::new();
    relay.feed(tail.into_bytes());
    assert_eq!(relay.response_id(), Some("resp_67c9"));
    // A chat stream translated to Responses creates nothing on OpenAI.
    let mut translated = chat_translator();
    translated.feed(CHAT_TEXT.as_bytes().to_vec());
    translated.finish();
    assert_eq!(translated.response_id(), None);
}

#[test]
fn only_a_background_stream_asks_for_its_row_early_and_once() {
    let mut foreground = PassThrough::new();
    foreground.feed(NATIVE.as_bytes().to_vec());
    assert!(!foreground.take_early_row());

    let created_end = NATIVE.find("\n\n").unwrap() + 2;
    let mut background = PassThrough::new().early_row(true);
    background.feed(NATIVE.as_bytes()[..created_end - 1].to_vec());
    assert!(
        !background.take_early_row(),
        "no id yet, nothing worth writing"
    );
    background.feed(NATIVE.as_bytes()[created_end - 1..].to_vec());
    assert!(background.take_early_row());
    assert!(
        !background.take_early_row(),
        "one early row, not one per tick"
    );
}
