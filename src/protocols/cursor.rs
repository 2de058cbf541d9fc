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

use serde_json::{json, Map, Value};

use crate::http::error::RelayError;

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

/// Responses-only top-level fields Chat has no use for (R7.6 "Drop"). A non-null
/// `previous_response_id` cannot be honoured statelessly; the caller still holds the original
/// body if it wants to log that.
const DROPPED: &[&str] = &[
    "store",
    "include",
    "previous_response_id",
    "truncation",
    "prompt_cache_retention",
];

/// Top-level (B) fields this module rewrites; everything else passes through.
const MAPPED: &[&str] = &[
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "reasoning",
    "text",
    "max_output_tokens",
];

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
// Shape (B): Responses body sent to /chat/completions.

/// A Responses body as a Chat body (R7.6 / R4.2): the request half of the Responses API too
/// (`responses::to_chat`), so both routes map items, tools and formats the same way.
pub fn from_responses(obj: &Map<String, Value>) -> Result<Map<String, Value>, RelayError> {
    let mut messages = Vec::new();
    match obj.get("instructions") {
        None | Some(Value::Null) => {}
        // An empty system message says nothing and some upstreams reject it.
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => messages.push(json!({"role": "system", "content": s})),
        Some(other) => return Err(wrong_type("instructions", "a string", other)),
    }
    match obj.get("input") {
        Some(Value::String(s)) => messages.push(json!({"role": "user", "content": s})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                push_item(&mut messages, item, &format!("input[{i}]"))?;
            }
        }
        Some(other) => return Err(wrong_type("input", "a string or an array", other)),
        None => return Err(missing("input")),
    }

    let mut out: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !MAPPED.contains(&k.as_str()) && !DROPPED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert("messages".into(), Value::Array(messages));

    let mut mapped = Map::new();
    match obj.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            let mut tools = Vec::with_capacity(list.len());
            for (i, tool) in list.iter().enumerate() {
                tools.push(responses_tool(tool, &format!("tools[{i}]"))?);
            }
            mapped.insert("tools".into(), Value::Array(tools));
        }
        Some(other) => return Err(wrong_type("tools", "an array", other)),
    }
    match obj.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(c @ Value::String(_)) => {
            mapped.insert("tool_choice".into(), c.clone());
        }
        Some(c @ Value::Object(_)) => {
            let nested = responses_tool_choice(c)?;
            mapped.insert("tool_choice".into(), nested);
        }
        Some(other) => return Err(wrong_type("tool_choice", "a string or an object", other)),
    }
    match obj.get("reasoning") {
        None | Some(Value::Null) => {}
        // `summary` (and `generate_summary`) are dropped: Chat streams no reasoning summaries.
        Some(Value::Object(r)) => {
            if let Some(effort) = r.get("effort").filter(|v| !v.is_null()) {
                mapped.insert("reasoning_effort".into(), effort.clone());
            }
        }
        Some(other) => return Err(wrong_type("reasoning", "an object", other)),
    }
    match obj.get("text") {
        None | Some(Value::Null) => {}
        Some(Value::Object(t)) => {
            if let Some(v) = t.get("verbosity").filter(|v| !v.is_null()) {
                mapped.insert("verbosity".into(), v.clone());
            }
            if let Some(f) = t.get("format").filter(|v| !v.is_null()) {
                mapped.insert("response_format".into(), response_format(f)?);
            }
        }
        Some(other) => return Err(wrong_type("text", "an object", other)),
    }
    if let Some(n) = obj.get("max_output_tokens").filter(|v| !v.is_null()) {
        mapped.insert("max_completion_tokens".into(), n.clone());
    }
    for (k, v) in mapped {
        out.entry(k).or_insert(v);
    }
    Ok(out)
}

