//! The O→A `messages` array (protocol.md §6.1): system and developer messages hoisted, turns
//! merged by role, content parts, tool calls and tool results as Anthropic blocks.

use serde_json::{json, Map, Value};

use super::{custom, wrong_type};
use crate::http::error::RelayError;
use crate::protocols::chat::missing;

/// Turns being built: consecutive same-role messages share one Anthropic turn.
#[derive(Default)]
struct Turns(Vec<(&'static str, Vec<Value>)>);

impl Turns {
    fn push(&mut self, role: &'static str, blocks: Vec<Value>) {
        if blocks.is_empty() {
            return;
        }
        match self.0.last_mut() {
            Some((r, existing)) if *r == role => existing.extend(blocks),
            _ => self.0.push((role, blocks)),
        }
    }

    fn finish(mut self) -> Vec<Value> {
        if let Some(("assistant", blocks)) = self.0.last_mut() {
            // "final assistant content cannot end with trailing whitespace" [S12].
            if let Some(Value::Object(last)) = blocks.last_mut() {
                if let Some(Value::String(text)) = last.get_mut("text") {
                    text.truncate(text.trim_end().len());
                }
            }
            blocks.retain(|b| !is_blank_text(b));
            if blocks.is_empty() {
                self.0.pop();
            }
        }
        if matches!(self.0.first(), Some(("assistant", _))) {
            // Anthropic historically required a user turn first (§6.1 [DECISION]).
            self.0.insert(0, ("user", vec![text_block(".")]));
        }
        self.0
            .into_iter()
            .map(|(role, mut blocks)| {
                // Anthropic wants tool results ahead of any other user content; the sort is
                // stable, so both groups keep their order.
                blocks.sort_by_key(|b| b.get("type") != Some(&json!("tool_result")));
                json!({"role": role, "content": blocks})
            })
            .collect()
    }
}

fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text})
}

/// Anthropic rejects text blocks without non-whitespace text.
fn is_blank_text(block: &Value) -> bool {
    block.get("type") == Some(&json!("text"))
        && block
            .get("text")
            .and_then(Value::as_str)
            .is_none_or(|t| t.trim().is_empty())
}

/// Anthropic tool ids are restricted to `[A-Za-z0-9_-]`; the same rewrite on both sides keeps
/// each `tool_result` matched to its `tool_use`.
fn tool_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Splits messages into hoisted system blocks and Anthropic turns.
pub(super) fn map_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), RelayError> {
    let mut walk = Walk::default();
    for (i, msg) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = msg
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&format!("{at}.role")))?;
        let content = msg.get("content").filter(|c| !c.is_null());
        match role {
            "system" | "developer" => walk.system(msg, content, &at)?,
            "user" => walk.user(content, &at)?,
            "assistant" => walk.assistant(msg, content, i, &at)?,
            "tool" | "function" => walk.tool_result(msg, role, content, &at)?,
            other => {
                return Err(RelayError::invalid(
                    format!("Invalid value for '{at}.role': '{other}' is not a supported role."),
                    Some(&format!("{at}.role")),
                ))
            }
        }
    }
    let turns = walk.turns.finish();
    if turns.is_empty() {
        return Err(RelayError::invalid(
            "'messages' must contain at least one non-empty user or assistant message.",
            Some("messages"),
        ));
    }
    Ok((walk.system, turns))
}

/// What `map_messages` carries from one message to the next.
#[derive(Default)]
struct Walk {
    system: Vec<Value>,
    turns: Turns,
    /// Deprecated `function_call`s carry no id; each `function` reply answers the latest one.
    function_call_id: String,
    /// Anthropic refuses a `tool_result` whose id is not a `tool_use` of the assistant turn
    /// just before it; consecutive assistant messages share one turn, so their calls pool here.
    open_uses: Vec<String>,
    in_assistant_run: bool,
}

