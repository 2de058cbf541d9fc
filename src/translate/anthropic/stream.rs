//! Anthropic streams event by event (protocol.md §5.4, §6.5): `AnthropicMeter` meters a native
//! stream, and `StreamTranslator` turns one into OpenAI chat chunks, feeding its own meter;
//! `ChatRelay` wraps it with the SSE decoder for the edge.

use serde_json::Value;

use super::custom::InputDecoder;
use super::structured::ANSWER_TOOL;
use super::{finish_reason, openai_error_type, Usage};
use crate::http::error::RelayError;
use crate::metering::usage::{estimate_tokens, Outcome, Tokens, UsageSource};
use crate::protocols::sse::{SseDecoder, SseEvent};
use crate::protocols::stream::{Relay, Settled};

/// What an Anthropic stream taught us, read when the usage row is written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnthropicMeter {
    /// `message_stop` arrived: the stream is complete.
    pub saw_stop: bool,
    /// Raw counts from `message_start`, each overwritten by later `message_delta`s (R9.1).
    pub usage: Option<Usage>,
    /// A `message_delta` carried `output_tokens`, so the count is no longer the placeholder
    /// `message_start` holds.
    pub output_final: bool,
    /// Characters of text, tool-input JSON and thinking, for the estimate.
    pub completion_chars: u64,
    pub stop_reason: Option<String>,
    /// `error.type` of an in-band `event: error`.
    pub upstream_error: Option<String>,
    pub events: u64,
}

impl AnthropicMeter {
    pub fn observe(&mut self, ev: &SseEvent) {
        let parsed = serde_json::from_str::<Value>(&ev.data).unwrap_or(Value::Null);
        let kind = event_kind(ev, &parsed).to_string();
        self.observe_parsed(&kind, &parsed);
    }

    /// `observe` for an event the caller has already parsed.
    fn observe_parsed(&mut self, kind: &str, v: &Value) {
        self.events += 1;
        let chars = |s: Option<&Value>| s.and_then(Value::as_str).map_or(0, |s| s.chars().count());
        match kind {
            "message_start" => {
                if let Some(u) = v.get("message").and_then(|m| m.get("usage")) {
                    let mut usage = Usage::default();
                    usage.overwrite(u);
                    self.usage = Some(usage);
                }
            }
            "content_block_start" => {
                let block = v.get("content_block");
                self.completion_chars += chars(block.and_then(|b| b.get("text"))) as u64;
            }
            "content_block_delta" => {
                let d = v.get("delta");
                let n = ["text", "partial_json", "thinking"]
                    .iter()
                    .map(|k| chars(d.and_then(|d| d.get(*k))))
                    .sum::<usize>();
                self.completion_chars += n as u64;
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(r.to_string());
                }
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    self.usage.get_or_insert_with(Usage::default).overwrite(u);
                    self.output_final |= u
                        .get("output_tokens")
                        .and_then(crate::metering::usage::token_count)
                        .is_some();
                }
            }
            "message_stop" => self.saw_stop = true,
            "error" => {
                let kind = v.pointer("/error/type").and_then(Value::as_str);
                self.upstream_error = Some(kind.unwrap_or("error").to_string());
            }
            _ => {}
        }
    }

    /// Outcome and tokens for the row, as `StreamMeter::settle`, with `message_stop` as the
    /// terminal marker. When the stream died before any `message_delta`, the input counts are
    /// still the upstream's but the output is estimated, since `message_start`'s is a placeholder.
    pub fn settle(&self, prompt_chars: u64, cancelled: bool) -> (Outcome, Tokens, UsageSource) {
        let outcome = if self.upstream_error.is_some() {
            Outcome::UpstreamError
        } else if cancelled {
            Outcome::ClientCancelled
        } else if self.saw_stop {
            Outcome::Ok
        } else {
            Outcome::Truncated
        };
        let estimate = estimate_tokens(self.completion_chars);
        match self.usage {
            Some(u) if self.output_final => (outcome, u.tokens(), UsageSource::Upstream),
            Some(u) => {
                let mut t = u.tokens();
                t.completion = t.completion.max(estimate);
                (outcome, t, UsageSource::Estimated)
            }
            None => (
                outcome,
                Tokens::estimated(prompt_chars, self.completion_chars),
                UsageSource::Estimated,
            ),
        }
    }
}

