//! O→A request mapping (protocol.md §6.1): an OpenAI Chat Completions body becomes an Anthropic
//! Messages body. Fields Anthropic cannot honour are dropped, or refused with a 400 naming them.

use serde_json::{json, Map, Value};

use super::custom;
use crate::http::error::RelayError;
use crate::keys::auth::hash_key;

/// Builds the Anthropic `POST /v1/messages` body for an OpenAI chat request routed to an
/// Anthropic model. `default_max_tokens` is the model's output limit, used when the client set
/// none, since Anthropic requires `max_tokens`.
pub fn to_messages_request(
    openai_body: &Value,
    upstream_model: &str,
    default_max_tokens: u64,
) -> Result<Value, RelayError> {
    let body = openai_body
        .as_object()
        .ok_or_else(|| RelayError::invalid("The body must be a JSON object.", None))?;
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());
    let mut out = Map::new();
    out.insert("model".into(), json!(upstream_model));

    if let Some(n) = field("n") {
        if n.as_u64() != Some(1) {
            return Err(RelayError::invalid(
                "Invalid 'n': Anthropic models return exactly one choice, so 'n' must be 1.",
                Some("n"),
            ));
        }
    }

    let max_tokens = match field("max_completion_tokens")
        .map(|v| ("max_completion_tokens", v))
        .or_else(|| field("max_tokens").map(|v| ("max_tokens", v)))
    {
        None => default_max_tokens,
        Some((name, v)) => v
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| wrong_type(name, "a positive integer", v))?,
    };
    out.insert("max_tokens".into(), json!(max_tokens));

    if let Some(t) = field("temperature") {
        let x = t
            .as_f64()
            .ok_or_else(|| wrong_type("temperature", "a number", t))?;
        // Anthropic accepts 0..=1 while OpenAI allows up to 2; the compat layer caps at 1 [S36].
        let clamped = if x > 1.0 {
            json!(1)
        } else if x < 0.0 {
            json!(0)
        } else {
            t.clone()
        };
        out.insert("temperature".into(), clamped);
    }
    if let Some(p) = field("top_p") {
        if !p.is_number() {
            return Err(wrong_type("top_p", "a number", p));
        }
        out.insert("top_p".into(), p.clone());
    }
    if let Some(stop) = field("stop") {
        let seqs = stop_sequences(stop)?;
        if !seqs.is_empty() {
            out.insert("stop_sequences".into(), json!(seqs));
        }
    }
    if let Some(user) = field("user") {
        let user = user
            .as_str()
            .ok_or_else(|| wrong_type("user", "a string", user))?;
        if !user.is_empty() {
            // A hash, not the raw value: clients put e-mail addresses here (§6.1 [DECISION]).
            out.insert("metadata".into(), json!({"user_id": hash_key(user)}));
        }
    }
    if let Some(stream) = field("stream") {
        if !stream.is_boolean() {
            return Err(wrong_type("stream", "a boolean", stream));
        }
        out.insert("stream".into(), stream.clone());
    }

    let tools = match field("tools") {
        Some(t) => map_tools(t)?,
        None => Vec::new(),
    };
    let choice = map_tool_choice(field("tool_choice"))?;
    // A tool_choice without tools is refused by Anthropic and means nothing; drop it.
    if !tools.is_empty() {
        let parallel_off = field("parallel_tool_calls") == Some(&Value::Bool(false));
        let choice = choice.or_else(|| parallel_off.then(|| json!({"type": "auto"})));
        if let Some(mut choice) = choice {
            if parallel_off && choice.get("type") != Some(&json!("none")) {
                if let Some(obj) = choice.as_object_mut() {
                    obj.insert("disable_parallel_tool_use".into(), json!(true));
                }
            }
            out.insert("tool_choice".into(), choice);
        }
        out.insert("tools".into(), Value::Array(tools));
    }

    let messages = field("messages")
        .ok_or_else(|| {
            RelayError::invalid("Missing required parameter: 'messages'.", Some("messages"))
        })?
        .as_array()
        .ok_or_else(|| RelayError::invalid("'messages' must be an array.", Some("messages")))?;
    let (system, turns) = map_messages(messages)?;
    if !system.is_empty() {
        out.insert("system".into(), Value::Array(system));
    }
    out.insert("messages".into(), Value::Array(turns));
    // Everything else (reasoning_effort, logprobs, seed, penalties, metadata, store,
    // service_tier, stream_options, unknown fields) is dropped: Anthropic rejects unknown
    // top-level fields and the compat layer ignores these [S36]. `response_format` is not
    // dropped: structured.rs turns it into a forced tool after this mapping.
    Ok(Value::Object(out))
}