impl Walk {
    fn system(&mut self, msg: &Value, content: Option<&Value>, at: &str) -> Result<(), RelayError> {
        let mut blocks = content_blocks(content, at, Part::System)?;
        if let (Some(cc), Some(Value::Object(last))) = (msg.get("cache_control"), blocks.last_mut())
        {
            last.insert("cache_control".into(), cc.clone());
        }
        self.system.extend(blocks);
        Ok(())
    }

    fn user(&mut self, content: Option<&Value>, at: &str) -> Result<(), RelayError> {
        let blocks = content_blocks(content, at, Part::User)?;
        if !blocks.is_empty() {
            self.in_assistant_run = false;
        }
        self.turns.push("user", blocks);
        Ok(())
    }

    fn assistant(
        &mut self,
        msg: &Value,
        content: Option<&Value>,
        i: usize,
        at: &str,
    ) -> Result<(), RelayError> {
        let mut blocks = content_blocks(content, at, Part::Assistant)?;
        if let Some(calls) = msg.get("tool_calls").filter(|c| !c.is_null()) {
            let calls = calls
                .as_array()
                .ok_or_else(|| wrong_type(&format!("{at}.tool_calls"), "an array", calls))?;
            for (j, call) in calls.iter().enumerate() {
                blocks.push(tool_use(call, &format!("{at}.tool_calls[{j}]"))?);
            }
        }
        if let Some(call) = msg.get("function_call").filter(|c| c.is_object()) {
            self.function_call_id = format!("call_fn_{i}");
            blocks.push(tool_use(
                &json!({"id": self.function_call_id, "function": call}),
                &format!("{at}.function_call"),
            )?);
        }
        if !blocks.is_empty() {
            if !self.in_assistant_run {
                self.open_uses.clear();
            }
            self.in_assistant_run = true;
            self.open_uses.extend(
                blocks
                    .iter()
                    .filter(|b| b.get("type") == Some(&json!("tool_use")))
                    .filter_map(|b| b.get("id").and_then(Value::as_str))
                    .map(str::to_string),
            );
        }
        self.turns.push("assistant", blocks);
        Ok(())
    }

    /// A `tool` (or deprecated `function`) message as a user turn's `tool_result`.
    fn tool_result(
        &mut self,
        msg: &Value,
        role: &str,
        content: Option<&Value>,
        at: &str,
    ) -> Result<(), RelayError> {
        self.in_assistant_run = false;
        let id = if role == "tool" {
            let id = msg
                .get("tool_call_id")
                .and_then(Value::as_str)
                .ok_or_else(|| missing(&format!("{at}.tool_call_id")))?;
            tool_id(id)
        } else {
            self.function_call_id.clone()
        };
        if !self.open_uses.contains(&id) {
            let param = if role == "tool" {
                format!("{at}.tool_call_id")
            } else {
                at.to_string()
            };
            return Err(RelayError::invalid(
                format!(
                    "Invalid '{param}': a '{role}' message must answer a tool call of the assistant message before it."
                ),
                Some(&param),
            ));
        }
        let mut result = Map::new();
        result.insert("type".into(), json!("tool_result"));
        result.insert("tool_use_id".into(), json!(id));
        match content {
            Some(Value::String(s)) => {
                result.insert("content".into(), json!(s));
            }
            other => {
                let blocks = content_blocks(other, at, Part::User)?;
                if !blocks.is_empty() {
                    result.insert("content".into(), Value::Array(blocks));
                }
            }
        }
        self.turns.push("user", vec![Value::Object(result)]);
        Ok(())
    }
}

/// Which content parts a role may carry.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    System,
    User,
    Assistant,
}

