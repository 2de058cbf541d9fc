//! Native replay of upstream chat-stream transcripts through `StreamRelay`, split at every byte
//! offset (and byte by byte): the bytes the client gets and the meter must not depend on where
//! the network happened to cut the stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use llm_relay::metering::usage::{Outcome, Tokens, UsageSource};
use llm_relay::protocols::stream::{StreamMeter, StreamRelay};

const TEXT_WITH_USAGE: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Héllo\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    ": keep-alive\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" wörld\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\r\n\r\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":3},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n",
    "data: [DONE]\n\n",
);

const USAGE_EVENT: &str = "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":3},\"completion_tokens_details\":{\"reasoning_tokens\":1}}}\n\n";

const TOOLS_NO_USAGE: &str = concat!(
    "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_A\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"SF\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c9\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: [DONE]\n\n",
);

const ERROR_IN_STREAM: &str = concat!(
    "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"},\"finish_reason\":null}]}\n\n",
    "data: {\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
    "data: [DONE]\n\n",
);

/// Ends after the second event's first bytes: no `[DONE]`.
const TRUNCATED: &str = concat!(
    "data: {\"id\":\"c3\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"abcdefgh\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"c3\",\"choices\":[{\"index\":0,\"del",
);

const TAIL: &str = "data: {\"error\":{\"code\":\"upstream_stream_error\",\"message\":\"Upstream stream ended unexpectedly.\",\"param\":null,\"type\":\"server_error\"}}\n\ndata: [DONE]\n\n";

/// Feeds `chunks` and returns (client bytes, meter).
fn replay(strip: bool, chunks: &[&[u8]]) -> (Vec<u8>, StreamMeter) {
    let mut relay = StreamRelay::new(strip);
    let (out, ..) = common::replay(&mut relay, chunks);
    (out, relay.meter().clone())
}

/// Asserts every 2-way split and the byte-by-byte feed match the single-chunk replay.
fn check_all_splits(strip: bool, transcript: &str) -> (Vec<u8>, StreamMeter) {
    common::every_split(transcript.as_bytes(), "meter", |chunks| {
        replay(strip, chunks)
    })
}

#[test]
fn pass_through_is_byte_identical_and_reads_usage() {
    let (out, meter) = check_all_splits(false, TEXT_WITH_USAGE);
    assert_eq!(out, TEXT_WITH_USAGE.as_bytes());
    assert!(meter.saw_done);
    assert_eq!(
        meter.usage,
        Some(Tokens {
            prompt: 9,
            completion: 2,
            cached: 3,
            cache_write: 0,
            reasoning: 1
        })
    );
    assert_eq!(meter.finish_reason.as_deref(), Some("stop"));
    assert_eq!(meter.completion_chars, 11, "\"Héllo\" + \" wörld\"");
    let (outcome, tokens, source) = meter.settle(40, false);
    assert_eq!(outcome, Outcome::Ok);
    assert_eq!(source, UsageSource::Upstream);
    assert_eq!(tokens.prompt, 9);
}

#[test]
fn strip_mode_drops_only_the_injected_usage_event() {
    let (out, meter) = check_all_splits(true, TEXT_WITH_USAGE);
    let expected = TEXT_WITH_USAGE.replace(USAGE_EVENT, "");
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    assert_eq!(meter.usage.map(|t| t.completion), Some(2));
}

#[test]
fn pass_through_passes_each_chunk_unchanged() {
    // Not just the concatenation: each network chunk goes out as it came (R8.11).
    let mut relay = StreamRelay::new(false);
    let bytes = TEXT_WITH_USAGE.as_bytes();
    for chunk in bytes.chunks(37) {
        assert_eq!(relay.feed(chunk.to_vec()), chunk);
    }
    assert!(relay.finish().is_empty());
}

#[test]
fn tool_stream_without_usage_is_estimated() {
    let (out, meter) = check_all_splits(true, TOOLS_NO_USAGE);
    assert_eq!(out, TOOLS_NO_USAGE.as_bytes());
    assert_eq!(meter.usage, None);
    assert_eq!(meter.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(
        meter.completion_chars, 13,
        "the arguments {{\"city\":\"SF\"}} are 13 characters"
    );
    let (outcome, tokens, source) = meter.settle(20, false);
    assert_eq!(outcome, Outcome::Ok);
    assert_eq!(source, UsageSource::Estimated);
    assert_eq!((tokens.prompt, tokens.completion), (5, 4));
}

#[test]
fn in_band_error_is_forwarded_and_recorded() {
    for strip in [false, true] {
        let (out, meter) = check_all_splits(strip, ERROR_IN_STREAM);
        assert_eq!(out, ERROR_IN_STREAM.as_bytes());
        assert_eq!(meter.upstream_error.as_deref(), Some("server_error"));
        assert_eq!(meter.settle(0, false).0, Outcome::UpstreamError);
    }
}

#[test]
fn truncation_appends_one_error_and_done() {
    let (out, meter) = check_all_splits(false, TRUNCATED);
    let expected = format!("{TRUNCATED}\n\n{TAIL}");
    assert_eq!(String::from_utf8(out).unwrap(), expected);
    assert!(meter.truncated);
    let (outcome, tokens, source) = meter.settle(8, false);
    assert_eq!(outcome, Outcome::Truncated);
    assert_eq!(source, UsageSource::Estimated);
    assert_eq!((tokens.prompt, tokens.completion), (2, 2));
    assert_eq!(meter.settle(8, true).0, Outcome::ClientCancelled);

    // Strip mode never sent the partial event, so nothing needs closing before the tail.
    let (out, _) = check_all_splits(true, TRUNCATED);
    let first_event_end = TRUNCATED.find("\n\n").unwrap() + 2;
    let expected = format!("{}{TAIL}", &TRUNCATED[..first_event_end]);
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn done_without_final_blank_line_still_completes() {
    // V10: `data: [DONE]` then EOF counts as the terminal marker for accounting.
    let t = "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\ndata: [DONE]";
    let (out, meter) = check_all_splits(false, t);
    assert_eq!(out, t.as_bytes());
    assert!(meter.saw_done);
    assert_eq!(meter.settle(0, false).0, Outcome::Ok);
}

#[test]
fn oversize_event_aborts_in_band() {
    use llm_relay::protocols::sse::SseDecoder;
    let mut relay = StreamRelay::with_decoder(false, SseDecoder::with_limit(64));
    let first = relay.feed(b"data: ok\n\n".to_vec());
    assert_eq!(first, b"data: ok\n\n");
    let big = format!("data: {}\n\n", "x".repeat(200));
    let out = relay.feed(big.into_bytes());
    assert_eq!(String::from_utf8(out).unwrap(), TAIL);
    assert!(relay.ended());
    assert!(relay.feed(b"data: more\n\n".to_vec()).is_empty());
    assert!(relay.finish().is_empty());
    assert_eq!(relay.meter().settle(0, false).0, Outcome::Truncated);
}
