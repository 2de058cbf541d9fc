//! Shape (B): a Responses API body as a Chat body (R7.6, R4.2). Cursor sends it to
//! `/chat/completions` by mistake, and the Responses route uses the same mapping for providers
//! without the Responses API, so both map items, tools and formats the same way.

use serde_json::{json, Map, Value};

use super::{copy_present, missing, nest_tool, nest_tool_choice, required_str, wrong_type};
use crate::http::error::RelayError;

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

/// A Responses body as a Chat body (R7.6 / R4.2): the request half of the Responses API too
/// (`responses::to_chat`), so both routes map items, tools and formats the same way.
pub fn from_responses(obj: &Map<String, Value>) -> Result<Map<String, Value>, RelayError> {
    let messages = messages(obj)?;
    let mut out: Map<String, Value> = obj
        .iter()
        .filter(|(k, _)| !MAPPED.contains(&k.as_str()) && !DROPPED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert("messages".into(), Value::Array(messages));
    for (k, v) in mapped_fields(obj)? {
        out.entry(k).or_insert(v);
    }
    Ok(out)
}

/// `instructions` and `input` as Chat messages.
fn messages(obj: &Map<String, Value>) -> Result<Vec<Value>, RelayError> {
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
    Ok(messages)
}

/// The Chat fields the mapped (B) fields become; a Chat-native field already in the body wins.
fn mapped_fields(obj: &Map<String, Value>) -> Result<Map<String, Value>, RelayError> {
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
    Ok(mapped)
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
