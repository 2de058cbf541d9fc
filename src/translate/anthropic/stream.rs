//! Anthropic streams event by event (protocol.md §5.4, §6.5): `AnthropicMeter` meters a native
//! stream, and `StreamTranslator` turns one into OpenAI chat chunks, feeding its own meter;
//! `ChatRelay` wraps it with the SSE decoder for the edge.

use serde_json::Value;

use super::custom::InputDecoder;
use super::structured::ANSWER_TOOL;
use super::{finish_reason, openai_error_type, Usage};
use crate::http::error::RelayError;
use crate::protocols::messages::{event_kind, AnthropicMeter};
use crate::protocols::sse::{SseDecoder, SseEvent};
use crate::protocols::stream::{Relay, Settled};

#[derive(Debug, Clone)]
enum Block {
    Text,
    /// A `tool_use` of a custom tool: its `input` string streams as `custom.input` fragments.
    Custom {
        idx: u64,
        decoder: InputDecoder,
    },
    /// `idx` is the dense OpenAI tool-call index; `sent_args` whether any non-empty argument
    /// fragment went out; `input` the start block's non-empty `input`, sent if none did.
    Tool {
        idx: u64,
        sent_args: bool,
        input: Option<String>,
    },
    /// The `response_format` answer tool's call (structured.rs): its input streams to the client
    /// as `content`, since that JSON is the answer; `sent` whether any of it went out, `input`
    /// the start block's non-empty `input`, sent if nothing streamed.
    Answer {
        sent: bool,
        input: Option<String>,
    },
    /// Thinking, redacted thinking and server-tool blocks: not part of an OpenAI answer.
    Other,
}

/// Translates one Anthropic stream into OpenAI chat SSE (§6.5). Thinking is dropped, not sent
/// as a non-standard `reasoning_content` (§6.5 default), so strict clients see only standard
/// fields. Chunks are written with OpenAI's field order so the bytes match §6.5 exactly.
#[derive(Debug)]
pub struct StreamTranslator {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    meter: AnthropicMeter,
    role_sent: bool,
    finish_sent: bool,
    ended: bool,
    next_tool: u64,
    /// Anthropic content-block index → what that block is.
    blocks: Vec<(u64, Block)>,
    /// Names of the request's custom tools (custom.rs).
    custom_tools: Vec<String>,
    /// The request asked for JSON (`response_format`): the answer tool is in play.
    answer_tool: bool,
    /// The answer tool was called: without other calls, the turn ended by answering.
    answered: bool,
    /// The `finish_reason` the client got, for the usage row.
    finish_reason: Option<&'static str>,
}

impl StreamTranslator {
    /// `id` is used until `message_start` supplies the Anthropic `msg_…` id (§6.5); `model` is the
    /// relay alias; `include_usage` is the client's `stream_options.include_usage`.
    pub fn new(id: String, created: u64, model: String, include_usage: bool) -> Self {
        StreamTranslator {
            id,
            created,
            model,
            include_usage,
            meter: AnthropicMeter::default(),
            role_sent: false,
            finish_sent: false,
            ended: false,
            next_tool: 0,
            blocks: Vec::new(),
            custom_tools: Vec::new(),
            answer_tool: false,
            answered: false,
            finish_reason: None,
        }
    }

    /// The request's `response_format` asked for JSON: calls to the answer tool stream as content.
    pub fn with_answer_tool(mut self, on: bool) -> Self {
        self.answer_tool = on;
        self
    }