/// The event type: `data.type`, which equals the `event:` name on a well-formed stream.
fn event_kind<'a>(ev: &'a SseEvent, parsed: &'a Value) -> &'a str {
    parsed
        .get("type")
        .and_then(Value::as_str)
        .or(ev.event.as_deref())
        .unwrap_or("")
}

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
            "content_block_stop" => {
                let index = v.get("index").and_then(Value::as_u64);
                let custom = self.blocks.iter_mut().find_map(|(i, b)| match b {
                    Block::Custom { idx, decoder } if Some(*i) == index => {
                        Some((*idx, decoder.finish()))
                    }
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
            "message_delta" => {
                let stop = v.pointer("/delta/stop_reason").and_then(Value::as_str);
                if stop.is_some() {
                    self.finish_chunk(&mut out, stop);
                }
            }
            "message_stop" => {
                let stop = self.meter.stop_reason.clone();
                self.finish_chunk(&mut out, stop.as_deref());
                if let (true, Some(u)) = (self.include_usage, self.meter.usage) {
                    out.extend(self.usage_chunk(&u));
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
                self.ended = true;
            }
            "error" => {
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
            _ => {}
        }
        out
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
mod tests {
    use super::*;
    use crate::protocols::sse::SseDecoder;

    /// protocol.md §5.4, byte for byte.
    const EXAMPLE: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-1-20250805\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}\n",
        "\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n",
        "\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay\"}}\n",
        "\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n",
        "\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n",
        "\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"San Francisco, CA\\\"}\"}}\n",
        "\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n",
        "\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n",
        "\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n",
        "\n",
    );

    /// The §6.5 worked example payloads (the doc abbreviates the id).
    const WANT: [&str; 6] = [
        r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[{"index":0,"delta":{"content":"Okay"},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"location\":"}}]},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" \"San Francisco, CA\"}"}}]},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}]}"#,
    ];
    const USAGE_CHUNK: &str = r#"{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","object":"chat.completion.chunk","created":1741570283,"model":"relay-sonnet","choices":[],"usage":{"prompt_tokens":472,"completion_tokens":89,"total_tokens":561,"prompt_tokens_details":{"cached_tokens":0,"cache_write_tokens":0}}}"#;

    fn translator(include_usage: bool) -> StreamTranslator {
        StreamTranslator::new(
            "rly_1".to_string(),
            1741570283,
            "relay-sonnet".to_string(),
            include_usage,
        )
    }

    /// Upstream chunks → SseDecoder → translator → client bytes, ending with EOF.
    fn run(chunks: &[&[u8]], include_usage: bool) -> (String, StreamTranslator) {
        let mut dec = SseDecoder::new();
        let mut t = translator(include_usage);
        let mut out = Vec::new();
        for c in chunks {
            for ev in dec.feed(c).unwrap() {
                out.extend(t.on_event(&ev));
            }
        }
        if let Some(ev) = dec.finish() {
            out.extend(t.on_event(&ev));
        }
        out.extend(t.finish());
        (String::from_utf8(out).unwrap(), t)
    }

    fn framed(payloads: &[&str]) -> String {
        payloads.iter().map(|p| format!("data: {p}\n\n")).collect()
    }

    #[test]
    fn t22_section_5_4_example_without_usage() {
        let (out, t) = run(&[EXAMPLE.as_bytes()], false);
        let mut want: Vec<&str> = WANT.to_vec();
        want.push("[DONE]");
        assert_eq!(out, framed(&want));
        let (outcome, tokens, source) = t.meter().settle(0, false);
        assert_eq!((outcome, source), (Outcome::Ok, UsageSource::Upstream));
        assert_eq!((tokens.prompt, tokens.completion), (472, 89));
        assert_eq!(t.meter().stop_reason.as_deref(), Some("tool_use"));
    }

    #[test]
    fn t22_section_5_4_example_with_usage() {
        let (out, _) = run(&[EXAMPLE.as_bytes()], true);
        let with_null: Vec<String> = WANT
            .iter()
            .map(|p| format!("{},\"usage\":null}}", p.strip_suffix('}').unwrap()))
            .collect();
        let mut want: Vec<&str> = with_null.iter().map(String::as_str).collect();
        want.push(USAGE_CHUNK);
        want.push("[DONE]");
        assert_eq!(out, framed(&want));
    }

    #[test]
    fn every_two_way_split_gives_identical_output() {
        let bytes = EXAMPLE.as_bytes();
        let (whole, _) = run(&[bytes], true);
        for i in 0..=bytes.len() {
            let (a, b) = bytes.split_at(i);
            let (got, t) = run(&[a, b], true);
            assert_eq!(got, whole, "split at {i}");
            assert_eq!(t.meter().settle(0, false).1.completion, 89);
        }
    }

    fn ev(kind: &str, data: &str) -> SseEvent {
        SseEvent {
            event: Some(kind.to_string()),
            data: data.to_string(),
            start: 0,
            end: 0,
        }
    }

    fn start() -> SseEvent {
        ev(
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":10,"output_tokens":1}}}"#,
        )
    }

    fn payloads(bytes: &[u8]) -> Vec<Value> {
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .split("\n\n")
            .filter(|s| !s.is_empty())
            .map(|s| {
                let p = s.strip_prefix("data: ").unwrap();
                serde_json::from_str(p).unwrap_or(Value::String(p.to_string()))
            })
            .collect()
    }

    #[test]
    fn t23_midstream_error_is_one_error_event_then_done() {
        let mut t = translator(false);
        let mut out = t.on_event(&start());
        out.extend(t.on_event(&ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        )));
        let err = ev(
            "error",
            r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#,
        );
        let tail = t.on_event(&err);
        assert_eq!(
            String::from_utf8(tail).unwrap(),
            "data: {\"error\":{\"message\":\"Overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":\"overloaded_error\"}}\n\ndata: [DONE]\n\n"
        );
        assert!(t.ended());
        assert!(t
            .on_event(&ev("message_stop", r#"{"type":"message_stop"}"#))
            .is_empty());
        assert!(t.finish().is_empty());
        assert_eq!(
            t.meter().upstream_error.as_deref(),
            Some("overloaded_error")
        );
        assert_eq!(t.meter().settle(40, false).0, Outcome::UpstreamError);
    }

    fn tool_start(index: u64, id: &str) -> SseEvent {
        ev(
            "content_block_start",
            &format!(
                r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"tool_use","id":"{id}","name":"f","input":{{}}}}}}"#
            ),
        )
    }

    fn json_delta(index: u64, partial: &str) -> SseEvent {
        ev(
            "content_block_delta",
            &serde_json::json!({"type":"content_block_delta","index":index,
                "delta":{"type":"input_json_delta","partial_json":partial}})
            .to_string(),
        )
    }

    fn stop(index: u64) -> SseEvent {
        ev(
            "content_block_stop",
            &format!(r#"{{"type":"content_block_stop","index":{index}}}"#),
        )
    }

    fn text_block(index: u64, text: &str) -> Vec<SseEvent> {
        vec![
            ev(
                "content_block_start",
                &format!(
                    r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}"#
                ),
            ),
            ev(
                "content_block_delta",
                &format!(
                    r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":"{text}"}}}}"#
                ),
            ),
            stop(index),
        ]
    }

    /// Accumulates tool calls the way the openai SDK does: by index, concatenating strings.
    fn accumulate(chunks: &[Value]) -> Vec<(u64, String, String)> {
        let mut calls: Vec<(u64, String, String)> = Vec::new();
        for c in chunks {
            let Some(tcs) = c
                .pointer("/choices/0/delta/tool_calls")
                .and_then(Value::as_array)
            else {
                continue;
            };
            for tc in tcs {
                let idx = tc["index"].as_u64().unwrap();
                let id = tc.get("id").and_then(Value::as_str).unwrap_or("");
                let args = tc["function"]["arguments"].as_str().unwrap_or("");
                match calls.iter_mut().find(|c| c.0 == idx) {
                    Some(c) => {
                        c.1.push_str(id);
                        c.2.push_str(args);
                    }
                    None => calls.push((idx, id.to_string(), args.to_string())),
                }
            }
        }
        calls
    }

    #[test]
    fn t24_empty_tool_input_accumulates_to_braces() {
        let mut t = translator(false);
        let mut out = Vec::new();
        for e in [
            start(),
            tool_start(0, "toolu_A"),
            json_delta(0, ""),
            stop(0),
        ] {
            out.extend(t.on_event(&e));
        }
        let chunks = payloads(&out);
        assert_eq!(
            chunks[2]["choices"][0]["delta"],
            serde_json::json!({"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]})
        );
        assert_eq!(
            accumulate(&chunks),
            vec![(0, "toolu_A".to_string(), "{}".to_string())]
        );
    }

    #[test]
    fn t25_tool_indices_are_dense() {
        let mut t = translator(false);
        let mut events = vec![start()];
        events.extend(text_block(0, "a"));
        events.extend([
            tool_start(1, "toolu_A"),
            json_delta(1, "{\"x\":1}"),
            stop(1),
        ]);
        events.extend(text_block(2, "b"));
        events.extend([
            tool_start(3, "toolu_B"),
            json_delta(3, ""),
            json_delta(3, "{}"),
            stop(3),
        ]);
        events.push(ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}"#,
        ));
        events.push(ev("message_stop", r#"{"type":"message_stop"}"#));
        let mut out = Vec::new();
        for e in &events {
            out.extend(t.on_event(e));
        }
        let chunks = payloads(&out);
        assert_eq!(
            accumulate(&chunks),
            vec![
                (0, "toolu_A".to_string(), "{\"x\":1}".to_string()),
                (1, "toolu_B".to_string(), "{}".to_string())
            ]
        );
        let finishes: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c.pointer("/choices/0/finish_reason"))
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finishes, vec!["tool_calls"]);
        assert_eq!(chunks.last().unwrap(), &Value::String("[DONE]".into()));
    }

    #[test]
    fn thinking_ping_and_unknown_events_send_nothing() {
        let mut t = translator(false);
        t.on_event(&start());
        let quiet = [
            ev("ping", r#"{"type": "ping"}"#),
            ev(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#,
            ),
            ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"hmm"}}"#,
            ),
            ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"x"}}"#,
            ),
            stop(0),
            ev("brand_new_event", r#"{"type":"brand_new_event"}"#),
        ];
        for e in &quiet {
            assert!(t.on_event(e).is_empty(), "{e:?}");
        }
        assert_eq!(t.meter().completion_chars, 3);
    }

    #[test]
    fn truncated_stream_ends_with_r2_7_tail() {
        let (out, t) = run(&[&EXAMPLE.as_bytes()[..600]], false);
        assert!(out.ends_with(
            &String::from_utf8(RelayError::UpstreamStreamEnded.openai_stream_tail()).unwrap()
        ));
        assert!(!out.contains("finish_reason\":\"tool_calls"));
        let (outcome, tokens, source) = t.meter().settle(0, false);
        assert_eq!(
            (outcome, source),
            (Outcome::Truncated, UsageSource::Estimated)
        );
        // Input from message_start, output estimated rather than the placeholder 2.
        assert_eq!(tokens.prompt, 472);
        assert_eq!(t.meter().settle(0, true).0, Outcome::ClientCancelled);
    }

    #[test]
    fn meter_overwrites_cumulative_usage() {
        let mut m = AnthropicMeter::default();
        let events = [
            ev(
                "message_start",
                r#"{"type":"message_start","message":{"usage":{"input_tokens":849,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}}}"#,
            ),
            ev(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":30}}"#,
            ),
            ev(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":900,"cache_creation_input_tokens":7,"cache_read_input_tokens":null,"output_tokens":47}}"#,
            ),
            ev("message_stop", r#"{"type":"message_stop"}"#),
        ];
        for e in &events {
            m.observe(e);
        }
        assert_eq!(
            m.usage,
            Some(Usage {
                input_tokens: 900,
                cache_creation_input_tokens: 7,
                cache_read_input_tokens: 0,
                output_tokens: 47
            })
        );
        let (outcome, tokens, source) = m.settle(0, false);
        assert_eq!((outcome, source), (Outcome::Ok, UsageSource::Upstream));
        assert_eq!(
            tokens,
            Tokens {
                prompt: 907,
                completion: 47,
                cached: 0,
                cache_write: 7,
                reasoning: 0
            }
        );
        assert_eq!(m.stop_reason.as_deref(), Some("end_turn"));
        assert!(m.saw_stop);
        assert_eq!(m.events, 4);
    }

    #[test]
    fn meter_without_usage_estimates() {
        let mut m = AnthropicMeter::default();
        m.observe(&ev(
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"12345"}}"#,
        ));
        m.observe(&ev("error", "not json"));
        assert_eq!(m.upstream_error.as_deref(), Some("error"));
        assert_eq!(
            m.settle(8, false),
            (
                Outcome::UpstreamError,
                Tokens::estimated(8, 5),
                UsageSource::Estimated
            )
        );
    }

    fn answer_start(index: u64) -> SseEvent {
        ev(
            "content_block_start",
            &format!(
                r#"{{"type":"content_block_start","index":{index},"content_block":{{"type":"tool_use","id":"toolu_a","name":"json_response","input":{{}}}}}}"#
            ),
        )
    }

    fn tool_use_end(t: &mut StreamTranslator) -> Vec<u8> {
        let mut out = t.on_event(&ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#,
        ));
        out.extend(t.on_event(&ev("message_stop", r#"{"type":"message_stop"}"#)));
        out
    }

    /// `response_format` on Claude: the answer tool's input streams as `content` fragments, no
    /// tool call reaches the client, and the turn finishes with `stop`.
    #[test]
    fn answer_tool_streams_as_content_and_finishes_with_stop() {
        let answer = r#"{"steps":["8x = -29"],"final_answer":"x = -29/8"}"#;
        let mut t = translator(false).with_answer_tool(true);
        let mut out = t.on_event(&start());
        out.extend(t.on_event(&answer_start(0)));
        for piece in [&answer[..0], &answer[..9], &answer[9..30], &answer[30..]] {
            out.extend(t.on_event(&json_delta(0, piece)));
        }
        out.extend(t.on_event(&stop(0)));
        out.extend(tool_use_end(&mut t));
        let chunks = payloads(&out);
        let content: String = chunks
            .iter()
            .filter_map(|c| {
                c.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .collect();
        assert_eq!(content, answer);
        assert!(
            chunks
                .iter()
                .all(|c| c.pointer("/choices/0/delta/tool_calls").is_none()),
            "no tool call leaks to the client"
        );
        assert_eq!(
            chunks.iter().rev().nth(1).unwrap()["choices"][0]["finish_reason"],
            "stop"
        );
        assert_eq!(t.finish_reason(), Some("stop"));
        assert_eq!(t.meter().stop_reason.as_deref(), Some("tool_use"));

        // Input given whole in the start block and nothing streamed: sent at the block's end.
        let mut t = translator(false).with_answer_tool(true);
        let mut out = t.on_event(&start());
        out.extend(t.on_event(&ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_a","name":"json_response","input":{"a":1}}}"#,
        )));
        out.extend(t.on_event(&stop(0)));
        out.extend(tool_use_end(&mut t));
        let content: Vec<String> = payloads(&out)
            .iter()
            .filter_map(|c| {
                c.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .map(str::to_string)
            .collect();
        assert_eq!(content, ["", r#"{"a":1}"#]);

        // Without response_format a tool of that name is an ordinary call.
        let mut t = translator(false);
        let mut out = t.on_event(&start());
        out.extend(t.on_event(&answer_start(0)));
        out.extend(t.on_event(&stop(0)));
        out.extend(tool_use_end(&mut t));
        assert_eq!(t.finish_reason(), Some("tool_calls"));
    }

    /// With the client's own tools in play, a real call alongside the answer keeps `tool_calls`.
    #[test]
    fn answer_tool_next_to_a_real_call_keeps_tool_calls() {
        let mut t = translator(false).with_answer_tool(true);
        let mut out = t.on_event(&start());
        out.extend(t.on_event(&tool_start(0, "toolu_f")));
        out.extend(t.on_event(&stop(0)));
        out.extend(t.on_event(&answer_start(1)));
        out.extend(t.on_event(&json_delta(1, "{}")));
        out.extend(t.on_event(&stop(1)));
        out.extend(tool_use_end(&mut t));
        assert_eq!(accumulate(&payloads(&out)).len(), 1);
        assert_eq!(t.finish_reason(), Some("tool_calls"));
    }

    #[test]
    fn custom_tool_use_streams_as_custom_call_input() {
        let patch = "*** Begin Patch\n*** Update File: \"a.rs\"\n+é\n*** End Patch";
        let raw = serde_json::json!({"input": patch}).to_string();
        let mut t = translator(false).with_custom_tools(vec!["ApplyPatch".to_string()]);
        let mut out = t.on_event(&start());
        out.extend(t.on_event(&tool_start(0, "toolu_f")));
        out.extend(t.on_event(&stop(0)));
        out.extend(t.on_event(&ev(
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_p","name":"ApplyPatch","input":{}}}"#,
        )));
        // Fragments cut mid-key, mid-escape and mid-character.
        let cuts = [0, 3, 12, 27, 28, raw.len() - 3, raw.len()];
        for w in cuts.windows(2) {
            let (a, b) = (w[0], w[1]);
            let (a, b) = (
                (a..=b).find(|i| raw.is_char_boundary(*i)).unwrap(),
                (b..=raw.len()).find(|i| raw.is_char_boundary(*i)).unwrap(),
            );
            out.extend(t.on_event(&json_delta(1, &raw[a..b])));
        }
        out.extend(t.on_event(&stop(1)));
        out.extend(t.on_event(&ev(
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}"#,
        )));
        out.extend(t.on_event(&ev("message_stop", r#"{"type":"message_stop"}"#)));
        let chunks = payloads(&out);
        // The function tool is still a function call, at index 0.
        assert_eq!(
            accumulate(&chunks)[0],
            (0, "toolu_f".to_string(), "{}".to_string())
        );
        let custom: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0"))
            .filter(|tc| tc["index"] == 1)
            .collect();
        assert_eq!(
            custom[0],
            &serde_json::json!({"index":1,"id":"toolu_p","type":"custom",
                                "custom":{"name":"ApplyPatch","input":""}})
        );
        let input: String = custom[1..]
            .iter()
            .map(|tc| {
                assert_eq!(
                    tc.as_object().unwrap().len(),
                    2,
                    "later fragments: index + custom"
                );
                tc["custom"]["input"].as_str().unwrap()
            })
            .collect();
        assert_eq!(input, patch);
        assert!(custom.len() > 3, "the input streamed in pieces: {custom:?}");
        assert_eq!(
            chunks.iter().rev().nth(1).unwrap()["choices"][0]["finish_reason"],
            "tool_calls"
        );
    }
}