/// Converts one `input` item and appends it to `messages` (tool calls join the assistant
/// message before them, so the result keeps Chat's call/result pairing).
fn push_item(messages: &mut Vec<Value>, item: &Value, param: &str) -> Result<(), RelayError> {
    let Value::Object(it) = item else {
        return Err(wrong_type(param, "an object", item));
    };
    let tparam = format!("{param}.type");
    let kind = match it.get("type") {
        None | Some(Value::Null) => "message",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(wrong_type(&tparam, "a string", other)),
    };
    match kind {
        "message" => messages.push(message(it, param)?),
        "function_call" => {
            let call = json!({
                "id": required_str(it, "call_id", param)?,
                "type": "function",
                "function": {
                    "name": required_str(it, "name", param)?,
                    "arguments": required_str(it, "arguments", param)?,
                },
            });
            push_tool_call(messages, call);
        }
        "custom_tool_call" => {
            let call = json!({
                "id": required_str(it, "call_id", param)?,
                "type": "custom",
                "custom": {
                    "name": required_str(it, "name", param)?,
                    "input": required_str(it, "input", param)?,
                },
            });
            push_tool_call(messages, call);
        }
        "function_call_output" | "custom_tool_call_output" => {
            let id = required_str(it, "call_id", param)?;
            let oparam = format!("{param}.output");
            let content = match it.get("output") {
                Some(Value::String(s)) => s.clone(),
                // Chat tool messages carry text only, so images or files in an output are lost.
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter(|p| {
                        matches!(
                            p.get("type").and_then(Value::as_str),
                            Some("input_text" | "output_text" | "text")
                        )
                    })
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                Some(other) => return Err(wrong_type(&oparam, "a string or an array", other)),
                None => return Err(missing(&oparam)),
            };
            messages.push(json!({"role": "tool", "tool_call_id": id, "content": content}));
        }
        // Encrypted reasoning cannot be replayed through Chat.
        "reasoning" => {}
        other => {
            return Err(RelayError::invalid(
                format!(
                    "Invalid value: '{other}'. Supported values are: 'message', 'function_call', \
                     'function_call_output', 'custom_tool_call', 'custom_tool_call_output', and \
                     'reasoning'."
                ),
                Some(&tparam),
            ))
        }
    }
    Ok(())
}

/// Appends a tool call to the assistant message just before it, creating one if the previous
/// message is not an assistant's; consecutive calls therefore share one assistant message.
fn push_tool_call(messages: &mut Vec<Value>, call: Value) {
    if let Some(Value::Object(last)) = messages.last_mut() {
        if last.get("role").and_then(Value::as_str) == Some("assistant") {
            match last.get_mut("tool_calls") {
                Some(Value::Array(calls)) => calls.push(call),
                _ => {
                    last.insert("tool_calls".into(), Value::Array(vec![call]));
                }
            }
            return;
        }
    }
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
}

/// A Responses message item as a Chat message; `id`, `status` and `type` are Responses-only.
fn message(it: &Map<String, Value>, param: &str) -> Result<Value, RelayError> {
    let role = required_str(it, "role", param)?;
    if !matches!(role, "user" | "assistant" | "system" | "developer") {
        return Err(RelayError::invalid(
            format!(
                "Invalid value: '{role}'. Supported values are: 'user', 'assistant', 'system', \
                 and 'developer'."
            ),
            Some(&format!("{param}.role")),
        ));
    }
    let cparam = format!("{param}.content");
    let content = match it.get("content") {
        Some(Value::String(s)) => Value::String(s.clone()),
        // OpenAI rejects an empty assistant content array (S46); null is what Chat expects.
        Some(Value::Array(parts)) if parts.is_empty() && role == "assistant" => Value::Null,
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                out.push(content_part(part, &format!("{cparam}[{j}]"))?);
            }
            Value::Array(out)
        }
        Some(Value::Null) if role == "assistant" => Value::Null,
        Some(other) => return Err(wrong_type(&cparam, "a string or an array", other)),
        None => return Err(missing(&cparam)),
    };
    Ok(json!({"role": role, "content": content}))
}

