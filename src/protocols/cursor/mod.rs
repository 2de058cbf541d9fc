//! Cursor's `/chat/completions` bodies (§7.4, R7.6). Cursor sends two shapes to the same path:
//! (A) a Chat Completions body with a few quirks OpenAI rejects, and (B) a Responses API body
//! (`input`, `instructions`, flat tools) that Cursor's backend builds by mistake but still expects
//! Chat SSE back for. `normalize` turns both into a body the Chat path (`chat::parse`) and every
//! Chat upstream accept, so the rest of the relay only ever sees Chat Completions.
//!
//! Choices the R7.6 table leaves open:
//! - A message whose content is an array of text parts stays an array of `text` parts rather
//!   than being joined into a string: the array is valid Chat for every role, and joining would
//!   invent separators between Cursor's context sections. Providers that want strings flatten it.
//! - Tool fields are copied by name (`name`, `description`, `parameters`, `strict`, `format`);
//!   unknown keys on a flat tool are dropped because R2.1 says translation drops what the
//!   target API rejects, and Chat rejects unknown keys inside `function`.
//! - Shape (B) top-level fields that are neither mapped nor in R7.6's drop list pass through
//!   unchanged (R2.1). When a (B) body also carries the Chat-native name of a mapped field
//!   (`max_completion_tokens`, `reasoning_effort`, …), the Chat-native value wins.
//! - Shape (A) is never rejected here: only recognisably flat tools are rewritten, and
//!   everything else is left for `chat::parse` and the upstream to judge, as pass-through implies.

mod from_responses;

use serde_json::{json, Map, Value};

use crate::http::error::RelayError;
use crate::protocols::chat::{missing, wrong_type};

pub use from_responses::from_responses;

/// Which body shape a `/chat/completions` request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Chat,
    ResponsesInChat,
}

impl Shape {
    /// Stable label for logs and the usage row.
    pub fn as_str(self) -> &'static str {
        match self {
            Shape::Chat => "chat",
            Shape::ResponsesInChat => "responses_in_chat",
        }
    }
}

/// Detects shape (B) (no `messages`, has `input`) and normalises it to a Chat Completions body
/// per R7.6; also applies the quirk fixes Cursor needs on shape (A): assistant `content: []` →
/// `null`, flat tools `{"type":"function","name":…}` → nested, flat custom tools → nested
/// `custom` with `format.grammar` nesting. Returns None when the body needs no change (so the
/// caller forwards the original bytes), else the new body.
pub fn normalize(body: &Value) -> Result<(Shape, Option<Value>), RelayError> {
    // A non-object body is `chat::parse`'s error to report, with its usual wording.
    let Some(obj) = body.as_object() else {
        return Ok((Shape::Chat, None));
    };
    if !obj.contains_key("messages") && obj.contains_key("input") {
        let chat = from_responses(obj)?;
        return Ok((Shape::ResponsesInChat, Some(Value::Object(chat))));
    }
    Ok((Shape::Chat, fix_chat(obj)?.map(Value::Object)))
}

/// What `normalize_bytes` did to a body.
#[derive(Debug, PartialEq)]
pub struct Normalized {
    pub shape: Shape,
    /// The rewritten body, or None when the client's bytes go on untouched.
    pub body: Option<Vec<u8>>,
    /// A non-null `previous_response_id` was dropped: the relay is stateless (R7.6).
    pub dropped_previous_response: bool,
}

/// `normalize` on the client's bytes. Most chat bodies need nothing, so the body is parsed
/// only when a key that can need a rewrite appears in it at all; the test errs toward parsing
/// (a false hit costs one parse, never a wrong body).
pub fn normalize_bytes(body: &[u8]) -> Result<Normalized, RelayError> {
    let unchanged = |shape| Normalized {
        shape,
        body: None,
        dropped_previous_response: false,
    };
    let contains = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    // `"tool_choice"` alone counts: a flat choice is rewritten even when `tools` is absent.
    // A `\u` escape could spell any key, so it counts too.
    let may_need = [
        &b"\"input\""[..],
        b"\"tools\"",
        b"\"tool_choice\"",
        b"[]",
        b"\\u",
    ]
    .iter()
    .any(|n| contains(n));
    if !may_need {
        return Ok(unchanged(Shape::Chat));
    }
    // The rewrite re-serialises a `Value`, which would silently keep one of a repeated key;
    // chat::parse only sees the result, so the check must come first.
    crate::http::json::refuse_duplicate_keys(body)?;
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        // chat::parse reports the malformed body in OpenAI's words.
        return Ok(unchanged(Shape::Chat));
    };
    let dropped_previous_response = value
        .get("previous_response_id")
        .is_some_and(|v| !v.is_null());
    let (shape, normalized) = normalize(&value)?;
    Ok(Normalized {
        shape,
        body: normalized.map(|v| v.to_string().into_bytes()),
        dropped_previous_response,
    })
}

// ---------------------------------------------------------------------------------------------
// Shape (A): Chat body with Cursor's quirks.

