//! What the meter needs from one OpenAI stream chunk (chat or legacy completions), read as
//! JSON with borrowing visitors: output characters, the finish reason, and the usage and error
//! objects if present. Any valid spelling of the same chunk (spaces, line breaks, `\u` escapes
//! in keys or values) reads the same; nothing is allocated except for the rare fields kept.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// The parts of a chunk the meter reads.
#[derive(Debug, Default)]
pub struct Chunk<'a> {
    /// Characters (Unicode scalar values of the decoded strings) of content, refusal,
    /// tool-call arguments and legacy `text`.
    pub text_chars: u64,
    /// The last non-null `finish_reason` of any choice.
    pub finish_reason: Option<String>,
    /// `Some(n)` when `choices` is an array of n entries.
    pub choices: Option<usize>,
    /// `usage`, unless absent or null.
    pub usage: Option<&'a RawValue>,
    /// `error`, unless absent, null or `false`.
    pub error: Option<&'a RawValue>,
}

/// Reads one `data:` payload; None when it is not a JSON object.
pub fn read(data: &str) -> Option<Chunk<'_>> {
    serde_json::from_str::<Chunk<'_>>(data).ok()
}

/// Characters of every string a chat `message` (or a stream `delta`) carries as output:
/// `content` (a string or text parts), `refusal`, tool-call `arguments` and custom `input`.
pub fn message_chars(message: &serde_json::Value) -> u64 {
    use serde_json::Value;
    let chars = |v: Option<&Value>| v.and_then(Value::as_str).map_or(0, count);
    let content = match message.get("content") {
        Some(Value::Array(parts)) => parts.iter().map(|p| chars(p.get("text"))).sum(),
        other => chars(other),
    };
    let calls = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| chars(c.pointer("/function/arguments")) + chars(c.pointer("/custom/input")))
        .sum::<u64>();
    content + chars(message.get("refusal")) + calls
}

fn count(s: &str) -> u64 {
    s.chars().count() as u64
}

/// Object keys the visitors care about, matched after JSON unescaping.
enum Key {
    Choices,
    Usage,
    Error,
    Delta,
    Text,
    FinishReason,
    Content,
    Refusal,
    ToolCalls,
    Function,
    Custom,
    Arguments,
    Input,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "choices" => Key::Choices,
                    "usage" => Key::Usage,
                    "error" => Key::Error,
                    "delta" => Key::Delta,
                    "text" => Key::Text,
                    "finish_reason" => Key::FinishReason,
                    "content" => Key::Content,
                    "refusal" => Key::Refusal,
                    "tool_calls" => Key::ToolCalls,
                    "function" => Key::Function,
                    "custom" => Key::Custom,
                    "arguments" => Key::Arguments,
                    "input" => Key::Input,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_identifier(KeyVisitor)
    }
}

/// Accepts any JSON value: a string is counted (or kept), anything else skipped, so an
/// unexpected type in one field never costs the rest of the chunk.
enum Lenient {
    /// Count a string's characters.
    Count,
    /// Keep a string.
    Keep,
}

enum Found {
    Chars(u64),
    Text(String),
    Nothing,
}