/// Content (string or parts) as Anthropic blocks, blank text blocks removed.
fn content_blocks(content: Option<&Value>, at: &str, role: Part) -> Result<Vec<Value>, RelayError> {
    let blocks = match content {
        None => Vec::new(),
        Some(Value::String(s)) => vec![text_block(s)],
        Some(Value::Array(parts)) => parts
            .iter()
            .enumerate()
            .map(|(k, p)| content_part(p, &format!("{at}.content[{k}]"), role))
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(wrong_type(
                &format!("{at}.content"),
                "a string or an array",
                other,
            ))
        }
    };
    Ok(blocks.into_iter().filter(|b| !is_blank_text(b)).collect())
}

fn content_part(part: &Value, at: &str, role: Part) -> Result<Value, RelayError> {
    let kind = part.get("type").and_then(Value::as_str);
    let text_key = match (kind, role) {
        (Some("text"), _) => Some("text"),
        (Some("refusal"), Part::Assistant) => Some("refusal"),
        _ => None,
    };
    if let Some(key) = text_key {
        let text = part
            .get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&format!("{at}.{key}")))?;
        let mut block = text_block(text);
        if let (Some(cc), Some(obj)) = (part.get("cache_control"), block.as_object_mut()) {
            obj.insert("cache_control".into(), cc.clone());
        }
        return Ok(block);
    }
    if kind == Some("image_url") && role == Part::User {
        let url = part.get("image_url").and_then(|u| u.get("url").or(Some(u)));
        let url = url
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&format!("{at}.image_url.url")))?;
        return image_block(url, &format!("{at}.image_url.url"));
    }
    Err(RelayError::invalid(
        format!(
            "Content part type '{}' is not supported here for this model.",
            kind.unwrap_or("")
        ),
        Some(&format!("{at}.type")),
    ))
}

/// `data:<mime>;base64,<b64>` becomes an inline source (a PDF becomes a `document`, as Portkey
/// does); `http(s)://` becomes a URL source.
fn image_block(url: &str, at: &str) -> Result<Value, RelayError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let parsed = rest
            .split_once(',')
            .and_then(|(meta, data)| Some((meta.strip_suffix(";base64")?, data)));
        let Some((media_type, data)) = parsed else {
            return Err(RelayError::invalid(
                "Only base64 data URLs are supported for images.",
                Some(at),
            ));
        };
        let kind = if media_type == "application/pdf" {
            "document"
        } else {
            "image"
        };
        return Ok(json!({"type": kind, "source":
            {"type": "base64", "media_type": media_type, "data": data}}));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(RelayError::invalid(
        "Image URLs must be http(s) or base64 data URLs.",
        Some(at),
    ))
}

/// An OpenAI tool call as a `tool_use` block; `arguments` must be a JSON object ("" means `{}`).
fn tool_use(call: &Value, at: &str) -> Result<Value, RelayError> {
    let kind = call.get("type").and_then(Value::as_str);
    if !matches!(kind, None | Some("function") | Some("custom")) {
        return Err(RelayError::invalid(
            format!(
                "Invalid value: '{}'. Supported values are: 'function' and 'custom'.",
                kind.unwrap_or("")
            ),
            Some(&format!("{at}.type")),
        ));
    }
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| missing(&format!("{at}.id")))?;
    if kind == Some("custom") {
        let c = call.get("custom");
        let name = c
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&format!("{at}.custom.name")))?;
        let input = c.and_then(|c| c.get("input")).and_then(Value::as_str);
        let input = input.ok_or_else(|| missing(&format!("{at}.custom.input")))?;
        return Ok(json!({"type": "tool_use", "id": tool_id(id), "name": name,
                         "input": {custom::FIELD: input}}));
    }
    let f = call.get("function");
    let name = f
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .ok_or_else(|| missing(&format!("{at}.function.name")))?;
    let args = f
        .and_then(|f| f.get("arguments"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let input = if args.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str::<Value>(args)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| {
                RelayError::invalid(
                    format!("Invalid '{at}.function.arguments': expected a JSON object."),
                    Some(&format!("{at}.function.arguments")),
                )
            })?
    };
    Ok(json!({"type": "tool_use", "id": tool_id(id), "name": name, "input": input}))
}