/// Rewrites only what OpenAI rejects (S46); returns None when nothing needed fixing so the
/// original bytes go out (R2.2). Fixes are found first and the body cloned only if there are
/// any, since agent-mode histories can be large.
fn fix_chat(obj: &Map<String, Value>) -> Result<Option<Map<String, Value>>, RelayError> {
    let empty_assistant: Vec<usize> = match obj.get("messages") {
        Some(Value::Array(msgs)) => msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                m.get("role").and_then(Value::as_str) == Some("assistant")
                    && m.get("content").is_some_and(is_empty_array)
            })
            .map(|(i, _)| i)
            .collect(),
        _ => Vec::new(),
    };
    let mut tools = Vec::new();
    if let Some(Value::Array(list)) = obj.get("tools") {
        for (i, tool) in list.iter().enumerate() {
            if let Some(fixed) = nest_tool(tool, &format!("tools[{i}]"))? {
                tools.push((i, fixed));
            }
        }
    }
    let choice = match obj.get("tool_choice") {
        Some(c) => nest_tool_choice(c, "tool_choice")?,
        None => None,
    };
    if empty_assistant.is_empty() && tools.is_empty() && choice.is_none() {
        return Ok(None);
    }
    let mut out = obj.clone();
    if let Some(Value::Array(msgs)) = out.get_mut("messages") {
        for i in empty_assistant {
            if let Some(Value::Object(m)) = msgs.get_mut(i) {
                m.insert("content".into(), Value::Null);
            }
        }
    }
    if let Some(Value::Array(list)) = out.get_mut("tools") {
        for (i, fixed) in tools {
            if let Some(slot) = list.get_mut(i) {
                *slot = fixed;
            }
        }
    }
    if let Some(c) = choice {
        out.insert("tool_choice".into(), c);
    }
    Ok(Some(out))
}

fn is_empty_array(v: &Value) -> bool {
    matches!(v, Value::Array(a) if a.is_empty())
}

/// A tool in Chat form, or None when it already is one (or is a kind this module does not
/// know, which pass-through leaves alone). Flat means the nested object is missing.
fn nest_tool(tool: &Value, param: &str) -> Result<Option<Value>, RelayError> {
    let Some(t) = tool.as_object() else {
        return Ok(None);
    };
    match t.get("type").and_then(Value::as_str) {
        Some("function") if !t.contains_key("function") => {
            let mut f = Map::new();
            f.insert("name".into(), required_str(t, "name", param)?.into());
            copy_present(t, &mut f, &["description", "parameters", "strict"]);
            Ok(Some(json!({"type": "function", "function": f})))
        }
        Some("custom") => match t.get("custom") {
            None => {
                let mut c = Map::new();
                c.insert("name".into(), required_str(t, "name", param)?.into());
                copy_present(t, &mut c, &["description"]);
                if let Some(format) = t.get("format").filter(|f| !f.is_null()) {
                    let fparam = format!("{param}.format");
                    let nested = nest_format(format, &fparam)?;
                    c.insert("format".into(), nested.unwrap_or_else(|| format.clone()));
                }
                Ok(Some(json!({"type": "custom", "custom": c})))
            }
            // Already nested, but the grammar itself may still be flat (Responses style).
            Some(Value::Object(c)) => {
                let Some(format) = c.get("format") else {
                    return Ok(None);
                };
                let Some(nested) = nest_format(format, &format!("{param}.custom.format"))? else {
                    return Ok(None);
                };
                let mut c = c.clone();
                c.insert("format".into(), nested);
                Ok(Some(json!({"type": "custom", "custom": c})))
            }
            Some(_) => Ok(None),
        },
        _ => Ok(None),
    }
}

/// Responses puts `definition`/`syntax` beside `type`; Chat nests them under `grammar` (§2.1).
fn nest_format(format: &Value, param: &str) -> Result<Option<Value>, RelayError> {
    let Some(f) = format.as_object() else {
        return Ok(None);
    };
    if f.get("type").and_then(Value::as_str) != Some("grammar") || f.contains_key("grammar") {
        return Ok(None);
    }
    let mut g = Map::new();
    g.insert(
        "definition".into(),
        required_str(f, "definition", param)?.into(),
    );
    copy_present(f, &mut g, &["syntax"]);
    Ok(Some(json!({"type": "grammar", "grammar": g})))
}

/// `tool_choice` in Chat form, or None when it already is one. Responses names the tool beside
/// `type`; Chat nests it under the tool kind.
fn nest_tool_choice(choice: &Value, param: &str) -> Result<Option<Value>, RelayError> {
    let Some(c) = choice.as_object() else {
        return Ok(None);
    };
    match c.get("type").and_then(Value::as_str) {
        Some(kind @ ("function" | "custom")) if !c.contains_key(kind) => {
            let name = required_str(c, "name", param)?;
            Ok(Some(json!({"type": kind, kind: {"name": name}})))
        }
        Some("allowed_tools") if !c.contains_key("allowed_tools") => {
            let tparam = format!("{param}.tools");
            let tools = match c.get("tools") {
                Some(Value::Array(list)) => list,
                Some(other) => return Err(wrong_type(&tparam, "an array", other)),
                None => return Err(missing(&tparam)),
            };
            let mut nested = Vec::with_capacity(tools.len());
            for (i, t) in tools.iter().enumerate() {
                let p = format!("{tparam}[{i}]");
                nested.push(nest_tool_choice(t, &p)?.unwrap_or_else(|| t.clone()));
            }
            let mut inner = Map::new();
            copy_present(c, &mut inner, &["mode"]);
            inner.insert("tools".into(), Value::Array(nested));
            Ok(Some(
                json!({"type": "allowed_tools", "allowed_tools": inner}),
            ))
        }
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers. Wording follows OpenAI's 400s, as in `chat.rs`, so clients see familiar messages.

/// Copies the listed keys that are present and non-null; a null means "absent" in both APIs.
fn copy_present(from: &Map<String, Value>, to: &mut Map<String, Value>, keys: &[&str]) {
    for k in keys {
        if let Some(v) = from.get(*k).filter(|v| !v.is_null()) {
            to.insert((*k).to_string(), v.clone());
        }
    }
}

/// `obj[key]` as a string; `param` names the containing object (`input[3]`).
fn required_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<&'a str, RelayError> {
    let full = format!("{param}.{key}");
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(missing(&full)),
        Some(other) => Err(wrong_type(&full, "a string", other)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
