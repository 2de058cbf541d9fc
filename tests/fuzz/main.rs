//! Seeded fuzzing of the pure core (README: Fuzzing). Each target generates cases from
//! realistic templates (and damaged copies of them), checks a property, and on failure shrinks
//! the case and prints the seed that replays it. Properties: nothing panics (debug builds check
//! overflow); a stream relay gives the same client bytes and the same settled usage for any
//! chunking of the same upstream bytes; request parsers and translators answer Ok or an error.
//!
//! `cargo test --test fuzz` runs briefly; `FUZZ_SECONDS` (per target), `FUZZ_ITERS`,
//! `FUZZ_SEED` and `FUZZ_TARGET` make it longer, replay one case, or pick one target.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../common/mod.rs"]
mod common;
mod gen;

use std::cell::RefCell;
use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::Value;

use gen::Rng;
use llm_relay::anthropic::{
    self, custom::InputDecoder, ChatRelay, ReverseTranslator, StreamTranslator,
};
use llm_relay::messages::PassThrough;
use llm_relay::sse::SseDecoder;
use llm_relay::stream::{Relay, StreamRelay};
use llm_relay::{chat, cursor, keys};

/// The default seed: `npm test` explores the same cases every run; `npm run fuzz` picks a new
/// one unless `FUZZ_SEED` is set.
const DEFAULT_SEED: u64 = 0x5EED_0012;
const DEFAULT_SECONDS: f64 = 0.25;
const DEFAULT_MAX_ITERS: u64 = 400;
/// Checks spent shrinking a failing case before it is reported.
const SHRINK_BUDGET: usize = 2_000;
const CUSTOM_TOOL: &str = "ApplyPatch";

struct Budget {
    seed: u64,
    iters: u64,
    time: Duration,
    only: Option<String>,
}

fn budget() -> Budget {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let seed = var("FUZZ_SEED").map(|s| {
        let s = s.trim_start_matches("0x");
        u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("FUZZ_SEED must be hex, got {s}"))
    });
    let iters = var("FUZZ_ITERS").map(|s| s.parse::<u64>().expect("FUZZ_ITERS must be a number"));
    let seconds =
        var("FUZZ_SECONDS").map(|s| s.parse::<f64>().expect("FUZZ_SECONDS must be a number"));
    Budget {
        seed: seed.unwrap_or(DEFAULT_SEED),
        // An explicit iteration count is run in full; otherwise time bounds the run.
        iters: iters.unwrap_or(if seconds.is_some() {
            u64::MAX
        } else {
            DEFAULT_MAX_ITERS
        }),
        time: Duration::from_secs_f64(seconds.unwrap_or(if iters.is_some() {
            1e9
        } else {
            DEFAULT_SECONDS
        })),
        only: var("FUZZ_TARGET"),
    }
}

thread_local! {
    /// Set while a check runs: its panic is caught and reported, not printed.
    static QUIET: RefCell<bool> = const { RefCell::new(false) };
    /// Where the last caught panic happened.
    static PANIC_AT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Panics inside checks are expected findings; the default hook would print each shrink step.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(|q| *q.borrow()) {
                let at = info.location().map(|l| l.to_string()).unwrap_or_default();
                PANIC_AT.with(|p| *p.borrow_mut() = at);
            } else {
                default(info);
            }
        }));
    });
}

/// Runs `check`, turning a panic into an error that says where it happened.
fn guarded<C>(check: fn(&C) -> Result<(), String>, case: &C) -> Result<(), String> {
    QUIET.with(|q| *q.borrow_mut() = true);
    let result = panic::catch_unwind(AssertUnwindSafe(|| check(case)));
    QUIET.with(|q| *q.borrow_mut() = false);
    match result {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let at = PANIC_AT.with(|p| p.borrow().clone());
            Err(format!("panic at {at}: {msg}"))
        }
    }
}

/// One fuzz target: cases from `gen`, judged by `check`, made smaller by `shrink`.
struct Target<C> {
    name: &'static str,
    gen: fn(&mut Rng) -> C,
    check: fn(&C) -> Result<(), String>,
    shrink: fn(&C) -> Vec<C>,
    show: fn(&C) -> String,
}