fn content_part(part: &Value, param: &str) -> Result<Value, RelayError> {
    let Value::Object(p) = part else {
        return Err(wrong_type(param, "an object", part));
    };
    let tparam = format!("{param}.type");
    let kind = match p.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(wrong_type(&tparam, "a string", other)),
        None => return Err(missing(&tparam)),
    };
    match kind {
        // `annotations`/`logprobs` on output_text describe a past answer; Chat has no slot.
        "input_text" | "output_text" | "text" => {
            Ok(json!({"type": "text", "text": required_str(p, "text", param)?}))
        }
        "refusal" => Ok(json!({"type": "refusal", "refusal": required_str(p, "refusal", param)?})),
        "input_image" => {
            let url = match p.get("image_url") {
                Some(Value::String(u)) => u,
                Some(other) => {
                    return Err(wrong_type(&format!("{param}.image_url"), "a string", other))
                }
                // A `file_id` image refers to OpenAI file storage, which Chat cannot reference.
                None => {
                    return Err(RelayError::invalid(
                        format!(
                            "Missing required parameter: '{param}.image_url'. Images by \
                             file_id cannot be sent to /chat/completions."
                        ),
                        Some(&format!("{param}.image_url")),
                    ))
                }
            };
            let mut image = Map::new();
            image.insert("url".into(), Value::String(url.clone()));
            copy_present(p, &mut image, &["detail"]);
            Ok(json!({"type": "image_url", "image_url": image}))
        }
        "input_file" => {
            let mut file = Map::new();
            copy_present(p, &mut file, &["file_data", "file_id", "filename"]);
            if !file.contains_key("file_data") && !file.contains_key("file_id") {
                return Err(RelayError::invalid(
                    format!(
                        "Missing required parameter: '{param}.file_data'. Files must be sent \
                         inline or by file_id on /chat/completions."
                    ),
                    Some(&format!("{param}.file_data")),
                ));
            }
            Ok(json!({"type": "file", "file": file}))
        }
        other => Err(RelayError::invalid(
            format!(
                "Invalid value: '{other}'. Supported values are: 'input_text', 'output_text', \
                 'input_image', 'input_file', and 'refusal'."
            ),
            Some(&tparam),
        )),
    }
}

/// A (B) tool: flat ones are nested, already-nested ones kept; hosted tools (`web_search`,
/// `file_search`, …) have no Chat equivalent, so they are refused here rather than upstream.
fn responses_tool(tool: &Value, param: &str) -> Result<Value, RelayError> {
    let Value::Object(t) = tool else {
        return Err(wrong_type(param, "an object", tool));
    };
    let tparam = format!("{param}.type");
    match t.get("type") {
        Some(Value::String(s)) if s == "function" || s == "custom" => {
            Ok(nest_tool(tool, param)?.unwrap_or_else(|| tool.clone()))
        }
        Some(Value::String(other)) => Err(RelayError::invalid(
            format!(
                "Invalid value: '{other}'. Supported values are: 'function' and 'custom' \
                 (hosted tools are not available on /chat/completions)."
            ),
            Some(&tparam),
        )),
        Some(other) => Err(wrong_type(&tparam, "a string", other)),
        None => Err(missing(&tparam)),
    }
}

/// A (B) `tool_choice` object; hosted-tool choices are refused like hosted tools.
fn responses_tool_choice(choice: &Value) -> Result<Value, RelayError> {
    let kind = choice.get("type").and_then(Value::as_str);
    if !matches!(kind, Some("function" | "custom" | "allowed_tools")) {
        return Err(RelayError::invalid(
            format!(
                "Invalid value: '{}'. Supported values are: 'function', 'custom', and \
                 'allowed_tools'.",
                kind.unwrap_or("")
            ),
            Some("tool_choice.type"),
        ));
    }
    Ok(nest_tool_choice(choice, "tool_choice")?.unwrap_or_else(|| choice.clone()))
}

