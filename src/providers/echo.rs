//! `relay-echo`: a provider that lives inside the worker. It answers with a deterministic reply
//! in exactly the bytes an OpenAI upstream would send, so it exercises the same stream relay,
//! metering and usage row as a real provider without spending tokens.

use serde_json::json;

use crate::metering::usage::{estimate_tokens, Tokens};
use crate::providers::models::ECHO_MODEL;

/// Longest piece of the user's message echoed back (kept in `chat`, which collects the text).
pub use crate::protocols::chat::MAX_ECHO_CHARS;

/// The reply text for a given last user message.
pub fn reply(last_user_text: &str) -> String {
    let text: String = last_user_text.trim().chars().take(MAX_ECHO_CHARS).collect();
    if text.is_empty() {
        "relay-echo: the relay is working. Send a user message and it is echoed back.".to_string()
    } else {
        format!("relay-echo: {text}")
    }
}

/// Usage the echo provider reports, computed with the relay's estimate so it looks real.
pub fn tokens(prompt_chars: u64, reply: &str) -> Tokens {
    Tokens {
        prompt: estimate_tokens(prompt_chars).max(1),
        completion: estimate_tokens(reply.chars().count() as u64),
        ..Tokens::default()
    }
}

fn usage_json(t: &Tokens) -> serde_json::Value {
    json!({
        "prompt_tokens": t.prompt,
        "completion_tokens": t.completion,
        "total_tokens": t.total(),
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0}
    })
}

pub struct Echo<'a> {
    pub id: &'a str,
    pub created: u64,
    pub reply: &'a str,
    pub tokens: Tokens,
}

impl Echo<'_> {
    /// A `chat.completion` body, as OpenAI returns it for `stream: false`.
    pub fn completion(&self) -> Vec<u8> {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": ECHO_MODEL,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": self.reply, "refusal": null},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": usage_json(&self.tokens),
            "system_fingerprint": "fp_relay_echo"
        })
        .to_string()
        .into_bytes()
    }

    fn chunk(&self, delta: serde_json::Value, finish: Option<&str>) -> Vec<u8> {
        let body = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": ECHO_MODEL,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
            "usage": null
        });
        format!("data: {body}\n\n").into_bytes()
    }

    /// The SSE events an upstream asked for usage would send, one network chunk per event:
    /// role, one chunk per word, finish, the usage-only chunk, `[DONE]`.
    pub fn stream_chunks(&self) -> Vec<Vec<u8>> {
        let mut out = vec![self.chunk(json!({"role": "assistant", "content": ""}), None)];
        for word in self.reply.split_inclusive(' ') {
            out.push(self.chunk(json!({"content": word}), None));
        }
        out.push(self.chunk(json!({}), Some("stop")));
        let usage = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": ECHO_MODEL,
            "choices": [],
            "usage": usage_json(&self.tokens)
        });
        out.push(format!("data: {usage}\n\n").into_bytes());
        out.push(b"data: [DONE]\n\n".to_vec());
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_reply() {
        assert_eq!(reply("  hi there "), "relay-echo: hi there");
        assert!(reply("").starts_with("relay-echo: the relay is working"));
        assert_eq!(
            reply(&"x".repeat(1000)).len(),
            "relay-echo: ".len() + MAX_ECHO_CHARS
        );
    }

    #[test]
    fn stream_words_rejoin_to_reply() {
        let text = reply("one two three");
        let e = Echo {
            id: "chatcmpl-1",
            created: 1,
            reply: &text,
            tokens: tokens(13, &text),
        };
        let chunks = e.stream_chunks();
        assert_eq!(chunks.len(), 1 + 4 + 1 + 1 + 1);
        let joined: String = chunks[1..5]
            .iter()
            .map(|c| {
                let s = String::from_utf8(c.clone()).unwrap();
                let v: serde_json::Value =
                    serde_json::from_str(s.trim_start_matches("data: ").trim()).unwrap();
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(joined, text);
        assert_eq!(
            e.tokens,
            Tokens {
                prompt: 4,
                completion: 7,
                ..Tokens::default()
            }
        );
    }
}