impl<C> Target<C> {
    fn run(&self) {
        let b = budget();
        if b.only.as_deref().is_some_and(|o| o != self.name) {
            return;
        }
        install_quiet_hook();
        let started = Instant::now();
        let mut done = 0u64;
        while done < b.iters && started.elapsed() < b.time {
            // Case i is generated from seed + i alone, so any case replays on its own.
            let case_seed = b.seed.wrapping_add(done);
            let case = (self.gen)(&mut Rng::new(case_seed));
            if let Err(err) = guarded(self.check, &case) {
                let (small, small_err) = self.minimise(case, err.clone());
                panic!(
                    "fuzz target `{}` failed: {err}\n  minimal case fails with: {small_err}\n  minimal input: {}\n  replay: FUZZ_TARGET={} FUZZ_SEED={case_seed:x} FUZZ_ITERS=1 cargo test --test fuzz",
                    self.name,
                    (self.show)(&small),
                    self.name
                );
            }
            done += 1;
        }
        eprintln!(
            "fuzz {}: seed {:x}, {done} cases in {:.2} s",
            self.name,
            b.seed,
            started.elapsed().as_secs_f64()
        );
    }

    /// Greedy shrinking: take the first smaller case that still fails, until none does.
    fn minimise(&self, mut case: C, mut err: String) -> (C, String) {
        let mut spent = 0;
        'outer: while spent < SHRINK_BUDGET {
            for smaller in (self.shrink)(&case) {
                spent += 1;
                if let Err(e) = guarded(self.check, &smaller) {
                    case = smaller;
                    err = e;
                    continue 'outer;
                }
                if spent >= SHRINK_BUDGET {
                    break 'outer;
                }
            }
            break;
        }
        (case, err)
    }
}

// ---------------------------------------------------------------------------------------------
// Shrinking and display helpers
// ---------------------------------------------------------------------------------------------

/// Smaller versions of `bytes`: each SSE event left out, then ranges of halving length removed.
fn shrink_bytes(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut starts = vec![0];
    starts.extend(
        bytes
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w == b"\n\n")
            .map(|(i, _)| i + 2),
    );
    starts.push(bytes.len());
    starts.dedup();
    for w in starts.windows(2) {
        let mut v = bytes[..w[0]].to_vec();
        v.extend_from_slice(&bytes[w[1]..]);
        out.push(v);
    }
    let mut len = bytes.len() / 2;
    while len > 0 {
        for at in (0..bytes.len().saturating_sub(len - 1)).step_by(len.max(1)) {
            let mut v = bytes[..at].to_vec();
            v.extend_from_slice(&bytes[at + len..]);
            out.push(v);
        }
        len /= 2;
    }
    out
}

/// Smaller (bytes, cuts) pairs: one cut fewer, or fewer bytes with the cuts kept in range.
fn shrink_cut_bytes(bytes: &[u8], cuts: &[usize]) -> Vec<(Vec<u8>, Vec<usize>)> {
    let mut out: Vec<(Vec<u8>, Vec<usize>)> = (0..cuts.len())
        .map(|i| {
            let mut fewer = cuts.to_vec();
            fewer.remove(i);
            (bytes.to_vec(), fewer)
        })
        .collect();
    for smaller in shrink_bytes(bytes) {
        let kept = cuts.iter().map(|&x| x.min(smaller.len())).collect();
        out.push((smaller, kept));
    }
    out
}

