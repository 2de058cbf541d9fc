//! OpenAI chat SSE → Anthropic Messages events (protocol.md §6.6, §6.7), as the upstream sends
//! them: `ReverseTranslator` and its in-band error mapping.

use serde_json::Value;

use super::{anthropic_counts, fallback_tool_id, message_id, stop_reason};
use crate::metering::usage::{counted_or_estimated, estimate_tokens, Outcome, Tokens};
use crate::protocols::messages::TRUNCATED_TAIL;
use crate::protocols::sse::{SseDecoder, SseEvent};
use crate::protocols::stream::{Relay, Settled};

/// The Anthropic error `type` for an OpenAI in-band error object (§6.7). Codes are checked
/// before types because they are the more specific; numeric codes are HTTP statuses, as some
/// gateways send them.
pub(super) fn anthropic_error_type(err: &Value) -> &'static str {
    let status = err
        .get("code")
        .and_then(Value::as_u64)
        .or_else(|| err.get("status").and_then(Value::as_u64));
    if let Some(status) = status {
        return match status {
            400 | 422 => "invalid_request_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            504 => "timeout_error",
            // 401/403 concern the relay's own provider key (R2.4).
            _ => "api_error",
        };
    }
    let names = ["code", "type"].map(|k| err.get(k).and_then(Value::as_str));
    for name in names.into_iter().flatten() {
        let kind = match name {
            "rate_limit_exceeded" | "rate_limit_error" | "requests" | "tokens" => {
                "rate_limit_error"
            }
            "overloaded" | "overloaded_error" | "server_overloaded" | "service_unavailable" => {
                "overloaded_error"
            }
            "timeout" | "timeout_error" => "timeout_error",
            "model_not_found" | "not_found_error" => "not_found_error",
            "request_too_large" => "request_too_large",
            "context_length_exceeded" | "invalid_request_error" => "invalid_request_error",
            // Quota and credential errors are the relay's account's (R2.4); server errors are
            // plain upstream failures.
            "insufficient_quota" | "invalid_api_key" | "authentication_error" | "server_error" => {
                "api_error"
            }
            _ => continue,
        };
        return kind;
    }
    "api_error"
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// No block yet: the name has not arrived. Arguments wait in `pending`.
    Pending,
    Open(u64),
    Closed,
}

#[derive(Debug, Clone)]
struct Call {
    /// The upstream's `tool_calls[].index`.
    index: u64,
    id: Option<String>,
    name: Option<String>,
    state: CallState,
    pending: String,
}

/// Translates one OpenAI chat stream into Anthropic Messages SSE (§6.6), every event with its
/// `event:` line (R5.1). The stop reason is held until the usage chunk, so `message_delta` can
/// carry real counts; `message_stop` goes out then, without waiting for `[DONE]`.
///
/// Tool calls become blocks in the order they start. A call whose name has not arrived yet
/// buffers its arguments until its block opens (§6.6 [DECISION]); fragments for a call whose
/// block is already closed (interleaved calls, which OpenAI does not send) cannot be expressed
/// and are only counted.
#[derive(Debug)]
pub struct ReverseTranslator {
    decoder: SseDecoder,
    id: String,
    model: String,
    started: bool,
    /// The open block's index, and the call it belongs to (None for text).
    open: Option<(u64, Option<usize>)>,
    next_block: u64,
    calls: Vec<Call>,
    /// Mapped from `finish_reason`; set to `end_turn` at `message_stop` if none came.
    stop: Option<&'static str>,
    usage: Option<Tokens>,
    /// Characters of content, refusal and tool arguments, for the estimate.
    completion_chars: u64,
    saw_done: bool,
    /// `message_stop` went out: the client has a complete message.
    stopped: bool,
    /// The relay ended the stream with its own error (EOF, upstream failure, oversize event).
    truncated: bool,
    /// Code (or type) of an in-band upstream error.
    upstream_error: Option<String>,
    ended: bool,
}

