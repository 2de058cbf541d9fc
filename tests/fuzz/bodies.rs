//! Body targets: the request parsers and translators on generated, mutated and damaged bodies
//! answer Ok or an error and never panic, and what they build is JSON the next step accepts.

use serde_json::Value;

use crate::gen::{self, Rng};
use crate::runner::{show_bytes, shrink_bytes, shrink_value, Target};
use crate::CUSTOM_TOOL;
use llm_relay::keys;
use llm_relay::protocols::{chat, cursor};
use llm_relay::translate::anthropic;

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
                    let _ = llm_relay::metering::usage::Tokens::from_openai(u);
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