fn wrong_type(param: &str, expected: &str, got: &Value) -> RelayError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    };
    RelayError::invalid(
        format!("Invalid type for '{param}': expected {expected}, but got {got} instead."),
        Some(param),
    )
}

fn missing(param: &str) -> RelayError {
    RelayError::invalid(
        format!("Missing required parameter: '{param}'."),
        Some(param),
    )
}

/// `stop` as a list; whitespace-only sequences are dropped because Anthropic refuses them.
fn stop_sequences(stop: &Value) -> Result<Vec<String>, RelayError> {
    let all = match stop {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| wrong_type(&format!("stop[{i}]"), "a string", s))
            })
            .collect::<Result<_, _>>()?,
        other => return Err(wrong_type("stop", "a string or an array", other)),
    };
    Ok(all.into_iter().filter(|s| !s.trim().is_empty()).collect())
}

fn map_tools(tools: &Value) -> Result<Vec<Value>, RelayError> {
    let tools = tools
        .as_array()
        .ok_or_else(|| wrong_type("tools", "an array", tools))?;
    let mut out = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str);
        if kind == Some("custom") {
            let c = tool
                .get("custom")
                .and_then(Value::as_object)
                .ok_or_else(|| missing(&format!("tools[{i}].custom")))?;
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| missing(&format!("tools[{i}].custom.name")))?;
            out.push(custom::anthropic_tool(c, name));
            continue;
        }
        if kind != Some("function") {
            return Err(RelayError::invalid(
                format!(
                    "Invalid value: '{}'. Supported values are: 'function' and 'custom'.",
                    kind.unwrap_or("")
                ),
                Some(&format!("tools[{i}].type")),
            ));
        }
        let f = tool
            .get("function")
            .filter(|f| f.is_object())
            .ok_or_else(|| missing(&format!("tools[{i}].function")))?;
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&format!("tools[{i}].function.name")))?;
        let mut t = Map::new();
        t.insert("name".into(), json!(name));
        if let Some(d) = f.get("description").filter(|d| d.is_string()) {
            t.insert("description".into(), d.clone());
        }
        let schema = f
            .get("parameters")
            .filter(|p| p.is_object())
            .cloned()
            .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        t.insert("input_schema".into(), schema);
        if let Some(cc) = tool.get("cache_control").filter(|c| c.is_object()) {
            t.insert("cache_control".into(), cc.clone());
        }
        out.push(Value::Object(t));
    }
    Ok(out)
}