    /// The `finish_reason` sent to the client, in OpenAI's words, once it has gone out.
    pub fn finish_reason(&self) -> Option<&'static str> {
        self.finish_reason
    }

    /// Tool calls to these names go to the client as `custom` calls.
    pub fn with_custom_tools(mut self, names: Vec<String>) -> Self {
        self.custom_tools = names;
        self
    }

    pub fn meter(&self) -> &AnthropicMeter {
        &self.meter
    }

    /// True once `[DONE]` has been emitted; later events are ignored.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The OpenAI bytes for one Anthropic event (possibly none). `message_stop` emits the usage
    /// chunk (if asked for) and `[DONE]` at once rather than waiting for the upstream to close.
    pub fn on_event(&mut self, ev: &SseEvent) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        let v = serde_json::from_str::<Value>(&ev.data).unwrap_or(Value::Null);
        let kind = event_kind(ev, &v).to_string();
        self.meter.observe_parsed(&kind, &v);
        let mut out = Vec::new();
        match kind.as_str() {
            "message_start" => {
                if let Some(id) = v.pointer("/message/id").and_then(Value::as_str) {
                    if !id.is_empty() {
                        self.id = id.to_string();
                    }
                }
                self.role(&mut out);
            }
            "content_block_start" => self.block_start(&v, &mut out),
            "content_block_delta" => self.block_delta(&v, &mut out),
            "content_block_stop" => self.block_stop(&v, &mut out),
            "message_delta" => {
                let stop = v.pointer("/delta/stop_reason").and_then(Value::as_str);
                if stop.is_some() {
                    self.finish_chunk(&mut out, stop);
                }
            }
            "message_stop" => self.message_stop(&mut out),
            "error" => self.upstream_error(&v, &mut out),
            _ => {}
        }
        out
    }

    /// A block ends: what a custom tool's decoder still holds, and the `{}` an answer or tool
    /// block that streamed no input still owes the client.
    fn block_stop(&mut self, v: &Value, out: &mut Vec<u8>) {
        let index = v.get("index").and_then(Value::as_u64);
        let custom = self.blocks.iter_mut().find_map(|(i, b)| match b {
            Block::Custom { idx, decoder } if Some(*i) == index => Some((*idx, decoder.finish())),
            _ => None,
        });
        if let Some((idx, rest)) = custom.filter(|(_, rest)| !rest.is_empty()) {
            out.extend(self.chunk(&input_delta(idx, &rest), None));
        }
        if let Some(Block::Answer { sent: false, input }) =
            index.and_then(|i| self.block(i)).cloned()
        {
            let answer = input.unwrap_or_else(|| "{}".to_string());
            out.extend(self.chunk(&content_delta(&answer), None));
        }
        if let Some(Block::Tool {
            idx,
            sent_args: false,
            input,
        }) = index.and_then(|i| self.block(i)).cloned()
        {
            // A tool with no input streamed only `""`: send `{}` so `arguments` parses.
            let args = input.unwrap_or_else(|| "{}".to_string());
            out.extend(self.chunk(&args_delta(idx, &args), None));
        }
    }

    /// The end of the message: finish chunk, usage if asked, `[DONE]`.
    fn message_stop(&mut self, out: &mut Vec<u8>) {
        let stop = self.meter.stop_reason.clone();
        self.finish_chunk(out, stop.as_deref());
        if let (true, Some(u)) = (self.include_usage, self.meter.usage) {
            out.extend(self.usage_chunk(&u));
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.ended = true;
    }

    /// An in-band upstream error as OpenAI's in-band error, then `[DONE]`.
    fn upstream_error(&mut self, v: &Value, out: &mut Vec<u8>) {
        let err = v.get("error");
        let field = |k: &str| err.and_then(|e| e.get(k)).and_then(Value::as_str);
        let kind = field("type").unwrap_or("api_error");
        let message = field("message").unwrap_or("Upstream provider error.");
        out.extend_from_slice(
            format!(
                "data: {{\"error\":{{\"message\":{},\"type\":\"{}\",\"param\":null,\"code\":{}}}}}\n\ndata: [DONE]\n\n",
                quote(message),
                openai_error_type(kind),
                quote(kind)
            )
            .as_bytes(),
        );
        self.ended = true;
    }

    /// Upstream EOF (or failure): nothing after a complete stream, otherwise the R2.7 error
    /// event and `[DONE]`, since a truncated answer must not look like a finished one.
    pub fn finish(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        RelayError::UpstreamStreamEnded.openai_stream_tail()
    }

    fn block(&self, index: u64) -> Option<&Block> {
        self.blocks
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, b)| b)
    }

    fn block_start(&mut self, v: &Value, out: &mut Vec<u8>) {
        self.role(out);
        let Some(index) = v.get("index").and_then(Value::as_u64) else {
            return;
        };
        let cb = v.get("content_block");
        let field = |k: &str| cb.and_then(|b| b.get(k)).and_then(Value::as_str);
        let block = match field("type") {
            Some("text") => {
                if let Some(text) = field("text").filter(|t| !t.is_empty()) {
                    out.extend(self.chunk(&content_delta(text), None));
                }
                Block::Text
            }
            Some("tool_use") if self.answer_tool && field("name") == Some(ANSWER_TOOL) => {
                self.answered = true;
                let input = cb
                    .and_then(|b| b.get("input"))
                    .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                    .map(Value::to_string);
                Block::Answer { sent: false, input }
            }
            Some("tool_use")
                if self
                    .custom_tools
                    .iter()
                    .any(|n| Some(n.as_str()) == field("name")) =>
            {
                let idx = self.next_tool;
                self.next_tool += 1;
                let delta = format!(
                    "{{\"tool_calls\":[{{\"index\":{idx},\"id\":{},\"type\":\"custom\",\"custom\":{{\"name\":{},\"input\":\"\"}}}}]}}",
                    quote(field("id").unwrap_or("")),
                    quote(field("name").unwrap_or(""))
                );
                out.extend(self.chunk(&delta, None));
                let mut decoder = InputDecoder::default();
                if let Some(input) = cb
                    .and_then(|b| b.get("input"))
                    .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                {
                    let text = decoder.feed(&input.to_string());
                    if !text.is_empty() {
                        out.extend(self.chunk(&input_delta(idx, &text), None));
                    }
                }
                Block::Custom { idx, decoder }
            }
            Some("tool_use") => {
                let idx = self.next_tool;
                self.next_tool += 1;
                let delta = format!(
                    "{{\"tool_calls\":[{{\"index\":{idx},\"id\":{},\"type\":\"function\",\"function\":{{\"name\":{},\"arguments\":\"\"}}}}]}}",
                    quote(field("id").unwrap_or("")),
                    quote(field("name").unwrap_or(""))
                );
                out.extend(self.chunk(&delta, None));
                let input = cb
                    .and_then(|b| b.get("input"))
                    .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                    .map(Value::to_string);
                Block::Tool {
                    idx,
                    sent_args: false,
                    input,
                }
            }
            _ => Block::Other,
        };
        self.blocks.retain(|(i, _)| *i != index);
        self.blocks.push((index, block));
    }

    fn block_delta(&mut self, v: &Value, out: &mut Vec<u8>) {
        let Some(index) = v.get("index").and_then(Value::as_u64) else {
            return;
        };
        let delta = v.get("delta");
        let field = |k: &str| delta.and_then(|d| d.get(k)).and_then(Value::as_str);
        let custom = self.blocks.iter_mut().find_map(|(i, b)| match b {
            Block::Custom { idx, decoder } if *i == index => Some((*idx, decoder)),
            _ => None,
        });
        if let Some((idx, decoder)) = custom {
            if field("type") == Some("input_json_delta") {
                let text = decoder.feed(field("partial_json").unwrap_or(""));
                if !text.is_empty() {
                    out.extend(self.chunk(&input_delta(idx, &text), None));
                }
            }
            return;
        }
        let chunk = match (self.block(index), field("type")) {
            (Some(Block::Text), Some("text_delta")) => field("text")
                .filter(|t| !t.is_empty())
                .map(|t| self.chunk(&content_delta(t), None)),
            (Some(Block::Answer { .. }), Some("input_json_delta")) => field("partial_json")
                .filter(|p| !p.is_empty())
                .map(|p| self.chunk(&content_delta(p), None)),
            (Some(Block::Tool { idx, .. }), Some("input_json_delta")) => field("partial_json")
                .filter(|p| !p.is_empty())
                .map(|p| self.chunk(&args_delta(*idx, p), None)),
            _ => None,
        };
        if let Some(chunk) = chunk {
            match self.blocks.iter_mut().find(|(i, _)| *i == index) {
                Some((_, Block::Tool { sent_args, .. })) => *sent_args = true,
                Some((_, Block::Answer { sent, .. })) => *sent = true,
                _ => {}
            }
            out.extend(chunk);
        }
    }

    fn role(&mut self, out: &mut Vec<u8>) {
        if !self.role_sent {
            self.role_sent = true;
            out.extend(self.chunk(r#"{"role":"assistant","content":""}"#, None));
        }
    }

    /// The one finish chunk; later `message_delta`s only update usage.
    fn finish_chunk(&mut self, out: &mut Vec<u8>, stop: Option<&str>) {
        if !self.finish_sent {
            self.role(out);
            self.finish_sent = true;
            // A turn whose only call was the answer tool ended by answering, as OpenAI says.
            let reason = match finish_reason(stop) {
                "tool_calls" if self.answered && self.next_tool == 0 => "stop",
                other => other,
            };
            self.finish_reason = Some(reason);
            out.extend(self.chunk("{}", Some(reason)));
        }
    }

    fn head(&self) -> String {
        format!(
            "{{\"id\":{},\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{}",
            quote(&self.id),
            self.created,
            quote(&self.model)
        )
    }

    fn chunk(&self, delta: &str, finish: Option<&str>) -> Vec<u8> {
        let finish = finish.map_or_else(|| "null".to_string(), quote);
        // S7: with include_usage every chunk but the usage one carries `"usage":null`.
        let usage = if self.include_usage {
            ",\"usage\":null"
        } else {
            ""
        };
        format!(
            "data: {},\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]{usage}}}\n\n",
            self.head()
        )
        .into_bytes()
    }

    fn usage_chunk(&self, u: &Usage) -> Vec<u8> {
        let t = u.tokens();
        format!(
            "data: {},\"choices\":[],\"usage\":{{\"prompt_tokens\":{},\"completion_tokens\":{},\"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":{},\"cache_write_tokens\":{}}}}}}}\n\n",
            self.head(),
            t.prompt,
            t.completion,
            t.total(),
            t.cached,
            t.cache_write
        )
        .into_bytes()
    }
}

/// `s` as a JSON string literal.
fn quote(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn content_delta(text: &str) -> String {
    format!("{{\"content\":{}}}", quote(text))
}

/// A later tool-call fragment: only `index` and `arguments`, since SDK accumulators concatenate
/// every repeated string field (S5).
fn args_delta(idx: u64, args: &str) -> String {
    format!(
        "{{\"tool_calls\":[{{\"index\":{idx},\"function\":{{\"arguments\":{}}}}}]}}",
        quote(args)
    )
}

/// A later custom-call fragment, shaped like `args_delta`: only `index` and the new text.
fn input_delta(idx: u64, input: &str) -> String {
    format!(
        "{{\"tool_calls\":[{{\"index\":{idx},\"custom\":{{\"input\":{}}}}}]}}",
        quote(input)
    )
}

/// An Anthropic stream relayed to an OpenAI chat client: decodes the upstream bytes and feeds
/// each event to a `StreamTranslator`, so the edge drives it like any other `Relay`.
#[derive(Debug)]
pub struct ChatRelay {
    decoder: SseDecoder,
    translator: StreamTranslator,
    ended: bool,
}

impl ChatRelay {
    pub fn new(translator: StreamTranslator) -> Self {
        Self::with_decoder(translator, SseDecoder::new())
    }

    /// As `new`, with a decoder of the caller's choosing (e.g. a smaller event-size limit).
    pub fn with_decoder(translator: StreamTranslator, decoder: SseDecoder) -> Self {
        ChatRelay {
            decoder,
            translator,
            ended: false,
        }
    }
}

impl Relay for ChatRelay {
    fn feed(&mut self, chunk: Vec<u8>) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        match self.decoder.feed(&chunk) {
            Ok(events) => events
                .iter()
                .flat_map(|ev| self.translator.on_event(ev))
                .collect(),
            Err(_) => self.abort(),
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        let mut out = Vec::new();
        if let Some(ev) = self.decoder.finish() {
            out.extend(self.translator.on_event(&ev));
        }
        out.extend(self.translator.finish());
        out
    }

    fn abort(&mut self) -> Vec<u8> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        self.translator.finish()
    }

    fn ended(&self) -> bool {
        self.ended
    }

    fn settle(&self, prompt_chars: u64, cancelled: bool) -> Settled {
        let meter = self.translator.meter();
        let (outcome, tokens, source) = meter.settle(prompt_chars, cancelled);
        Settled {
            outcome,
            tokens,
            source,
            // The client's vocabulary (OpenAI's), as the row documents, not Claude's stop_reason.
            finish_reason: self.translator.finish_reason().map(str::to_string),
            upstream_error: meter.upstream_error.clone(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
