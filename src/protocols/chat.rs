//! `POST /v1/chat/completions` request handling: validates the few fields the relay reads,
//! keeps every other top-level field as its original bytes (R2.1/R2.2), and rewrites only
//! `model` and `stream_options` when it must.

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;

use crate::http::error::RelayError;

/// Longest piece of the user's message the echo model repeats, so `parse` keeps no more of it.
pub const MAX_ECHO_CHARS: usize = 400;

/// A parsed chat request that still borrows the client's bytes.
#[derive(Debug)]
pub struct ChatRequest<'a> {
    fields: Vec<(String, &'a RawValue)>,
    pub model: String,
    pub stream: bool,
    /// The client asked for the usage chunk itself (`stream_options.include_usage: true`).
    pub client_wants_usage: bool,
    /// Characters of message text, for the estimate when no usage arrives.
    pub prompt_chars: u64,
    /// Text of the last user message, which `relay-echo` answers with.
    pub last_user_text: String,
}

/// Top-level fields in their original order, each value still as raw JSON.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, &'de RawValue>()? {
                    out.push((k, v));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Only what the relay needs from each message; everything else is skipped unparsed.
#[derive(Deserialize)]
struct MessageProbe {
    role: Option<Value>,
    #[serde(default)]
    content: Option<Content>,
}

/// Text the relay reads from one string: its length, and the start that `relay-echo` answers
/// with. Read through a visitor so a long message is never copied (a 4 MiB prompt stays 4 MiB,
/// not three copies of it); only the bounded head is kept.
#[derive(Default)]
struct Text {
    chars: u64,
    head: String,
}

impl Text {
    fn of(s: &str) -> Text {
        let s_head = s.trim_start();
        let end = s_head
            .char_indices()
            .nth(MAX_ECHO_CHARS)
            .map_or(s_head.len(), |(at, _)| at);
        Text {
            chars: s.chars().count() as u64,
            // One slice copy: pushing the head char by char cost more than parsing the body.
            head: s_head[..end].to_string(),
        }
    }
}