impl<'de> DeserializeSeed<'de> for Lenient {
    type Value = Found;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Found, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Lenient {
    type Value = Found;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Found, E> {
        Ok(match self {
            Lenient::Count => Found::Chars(count(s)),
            Lenient::Keep => Found::Text(s.to_string()),
        })
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Found, E> {
        Ok(Found::Nothing)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Found, E> {
        Ok(Found::Nothing)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Found, E> {
        Ok(Found::Nothing)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Found, E> {
        Ok(Found::Nothing)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Found, E> {
        Ok(Found::Nothing)
    }
    fn visit_none<E: de::Error>(self) -> Result<Found, E> {
        Ok(Found::Nothing)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Found, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Found::Nothing)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Found, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Found::Nothing)
    }
}

fn chars_of<'de, A: MapAccess<'de>>(map: &mut A) -> Result<u64, A::Error> {
    Ok(match map.next_value_seed(Lenient::Count)? {
        Found::Chars(n) => n,
        _ => 0,
    })
}

/// Sums what one nested object contributes: output characters and a finish reason.
#[derive(Default)]
struct Part {
    chars: u64,
    finish_reason: Option<String>,
}

/// Where in a chunk an object sits, which decides the keys that count in it.
#[derive(Clone, Copy)]
enum Level {
    /// An element of `choices`: `delta`, legacy `text`, `finish_reason`.
    Choice,
    /// A `delta`: `content`, `refusal`, `tool_calls`.
    Delta,
    /// An element of `tool_calls`: `function`, `custom`.
    ToolCall,
    /// `function` / `custom` of a tool call: `arguments`, `input`.
    Call,
}

/// One object (or, for lists, every object in an array) at `level`; any other JSON value
/// contributes nothing.
struct Walk(Level);

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = Part;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Part, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = Part;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Part, E> {
        Ok(Part::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Part, E> {
        Ok(Part::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Part, E> {
        Ok(Part::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Part, E> {
        Ok(Part::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Part, E> {
        Ok(Part::default())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Part, E> {
        Ok(Part::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<Part, E> {
        Ok(Part::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Part, A::Error> {
        let mut total = Part::default();
        while let Some(p) = seq.next_element_seed(Walk(self.0))? {
            total.chars = total.chars.saturating_add(p.chars);
            total.finish_reason = p.finish_reason.or(total.finish_reason);
        }
        Ok(total)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Part, A::Error> {
        let mut part = Part::default();
        while let Some(key) = map.next_key::<Key>()? {
            let add = match (self.0, key) {
                (Level::Choice, Key::Delta) => map.next_value_seed(Walk(Level::Delta))?.chars,
                (Level::Choice, Key::Text)
                | (Level::Delta, Key::Content | Key::Refusal)
                | (Level::Call, Key::Arguments | Key::Input) => chars_of(&mut map)?,
                (Level::Choice, Key::FinishReason) => {
                    if let Found::Text(r) = map.next_value_seed(Lenient::Keep)? {
                        part.finish_reason = Some(r);
                    }
                    0
                }
                (Level::Delta, Key::ToolCalls) => map.next_value_seed(Walk(Level::ToolCall))?.chars,
                (Level::ToolCall, Key::Function | Key::Custom) => {
                    map.next_value_seed(Walk(Level::Call))?.chars
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    0
                }
            };
            part.chars = part.chars.saturating_add(add);
        }
        Ok(part)
    }
}

/// `choices`: counts its entries while walking each.
struct Choices;

impl<'de> DeserializeSeed<'de> for Choices {
    type Value = (Option<usize>, Part);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Choices {
    type Value = (Option<usize>, Part);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut n = 0usize;
        let mut total = Part::default();
        while let Some(p) = seq.next_element_seed(Walk(Level::Choice))? {
            n += 1;
            total.chars = total.chars.saturating_add(p.chars);
            total.finish_reason = p.finish_reason.or(total.finish_reason);
        }
        Ok((Some(n), total))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok((None, Part::default()))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok((None, Part::default()))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok((None, Part::default()))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok((None, Part::default()))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok((None, Part::default()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok((None, Part::default()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok((None, Part::default()))
    }
}

/// A raw value unless it is `null` (or, for `error`, `false`).
fn present(raw: &RawValue, false_is_absent: bool) -> bool {
    let text = raw.get().trim();
    text != "null" && !(false_is_absent && text == "false")
}

impl<'de: 'a, 'a> Deserialize<'de> for Chunk<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ChunkVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ChunkVisitor<'a> {
            type Value = Chunk<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            // A repeated key is read again and the last one wins, as most JSON parsers do.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Chunk<'a>, A::Error> {
                let mut chunk = Chunk::default();
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Choices => {
                            let (n, part) = map.next_value_seed(Choices)?;
                            chunk.choices = n;
                            chunk.text_chars = chunk.text_chars.saturating_add(part.chars);
                            if part.finish_reason.is_some() {
                                chunk.finish_reason = part.finish_reason;
                            }
                        }
                        Key::Usage => {
                            let raw: &'a RawValue = map.next_value()?;
                            chunk.usage = present(raw, false).then_some(raw);
                        }
                        Key::Error => {
                            let raw: &'a RawValue = map.next_value()?;
                            chunk.error = present(raw, true).then_some(raw);
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(chunk)
            }
        }
        d.deserialize_map(ChunkVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_compact_delta() {
        let c = read(r#"{"id":"x","choices":[{"index":0,"delta":{"content":"Hello"},"finish_reason":null}]}"#).unwrap();
        assert_eq!(c.text_chars, 5);
        assert_eq!(c.choices, Some(1));
        assert_eq!(c.finish_reason, None);
        assert!(c.usage.is_none() && c.error.is_none());
    }

    #[test]
    fn counts_decoded_characters() {
        // An escaped quote, a newline, é and an emoji as a surrogate pair: five characters.
        let c = read(r#"{"choices":[{"delta":{"content":"a\"\n\u00e9\ud83d\ude00"}}]}"#).unwrap();
        assert_eq!(c.text_chars, 5);
        let c = read(r#"{"choices":[{"delta":{"content":"café 😀"}}]}"#).unwrap();
        assert_eq!(c.text_chars, 6);
    }

    #[test]
    fn tool_arguments_refusal_and_legacy_text() {
        let c = read(
            r#"{"choices":[{"delta":{"refusal":"no","tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}},{"index":1,"function":{"name":"f","arguments":"1}"}}]}},{"text":"abc","finish_reason":"length"}]}"#,
        )
        .unwrap();
        assert_eq!(c.text_chars, 2 + 5 + 2 + 3);
        assert_eq!(c.finish_reason.as_deref(), Some("length"));
        assert_eq!(c.choices, Some(2));
    }

    #[test]
    fn odd_types_are_skipped_not_fatal() {
        let c = read(r#"{"choices":[{"delta":{"content":null,"tool_calls":"x"},"finish_reason":7},3],"usage":{"prompt_tokens":1}}"#).unwrap();
        assert_eq!(
            (c.text_chars, c.finish_reason, c.choices),
            (0, None, Some(2))
        );
        assert_eq!(c.usage.unwrap().get(), r#"{"prompt_tokens":1}"#);
        assert!(read("[1]").is_none());
        assert!(read("not json").is_none());
    }

    #[test]
    fn usage_and_error_presence() {
        let c = read(r#"{"choices":[],"usage":null,"error":false}"#).unwrap();
        assert!(c.usage.is_none() && c.error.is_none());
        assert_eq!(c.choices, Some(0));
        let c = read(r#"{"\u0065rror":{"code":"x"}}"#).unwrap();
        assert!(c.error.is_some());
    }

    #[test]
    fn message_chars_reads_content_forms() {
        let m = serde_json::json!({"content":"héllo","refusal":null,
            "tool_calls":[{"function":{"arguments":"{}"}},{"custom":{"input":"abc"}}]});
        assert_eq!(message_chars(&m), 5 + 2 + 3);
        let parts =
            serde_json::json!({"content":[{"type":"text","text":"ab"},{"type":"text","text":"c"}]});
        assert_eq!(message_chars(&parts), 3);
    }
}
