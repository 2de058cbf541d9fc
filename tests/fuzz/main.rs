//! Seeded fuzzing of the pure core (README: Fuzzing). Each target generates cases from
//! realistic templates (and damaged copies of them), checks a property, and on failure shrinks
//! the case and prints the seed that replays it. Properties: nothing panics (debug builds check
//! overflow); a stream relay gives the same client bytes and the same settled usage for any
//! chunking of the same upstream bytes; request parsers and translators answer Ok or an error.
//!
//! `cargo test --test fuzz` runs briefly; `FUZZ_SECONDS` (per target), `FUZZ_ITERS`,
//! `FUZZ_SEED` and `FUZZ_TARGET` make it longer, replay one case, or pick one target.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bodies;
#[path = "../common/mod.rs"]
mod common;
mod gen;
mod runner;
mod streams;

use std::fmt::Write as _;

use gen::Rng;
use runner::Target;
use streams::{check_translated, gen_stream, show_stream, shrink_stream, Kind, StreamCase};

/// A custom tool's name, in generated requests, answers and streams alike.
const CUSTOM_TOOL: &str = "ApplyPatch";

// ---------------------------------------------------------------------------------------------
// The harness itself
// ---------------------------------------------------------------------------------------------

#[test]
fn generators_are_deterministic_per_seed() {
    let a = gen_stream(&mut Rng::new(7));
    let b = gen_stream(&mut Rng::new(7));
    assert_eq!(
        (a.kind, &a.upstream, &a.cuts),
        (b.kind, &b.upstream, &b.cuts)
    );
    let mut s = String::new();
    for seed in 0..50 {
        let _ = writeln!(s, "{}", show_stream(&gen_stream(&mut Rng::new(seed))));
    }
    // The templates reach what the properties are about.
    for needle in [
        "tool_calls",
        "input_json_delta",
        "\\u",
        "\\r\\n",
        "[DONE]",
        "message_stop",
        "usage",
        "error",
    ] {
        assert!(
            s.contains(needle),
            "no generated transcript contains {needle}"
        );
    }
}

#[test]
fn shrinking_finds_a_small_failing_case() {
    // A planted property that fails whenever a transcript holds a tool call: the shrinker must
    // cut the case down to little more than that event.
    let t = Target {
        name: "planted",
        gen: gen_stream,
        check: |c: &StreamCase| {
            if c.upstream.windows(10).any(|w| w == b"tool_calls") {
                Err("tool call".into())
            } else {
                Ok(())
            }
        },
        shrink: shrink_stream,
        show: show_stream,
    };
    let failing = (0..200)
        .map(|s| gen_stream(&mut Rng::new(s)))
        .find(|c| c.kind == Kind::Chat && (t.check)(c).is_err() && c.upstream.len() > 400)
        .unwrap();
    let (small, _) = t.minimise(failing.clone(), String::new());
    assert!((t.check)(&small).is_err());
    assert!(
        small.upstream.len() <= 12,
        "shrunk to {}",
        show_stream(&small)
    );
}

#[test]
fn translated_stream_check_rejects_malformed_streams() {
    let chat = Kind::AnthropicToChat;
    assert!(check_translated(chat, b"data: {}\n\ndata: [DONE]\n\n").is_ok());
    assert!(
        check_translated(chat, b"data: {}\n\n").is_err(),
        "no [DONE]"
    );
    assert!(
        check_translated(chat, b"data: {\n\ndata: [DONE]\n\n").is_err(),
        "not JSON"
    );
    assert!(check_translated(chat, b"data: [DONE]\n\ndata: [DONE]\n\n").is_err());
    assert!(
        check_translated(chat, b"data: [DONE]\n\ndata: {").is_err(),
        "cut event"
    );
    let msg = Kind::ChatToAnthropic;
    let stop = b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
    assert!(check_translated(msg, stop).is_ok());
    assert!(check_translated(
        msg,
        &[b"event: ping\ndata: {\"type\":\"pong\"}\n\n" as &[u8], stop].concat()
    )
    .is_err());
    assert!(check_translated(msg, &[stop as &[u8], stop].concat()).is_err());
}