/// `text.format` → `response_format`: Responses flattens the schema beside `type`.
fn response_format(format: &Value) -> Result<Value, RelayError> {
    let param = "text.format";
    let Value::Object(f) = format else {
        return Err(wrong_type(param, "an object", format));
    };
    match f.get("type").and_then(Value::as_str) {
        Some("json_schema") => {
            let mut schema = Map::new();
            copy_present(f, &mut schema, &["name", "description", "schema", "strict"]);
            Ok(json!({"type": "json_schema", "json_schema": schema}))
        }
        Some(kind @ ("text" | "json_object")) => Ok(json!({ "type": kind })),
        other => Err(RelayError::invalid(
            format!(
                "Invalid value: '{}'. Supported values are: 'text', 'json_object', and \
                 'json_schema'.",
                other.unwrap_or("")
            ),
            Some("text.format.type"),
        )),
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

fn missing(param: &str) -> RelayError {
    RelayError::invalid(
        format!("Missing required parameter: '{param}'."),
        Some(param),
    )
}

use crate::protocols::chat::type_name;

fn wrong_type(param: &str, expected: &str, got: &Value) -> RelayError {
    RelayError::invalid(
        format!(
            "Invalid type for '{param}': expected {expected}, but got {} instead.",
            type_name(got)
        ),
        Some(param),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn norm(body: Value) -> (Shape, Option<Value>) {
        normalize(&body).unwrap()
    }

    fn err(body: Value) -> RelayError {
        normalize(&body).unwrap_err()
    }

    const GRAMMAR: &str = "start: begin_patch hunk+ end_patch";

    fn norm_bytes(body: &str) -> Normalized {
        normalize_bytes(body.as_bytes()).unwrap()
    }

    #[test]
    fn a_flat_tool_choice_is_nested_even_without_tools() {
        let n = norm_bytes(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","name":"edit"}}"#,
        );
        let out: Value = serde_json::from_slice(&n.body.unwrap()).unwrap();
        assert_eq!(
            out["tool_choice"],
            json!({"type":"function","function":{"name":"edit"}})
        );
        // An escaped key spells the same key, and is not missed by the pre-check.
        let n = norm_bytes(
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tool\u005fchoice":{"type":"function","name":"edit"}}"#,
        );
        assert!(n.body.is_some());
    }

    #[test]
    fn plain_chat_bytes_are_left_alone_and_previous_response_is_noticed() {
        let plain = r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#;
        assert_eq!(
            norm_bytes(plain),
            Normalized {
                shape: Shape::Chat,
                body: None,
                dropped_previous_response: false
            }
        );
        let b = norm_bytes(r#"{"model":"m","input":"hi","previous_response_id":"resp_1"}"#);
        assert_eq!(b.shape, Shape::ResponsesInChat);
        assert!(b.dropped_previous_response);
    }

    #[test]
    fn a_repeated_key_in_a_responses_body_is_refused_before_the_rewrite() {
        let cases = [
            (
                r#"{"model":"gpt-cheap","input":"hi","model":"gpt-forbidden"}"#,
                "model",
            ),
            (
                r#"{"model":"m","input":"hi","reasoning":{"effort":"low","effort":"high"}}"#,
                "reasoning.effort",
            ),
            (
                r#"{"model":"m","input":"hi","text":{"verbosity":"low","verbosity":"high"}}"#,
                "text.verbosity",
            ),
            (
                r#"{"model":"m","messages":[],"tool_choice":{"type":"function","name":"a","name":"b"}}"#,
                "tool_choice.name",
            ),
        ];
        for (body, param) in cases {
            let refused = normalize_bytes(body.as_bytes()).unwrap_err();
            assert!(
                matches!(&refused, RelayError::InvalidRequest { param: Some(p), .. } if p == param),
                "{body}: {refused:?}"
            );
        }
    }

    #[test]
    fn cursor_agent_responses_body() {
        let body = json!({
            "model": "rly-g5",
            "instructions": "You are a coding agent.",
            "input": [
                {"role": "user", "content": [
                    {"type": "input_text", "text": "<rules>be terse</rules>"},
                    {"type": "input_text", "text": "<user_query>fix main.py</user_query>"}
                ]},
                {"type": "reasoning", "id": "rs_1", "summary": [],
                 "encrypted_content": "gAAAA"},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1",
                 "name": "read_file", "arguments": "{\"path\":\"main.py\"}", "status": "completed"},
                {"type": "function_call_output", "call_id": "call_1",
                 "output": "print('hi')"},
                {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
                 "content": [{"type": "output_text", "text": "Checking two files.",
                              "annotations": []}]},
                {"type": "function_call", "call_id": "call_2", "name": "read_file",
                 "arguments": "{\"path\":\"a.py\"}"},
                {"type": "function_call", "call_id": "call_3", "name": "read_file",
                 "arguments": "{\"path\":\"b.py\"}"},
                {"type": "function_call_output", "call_id": "call_2",
                 "output": [{"type": "input_text", "text": "A"},
                            {"type": "input_image", "image_url": "data:x"},
                            {"type": "input_text", "text": "B"}]},
                {"type": "function_call_output", "call_id": "call_3", "output": ""},
                {"type": "custom_tool_call", "call_id": "call_4", "name": "ApplyPatch",
                 "input": "*** Begin Patch\n*** End Patch"},
                {"type": "custom_tool_call_output", "call_id": "call_4", "output": "Done"}
            ],
            "tools": [
                {"type": "function", "name": "read_file", "description": "Read a file",
                 "parameters": {"type": "object",
                                "properties": {"path": {"type": "string"}},
                                "required": ["path"]},
                 "strict": false},
                {"type": "custom", "name": "ApplyPatch", "description": "Apply a patch",
                 "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR}}
            ],
            "tool_choice": {"type": "function", "name": "read_file"},
            "parallel_tool_calls": true,
            "reasoning": {"effort": "medium", "summary": "auto"},
            "text": {"verbosity": "low"},
            "store": false,
            "include": ["reasoning.encrypted_content"],
            "previous_response_id": null,
            "prompt_cache_retention": "24h",
            "truncation": "disabled",
            "prompt_cache_key": "conv-9",
            "max_output_tokens": 32000,
            "stream": true,
            "stream_options": {"include_usage": true},
            "user": "u_1234",
            "x_cursor_extra": {"a": 1}
        });
        let (shape, out) = norm(body);
        assert_eq!(shape, Shape::ResponsesInChat);
        assert_eq!(shape.as_str(), "responses_in_chat");
        assert_eq!(
            out.unwrap(),
            json!({
                "model": "rly-g5",
                "messages": [
                    {"role": "system", "content": "You are a coding agent."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "<rules>be terse</rules>"},
                        {"type": "text", "text": "<user_query>fix main.py</user_query>"}
                    ]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "read_file",
                                      "arguments": "{\"path\":\"main.py\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "print('hi')"},
                    {"role": "assistant",
                     "content": [{"type": "text", "text": "Checking two files."}],
                     "tool_calls": [
                        {"id": "call_2", "type": "function",
                         "function": {"name": "read_file", "arguments": "{\"path\":\"a.py\"}"}},
                        {"id": "call_3", "type": "function",
                         "function": {"name": "read_file", "arguments": "{\"path\":\"b.py\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_2", "content": "A\nB"},
                    {"role": "tool", "tool_call_id": "call_3", "content": ""},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_4", "type": "custom",
                         "custom": {"name": "ApplyPatch",
                                    "input": "*** Begin Patch\n*** End Patch"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_4", "content": "Done"}
                ],
                "tools": [
                    {"type": "function", "function": {
                        "name": "read_file", "description": "Read a file",
                        "parameters": {"type": "object",
                                       "properties": {"path": {"type": "string"}},
                                       "required": ["path"]},
                        "strict": false}},
                    {"type": "custom", "custom": {
                        "name": "ApplyPatch", "description": "Apply a patch",
                        "format": {"type": "grammar",
                                   "grammar": {"syntax": "lark", "definition": GRAMMAR}}}}
                ],
                "tool_choice": {"type": "function", "function": {"name": "read_file"}},
                "parallel_tool_calls": true,
                "reasoning_effort": "medium",
                "verbosity": "low",
                "prompt_cache_key": "conv-9",
                "max_completion_tokens": 32000,
                "stream": true,
                "stream_options": {"include_usage": true},
                "user": "u_1234",
                "x_cursor_extra": {"a": 1}
            })
        );
    }

    #[test]
    fn input_string_and_other_mappings() {
        let (shape, out) = norm(json!({
            "model": "m",
            "input": "hello",
            "instructions": "",
            "tool_choice": "auto",
            "text": {"format": {"type": "json_schema", "name": "answer",
                                "schema": {"type": "object"}, "strict": true}},
            "temperature": 0.2,
            "top_p": 1,
            "metadata": {"k": "v"}
        }));
        assert_eq!(shape, Shape::ResponsesInChat);
        assert_eq!(
            out.unwrap(),
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": "hello"}],
                "tool_choice": "auto",
                "response_format": {"type": "json_schema", "json_schema": {
                    "name": "answer", "schema": {"type": "object"}, "strict": true}},
                "temperature": 0.2,
                "top_p": 1,
                "metadata": {"k": "v"}
            })
        );
    }

    #[test]
    fn responses_message_parts_and_roles() {
        let (_, out) = norm(json!({
            "model": "m",
            "input": [
                {"role": "developer", "content": "rules"},
                {"role": "user", "content": [
                    {"type": "input_text", "text": "see"},
                    {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"},
                    {"type": "input_file", "file_id": "file_1", "filename": "a.pdf"}
                ]},
                {"role": "assistant", "content": []},
                {"type": "custom_tool_call", "call_id": "c1", "name": "ApplyPatch", "input": "p"}
            ],
            "tool_choice": {"type": "allowed_tools", "mode": "auto",
                            "tools": [{"type": "function", "name": "f"},
                                      {"type": "custom", "name": "ApplyPatch"}]}
        }));
        assert_eq!(
            out.unwrap(),
            json!({
                "model": "m",
                "messages": [
                    {"role": "developer", "content": "rules"},
                    {"role": "user", "content": [
                        {"type": "text", "text": "see"},
                        {"type": "image_url",
                         "image_url": {"url": "https://x/y.png", "detail": "low"}},
                        {"type": "file", "file": {"file_id": "file_1", "filename": "a.pdf"}}
                    ]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "c1", "type": "custom",
                         "custom": {"name": "ApplyPatch", "input": "p"}}
                    ]}
                ],
                "tool_choice": {"type": "allowed_tools", "allowed_tools": {
                    "mode": "auto",
                    "tools": [{"type": "function", "function": {"name": "f"}},
                              {"type": "custom", "custom": {"name": "ApplyPatch"}}]}}
            })
        );
    }

    #[test]
    fn chat_native_field_wins_over_mapped_one() {
        let (_, out) = norm(json!({
            "model": "m", "input": "x",
            "max_output_tokens": 10, "max_completion_tokens": 20
        }));
        assert_eq!(out.unwrap()["max_completion_tokens"], json!(20));
    }

    #[test]
    fn chat_shape_untouched() {
        let body = json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "Read main.py"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "read_file", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "x"}
            ],
            "tools": [{"type": "function", "function": {"name": "read_file"}},
                      {"type": "custom", "custom": {"name": "ApplyPatch", "format": {
                          "type": "grammar",
                          "grammar": {"definition": GRAMMAR, "syntax": "lark"}}}}],
            "tool_choice": {"type": "function", "function": {"name": "read_file"}},
            "input": "ignored: messages decides the shape",
            "stream": true
        });
        assert_eq!(norm(body), (Shape::Chat, None));
        assert_eq!(Shape::Chat.as_str(), "chat");
        // Not an object, or no messages and no input: chat::parse reports those.
        assert_eq!(norm(json!([1])), (Shape::Chat, None));
        assert_eq!(norm(json!({"model": "m"})), (Shape::Chat, None));
    }

    #[test]
    fn chat_shape_empty_assistant_content_fixed() {
        let (shape, out) = norm(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": []},
                {"role": "assistant", "content": [], "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "ls", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a.py"}
            ],
            "user": "u"
        }));
        assert_eq!(shape, Shape::Chat);
        assert_eq!(
            out.unwrap(),
            json!({
                "model": "m",
                "messages": [
                    {"role": "user", "content": []},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "ls", "arguments": "{}"}}]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "a.py"}
                ],
                "user": "u"
            })
        );
    }

    #[test]
    fn chat_shape_flat_tools_nested() {
        let (shape, out) = norm(json!({
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {"type": "function", "name": "ls", "parameters": {"type": "object"},
                 "description": null},
                {"type": "function", "function": {"name": "keep"}},
                {"type": "custom", "name": "ApplyPatch",
                 "format": {"type": "grammar", "definition": GRAMMAR, "syntax": "lark"}},
                {"type": "custom", "custom": {"name": "Half",
                 "format": {"type": "grammar", "definition": "d", "syntax": "regex"}}},
                {"type": "custom", "name": "Free", "format": {"type": "text"}}
            ],
            "tool_choice": {"type": "custom", "name": "ApplyPatch"}
        }));
        assert_eq!(shape, Shape::Chat);
        assert_eq!(
            out.unwrap(),
            json!({
                "model": "m",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [
                    {"type": "function",
                     "function": {"name": "ls", "parameters": {"type": "object"}}},
                    {"type": "function", "function": {"name": "keep"}},
                    {"type": "custom", "custom": {"name": "ApplyPatch", "format": {
                        "type": "grammar",
                        "grammar": {"definition": GRAMMAR, "syntax": "lark"}}}},
                    {"type": "custom", "custom": {"name": "Half", "format": {
                        "type": "grammar", "grammar": {"definition": "d", "syntax": "regex"}}}},
                    {"type": "custom", "custom": {"name": "Free", "format": {"type": "text"}}}
                ],
                "tool_choice": {"type": "custom", "custom": {"name": "ApplyPatch"}}
            })
        );
    }

    #[test]
    fn errors_name_the_param() {
        assert_eq!(
            err(json!({"model": "m", "input": 5})),
            RelayError::invalid(
                "Invalid type for 'input': expected a string or an array, but got an integer instead.",
                Some("input")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": [
                {"role": "user", "content": "a"},
                {"type": "reasoning"},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "web_search_call", "id": "ws_1"}
            ]})),
            RelayError::invalid(
                "Invalid value: 'web_search_call'. Supported values are: 'message', \
                 'function_call', 'function_call_output', 'custom_tool_call', \
                 'custom_tool_call_output', and 'reasoning'.",
                Some("input[3].type")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": ["hi"]})),
            RelayError::invalid(
                "Invalid type for 'input[0]': expected an object, but got a string instead.",
                Some("input[0]")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": [
                {"type": "function_call", "name": "f", "arguments": "{}"}]})),
            RelayError::invalid(
                "Missing required parameter: 'input[0].call_id'.",
                Some("input[0].call_id")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": [
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]})),
            RelayError::invalid(
                "Invalid type for 'input[0].arguments': expected a string, but got an object instead.",
                Some("input[0].arguments")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": [
                {"type": "function_call_output", "call_id": "c", "output": 3}]})),
            RelayError::invalid(
                "Invalid type for 'input[0].output': expected a string or an array, but got an integer instead.",
                Some("input[0].output")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": [{"content": "x"}]})),
            RelayError::invalid(
                "Missing required parameter: 'input[0].role'.",
                Some("input[0].role")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": [{"role": "tool", "content": "x"}]})),
            RelayError::invalid(
                "Invalid value: 'tool'. Supported values are: 'user', 'assistant', 'system', \
                 and 'developer'.",
                Some("input[0].role")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": [
                {"role": "user", "content": [{"type": "input_audio"}]}]})),
            RelayError::invalid(
                "Invalid value: 'input_audio'. Supported values are: 'input_text', \
                 'output_text', 'input_image', 'input_file', and 'refusal'.",
                Some("input[0].content[0].type")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": "x", "instructions": ["a"]})),
            RelayError::invalid(
                "Invalid type for 'instructions': expected a string, but got an array instead.",
                Some("instructions")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": "x",
                       "tools": [{"type": "function", "parameters": {}}]})),
            RelayError::invalid(
                "Missing required parameter: 'tools[0].name'.",
                Some("tools[0].name")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": "x",
                       "tools": [{"type": "function", "name": "f"},
                                 {"type": "web_search"}]})),
            RelayError::invalid(
                "Invalid value: 'web_search'. Supported values are: 'function' and 'custom' \
                 (hosted tools are not available on /chat/completions).",
                Some("tools[1].type")
            )
        );
        assert_eq!(
            err(
                json!({"model": "m", "input": "x", "tools": [{"type": "custom",
                       "name": "P", "format": {"type": "grammar", "syntax": "lark"}}]})
            ),
            RelayError::invalid(
                "Missing required parameter: 'tools[0].format.definition'.",
                Some("tools[0].format.definition")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": "x", "text": {"format": {"type": "xml"}}})),
            RelayError::invalid(
                "Invalid value: 'xml'. Supported values are: 'text', 'json_object', and \
                 'json_schema'.",
                Some("text.format.type")
            )
        );
        assert_eq!(
            err(json!({"model": "m", "input": "x", "reasoning": "high"})),
            RelayError::invalid(
                "Invalid type for 'reasoning': expected an object, but got a string instead.",
                Some("reasoning")
            )
        );
        // A flat tool in a Chat body is rewritten, so a nameless one is reported too.
        assert_eq!(
            err(json!({"model": "m", "messages": [],
                       "tools": [{"type": "custom", "name": 7}]})),
            RelayError::invalid(
                "Invalid type for 'tools[0].name': expected a string, but got an integer instead.",
                Some("tools[0].name")
            )
        );
    }
}