impl ReverseTranslator {
    /// `model` is the name the client asked for; `fallback_id` is the message id used when the
    /// upstream's chunks carry none.
    pub fn new(fallback_id: String, model: String) -> Self {
        Self::with_decoder(fallback_id, model, SseDecoder::new())
    }

    /// As `new`, with a decoder of the caller's choosing (e.g. a smaller event-size limit).
    pub fn with_decoder(fallback_id: String, model: String, decoder: SseDecoder) -> Self {
        ReverseTranslator {
            decoder,
            id: fallback_id,
            model,
            started: false,
            open: None,
            next_block: 0,
            calls: Vec::new(),
            stop: None,
            usage: None,
            completion_chars: 0,
            saw_done: false,
            stopped: false,
            truncated: false,
            upstream_error: None,
            ended: false,
        }
    }

    fn on_event(&mut self, ev: &SseEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if ev.data.starts_with("[DONE]") {
            self.saw_done = true;
            self.end_message(out);
            return;
        }
        // Comments never reach here; other non-JSON data is noise a client cannot use.
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else {
            return;
        };
        if !v.is_object() {
            return;
        }
        if let Some(err) = v
            .get("error")
            .filter(|e| !e.is_null() && *e != &Value::Bool(false))
        {
            self.on_error(err, out);
            return;
        }
        if let Some(t) = v.get("usage").and_then(Tokens::from_openai) {
            self.usage = Some(t);
        }
        self.start(&v, out);
        let choices = v.get("choices").and_then(Value::as_array);
        // Only choice 0: an Anthropic message has one, and the relay never asks for `n`.
        let choice = choices
            .into_iter()
            .flatten()
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0);
        if let Some(choice) = choice {
            let delta = choice.get("delta");
            for key in ["content", "refusal"] {
                if let Some(text) = delta
                    .and_then(|d| d.get(key))
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    self.text(text, out);
                }
            }
            let calls = delta
                .and_then(|d| d.get("tool_calls"))
                .and_then(Value::as_array);
            for call in calls.into_iter().flatten() {
                self.tool_fragment(call, out);
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.close_all(out);
                self.stop = Some(stop_reason(Some(reason)));
            }
        }
        // Usage is cumulative and comes with or after the finishing chunk, so both in hand
        // means the message is complete.
        if self.stop.is_some() && self.usage.is_some() {
            self.end_message(out);
        }
    }

    fn start(&mut self, chunk: &Value, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if let Some(id) = chunk.get("id").and_then(Value::as_str) {
            if !id.is_empty() {
                self.id = message_id(Some(id));
            }
        }
        // Input tokens are usually unknown until the last chunk; `message_delta` sends them.
        let usage = match &self.usage {
            Some(t) => usage_fields(t),
            None => "\"input_tokens\":0,\"output_tokens\":0".to_string(),
        };
        let data = format!(
            "{{\"type\":\"message_start\",\"message\":{{\"id\":{},\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":{},\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{{{usage}}}}}}}",
            quote(&self.id),
            quote(&self.model)
        );
        event(out, "message_start", &data);
    }

    fn text(&mut self, text: &str, out: &mut Vec<u8>) {
        self.completion_chars += text.chars().count() as u64;
        let block = match self.open {
            Some((block, None)) => block,
            _ => {
                self.close(out);
                let block = self.new_block();
                event(
                    out,
                    "content_block_start",
                    &format!("{{\"type\":\"content_block_start\",\"index\":{block},\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}"),
                );
                self.open = Some((block, None));
                block
            }
        };
        event(
            out,
            "content_block_delta",
            &format!(
                "{{\"type\":\"content_block_delta\",\"index\":{block},\"delta\":{{\"type\":\"text_delta\",\"text\":{}}}}}",
                quote(text)
            ),
        );
    }

    fn tool_fragment(&mut self, frag: &Value, out: &mut Vec<u8>) {
        let id = frag
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let f = frag.get("function");
        let name = f
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty());
        let args = f
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .unwrap_or("");
        self.completion_chars += args.chars().count() as u64;

        // The latest call at this index, unless the fragment names a different id: some
        // servers reuse index 0 for every call. Without an index, an id means a new call and
        // no id means the latest one.
        let found = match frag.get("index").and_then(Value::as_u64) {
            Some(i) => self.calls.iter().rposition(|c| c.index == i),
            None if id.is_some() => self.calls.iter().rposition(|c| c.id.as_deref() == id),
            None => self.calls.len().checked_sub(1),
        };
        let found = found.filter(|&p| {
            let known = self.calls.get(p).and_then(|c| c.id.as_deref());
            id.is_none() || known.is_none() || known == id
        });
        let pos = match found {
            Some(p) => p,
            None => {
                let index = frag
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or_else(|| self.calls.iter().map(|c| c.index + 1).max().unwrap_or(0));
                self.calls.push(Call {
                    index,
                    id: None,
                    name: None,
                    state: CallState::Pending,
                    pending: String::new(),
                });
                self.calls.len() - 1
            }
        };
        let Some(call) = self.calls.get_mut(pos) else {
            return;
        };
        if call.id.is_none() {
            call.id = id.map(str::to_string);
        }
        // Names arrive whole; a repeated one is not appended (that would corrupt it).
        if call.name.is_none() {
            call.name = name.map(str::to_string);
        }
        match call.state {
            CallState::Open(block) => args_delta(out, block, args),
            CallState::Pending => {
                call.pending.push_str(args);
                if call.name.is_some() {
                    self.open_tool(pos, out);
                }
            }
            CallState::Closed => {}
        }
    }

    /// Closes the open block and starts the call's `tool_use` block, flushing buffered arguments.
    fn open_tool(&mut self, pos: usize, out: &mut Vec<u8>) {
        self.close(out);
        let block = self.new_block();
        let message_id = self.id.clone();
        let Some(call) = self.calls.get_mut(pos) else {
            return;
        };
        let id = call
            .id
            .get_or_insert_with(|| fallback_tool_id(&message_id, pos))
            .clone();
        let data = format!(
            "{{\"type\":\"content_block_start\",\"index\":{block},\"content_block\":{{\"type\":\"tool_use\",\"id\":{},\"name\":{},\"input\":{{}}}}}}",
            quote(&id),
            quote(call.name.as_deref().unwrap_or(""))
        );
        event(out, "content_block_start", &data);
        let pending = std::mem::take(&mut call.pending);
        call.state = CallState::Open(block);
        args_delta(out, block, &pending);
        self.open = Some((block, Some(pos)));
    }

    fn new_block(&mut self) -> u64 {
        let block = self.next_block;
        self.next_block += 1;
        block
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some((block, call)) = self.open.take() {
            if let Some(c) = call.and_then(|p| self.calls.get_mut(p)) {
                c.state = CallState::Closed;
            }
            event(
                out,
                "content_block_stop",
                &format!("{{\"type\":\"content_block_stop\",\"index\":{block}}}"),
            );
        }
    }

    /// Closes the open block, then gives calls that never got a name a block of their own, so
    /// no arguments are lost.
    fn close_all(&mut self, out: &mut Vec<u8>) {
        self.close(out);
        while let Some(pos) = self
            .calls
            .iter()
            .position(|c| c.state == CallState::Pending)
        {
            self.open_tool(pos, out);
            self.close(out);
        }
    }

    fn end_message(&mut self, out: &mut Vec<u8>) {
        if self.stopped {
            return;
        }
        self.start(&Value::Null, out);
        self.close_all(out);
        let stop = *self.stop.get_or_insert("end_turn");
        let usage = match &self.usage {
            Some(t) => usage_fields(t),
            // Only the output can be estimated here; the client keeps message_start's 0 input.
            None => format!(
                "\"output_tokens\":{}",
                estimate_tokens(self.completion_chars)
            ),
        };
        event(
            out,
            "message_delta",
            &format!("{{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":{},\"stop_sequence\":null}},\"usage\":{{{usage}}}}}", quote(stop)),
        );
        event(out, "message_stop", "{\"type\":\"message_stop\"}");
        self.stopped = true;
        self.ended = true;
    }

    fn on_error(&mut self, err: &Value, out: &mut Vec<u8>) {
        let text = |k: &str| err.get(k).and_then(Value::as_str);
        let code = text("code").or_else(|| text("type")).unwrap_or("error");
        self.upstream_error = Some(code.to_string());
        let message = err
            .as_str()
            .or_else(|| text("message"))
            .filter(|m| !m.is_empty())
            .unwrap_or("Upstream provider error.");
        self.close(out);
        let data = format!(
            "{{\"type\":\"error\",\"error\":{{\"type\":\"{}\",\"message\":{}}}}}",
            anthropic_error_type(err),
            quote(message)
        );
        event(out, "error", &data);
        self.ended = true;
    }
}

