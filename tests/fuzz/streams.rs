//! Stream targets: every relay gives the same client bytes and settled usage for any chunking
//! of the same upstream bytes (damaged ones too), translated output is well-formed for its
//! client, the SSE decoder yields the same events, and the custom-tool decoder the parsed input.

use serde_json::Value;

use crate::gen::{self, Rng};
use crate::runner::{show_bytes, shrink_cut_bytes, Target};
use crate::{common, CUSTOM_TOOL};
use llm_relay::protocols::messages::PassThrough;
use llm_relay::protocols::responses::answer::Skeleton;
use llm_relay::protocols::responses::passthrough::PassThrough as ResponsesPassThrough;
use llm_relay::protocols::responses::translate::ChatToResponses;
use llm_relay::protocols::sse::SseDecoder;
use llm_relay::protocols::stream::{Relay, StreamRelay};
use llm_relay::translate::anthropic::{
    self, custom::InputDecoder, ChatRelay, ReverseTranslator, StreamTranslator,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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
    /// OpenAI chat stream → Responses events (`ChatToResponses` over `StreamRelay`).
    ChatToResponses,
    /// Anthropic stream → Chat → Responses events (`ChatToResponses` over `ChatRelay`).
    AnthropicToResponses,
    /// OpenAI's Responses stream → Responses client (`responses::passthrough::PassThrough`);
    /// fed chat transcripts, which it must pass on unchanged all the same.
    ResponsesPassThrough,
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
            Kind::ChatToResponses => Box::new(ChatToResponses::new(
                Box::new(StreamRelay::new(false)),
                responses_skeleton(),
            )),
            Kind::AnthropicToResponses => Box::new(ChatToResponses::new(
                Box::new(ChatRelay::new(
                    StreamTranslator::new("chatcmpl-x".into(), 1, "m".into(), true)
                        .with_custom_tools(vec![CUSTOM_TOOL.into()]),
                )),
                responses_skeleton(),
            )),
            Kind::ResponsesPassThrough => Box::new(ResponsesPassThrough::new()),
        }
    }

    fn openai_upstream(self) -> bool {
        matches!(
            self,
            Kind::Chat
                | Kind::ChatStrip
                | Kind::ChatToAnthropic
                | Kind::ChatToResponses
                | Kind::ResponsesPassThrough
        )
    }

    fn responses_client(self) -> bool {
        matches!(self, Kind::ChatToResponses | Kind::AnthropicToResponses)
    }

    /// Pass-through relays send every upstream byte on unchanged.
    fn passes_through(self) -> bool {
        matches!(
            self,
            Kind::Chat | Kind::Messages | Kind::ResponsesPassThrough
        )
    }
}

const KINDS: [Kind; 8] = [
    Kind::Chat,
    Kind::ChatStrip,
    Kind::AnthropicToChat,
    Kind::Messages,
    Kind::ChatToAnthropic,
    Kind::ChatToResponses,
    Kind::AnthropicToResponses,
    Kind::ResponsesPassThrough,
];

fn responses_skeleton() -> Skeleton {
    let req =
        llm_relay::protocols::responses::parse(br#"{"model":"m","input":"hi","stream":true}"#)
            .unwrap_or_else(|e| panic!("fixed request: {e:?}"));
    Skeleton::new("x", 1, &req)
}

#[derive(Clone)]
pub struct StreamCase {
    pub kind: Kind,
    pub upstream: Vec<u8>,
    /// Where the network cut the upstream bytes.
    pub cuts: Vec<usize>,
    /// Also try every two-way split and a byte-by-byte feed (short transcripts only).
    pub exhaustive: bool,
}

pub fn show_stream(c: &StreamCase) -> String {
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

pub fn gen_stream(rng: &mut Rng) -> StreamCase {
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
pub fn check_translated(kind: Kind, client: &[u8]) -> Result<(), String> {
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
        if (kind == Kind::ChatToAnthropic || kind.responses_client())
            && v.get("type").and_then(Value::as_str) != ev.event.as_deref()
        {
            return Err(format!("event: {:?} carries type {}", ev.event, v["type"]));
        }
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("");
        if ty == "message_stop" || (kind.responses_client() && is_responses_terminal(ty)) {
            return Err("an event follows the terminal one".into());
        }
    }
    if kind.responses_client() {
        // Sequence numbers count every event from 0, the terminal one included.
        let all = events.iter().chain(std::iter::once(&last));
        for (i, ev) in all.enumerate() {
            let v: Value = serde_json::from_str(&ev.data).map_err(|e| e.to_string())?;
            if v.get("sequence_number").and_then(Value::as_u64) != Some(i as u64) {
                return Err(format!(
                    "event {i} has sequence_number {}",
                    v["sequence_number"]
                ));
            }
        }
    }
    let terminal = match kind {
        Kind::AnthropicToChat => last.data == "[DONE]",
        k if k.responses_client() => last.event.as_deref().is_some_and(is_responses_terminal),
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
    if matches!(c.kind, Kind::AnthropicToChat | Kind::ChatToAnthropic) || c.kind.responses_client()
    {
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

pub fn shrink_stream(c: &StreamCase) -> Vec<StreamCase> {
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

/// A Responses stream's last event: completed, incomplete or failed.
fn is_responses_terminal(ty: &str) -> bool {
    matches!(
        ty,
        "response.completed" | "response.incomplete" | "response.failed"
    )
}