/// A message's `content`: a string, an array of parts (their `text`s, joined by newlines), or
/// anything else, which counts nothing.
struct Content(Option<Text>);

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("message content")
            }
            fn visit_str<E>(self, v: &str) -> Result<Content, E> {
                Ok(Content(Some(Text::of(v))))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Content, A::Error> {
                let mut parts = 0u64;
                let mut out = Text::default();
                while let Some(Part(text)) = seq.next_element::<Part>()? {
                    let Some(t) = text else { continue };
                    if parts > 0 {
                        out.chars += 1;
                        if out.head.chars().count() < MAX_ECHO_CHARS {
                            out.head.push('\n');
                        }
                    }
                    parts += 1;
                    out.chars += t.chars;
                    let room = MAX_ECHO_CHARS.saturating_sub(out.head.chars().count());
                    out.head.extend(t.head.chars().take(room));
                }
                Ok(Content((parts > 0).then_some(out)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Content, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Content(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Content, E> {
                Ok(Content(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Content, E> {
                Ok(Content(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Content, E> {
                Ok(Content(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Content, E> {
                Ok(Content(None))
            }
            fn visit_unit<E>(self) -> Result<Content, E> {
                Ok(Content(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// One content part: its `text` when that is a string; any other part, or value, counts nothing.
struct Part(Option<Text>);

impl<'de> Deserialize<'de> for Part {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Part;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a content part")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Part, A::Error> {
                let mut text = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "text" && text.is_none() {
                        text = map.next_value::<Content>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Part(text))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Part, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Part(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Part, E> {
                Ok(Part(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Part, E> {
                Ok(Part(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Part, E> {
                Ok(Part(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Part, E> {
                Ok(Part(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Part, E> {
                Ok(Part(None))
            }
            fn visit_unit<E>(self) -> Result<Part, E> {
                Ok(Part(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// OpenAI's wording for a wrong type: "expected a string, but got an integer instead".
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// OpenAI's 400 for a field of the wrong type; Cursor's and the Responses API's checks use it too.
pub fn wrong_type(param: &str, expected: &str, got: &Value) -> RelayError {
    RelayError::invalid(
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            type_name(got)
        ),
        Some(param),
    )
}

/// OpenAI's 400 for a required field that is absent.
pub fn missing(param: &str) -> RelayError {
    RelayError::invalid(
        format!("Missing required parameter: '{param}'."),
        Some(param),
    )
}

fn parse_value(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// OpenAI endpoints whose bodies the relay reads the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    /// Legacy `/v1/completions`: `prompt` instead of `messages`.
    Completions,
    /// `/v1/embeddings`: `input`, never streamed.
    Embeddings,
    /// `/v1/moderations`: `input`, never streamed; `model` optional, as at OpenAI.
    Moderations,
}

/// The model OpenAI's moderation endpoint uses when the body names none; the relay routes and
/// authorises that name, so the key's policy applies to the default too.
pub const DEFAULT_MODERATION_MODEL: &str = "omni-moderation-latest";

/// Characters of text in a `prompt`/`input` value: a string, or an array of strings or of
/// moderation parts (`{"type":"text","text":…}`); token arrays and images count nothing.
fn text_chars(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.chars().count() as u64,
        Value::Array(items) => items.iter().map(text_chars).sum(),
        Value::Object(part) => part.get("text").map_or(0, text_chars),
        _ => 0,
    }
}

/// Parses a legacy completions, embeddings or moderations body: `model` plus the endpoint's
/// required input.
pub fn parse_for(body: &[u8], endpoint: Endpoint) -> Result<ChatRequest<'_>, RelayError> {
    let (field, default_model) = match endpoint {
        Endpoint::Chat => return parse(body),
        Endpoint::Completions => ("prompt", None),
        Endpoint::Embeddings => ("input", None),
        Endpoint::Moderations => ("input", Some(DEFAULT_MODERATION_MODEL)),
    };
    let (fields, model) = fields_and_model(body, default_model)?;
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    let input = get(field).map(parse_value).ok_or_else(|| {
        RelayError::invalid(
            format!("Missing required parameter: '{field}'."),
            Some(field),
        )
    })?;
    if !matches!(input, Value::String(_) | Value::Array(_)) {
        return Err(wrong_type(field, "a string or an array", &input));
    }
    let stream = match (endpoint, get("stream").map(parse_value)) {
        (_, None | Some(Value::Null)) => false,
        (Endpoint::Embeddings, Some(_)) => {
            return Err(RelayError::invalid(
                "Embeddings cannot be streamed.",
                Some("stream"),
            ))
        }
        (Endpoint::Moderations, Some(_)) => {
            return Err(RelayError::invalid(
                "Moderations cannot be streamed.",
                Some("stream"),
            ))
        }
        (_, Some(Value::Bool(b))) => b,
        (_, Some(other)) => return Err(wrong_type("stream", "a boolean", &other)),
    };
    let client_wants_usage = get("stream_options")
        .map(parse_value)
        .and_then(|o| o.get("include_usage").and_then(Value::as_bool))
        .unwrap_or(false);
    Ok(ChatRequest {
        fields,
        model,
        stream,
        client_wants_usage,
        prompt_chars: text_chars(&input),
        last_user_text: String::new(),
    })
}

/// A body's top-level fields in order, each value still as raw JSON.
type RawFields<'a> = Vec<(String, &'a RawValue)>;

/// Longest `model` the relay accepts: real model ids are under 100 characters, and the name is
/// stored in the usage row, whose size must not be the client's choice (a 2 MB name once made
/// the row write fail, leaving a served request unmetered).
pub const MAX_MODEL_CHARS: usize = 256;

/// The body's top-level fields and its `model`, with the errors OpenAI gives for each;
/// `default_model` stands in for an absent `model` where the endpoint has one. Every OpenAI
/// and Anthropic JSON route comes through here, so this is where a body that repeats a key is
/// refused.
fn fields_and_model<'a>(
    body: &'a [u8],
    default_model: Option<&str>,
) -> Result<(RawFields<'a>, String), RelayError> {
    crate::http::json::refuse_duplicate_keys(body)?;
    let Fields(fields) = serde_json::from_slice(body).map_err(|_| {
        RelayError::invalid(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            None,
        )
    })?;
    let model = match fields
        .iter()
        .find(|(k, _)| k == "model")
        .map(|(_, v)| parse_value(v))
    {
        None => match default_model {
            Some(model) => model.to_string(),
            None => {
                return Err(RelayError::invalid(
                    "You must provide a model parameter.",
                    Some("model"),
                ))
            }
        },
        Some(Value::String(s)) if s.chars().count() > MAX_MODEL_CHARS => {
            return Err(RelayError::invalid(
                format!("'model' must be at most {MAX_MODEL_CHARS} characters."),
                Some("model"),
            ))
        }
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::String(_)) => {
            return Err(RelayError::invalid(
                "'model' must not be empty.",
                Some("model"),
            ))
        }
        Some(other) => return Err(wrong_type("model", "a string", &other)),
    };
    Ok((fields, model))
}

pub fn parse(body: &[u8]) -> Result<ChatRequest<'_>, RelayError> {
    let (fields, model) = fields_and_model(body, None)?;
    let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);

    let stream = match get("stream").map(parse_value) {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(other) => return Err(wrong_type("stream", "a boolean", &other)),
    };

    let client_wants_usage = match get("stream_options").map(parse_value) {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => match o.get("include_usage") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(wrong_type(
                    "stream_options.include_usage",
                    "a boolean",
                    other,
                ))
            }
        },
        Some(other) => return Err(wrong_type("stream_options", "an object", &other)),
    };

    let raw_messages = get("messages").ok_or_else(|| {
        RelayError::invalid("Missing required parameter: 'messages'.", Some("messages"))
    })?;
    let messages: Vec<&RawValue> = serde_json::from_str(raw_messages.get())
        .map_err(|_| wrong_type("messages", "an array", &parse_value(raw_messages)))?;
    if messages.is_empty() {
        return Err(RelayError::invalid(
            "'messages' must contain at least one item.",
            Some("messages"),
        ));
    }
    let mut prompt_chars = 0u64;
    let mut last_user_text = String::new();
    for (i, raw) in messages.iter().enumerate() {
        let param = format!("messages[{i}]");
        let msg: MessageProbe = serde_json::from_str(raw.get())
            .map_err(|_| wrong_type(&param, "an object", &parse_value(raw)))?;
        let role = match msg.role {
            Some(Value::String(r)) => r,
            None => {
                return Err(RelayError::invalid(
                    format!("Missing required parameter: '{param}.role'."),
                    Some(&format!("{param}.role")),
                ))
            }
            Some(other) => return Err(wrong_type(&format!("{param}.role"), "a string", &other)),
        };
        if let Some(Content(Some(text))) = msg.content {
            prompt_chars += text.chars;
            if role == "user" {
                last_user_text = text.head;
            }
        }
    }

    Ok(ChatRequest {
        fields,
        model,
        stream,
        client_wants_usage,
        prompt_chars,
        last_user_text,
    })
}

impl ChatRequest<'_> {
    /// One top-level field, parsed (None when absent or not JSON).
    pub fn field(&self, name: &str) -> Option<Value> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, raw)| serde_json::from_str(raw.get()).ok())
    }

    /// The body to send upstream. The client's bytes go out untouched unless the model name
    /// changes, usage must be requested (R2.3) or a field the provider refuses must go
    /// (`drop`); then the object is rebuilt field by field, keeping every other value's
    /// original bytes and the original key order.
    pub fn upstream_body(
        &self,
        original: &[u8],
        upstream_model: &str,
        ask_usage: bool,
        drop: &[String],
    ) -> Vec<u8> {
        let inject = ask_usage && self.stream && !self.client_wants_usage;
        let dropping = |key: &str| drop.iter().any(|d| d == key);
        // A body without `model` (moderations) names the model the relay authorised, so the
        // provider cannot fall back to a default of its own.
        let has_model = self.fields.iter().any(|(k, _)| k == "model");
        if upstream_model == self.model
            && has_model
            && !inject
            && !self.fields.iter().any(|(k, _)| dropping(k))
        {
            return original.to_vec();
        }
        let mut out = Vec::with_capacity(original.len() + 48);
        out.push(b'{');
        let mut first = true;
        let mut push = |out: &mut Vec<u8>, key: &str, value: &[u8]| {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(Value::String(key.to_string()).to_string().as_bytes());
            out.push(b':');
            out.extend_from_slice(value);
        };
        let model_json = Value::String(upstream_model.to_string()).to_string();
        if !has_model {
            push(&mut out, "model", model_json.as_bytes());
        }
        let mut saw_options = false;
        for (key, raw) in &self.fields {
            match key.as_str() {
                k if dropping(k) => {}
                "model" => push(&mut out, key, model_json.as_bytes()),
                "stream_options" if inject => {
                    saw_options = true;
                    let mut opts = match parse_value(raw) {
                        Value::Object(o) => o,
                        _ => serde_json::Map::new(),
                    };
                    opts.insert("include_usage".to_string(), Value::Bool(true));
                    push(&mut out, key, Value::Object(opts).to_string().as_bytes());
                }
                _ => push(&mut out, key, raw.get().as_bytes()),
            }
        }
        if inject && !saw_options {
            push(&mut out, "stream_options", br#"{"include_usage":true}"#);
        }
        out.push(b'}');
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
