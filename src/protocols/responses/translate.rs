//! A Chat Completions stream as Responses stream events (protocol.md §4 "Stream mapping"). The
//! translator wraps the `Relay` that meters the Chat stream (pass-through for Chat upstreams and
//! the echo, Messages→Chat for Claude), decodes the Chat bytes it yields and emits the event
//! sequence Codex and the Agents SDK depend on. Usage and outcome stay the inner relay's, so the
//! row is the one the same stream would leave on `/v1/chat/completions`.
//!
//! Items are emitted one after another, as OpenAI does: a new item (text after a tool call, the
//! next tool call) first closes the open one with its `.done` events and `output_item.done`. A
//! late fragment for an already closed tool call (no Chat server sends one) still reaches the
//! final `response.completed` output.

use serde_json::Value;

use super::answer::{call_item, message_item, part, Skeleton};
use super::{error_fields, event, failure_tail};
use crate::http::error::RelayError;
use crate::metering::usage::Tokens;
use crate::protocols::sse::{SseDecoder, SseEvent};
use crate::protocols::stream::{Relay, Settled};

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Content parts in order: `(is_refusal, text)`; the last is open while `part_open`.
    Message {
        parts: Vec<(bool, String)>,
        part_open: bool,
    },
    Call {
        custom: bool,
        call_id: String,
        name: String,
        payload: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Item {
    id: String,
    kind: Kind,
    done: bool,
}

impl Item {
    fn json(&self) -> Value {
        let status = if self.done {
            "completed"
        } else {
            "in_progress"
        };
        match &self.kind {
            Kind::Message { parts, .. } => message_item(&self.id, status, parts),
            Kind::Call {
                custom,
                call_id,
                name,
                payload,
            } => call_item(&self.id, status, *custom, call_id, name, payload),
        }
    }
}

/// The translation state of one stream, all of it explicit.
pub struct ChatToResponses {
    inner: Box<dyn Relay>,
    decoder: SseDecoder,
    skeleton: Skeleton,
    /// Next `sequence_number`.
    seq: u64,
    started: bool,
    items: Vec<Item>,
    /// The item receiving deltas, by output index.
    open: Option<usize>,
    /// Chat `tool_calls[].index` → output index.
    calls: Vec<(u64, usize)>,
    usage: Option<Tokens>,
    finish_reason: Option<String>,
    /// The terminal event has been sent; later upstream bytes still reach the inner relay, so
    /// its metering (a usage chunk after an error, say) does not depend on where the network
    /// cut the stream, but nothing more reaches the client.
    done: bool,
    /// The upstream has ended (EOF, failure or timeout) and the tail is out.
    ended: bool,
}

impl ChatToResponses {
    pub fn new(inner: Box<dyn Relay>, skeleton: Skeleton) -> Self {
        ChatToResponses {
            inner,
            decoder: SseDecoder::new(),
            skeleton,
            seq: 0,
            started: false,
            items: Vec::new(),
            open: None,
            calls: Vec::new(),
            usage: None,
            finish_reason: None,
            done: false,
            ended: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, name: &str, fields: Vec<(&str, Value)>) {
        out.extend(event(name, fields, self.seq));
        self.seq += 1;
    }

    /// `item_id`, `output_index` and (for message parts) `content_index`: what every event of
    /// an item carries, plus `extra`.
    fn at(
        &self,
        index: usize,
        content_index: Option<usize>,
        extra: Vec<(&'static str, Value)>,
    ) -> Vec<(&'static str, Value)> {
        let mut fields = vec![
            ("item_id", self.items[index].id.as_str().into()),
            ("output_index", index.into()),
        ];
        if let Some(c) = content_index {
            fields.push(("content_index", c.into()));
        }
        fields.extend(extra);
        fields
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.skeleton.response("in_progress", Vec::new(), None);
        self.emit(out, "response.created", vec![("response", r.clone())]);
        self.emit(out, "response.in_progress", vec![("response", r)]);
    }

    /// Chat bytes from the inner relay, as events for the client.
    fn translate(&mut self, chat: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.start(&mut out);
        match self.decoder.feed(chat) {
            Ok(events) => {
                for ev in &events {
                    self.on_event(ev, &mut out);
                }
            }
            Err(_) => self.fail(&mut out, &RelayError::UpstreamStreamEnded.openai_body()),
        }
        out
    }

    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if ev.data.trim() == "[DONE]" {
            return self.complete(out);
        }
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            return self.fail(out, ev.data.as_bytes());
        }
        if let Some(tokens) = v.get("usage").and_then(Tokens::from_openai) {
            self.usage = Some(tokens);
        }
        let Some(choice) = v.pointer("/choices/0") else {
            return;
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_string());
        }
        let Some(delta) = choice.get("delta") else {
            return;
        };
        for (key, refusal) in [("content", false), ("refusal", true)] {
            if let Some(text) = delta.get(key).and_then(Value::as_str) {
                if !text.is_empty() {
                    self.text(out, text, refusal);
                }
            }
        }
        for call in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.tool(out, call);
        }
    }

    fn text(&mut self, out: &mut Vec<u8>, delta: &str, refusal: bool) {
        let index = match self.open {
            Some(i) if matches!(self.items[i].kind, Kind::Message { .. }) => i,
            _ => {
                self.close_open(out);
                let index = self.items.len();
                self.items.push(Item {
                    id: self.skeleton.item_id("msg", index),
                    kind: Kind::Message {
                        parts: Vec::new(),
                        part_open: false,
                    },
                    done: false,
                });
                self.open = Some(index);
                let item = self.items[index].json();
                self.emit(
                    out,
                    "response.output_item.added",
                    vec![("output_index", index.into()), ("item", item)],
                );
                index
            }
        };
        let same_part = matches!(&self.items[index].kind,
            Kind::Message { parts, part_open: true } if parts.last().is_some_and(|(r, _)| *r == refusal));
        if !same_part {
            self.close_part(out, index);
            if let Kind::Message { parts, part_open } = &mut self.items[index].kind {
                parts.push((refusal, String::new()));
                *part_open = true;
            }
            let content_index = self.part_count(index).saturating_sub(1);
            let fields = self.at(
                index,
                Some(content_index),
                vec![("part", part(refusal, ""))],
            );
            self.emit(out, "response.content_part.added", fields);
        }
        if let Kind::Message { parts, .. } = &mut self.items[index].kind {
            if let Some((_, text)) = parts.last_mut() {
                text.push_str(delta);
            }
        }
        let content_index = self.part_count(index).saturating_sub(1);
        let (name, mut extra) = if refusal {
            ("response.refusal.delta", Vec::new())
        } else {
            (
                "response.output_text.delta",
                vec![("logprobs", Value::Array(Vec::new()))],
            )
        };
        extra.insert(0, ("delta", delta.into()));
        let fields = self.at(index, Some(content_index), extra);
        self.emit(out, name, fields);
    }

    fn part_count(&self, index: usize) -> usize {
        match &self.items[index].kind {
            Kind::Message { parts, .. } => parts.len(),
            Kind::Call { .. } => 0,
        }
    }

    /// Ends the open content part of message `index` with its `.done` events.
    fn close_part(&mut self, out: &mut Vec<u8>, index: usize) {
        let Kind::Message { parts, part_open } = &mut self.items[index].kind else {
            return;
        };
        if !*part_open {
            return;
        }
        *part_open = false;
        let Some((refusal, text)) = parts.last().cloned() else {
            return;
        };
        let content_index = parts.len().saturating_sub(1);
        let (name, extra) = if refusal {
            (
                "response.refusal.done",
                vec![("refusal", text.as_str().into())],
            )
        } else {
            (
                "response.output_text.done",
                vec![
                    ("text", text.as_str().into()),
                    ("logprobs", Value::Array(Vec::new())),
                ],
            )
        };
        let fields = self.at(index, Some(content_index), extra);
        self.emit(out, name, fields);
        let fields = self.at(
            index,
            Some(content_index),
            vec![("part", part(refusal, &text))],
        );
        self.emit(out, "response.content_part.done", fields);
    }

    /// One `tool_calls[]` fragment: `id`, `type` and the name come in the first one only.
    fn tool(&mut self, out: &mut Vec<u8>, call: &Value) {
        let chat_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let custom = call.get("type").and_then(Value::as_str) == Some("custom")
            || call.get("custom").is_some();
        let inner = call.get(if custom { "custom" } else { "function" });
        let s = |v: Option<&Value>, k: &str| {
            v.and_then(|o| o.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let name = s(inner, "name");
        let fragment = s(inner, if custom { "input" } else { "arguments" });
        let found = self
            .calls
            .iter()
            .find(|(c, _)| *c == chat_index)
            .map(|(_, i)| *i);
        let index = match found {
            Some(i) => i,
            None => {
                self.close_open(out);
                let index = self.items.len();
                let prefix = if custom { "ctc" } else { "fc" };
                self.items.push(Item {
                    id: self.skeleton.item_id(prefix, index),
                    kind: Kind::Call {
                        custom,
                        call_id: s(Some(call), "id"),
                        name: name.clone(),
                        payload: String::new(),
                    },
                    done: false,
                });
                self.calls.push((chat_index, index));
                self.open = Some(index);
                let item = self.items[index].json();
                self.emit(
                    out,
                    "response.output_item.added",
                    vec![("output_index", index.into()), ("item", item)],
                );
                index
            }
        };
        let (done, custom) = {
            let item = &mut self.items[index];
            let Kind::Call {
                payload,
                name: n,
                custom,
                ..
            } = &mut item.kind
            else {
                return;
            };
            if n.is_empty() {
                n.push_str(&name);
            }
            payload.push_str(&fragment);
            (item.done, *custom)
        };
        if done || fragment.is_empty() {
            return;
        }
        let name = if custom {
            "response.custom_tool_call_input.delta"
        } else {
            "response.function_call_arguments.delta"
        };
        let fields = self.at(index, None, vec![("delta", fragment.into())]);
        self.emit(out, name, fields);
    }

    /// Closes the open item: its part or payload `.done` event, then `output_item.done`.
    fn close_open(&mut self, out: &mut Vec<u8>) {
        let Some(index) = self.open.take() else {
            return;
        };
        self.close_part(out, index);
        if let Kind::Call {
            custom,
            name,
            payload,
            ..
        } = self.items[index].kind.clone()
        {
            let (event, extra) = if custom {
                (
                    "response.custom_tool_call_input.done",
                    vec![("input", payload.into())],
                )
            } else {
                (
                    "response.function_call_arguments.done",
                    vec![("name", name.into()), ("arguments", payload.into())],
                )
            };
            let fields = self.at(index, None, extra);
            self.emit(out, event, fields);
        }
        self.items[index].done = true;
        let item = self.items[index].json();
        self.emit(
            out,
            "response.output_item.done",
            vec![("output_index", index.into()), ("item", item)],
        );
    }

    fn output(&self) -> Vec<Value> {
        self.items.iter().map(Item::json).collect()
    }

    /// `[DONE]`: every item closed, then the terminal event with the full output and usage.
    fn complete(&mut self, out: &mut Vec<u8>) {
        self.close_open(out);
        let r = self.skeleton.finished(
            self.finish_reason.as_deref(),
            self.output(),
            self.usage.as_ref(),
        );
        let name = if r["status"] == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(out, name, vec![("response", r)]);
        self.done = true;
    }

    /// An in-band Chat error (the upstream's, or the inner relay's truncation tail).
    fn fail(&mut self, out: &mut Vec<u8>, error_json: &[u8]) {
        if self.done {
            return;
        }
        self.done = true;
        let error = serde_json::from_slice::<Value>(error_json).unwrap_or(Value::Null);
        let (code, message) = error_fields(&error);
        let r = self
            .skeleton
            .response("failed", self.output(), self.usage.as_ref());
        out.extend(failure_tail(r, &code, &message, self.seq));
        self.seq += 2;
    }

    /// After the inner relay's tail: a stream that still has no terminal event fails.
    fn close(&mut self, tail: Vec<u8>) -> Vec<u8> {
        self.ended = true;
        if self.done {
            return Vec::new();
        }
        let mut out = self.translate(&tail);
        if let Some(ev) = self.decoder.finish() {
            self.on_event(&ev, &mut out);
        }
        if !self.done {
            self.fail(&mut out, &RelayError::UpstreamStreamEnded.openai_body());
        }
        out
    }
}

impl Relay for ChatToResponses {
    fn feed(&mut self, chunk: Vec<u8>) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        let chat = self.inner.feed(chunk);
        if self.done {
            return Vec::new();
        }
        self.translate(&chat)
    }

    fn finish(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        let tail = self.inner.finish();
        self.close(tail)
    }

    fn abort(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        let tail = self.inner.abort();
        self.close(tail)
    }

    fn timeout(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        let tail = self.inner.timeout();
        self.close(tail)
    }

    fn ended(&self) -> bool {
        self.ended || (self.done && self.inner.ended())
    }

    fn settle(&self, prompt_chars: u64, cancelled: bool) -> Settled {
        self.inner.settle(prompt_chars, cancelled)
    }
}