fn show_bytes(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// Smaller JSON values: each array item or object key dropped, or a child put in its place.
fn shrink_value(v: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    match v {
        Value::Array(a) => {
            for i in 0..a.len() {
                out.push(a[i].clone());
                let mut b = a.clone();
                b.remove(i);
                out.push(Value::Array(b));
            }
            for i in 0..a.len() {
                for smaller in shrink_value(&a[i]) {
                    let mut b = a.clone();
                    b[i] = smaller;
                    out.push(Value::Array(b));
                }
            }
        }
        Value::Object(o) => {
            for k in o.keys() {
                let mut b = o.clone();
                b.remove(k);
                out.push(Value::Object(b));
            }
            for (k, child) in o {
                for smaller in shrink_value(child) {
                    let mut b = o.clone();
                    b.insert(k.clone(), smaller);
                    out.push(Value::Object(b));
                }
            }
        }
        Value::String(s) if !s.is_empty() => out.push(Value::String(String::new())),
        _ => {}
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Stream relays: the same output for any chunking
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `StreamRelay`, forwarding every byte.
    Chat,
    /// `StreamRelay`, dropping the usage chunk the client did not ask for.
    ChatStrip,
    /// Anthropic stream → OpenAI chunks (`ChatRelay`), custom tools included.
    AnthropicToChat,
    /// Anthropic stream → Anthropic client (`PassThrough`).
    Messages,
    /// OpenAI stream → Anthropic events (`ReverseTranslator`).
    ChatToAnthropic,
}

impl Kind {
    fn relay(self) -> Box<dyn Relay> {
        match self {
            Kind::Chat => Box::new(StreamRelay::new(false)),
            Kind::ChatStrip => Box::new(StreamRelay::new(true)),
            Kind::AnthropicToChat => Box::new(ChatRelay::new(
                StreamTranslator::new("chatcmpl-x".into(), 1, "m".into(), true)
                    .with_custom_tools(vec![CUSTOM_TOOL.into()]),
            )),
            Kind::Messages => Box::new(PassThrough::new()),
            Kind::ChatToAnthropic => Box::new(ReverseTranslator::new("msg_x".into(), "m".into())),
        }
    }

    fn openai_upstream(self) -> bool {
        matches!(self, Kind::Chat | Kind::ChatStrip | Kind::ChatToAnthropic)
    }

    /// Pass-through relays send every upstream byte on unchanged.
    fn passes_through(self) -> bool {
        matches!(self, Kind::Chat | Kind::Messages)
    }
}

const KINDS: [Kind; 5] = [
    Kind::Chat,
    Kind::ChatStrip,
    Kind::AnthropicToChat,
    Kind::Messages,
    Kind::ChatToAnthropic,
];

#[derive(Clone)]
struct StreamCase {
    kind: Kind,
    upstream: Vec<u8>,
    /// Where the network cut the upstream bytes.
    cuts: Vec<usize>,
    /// Also try every two-way split and a byte-by-byte feed (short transcripts only).
    exhaustive: bool,
}

fn show_stream(c: &StreamCase) -> String {
    format!(
        "{:?} upstream={} cuts={:?} exhaustive={}",
        c.kind,
        show_bytes(&c.upstream),
        c.cuts,
        c.exhaustive
    )
}

fn transcript(rng: &mut Rng, kind: Kind) -> Vec<u8> {
    if kind.openai_upstream() {
        gen::openai_transcript(rng).into_bytes()
    } else {
        gen::anthropic_transcript(rng, CUSTOM_TOOL).into_bytes()
    }
}

fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
    (0..1 + rng.below(8)).map(|_| rng.below(len + 1)).collect()
}

fn gen_stream(rng: &mut Rng) -> StreamCase {
    let kind = rng.pick(&KINDS);
    let upstream = transcript(rng, kind);
    let cuts = random_cuts(rng, upstream.len());
    StreamCase {
        kind,
        exhaustive: upstream.len() <= 700 && rng.chance(30),
        upstream,
        cuts,
    }
}

/// Damaged upstream bytes: the relays must not panic, and chunking still must not matter.
fn gen_damaged_stream(rng: &mut Rng) -> StreamCase {
    let mut c = gen_stream(rng);
    if rng.chance(10) {
        c.upstream = (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect();
    } else if rng.chance(50) {
        c.upstream = gen::sse_bytes(rng);
    } else {
        gen::mutate_bytes(rng, &mut c.upstream);
    }
    c.cuts = random_cuts(rng, c.upstream.len());
    c
}

/// A translator's output, whatever it was fed, is a well-formed stream for its client: every
/// event's data is JSON (or `[DONE]`), Anthropic events carry an `event:` line equal to their
/// `type`, and the stream ends with its terminal event and nothing after it.
fn check_translated(kind: Kind, client: &[u8]) -> Result<(), String> {
    let mut d = SseDecoder::new();
    let mut events = d.feed(client).map_err(|e| e.to_string())?;
    if d.mid_event() || d.finish().is_some() {
        return Err("the client stream ends inside an event".into());
    }
    let last = events.pop().ok_or("the client got no event")?;
    for ev in &events {
        if ev.data == "[DONE]" {
            return Err("an event follows [DONE]".into());
        }
        let v: Value = serde_json::from_str(&ev.data)
            .map_err(|e| format!("event data is not JSON ({e}): {:?}", ev.data))?;
        if kind == Kind::ChatToAnthropic
            && v.get("type").and_then(Value::as_str) != ev.event.as_deref()
        {
            return Err(format!("event: {:?} carries type {}", ev.event, v["type"]));
        }
        if v.get("type") == Some(&Value::from("message_stop")) {
            return Err("an event follows the terminal one".into());
        }
    }
    let terminal = match kind {
        Kind::AnthropicToChat => last.data == "[DONE]",
        _ => matches!(last.event.as_deref(), Some("message_stop" | "error")),
    };
    if terminal {
        Ok(())
    } else {
        Err(format!("the last event is not terminal: {:?}", last.data))
    }
}

fn check_stream(c: &StreamCase) -> Result<(), String> {
    let whole = common::replay(c.kind.relay().as_mut(), &[&c.upstream]);
    if c.kind.passes_through() && !whole.0.starts_with(&c.upstream) {
        return Err("a pass-through relay changed the upstream bytes".into());
    }
    if matches!(c.kind, Kind::AnthropicToChat | Kind::ChatToAnthropic) {
        check_translated(c.kind, &whole.0)?;
    }
    let compare = |chunks: &[&[u8]], how: &str| -> Result<(), String> {
        let split = common::replay(c.kind.relay().as_mut(), chunks);
        if split.0 != whole.0 {
            return Err(format!(
                "client bytes differ {how}:\n    whole: {}\n    split: {}",
                show_bytes(&whole.0),
                show_bytes(&split.0)
            ));
        }
        if (&split.1, &split.2) != (&whole.1, &whole.2) {
            return Err(format!(
                "settled usage differs {how}:\n    whole: {:?}\n    split: {:?}",
                whole.1, split.1
            ));
        }
        Ok(())
    };
    compare(
        &common::split_at(&c.upstream, &c.cuts),
        &format!("when cut at {:?}", c.cuts),
    )?;
    if c.exhaustive {
        for cut in 0..=c.upstream.len() {
            compare(
                &common::split_at(&c.upstream, &[cut]),
                &format!("when split at {cut}"),
            )?;
        }
        let bytewise: Vec<&[u8]> = c.upstream.chunks(1).collect();
        compare(&bytewise, "byte by byte")?;
    }
    Ok(())
}

fn shrink_stream(c: &StreamCase) -> Vec<StreamCase> {
    let mut out = Vec::new();
    if c.exhaustive {
        out.push(StreamCase {
            exhaustive: false,
            ..c.clone()
        });
    }
    for (upstream, cuts) in shrink_cut_bytes(&c.upstream, &c.cuts) {
        out.push(StreamCase {
            upstream,
            cuts,
            ..c.clone()
        });
    }
    out
}

#[test]
fn stream_relays_are_chunking_invariant() {
    Target {
        name: "stream",
        gen: gen_stream,
        check: check_stream,
        shrink: shrink_stream,
        show: show_stream,
    }
    .run();
}

#[test]
fn stream_relays_survive_damaged_bytes() {
    Target {
        name: "stream-damaged",
        gen: gen_damaged_stream,
        check: check_stream,
        shrink: shrink_stream,
        show: show_stream,
    }
    .run();
}

// ---------------------------------------------------------------------------------------------
// The SSE decoder
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct SseCase {
    bytes: Vec<u8>,
    cuts: Vec<usize>,
    /// An event-size limit small enough to trip.
    limit: usize,
}

fn gen_sse(rng: &mut Rng) -> SseCase {
    let mut bytes = match rng.below(3) {
        0 => gen::sse_bytes(rng),
        1 => gen::openai_transcript(rng).into_bytes(),
        _ => gen::anthropic_transcript(rng, CUSTOM_TOOL).into_bytes(),
    };
    if rng.chance(40) {
        gen::mutate_bytes(rng, &mut bytes);
    }
    SseCase {
        cuts: random_cuts(rng, bytes.len()),
        limit: rng.pick(&[16usize, 64, 256, 1 << 20]),
        bytes,
    }
}

/// The events (type and data) and whether the limit tripped, for one chunking. Offsets are
/// left out: a CR that ends a chunk dispatches at once, so `end` may move by the LF.
fn decode(c: &SseCase, chunks: &[&[u8]]) -> (Vec<(Option<String>, String)>, bool) {
    let mut d = SseDecoder::with_limit(c.limit);
    let mut events = Vec::new();
    let mut failed = false;
    let mut last_end = 0;
    for chunk in chunks {
        match d.feed(chunk) {
            Ok(evs) => {
                for ev in evs {
                    assert!(
                        ev.start <= ev.end && ev.end <= d.offset(),
                        "span out of range"
                    );
                    assert!(ev.start >= last_end, "spans overlap");
                    last_end = ev.end;
                    events.push((ev.event, ev.data));
                }
            }
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    if !failed {
        events.extend(d.finish().map(|ev| (ev.event, ev.data)));
    }
    assert!(d.boundary() <= d.offset());
    (events, failed)
}

fn check_sse(c: &SseCase) -> Result<(), String> {
    let whole = decode(c, &[&c.bytes]);
    let split = decode(c, &common::split_at(&c.bytes, &c.cuts));
    if whole.1 != split.1 {
        return Err(format!(
            "the size limit tripped in one chunking only: whole {} split {}",
            whole.1, split.1
        ));
    }
    // Events completed earlier in the chunk that trips the limit are dropped with it.
    if !whole.1 && whole.0 != split.0 {
        return Err(format!(
            "events differ:\n    whole: {:?}\n    split: {:?}",
            whole.0, split.0
        ));
    }
    Ok(())
}

fn shrink_sse(c: &SseCase) -> Vec<SseCase> {
    shrink_cut_bytes(&c.bytes, &c.cuts)
        .into_iter()
        .map(|(bytes, cuts)| SseCase {
            bytes,
            cuts,
            ..c.clone()
        })
        .collect()
}

#[test]
fn sse_decoder_is_chunking_invariant() {
    Target {
        name: "sse",
        gen: gen_sse,
        check: check_sse,
        shrink: shrink_sse,
        show: |c| {
            format!(
                "bytes={} cuts={:?} limit={}",
                show_bytes(&c.bytes),
                c.cuts,
                c.limit
            )
        },
    }
    .run();
}

// ---------------------------------------------------------------------------------------------
// The custom-tool input decoder
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct CustomCase {
    /// The `partial_json` fragments of one tool_use block.
    fragments: Vec<String>,
}

fn gen_custom(rng: &mut Rng) -> CustomCase {
    let value = serde_json::json!({ "input": gen::text(rng) });
    let style = gen::style(rng);
    let mut json = gen::write_json(rng, &value, style);
    if rng.chance(20) {
        let mut bytes = json.into_bytes();
        gen::mutate_bytes(rng, &mut bytes);
        json = String::from_utf8_lossy(&bytes).into_owned();
    }
    CustomCase {
        fragments: gen::fragments(rng, &json),
    }
}

/// What is streamed plus what `finish` returns is exactly the final `input` (when the JSON is
/// whole), for any fragmenting.
fn check_custom(c: &CustomCase) -> Result<(), String> {
    let mut d = InputDecoder::default();
    let mut streamed: String = c.fragments.iter().map(|f| d.feed(f)).collect();
    streamed.push_str(&d.finish());
    let whole: String = c.fragments.concat();
    if let Ok(v) = serde_json::from_str::<Value>(&whole) {
        let expected = anthropic::custom::input_of(Some(&v));
        if streamed != expected {
            return Err(format!("decoded {streamed:?}, the JSON holds {expected:?}"));
        }
    }
    Ok(())
}

fn shrink_custom(c: &CustomCase) -> Vec<CustomCase> {
    let mut out = Vec::new();
    for i in 0..c.fragments.len() {
        let mut f = c.fragments.clone();
        f.remove(i);
        out.push(CustomCase {
            fragments: f.clone(),
        });
        if i + 1 < c.fragments.len() {
            let mut f = c.fragments.clone();
            let next = f.remove(i + 1);
            f[i].push_str(&next);
            out.push(CustomCase { fragments: f });
        }
    }
    out
}

#[test]
fn custom_tool_decoder_matches_the_parsed_input() {
    Target {
        name: "custom-input",
        gen: gen_custom,
        check: check_custom,
        shrink: shrink_custom,
        show: |c| format!("{:?}", c.fragments),
    }
    .run();
}

// ---------------------------------------------------------------------------------------------
// Translators and request parsers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    ChatRequest,
    MessagesRequest,
    ChatCompletion,
    AnthropicMessage,
    Admin,
    /// Cursor's fixtures (Responses and quirky Chat shapes).
    Cursor,
}

const BODIES: [Body; 6] = [
    Body::ChatRequest,
    Body::MessagesRequest,
    Body::ChatCompletion,
    Body::AnthropicMessage,
    Body::Admin,
    Body::Cursor,
];

const CURSOR_FIXTURES: [&str; 3] = [
    include_str!("../cursor/agent-responses-shape.json"),
    include_str!("../cursor/ask-chat-shape.json"),
    include_str!("../cursor/chat-quirks.json"),
];

#[derive(Clone)]
struct BodyCase {
    body: Body,
    value: Value,
    /// Damaged bytes of the serialised value, for the byte-level parsers; None to use the value.
    raw: Option<Vec<u8>>,
}

fn gen_body(rng: &mut Rng) -> BodyCase {
    let body = rng.pick(&BODIES);
    let mut value = match body {
        Body::ChatRequest => gen::chat_request(rng),
        Body::MessagesRequest => gen::messages_request(rng),
        Body::ChatCompletion => gen::chat_completion(rng),
        Body::AnthropicMessage => gen::anthropic_message(rng, CUSTOM_TOOL),
        Body::Admin => gen::admin_body(rng),
        Body::Cursor => serde_json::from_str(rng.pick(&CURSOR_FIXTURES)).unwrap(),
    };
    // Client numbers may be anything; provider token counts only as HUGE_NUMBERS allows.
    let huge = !matches!(body, Body::ChatCompletion | Body::AnthropicMessage) || gen::HUGE_NUMBERS;
    for _ in 0..rng.below(4) {
        gen::mutate_value(rng, &mut value, huge);
    }
    let raw = rng.chance(20).then(|| {
        let style = gen::style(rng);
        let mut bytes = gen::write_json(rng, &value, style).into_bytes();
        gen::mutate_bytes(rng, &mut bytes);
        bytes
    });
    BodyCase { body, value, raw }
}

fn check_body(c: &BodyCase) -> Result<(), String> {
    let bytes = c
        .raw
        .clone()
        .unwrap_or_else(|| c.value.to_string().into_bytes());
    let value = c
        .raw
        .as_ref()
        .map_or(Some(c.value.clone()), |b| serde_json::from_slice(b).ok());
    match c.body {
        Body::ChatRequest | Body::MessagesRequest | Body::Cursor => {
            check_chat_parsers(&bytes)?;
            if let Some(v) = &value {
                if let Ok((_, Some(n))) = cursor::normalize(v) {
                    check_chat_parsers(n.to_string().as_bytes())?;
                }
                if let Ok(out) = anthropic::to_messages_request(v, "claude-up", 8192) {
                    expect_object(&out, "to_messages_request")?;
                }
                for usage in [false, true] {
                    if let Ok(out) = anthropic::to_chat_request(v, "gpt-up", usage) {
                        expect_object(&out, "to_chat_request")?;
                        // What the relay sends an OpenAI-format provider, it would accept itself.
                        chat::parse(out.to_string().as_bytes()).map_err(|e| {
                            format!(
                                "to_chat_request built a body chat::parse refuses: {e:?}: {out}"
                            )
                        })?;
                    }
                }
            }
        }
        Body::ChatCompletion | Body::AnthropicMessage => {
            if let Some(v) = &value {
                let chat =
                    anthropic::to_chat_completion(v, "chatcmpl-1", 1, "m", &[CUSTOM_TOOL.into()]);
                expect_object(&chat, "to_chat_completion")?;
                let msg = anthropic::to_message(v, "m");
                expect_object(&msg, "to_message")?;
                if let Some(u) = v.get("usage") {
                    let _ = anthropic::tokens_from_usage(u);
                    let _ = llm_relay::usage::Tokens::from_openai(u);
                }
            }
            let _ = anthropic::error_from_anthropic(400, &bytes);
        }
        Body::Admin => {
            if let Ok(new) = keys::parse_new(&bytes) {
                let mut rec = keys::record(new, "key_1".into(), "2026-01-01T00:00:00Z");
                if let Ok(change) = keys::parse_change(&bytes) {
                    let _ = keys::apply(&mut rec, &change, "2026-01-02T00:00:00Z");
                }
                let _ = keys::public(&rec);
                for model in ["gpt-4o", "claude-x", "", "fast"] {
                    let _ = keys::allows(&rec, model);
                    let _ = keys::effective_model(&rec, model);
                }
            }
            let _ = keys::parse_change(&bytes);
        }
    }
    Ok(())
}

/// Every OpenAI-format parser on `bytes`; a parsed chat body re-serialised for a renamed model
/// must still be a JSON object naming that model.
fn check_chat_parsers(bytes: &[u8]) -> Result<(), String> {
    if let Ok(req) = chat::parse(bytes) {
        let drop = ["temperature".to_string()];
        let up = req.upstream_body(bytes, "renamed", true, &drop);
        let v: Value = serde_json::from_slice(&up)
            .map_err(|e| format!("upstream_body is not JSON ({e}): {}", show_bytes(&up)))?;
        if v.get("model") != Some(&Value::from("renamed")) {
            return Err(format!("upstream_body lost the model: {}", show_bytes(&up)));
        }
    }
    for endpoint in [
        chat::Endpoint::Completions,
        chat::Endpoint::Embeddings,
        chat::Endpoint::Moderations,
    ] {
        if let Ok(req) = chat::parse_for(bytes, endpoint) {
            let up = req.upstream_body(bytes, "renamed", true, &[]);
            serde_json::from_slice::<Value>(&up)
                .map_err(|e| format!("{endpoint:?} upstream_body is not JSON: {e}"))?;
        }
    }
    Ok(())
}

fn expect_object(v: &Value, what: &str) -> Result<(), String> {
    if v.is_object() {
        Ok(())
    } else {
        Err(format!("{what} returned a non-object: {v}"))
    }
}

fn shrink_body(c: &BodyCase) -> Vec<BodyCase> {
    match &c.raw {
        Some(raw) => shrink_bytes(raw)
            .into_iter()
            .map(|r| BodyCase {
                raw: Some(r),
                ..c.clone()
            })
            .collect(),
        None => shrink_value(&c.value)
            .into_iter()
            .map(|value| BodyCase { value, ..c.clone() })
            .collect(),
    }
}

fn show_body(c: &BodyCase) -> String {
    match &c.raw {
        Some(raw) => format!("{:?} raw bytes {}", c.body, show_bytes(raw)),
        None => format!("{:?} {}", c.body, c.value),
    }
}

#[test]
fn parsers_and_translators_never_panic() {
    Target {
        name: "bodies",
        gen: gen_body,
        check: check_body,
        shrink: shrink_body,
        show: show_body,
    }
    .run();
}

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
