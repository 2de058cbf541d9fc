//! Claude under the Responses API: the Messages stream becomes Chat chunks through the existing
//! Messages→Chat translator (`anthropic::StreamTranslator`), which `translate` then turns into
//! Responses events. This is the Chat hub at work: no Messages→Responses translator exists.

use crate::anthropic::StreamTranslator;
use crate::sse::SseDecoder;
use crate::stream::{Relay, Settled};

/// An Anthropic stream as OpenAI chat chunks, metered with Messages semantics.
pub struct MessagesToChat {
    decoder: SseDecoder,
    translator: StreamTranslator,
    ended: bool,
}

impl MessagesToChat {
    /// The translator must be built with `include_usage`, or no usage reaches the Response.
    pub fn new(translator: StreamTranslator) -> Self {
        MessagesToChat {
            decoder: SseDecoder::new(),
            translator,
            ended: false,
        }
    }
}

impl Relay for MessagesToChat {
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
            finish_reason: meter.stop_reason.clone(),
            upstream_error: meter.upstream_error.clone(),
        }
    }
}