impl Relay for ReverseTranslator {
    fn feed(&mut self, chunk: Vec<u8>) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        let events = match self.decoder.feed(&chunk) {
            Ok(events) => events,
            Err(_) => return self.abort(),
        };
        let mut out = Vec::new();
        for ev in &events {
            self.on_event(ev, &mut out);
        }
        out
    }

    /// EOF: nothing more once `message_stop` or an error went out; otherwise the stream was cut
    /// short, and the client gets an error rather than a message that looks complete.
    fn finish(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(ev) = self.decoder.finish() {
            // A last event without its blank line (V10) still counts.
            self.on_event(&ev, &mut out);
        }
        out.extend(self.abort());
        out
    }

    fn abort(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        self.truncated = true;
        let mut out = Vec::new();
        self.close(&mut out);
        out.extend_from_slice(TRUNCATED_TAIL);
        out
    }

    fn ended(&self) -> bool {
        self.ended
    }

    /// As `StreamMeter::settle`, where a sent `message_stop` counts like `[DONE]`: the client
    /// has the whole message even if the upstream then closed without `[DONE]`.
    fn settle(&self, prompt_chars: u64, cancelled: bool) -> Settled {
        let outcome = Outcome::of_stream(
            self.upstream_error.is_some(),
            cancelled,
            (self.saw_done || self.stopped) && !self.truncated,
        );
        let (tokens, source) =
            counted_or_estimated(self.usage, prompt_chars, self.completion_chars);
        Settled {
            outcome,
            tokens,
            source,
            finish_reason: self.stop.map(str::to_string),
            upstream_error: self.upstream_error.clone(),
        }
    }
}

/// The four Anthropic usage fields, in the API's order, without braces.
fn usage_fields(t: &Tokens) -> String {
    let (input, cache_write, cache_read, output) = anthropic_counts(t);
    format!("\"input_tokens\":{input},\"cache_creation_input_tokens\":{cache_write},\"cache_read_input_tokens\":{cache_read},\"output_tokens\":{output}")
}

fn args_delta(out: &mut Vec<u8>, block: u64, partial: &str) {
    // Empty fragments (OpenAI's first `arguments: ""`) carry nothing; the block's `input: {}`
    // already stands for a call without arguments.
    if partial.is_empty() {
        return;
    }
    event(
        out,
        "content_block_delta",
        &format!(
            "{{\"type\":\"content_block_delta\",\"index\":{block},\"delta\":{{\"type\":\"input_json_delta\",\"partial_json\":{}}}}}",
            quote(partial)
        ),
    );
}

/// One Anthropic SSE event: the `event:` line must name `data.type` (§5.4).
fn event(out: &mut Vec<u8>, kind: &str, data: &str) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(b"\n\n");
}

/// `s` as a JSON string literal.
fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}