fn map_tool_choice(choice: Option<&Value>) -> Result<Option<Value>, RelayError> {
    let Some(choice) = choice else {
        return Ok(None);
    };
    let mapped =
        match choice {
            Value::String(s) if s == "none" => json!({"type": "none"}),
            Value::String(s) if s == "auto" => json!({"type": "auto"}),
            Value::String(s) if s == "required" => json!({"type": "any"}),
            Value::Object(o) if o.get("type") == Some(&json!("function")) => {
                let name = o
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing("tool_choice.function.name"))?;
                json!({"type": "tool", "name": name})
            }
            Value::Object(o) if o.get("type") == Some(&json!("custom")) => {
                let name = o
                    .get("custom")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| missing("tool_choice.custom.name"))?;
                json!({"type": "tool", "name": name})
            }
            _ => return Err(RelayError::invalid(
                "Invalid 'tool_choice': expected 'none', 'auto', 'required', or a function or custom choice.",
                Some("tool_choice"),
            )),
        };
    Ok(Some(mapped))
}

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
fn map_messages(messages: &[Value]) -> Result<(Vec<Value>, Vec<Value>), RelayError> {
    let mut system = Vec::new();
    let mut turns = Turns::default();
    // Deprecated `function_call`s carry no id; each `function` reply answers the latest one.
    let mut function_call_id = String::new();
    // Anthropic refuses a `tool_result` whose id is not a `tool_use` of the assistant turn just
    // before it; consecutive assistant messages share one turn, so their calls pool here.
    let mut open_uses: Vec<String> = Vec::new();
    let mut in_assistant_run = false;
    for (i, msg) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = msg
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| missing(&format!("{at}.role")))?;
        let content = msg.get("content").filter(|c| !c.is_null());
        match role {
            "system" | "developer" => {
                let mut blocks = content_blocks(content, &at, Part::System)?;
                if let (Some(cc), Some(Value::Object(last))) =
                    (msg.get("cache_control"), blocks.last_mut())
                {
                    last.insert("cache_control".into(), cc.clone());
                }
                system.extend(blocks);
            }
            "user" => {
                let blocks = content_blocks(content, &at, Part::User)?;
                if !blocks.is_empty() {
                    in_assistant_run = false;
                }
                turns.push("user", blocks);
            }
            "assistant" => {
                let mut blocks = content_blocks(content, &at, Part::Assistant)?;
                if let Some(calls) = msg.get("tool_calls").filter(|c| !c.is_null()) {
                    let calls = calls.as_array().ok_or_else(|| {
                        wrong_type(&format!("{at}.tool_calls"), "an array", calls)
                    })?;
                    for (j, call) in calls.iter().enumerate() {
                        blocks.push(tool_use(call, &format!("{at}.tool_calls[{j}]"))?);
                    }
                }
                if let Some(call) = msg.get("function_call").filter(|c| c.is_object()) {
                    function_call_id = format!("call_fn_{i}");
                    blocks.push(tool_use(
                        &json!({"id": function_call_id, "function": call}),
                        &format!("{at}.function_call"),
                    )?);
                }
                if !blocks.is_empty() {
                    if !in_assistant_run {
                        open_uses.clear();
                    }
                    in_assistant_run = true;
                    open_uses.extend(
                        blocks
                            .iter()
                            .filter(|b| b.get("type") == Some(&json!("tool_use")))
                            .filter_map(|b| b.get("id").and_then(Value::as_str))
                            .map(str::to_string),
                    );
                }
                turns.push("assistant", blocks);
            }
            "tool" | "function" => {
                in_assistant_run = false;
                let id = if role == "tool" {
                    let id = msg
                        .get("tool_call_id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| missing(&format!("{at}.tool_call_id")))?;
                    tool_id(id)
                } else {
                    function_call_id.clone()
                };
                if !open_uses.contains(&id) {
                    let param = if role == "tool" {
                        format!("{at}.tool_call_id")
                    } else {
                        at.clone()
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
                        let blocks = content_blocks(other, &at, Part::User)?;
                        if !blocks.is_empty() {
                            result.insert("content".into(), Value::Array(blocks));
                        }
                    }
                }
                turns.push("user", vec![Value::Object(result)]);
            }
            other => {
                return Err(RelayError::invalid(
                    format!("Invalid value for '{at}.role': '{other}' is not a supported role."),
                    Some(&format!("{at}.role")),
                ))
            }
        }
    }
    let turns = turns.finish();
    if turns.is_empty() {
        return Err(RelayError::invalid(
            "'messages' must contain at least one non-empty user or assistant message.",
            Some("messages"),
        ));
    }
    Ok((system, turns))
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn map(body: Value) -> Value {
        to_messages_request(&body, "claude-sonnet-4-5", 4096).unwrap()
    }

    fn err(body: Value) -> RelayError {
        to_messages_request(&body, "claude-sonnet-4-5", 4096).unwrap_err()
    }

    fn param_of(e: &RelayError) -> Option<String> {
        match e {
            RelayError::InvalidRequest { param, .. } => param.clone(),
            other => Some(format!("not a 400: {other:?}")),
        }
    }

    #[test]
    fn t16_worked_example() {
        let openai = json!({"model":"relay-sonnet","max_completion_tokens":512,"temperature":1.4,
            "stop":"END","user":"u_42","stream":true,"stream_options":{"include_usage":true},
            "parallel_tool_calls":false,
            "messages":[
                {"role":"system","content":"You are terse."},
                {"role":"user","content":"Weather in SF and NYC?"},
                {"role":"assistant","content":"","tool_calls":[
                    {"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"SF\"}"}},
                    {"id":"call_2","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"NYC\"}"}}]},
                {"role":"tool","tool_call_id":"call_1","content":"15C"},
                {"role":"tool","tool_call_id":"call_2","content":"22C"}],
            "tools":[{"type":"function","function":{"name":"get_weather","description":"Get weather",
                "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}],
            "tool_choice":"auto"});
        let want = json!({"model":"claude-sonnet-4-5","max_tokens":512,"temperature":1,
            "stop_sequences":["END"],
            "metadata":{"user_id":hash_key("u_42")},
            "stream":true,
            "system":[{"type":"text","text":"You are terse."}],
            "messages":[
                {"role":"user","content":[{"type":"text","text":"Weather in SF and NYC?"}]},
                {"role":"assistant","content":[
                    {"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"SF"}},
                    {"type":"tool_use","id":"call_2","name":"get_weather","input":{"city":"NYC"}}]},
                {"role":"user","content":[
                    {"type":"tool_result","tool_use_id":"call_1","content":"15C"},
                    {"type":"tool_result","tool_use_id":"call_2","content":"22C"}]}],
            "tools":[{"name":"get_weather","description":"Get weather",
                "input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],
            "tool_choice":{"type":"auto","disable_parallel_tool_use":true}});
        assert_eq!(map(openai), want);
    }

    fn user(text: &str) -> Value {
        json!({"role":"user","content":text})
    }

    #[test]
    fn t17_n_above_one_is_400_on_n() {
        let e = err(json!({"model":"m","n":2,"messages":[user("hi")]}));
        assert_eq!(e.status(), 400);
        assert_eq!(param_of(&e).as_deref(), Some("n"));
        // n = 1 is fine and is not forwarded.
        let ok = map(json!({"model":"m","n":1,"messages":[user("hi")]}));
        assert_eq!(ok.get("n"), None);
    }

    #[test]
    fn t18_temperature_clamped_and_defaults() {
        let out = map(json!({"model":"m","temperature":1.7,"top_p":0.9,"messages":[user("hi")]}));
        assert_eq!(
            out,
            json!({"model":"claude-sonnet-4-5","max_tokens":4096,"temperature":1,"top_p":0.9,
                "messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]})
        );
        let low = map(json!({"model":"m","temperature":-0.5,"messages":[user("hi")]}));
        assert_eq!(low["temperature"], json!(0));
        let mid =
            map(json!({"model":"m","temperature":0.3,"max_tokens":9,"messages":[user("hi")]}));
        assert_eq!(
            (&mid["temperature"], &mid["max_tokens"]),
            (&json!(0.3), &json!(9))
        );
    }

    #[test]
    fn t19_empty_assistant_text_is_dropped() {
        let out = map(json!({"model":"m","messages":[user("go"),
            {"role":"assistant","content":"","tool_calls":[
                {"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},
            {"role":"tool","tool_call_id":"call_1","content":"ok"}]}));
        assert_eq!(
            out["messages"][1],
            json!({"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"f","input":{}}]})
        );
    }

    #[test]
    fn t20_consecutive_tool_messages_merge_results_first() {
        let out = map(json!({"model":"m","messages":[user("go"),
            {"role":"assistant","content":"Checking.","tool_calls":[
                {"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},
                {"id":"b","type":"function","function":{"name":"f","arguments":"{}"}},
                {"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"a","content":"1"},
            {"role":"tool","tool_call_id":"b","content":[{"type":"text","text":"2"}]},
            {"role":"tool","tool_call_id":"c","content":"3"},
            user("and?")]}));
        let msgs = out["messages"].as_array().unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(
            msgs[1]["content"][0],
            json!({"type":"text","text":"Checking."})
        );
        assert_eq!(
            msgs[2],
            json!({"role":"user","content":[
                {"type":"tool_result","tool_use_id":"a","content":"1"},
                {"type":"tool_result","tool_use_id":"b","content":[{"type":"text","text":"2"}]},
                {"type":"tool_result","tool_use_id":"c","content":"3"},
                {"type":"text","text":"and?"}]})
        );
    }

    #[test]
    fn t21_invalid_arguments_name_the_param() {
        let e = err(json!({"model":"m","messages":[user("go"),
            {"role":"assistant","content":null,"tool_calls":[
                {"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},
                {"id":"b","type":"function","function":{"name":"f","arguments":"{\"x\":"}}]}]}));
        assert_eq!(e.status(), 400);
        assert_eq!(
            param_of(&e).as_deref(),
            Some("messages[1].tool_calls[1].function.arguments")
        );
    }

    #[test]
    fn system_and_developer_hoisted_with_cache_control() {
        let out = map(json!({"model":"m","messages":[
            {"role":"system","content":[{"type":"text","text":"A","cache_control":{"type":"ephemeral"}},
                                        {"type":"text","text":"B"}]},
            user("hi"),
            {"role":"developer","content":"C"}]}));
        assert_eq!(
            out["system"],
            json!([{"type":"text","text":"A","cache_control":{"type":"ephemeral"}},
                   {"type":"text","text":"B"},{"type":"text","text":"C"}])
        );
        assert_eq!(out["messages"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn images_map_to_sources() {
        let out = map(json!({"model":"m","messages":[{"role":"user","content":[
            {"type":"text","text":"look"},
            {"type":"image_url","image_url":{"url":"data:image/png;base64,iVBOR"}},
            {"type":"image_url","image_url":{"url":"https://x.test/a.jpg","detail":"high"}},
            {"type":"image_url","image_url":{"url":"data:application/pdf;base64,JVBER"}}]}]}));
        assert_eq!(
            out["messages"][0]["content"],
            json!([{"type":"text","text":"look"},
                {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBOR"}},
                {"type":"image","source":{"type":"url","url":"https://x.test/a.jpg"}},
                {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBER"}}])
        );
        let e = err(json!({"model":"m","messages":[{"role":"user","content":[
            {"type":"image_url","image_url":{"url":"ftp://x"}}]}]}));
        assert_eq!(
            param_of(&e).as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
        let e = err(json!({"model":"m","messages":[{"role":"user","content":[
            {"type":"input_audio","input_audio":{}}]}]}));
        assert_eq!(param_of(&e).as_deref(), Some("messages[0].content[0].type"));
    }

    #[test]
    fn first_assistant_gets_a_user_turn_and_final_whitespace_is_trimmed() {
        let out = map(json!({"model":"m","messages":[
            {"role":"system","content":"s"},
            {"role":"assistant","content":"Hello"},
            user("hi"),
            {"role":"assistant","content":"The answer is  \n"}]}));
        assert_eq!(
            out["messages"],
            json!([{"role":"user","content":[{"type":"text","text":"."}]},
                {"role":"assistant","content":[{"type":"text","text":"Hello"}]},
                {"role":"user","content":[{"type":"text","text":"hi"}]},
                {"role":"assistant","content":[{"type":"text","text":"The answer is"}]}])
        );
    }

    #[test]
    fn tool_choice_and_parallel() {
        let tools = json!([{"type":"function","function":{"name":"f"}}]);
        let choice = |tc: Value, parallel: Value| {
            let mut body = json!({"model":"m","messages":[user("x")],"tools":tools});
            if !tc.is_null() {
                body["tool_choice"] = tc;
            }
            if !parallel.is_null() {
                body["parallel_tool_calls"] = parallel;
            }
            map(body).get("tool_choice").cloned()
        };
        assert_eq!(
            choice(json!("none"), json!(false)),
            Some(json!({"type":"none"}))
        );
        assert_eq!(
            choice(json!("auto"), Value::Null),
            Some(json!({"type":"auto"}))
        );
        assert_eq!(
            choice(json!("required"), json!(true)),
            Some(json!({"type":"any"}))
        );
        assert_eq!(
            choice(
                json!({"type":"function","function":{"name":"f"}}),
                json!(false)
            ),
            Some(json!({"type":"tool","name":"f","disable_parallel_tool_use":true}))
        );
        assert_eq!(
            choice(Value::Null, json!(false)),
            Some(json!({"type":"auto","disable_parallel_tool_use":true}))
        );
        assert_eq!(choice(Value::Null, Value::Null), None);
        let out = map(json!({"model":"m","messages":[user("x")],"tools":tools}));
        assert_eq!(
            out["tools"],
            json!([{"name":"f","input_schema":{"type":"object","properties":{}}}])
        );
        // No tools: tool_choice dropped.
        let out = map(json!({"model":"m","messages":[user("x")],"tool_choice":"required"}));
        assert_eq!(out.get("tool_choice"), None);
        let e = err(json!({"model":"m","messages":[user("x")],
            "tools":[{"type":"web_search"}]}));
        assert_eq!(param_of(&e).as_deref(), Some("tools[0].type"));
        let e = err(json!({"model":"m","messages":[user("x")],"tools":[{"type":"custom"}]}));
        assert_eq!(param_of(&e).as_deref(), Some("tools[0].custom"));
    }

    #[test]
    fn stop_user_stream_and_dropped_fields() {
        let out = map(
            json!({"model":"m","messages":[user("x")],"stop":["a"," ","\n"],
            "stream":false,"response_format":{"type":"json_object"},"seed":1,"logprobs":true,
            "reasoning_effort":"high","metadata":{"k":"v"},"x_unknown":1}),
        );
        assert_eq!(
            out,
            json!({"model":"claude-sonnet-4-5","max_tokens":4096,"stop_sequences":["a"],
                "stream":false,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]})
        );
        let out = map(json!({"model":"m","messages":[user("x")],"stop":["  "]}));
        assert_eq!(out.get("stop_sequences"), None);
        let e = err(json!({"model":"m","messages":[user("x")],"max_tokens":"9"}));
        assert_eq!(param_of(&e).as_deref(), Some("max_tokens"));
    }

    #[test]
    fn tool_ids_are_sanitised_on_both_sides() {
        let out = map(json!({"model":"m","messages":[user("x"),
            {"role":"assistant","tool_calls":[
                {"id":"call.1:x","type":"function","function":{"name":"f","arguments":"{}"}}]},
            {"role":"tool","tool_call_id":"call.1:x","content":"r"}]}));
        assert_eq!(out["messages"][1]["content"][0]["id"], "call_1_x");
        assert_eq!(out["messages"][2]["content"][0]["tool_use_id"], "call_1_x");
    }

    #[test]
    fn deprecated_function_messages() {
        let out = map(json!({"model":"m","messages":[user("x"),
            {"role":"assistant","content":null,"function_call":{"name":"f","arguments":"{\"a\":1}"}},
            {"role":"function","name":"f","content":"done"}]}));
        assert_eq!(
            out["messages"][1]["content"],
            json!([{"type":"tool_use","id":"call_fn_1","name":"f","input":{"a":1}}])
        );
        assert_eq!(
            out["messages"][2]["content"],
            json!([{"type":"tool_result","tool_use_id":"call_fn_1","content":"done"}])
        );
    }

    #[test]
    fn structural_errors_name_the_param() {
        let e = err(json!({"model":"m","messages":[{"role":"bot","content":"x"}]}));
        assert_eq!(param_of(&e).as_deref(), Some("messages[0].role"));
        let e = err(json!({"model":"m","messages":[{"role":"tool","content":"x"}]}));
        assert_eq!(param_of(&e).as_deref(), Some("messages[0].tool_call_id"));
        let e = err(json!({"model":"m","messages":[{"role":"system","content":"x"}]}));
        assert_eq!(param_of(&e).as_deref(), Some("messages"));
        let e = err(
            json!({"model":"m","messages":[user("x"),{"role":"assistant",
            "tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}),
        );
        assert_eq!(
            param_of(&e).as_deref(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
    }

    #[test]
    fn a_tool_result_must_answer_the_assistant_turn_before_it() {
        let call = |id: &str| {
            json!({"role":"assistant","content":null,"tool_calls":[
                {"id":id,"type":"function","function":{"name":"f","arguments":"{}"}}]})
        };
        let result = |id: &str| json!({"role":"tool","tool_call_id":id,"content":"ok"});
        let want = |at: usize| {
            RelayError::invalid(
                format!("Invalid 'messages[{at}].tool_call_id': a 'tool' message must answer a tool call of the assistant message before it."),
                Some(&format!("messages[{at}].tool_call_id")),
            )
        };
        // No tool call anywhere before it.
        assert_eq!(
            err(json!({"model":"m","messages":[user("x"), result("call_9")]})),
            want(1)
        );
        // A call of an earlier assistant turn, not the one just before.
        assert_eq!(
            err(
                json!({"model":"m","messages":[user("x"), call("a"), result("a"),
                {"role":"assistant","content":"done"}, user("again"), result("a")]})
            ),
            want(5)
        );
        // An id that matches no call.
        assert_eq!(
            err(json!({"model":"m","messages":[user("x"), call("a"), result("b")]})),
            want(2)
        );
        // A `function` reply with no function_call before it.
        assert_eq!(
            param_of(&err(json!({"model":"m","messages":[user("x"),
                {"role":"function","name":"f","content":"done"}]})))
            .as_deref(),
            Some("messages[1]")
        );
        // Calls from consecutive assistant messages share a turn; a user message in between
        // results still belongs to the same user turn.
        let ok = map(
            json!({"model":"m","messages":[user("x"), call("a"), call("b"),
            result("a"), user("note"), result("b")]}),
        );
        assert_eq!(ok["messages"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn custom_tools_calls_and_choice_map_to_a_string_input_tool() {
        let out = map(json!({"model":"m","messages":[user("fix it"),
            {"role":"assistant","content":[],"tool_calls":[
                {"id":"call_4","type":"custom","custom":{"name":"ApplyPatch","input":"*** Begin Patch"}}]},
            {"role":"tool","tool_call_id":"call_4","content":"Done"}],
            "tools":[{"type":"custom","custom":{"name":"ApplyPatch","description":"Apply"}},
                     {"type":"function","function":{"name":"f"}}],
            "tool_choice":{"type":"custom","custom":{"name":"ApplyPatch"}}}));
        assert_eq!(
            out["tools"][0],
            json!({"name":"ApplyPatch","description":"Apply","input_schema":{"type":"object",
                   "properties":{"input":{"type":"string"}},"required":["input"]}})
        );
        assert_eq!(out["tools"][1]["name"], "f");
        assert_eq!(
            out["tool_choice"],
            json!({"type":"tool","name":"ApplyPatch"})
        );
        assert_eq!(
            out["messages"][1]["content"],
            json!([{"type":"tool_use","id":"call_4","name":"ApplyPatch",
                    "input":{"input":"*** Begin Patch"}}])
        );
        assert_eq!(
            out["messages"][2]["content"],
            json!([{"type":"tool_result","tool_use_id":"call_4","content":"Done"}])
        );
        let e = err(
            json!({"model":"m","messages":[user("x"),{"role":"assistant","tool_calls":[
            {"id":"c","type":"custom","custom":{"name":"ApplyPatch"}}]}]}),
        );
        assert_eq!(
            param_of(&e).as_deref(),
            Some("messages[1].tool_calls[0].custom.input")
        );
    }
}
