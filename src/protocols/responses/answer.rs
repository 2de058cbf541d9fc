//! The Response object (protocol.md §4, R4.2 answer mapping): the fields echoed from the
//! request, output items built from a Chat completion's message, and the status a Chat
//! `finish_reason` means. The stream translator builds its items with the same functions, so a
//! streamed `response.completed` and a non-stream answer carry identical output.

use serde_json::{Map, Value};

use super::{obj, usage_json, Request};
use crate::metering::usage::Tokens;

/// What every Response of one request shares: its ids, time, model and the request's settings.
#[derive(Debug, Clone)]
pub struct Skeleton {
    pub id: String,
    /// Prefix of the request's item ids (`msg_<base>_<n>`), stable across a stream's events.
    pub base: String,
    pub created_at: u64,
    pub model: String,
    echoed: Map<String, Value>,
}

/// Request settings a Response repeats, with OpenAI's defaults when the request set none.
type Fallback = fn() -> Value;

const ECHOED: &[(&str, Fallback)] = &[
    ("instructions", || Value::Null),
    ("max_output_tokens", || Value::Null),
    ("metadata", || Value::Object(Map::new())),
    ("parallel_tool_calls", || true.into()),
    ("temperature", || 1.0.into()),
    ("tool_choice", || "auto".into()),
    ("tools", || Value::Array(Vec::new())),
    ("top_p", || 1.0.into()),
    ("user", || Value::Null),
];

impl Skeleton {
    /// `base` is the relay's request id without its `req_` prefix.
    pub fn new(base: &str, created_at: u64, req: &Request) -> Self {
        let mut echoed = Map::new();
        for (name, default) in ECHOED {
            let v = req.body.get(*name).filter(|v| !v.is_null()).cloned();
            echoed.insert((*name).to_string(), v.unwrap_or_else(default));
        }
        let effort = req
            .body
            .get("reasoning")
            .and_then(|r| r.get("effort"))
            .cloned()
            .unwrap_or(Value::Null);
        echoed.insert(
            "reasoning".into(),
            obj(vec![("effort", effort), ("summary", Value::Null)]),
        );
        let mut text = req
            .body
            .get("text")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        text.entry("format")
            .or_insert_with(|| obj(vec![("type", "text".into())]));
        echoed.insert("text".into(), Value::Object(text));
        Skeleton {
            id: format!("resp_{base}"),
            base: base.to_string(),
            created_at,
            model: req.model.clone(),
            echoed,
        }
    }

    /// A Response in `status`. Translated routes keep nothing, so `store` is always false.
    pub fn response(&self, status: &str, output: Vec<Value>, usage: Option<&Tokens>) -> Value {
        let mut r = self.echoed.clone();
        let fields: [(&str, Value); 13] = [
            ("id", self.id.as_str().into()),
            ("object", "response".into()),
            ("created_at", self.created_at.into()),
            ("status", status.into()),
            ("background", false.into()),
            ("error", Value::Null),
            ("incomplete_details", Value::Null),
            ("model", self.model.as_str().into()),
            ("output", Value::Array(output)),
            ("previous_response_id", Value::Null),
            ("store", false.into()),
            ("truncation", "disabled".into()),
            ("usage", usage.map_or(Value::Null, usage_json)),
        ];
        for (k, v) in fields {
            r.insert(k.to_string(), v);
        }
        Value::Object(r)
    }

    /// The finished Response for a Chat `finish_reason`: `length` and `content_filter` leave it
    /// incomplete, with the reason clients show.
    pub fn finished(
        &self,
        finish_reason: Option<&str>,
        output: Vec<Value>,
        usage: Option<&Tokens>,
    ) -> Value {
        let incomplete = match finish_reason {
            Some("length") => Some("max_output_tokens"),
            Some("content_filter") => Some("content_filter"),
            _ => None,
        };
        let mut r = self.response(
            if incomplete.is_some() {
                "incomplete"
            } else {
                "completed"
            },
            output,
            usage,
        );
        if let (Some(reason), Some(fields)) = (incomplete, r.as_object_mut()) {
            fields.insert(
                "incomplete_details".into(),
                obj(vec![("reason", reason.into())]),
            );
        }
        r
    }

    pub fn item_id(&self, prefix: &str, output_index: usize) -> String {
        format!("{prefix}_{}_{output_index}", self.base)
    }
}

/// An output message item; `parts` are `(is_refusal, text)` in order.
pub fn message_item(id: &str, status: &str, parts: &[(bool, String)]) -> Value {
    let content: Vec<Value> = parts.iter().map(|(r, t)| part(*r, t)).collect();
    obj(vec![
        ("id", id.into()),
        ("type", "message".into()),
        ("status", status.into()),
        ("role", "assistant".into()),
        ("content", Value::Array(content)),
    ])
}

/// One content part of an output message.
pub fn part(refusal: bool, text: &str) -> Value {
    if refusal {
        obj(vec![("type", "refusal".into()), ("refusal", text.into())])
    } else {
        obj(vec![
            ("type", "output_text".into()),
            ("text", text.into()),
            ("annotations", Value::Array(Vec::new())),
            ("logprobs", Value::Array(Vec::new())),
        ])
    }
}

/// A tool-call item: a function call (`arguments`) or a custom tool call (`input`).
pub fn call_item(
    id: &str,
    status: &str,
    custom: bool,
    call_id: &str,
    name: &str,
    payload: &str,
) -> Value {
    let (kind, key) = if custom {
        ("custom_tool_call", "input")
    } else {
        ("function_call", "arguments")
    };
    obj(vec![
        ("id", id.into()),
        ("type", kind.into()),
        ("status", status.into()),
        ("call_id", call_id.into()),
        ("name", name.into()),
        (key, payload.into()),
    ])
}

/// A non-stream Chat completion as a Response: text and refusal become one message item, each
/// tool call its own item, after it (the order Chat implies).
pub fn from_chat(completion: &Value, sk: &Skeleton) -> Value {
    let choice = completion.pointer("/choices/0");
    let message = choice.and_then(|c| c.get("message"));
    let str_of = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let mut parts = Vec::new();
    match message.and_then(|m| m.get("content")) {
        Some(Value::String(s)) => parts.push((false, s.clone())),
        Some(Value::Array(ps)) => {
            let text: String = ps
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect();
            parts.push((false, text));
        }
        _ => {}
    }
    if let Some(refusal) = str_of(message.and_then(|m| m.get("refusal"))) {
        parts.push((true, refusal));
    }
    let mut output = Vec::new();
    if !parts.is_empty() {
        output.push(message_item(&sk.item_id("msg", 0), "completed", &parts));
    }
    let calls = message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array);
    for call in calls.into_iter().flatten() {
        let custom = call.get("type").and_then(Value::as_str) == Some("custom");
        let inner = call.get(if custom { "custom" } else { "function" });
        let field = |k: &str| str_of(inner.and_then(|f| f.get(k))).unwrap_or_default();
        let index = output.len();
        output.push(call_item(
            &sk.item_id(if custom { "ctc" } else { "fc" }, index),
            "completed",
            custom,
            &str_of(call.get("id")).unwrap_or_default(),
            &field("name"),
            &field(if custom { "input" } else { "arguments" }),
        ));
    }
    let usage = completion.get("usage").and_then(Tokens::from_openai);
    let finish = str_of(choice.and_then(|c| c.get("finish_reason")));
    sk.finished(finish.as_deref(), output, usage.as_ref())
}
