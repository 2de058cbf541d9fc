//! A stored answer: one line of JSON saying what it is (and for which key it was stored), then
//! the answer's bytes exactly as the client received them, so a replay needs no re-encoding and
//! binary-safe SSE costs no base64.

use serde_json::{json, Value};

use crate::metering::usage::{Tokens, UsageSource};

const MAGIC: &[u8] = b"llm-relay-cache/1\n";
/// The meta line is the relay's own small JSON; anything longer is not an entry of ours.
const MAX_META_BYTES: usize = 16 * 1024;

/// What a hit's usage row and response need besides the bytes. Read and written through
/// `serde_json::Value` rather than derived code: the Value paths are in the bundle already, a
/// derive for this one struct would add its own visitors to the 350 KiB budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Meta {
    /// The cache key the entry was stored under, checked on every read: a value found under
    /// a name is only trusted if it says it belongs there.
    pub key: String,
    pub stream: bool,
    pub content_type: String,
    pub stored_at_ms: u64,
    pub expires_at_ms: u64,
    /// The request that produced the answer, for tracing a hit back to it.
    pub request_id: String,
    pub provider: Option<String>,
    pub model_upstream: Option<String>,
    pub finish_reason: Option<String>,
    /// prompt, completion, cached, cache_write, reasoning: the original's tokens.
    pub tokens: [u64; 5],
    pub usage_source: String,
}

fn text(v: &Value, name: &str) -> Option<String> {
    v.get(name)?.as_str().map(str::to_string)
}

/// A field that may be null: `Some(None)` for null or absent, `None` for a wrong type.
fn maybe_text(v: &Value, name: &str) -> Option<Option<String>> {
    match v.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    }
}

impl Meta {
    fn to_json(&self) -> Value {
        json!({
            "key": self.key,
            "stream": self.stream,
            "content_type": self.content_type,
            "stored_at_ms": self.stored_at_ms,
            "expires_at_ms": self.expires_at_ms,
            "request_id": self.request_id,
            "provider": self.provider,
            "model_upstream": self.model_upstream,
            "finish_reason": self.finish_reason,
            "tokens": self.tokens,
            "usage_source": self.usage_source,
        })
    }

    fn from_json(v: &Value) -> Option<Meta> {
        let list = v.get("tokens")?.as_array()?;
        let mut tokens = [0u64; 5];
        if list.len() != tokens.len() {
            return None;
        }
        for (slot, n) in tokens.iter_mut().zip(list) {
            *slot = n.as_u64()?;
        }
        Some(Meta {
            key: text(v, "key")?,
            stream: v.get("stream")?.as_bool()?,
            content_type: text(v, "content_type")?,
            stored_at_ms: v.get("stored_at_ms")?.as_u64()?,
            expires_at_ms: v.get("expires_at_ms")?.as_u64()?,
            request_id: text(v, "request_id")?,
            provider: maybe_text(v, "provider")?,
            model_upstream: maybe_text(v, "model_upstream")?,
            finish_reason: maybe_text(v, "finish_reason")?,
            tokens,
            usage_source: text(v, "usage_source")?,
        })
    }

    pub fn tokens(&self) -> Tokens {
        let [prompt, completion, cached, cache_write, reasoning] = self.tokens;
        Tokens {
            prompt,
            completion,
            cached,
            cache_write,
            reasoning,
        }
        .capped()
    }

    pub fn usage_source(&self) -> UsageSource {
        match self.usage_source.as_str() {
            "upstream" => UsageSource::Upstream,
            "estimated" => UsageSource::Estimated,
            _ => UsageSource::None,
        }
    }
}

pub fn token_array(t: &Tokens) -> [u64; 5] {
    [t.prompt, t.completion, t.cached, t.cache_write, t.reasoning]
}

pub fn encode(meta: &Meta, body: &[u8]) -> Vec<u8> {
    let line = meta.to_json().to_string().into_bytes();
    let mut out = Vec::with_capacity(MAGIC.len() + line.len() + 1 + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&line);
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// The entry for `key` in `value`, if it is one, for that key and shape, and still fresh. KV
/// expires entries itself, but lazily and per location; the relay never serves one late.
pub fn decode(value: &[u8], key: &str, stream: bool, now_ms: u64) -> Option<(Meta, Vec<u8>)> {
    let rest = value.strip_prefix(MAGIC)?;
    let end = rest.iter().take(MAX_META_BYTES).position(|&b| b == b'\n')?;
    let json: Value = serde_json::from_slice(&rest[..end]).ok()?;
    let meta = Meta::from_json(&json)?;
    if meta.key != key || meta.stream != stream || now_ms >= meta.expires_at_ms {
        return None;
    }
    Some((meta, rest[end + 1..].to_vec()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            key: "k1".into(),
            stream: true,
            content_type: "text/event-stream; charset=utf-8".into(),
            stored_at_ms: 1_000,
            expires_at_ms: 61_000,
            request_id: "req_1".into(),
            provider: Some("openai".into()),
            model_upstream: Some("gpt-4o-mini".into()),
            finish_reason: Some("stop".into()),
            tokens: [10, 5, 2, 0, 1],
            usage_source: "upstream".into(),
        }
    }

    #[test]
    fn round_trips_bytes_exactly() {
        let body = b"event: x\nid: 7\ndata: {\"a\":1}\n\n\xff\x00data: [DONE]\n\n".to_vec();
        let stored = encode(&meta(), &body);
        let (m, b) = decode(&stored, "k1", true, 2_000).unwrap();
        assert_eq!(b, body);
        assert_eq!(m, meta());
        assert_eq!(m.tokens().prompt, 10);
        assert_eq!(m.usage_source(), UsageSource::Upstream);
    }

    #[test]
    fn never_a_wrong_hit() {
        let stored = encode(&meta(), b"x");
        // Another key's entry, the other shape, an expired entry, foreign bytes: all misses.
        assert!(decode(&stored, "k2", true, 2_000).is_none());
        assert!(decode(&stored, "k1", false, 2_000).is_none());
        assert!(decode(&stored, "k1", true, 61_000).is_none());
        assert!(decode(b"{\"choices\":[]}", "k1", true, 2_000).is_none());
        assert!(decode(&stored[..stored.len() - 3], "k1", true, 2_000).is_none());
        let mut wrong_type = MAGIC.to_vec();
        let mut m = meta().to_json();
        m["tokens"] = json!([1, 2, 3]);
        wrong_type.extend(m.to_string().into_bytes());
        wrong_type.extend(b"\nx");
        assert!(decode(&wrong_type, "k1", true, 2_000).is_none());
        let mut no_newline = MAGIC.to_vec();
        no_newline.extend(std::iter::repeat_n(b'a', MAX_META_BYTES + 10));
        assert!(decode(&no_newline, "k1", true, 2_000).is_none());
    }
}
