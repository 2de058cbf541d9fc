//! `response_format` on Claude routes (O→A). The Messages API this relay speaks has no
//! `response_format` (protocol.md §6.1), and dropping it would answer a JSON request with prose
//! and status 200, which breaks every structured-output client (`chat.completions.parse`,
//! LangChain's `with_structured_output`). So `json_schema` and `json_object` become one extra
//! tool whose `input_schema` is the wanted schema, and the model is made to call it; the call's
//! input comes back to the client as the message content, never as a tool call.

use serde_json::{json, Map, Value};

use crate::http::error::RelayError;

/// The answer tool's name; a client tool of that name is refused rather than confused with it.
pub const ANSWER_TOOL: &str = "json_response";

/// True when the client's `response_format` asks for JSON, so the answer tool is in play. The
/// request side has validated it by then; here only the kind matters.
pub fn wants_json(response_format: Option<&Value>) -> bool {
    matches!(
        response_format
            .and_then(|f| f.get("type"))
            .and_then(Value::as_str),
        Some("json_object" | "json_schema")
    )
}

/// Adds the answer tool to the translated request and forces a tool call: that tool alone when
/// the client has no tools of its own; with client tools, any tool (`any`), so the model may
/// still call one of them first, unless the client forced a specific tool, which stands.
pub fn apply(openai_body: &Value, anthropic_body: &mut Value) -> Result<(), RelayError> {
    let Some(tool) = answer_tool(openai_body.get("response_format"))? else {
        return Ok(());
    };
    let clients = openai_body.get("tools").and_then(Value::as_array);
    for (i, t) in clients.into_iter().flatten().enumerate() {
        let name = t
            .pointer("/function/name")
            .or_else(|| t.pointer("/custom/name"))
            .and_then(Value::as_str);
        if name == Some(ANSWER_TOOL) {
            let kind = if t.get("custom").is_some() {
                "custom"
            } else {
                "function"
            };
            return Err(RelayError::invalid(
                format!("Tool name '{ANSWER_TOOL}' is reserved on Claude models: the relay uses it for response_format."),
                Some(&format!("tools[{i}].{kind}.name")),
            ));
        }
    }
    let Some(out) = anthropic_body.as_object_mut() else {
        return Ok(());
    };
    let kind = out
        .get("tool_choice")
        .and_then(|c| c.get("type"))
        .and_then(Value::as_str);
    // None: the client's forced choice stands; Some(true): only the answer tool; Some(false):
    // any tool (`auto` or no choice), keeping `disable_parallel_tool_use`.
    let force_answer = match (out.contains_key("tools"), kind) {
        (true, Some("tool" | "any")) => None,
        (false, _) | (true, Some("none")) => Some(true),
        (true, _) => Some(false),
    };
    let choice = force_answer.map(|only| {
        let mut c = Map::new();
        if only {
            c.insert("type".into(), Value::from("tool"));
            c.insert("name".into(), Value::from(ANSWER_TOOL));
        } else {
            if let Some(given) = out.get("tool_choice").and_then(Value::as_object) {
                c.clone_from(given);
            }
            c.insert("type".into(), Value::from("any"));
        }
        c
    });
    if let Some(c) = choice {
        out.insert("tool_choice".into(), Value::Object(c));
    }
    match out.get_mut("tools").and_then(Value::as_array_mut) {
        Some(tools) => tools.push(tool),
        None => {
            out.insert("tools".into(), Value::Array(vec![tool]));
        }
    }
    Ok(())
}

/// The Anthropic tool for `response_format`, or None for `text` / no format. Shapes the
/// translation cannot honour are 400s naming the field, never a silent drop.
fn answer_tool(format: Option<&Value>) -> Result<Option<Value>, RelayError> {
    let Some(format) = format.filter(|f| !f.is_null()) else {
        return Ok(None);
    };
    let kind = format
        .as_object()
        .ok_or_else(|| invalid("'response_format' must be an object.", "response_format"))?
        .get("type")
        .and_then(Value::as_str);
    match kind {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({
            "name": ANSWER_TOOL,
            "description": "Give your final answer by calling this tool: its input is the answer, as a JSON object.",
            "input_schema": {"type": "object"},
        }))),
        Some("json_schema") => {
            let spec = format
                .get("json_schema")
                .filter(|s| s.is_object())
                .ok_or_else(|| {
                    invalid(
                        "Missing required parameter: 'response_format.json_schema'.",
                        "response_format.json_schema",
                    )
                })?;
            let schema = object_schema(spec.get("schema"))?;
            let mut description = String::from(
                "Give your final answer by calling this tool: its input is the answer, as JSON matching the input schema",
            );
            if let Some(name) = spec.get("name").and_then(Value::as_str) {
                description.push_str(&format!(" '{name}'"));
            }
            description.push('.');
            if let Some(d) = spec.get("description").and_then(Value::as_str) {
                description.push(' ');
                description.push_str(d);
            }
            Ok(Some(json!({
                "name": ANSWER_TOOL,
                "description": description,
                "input_schema": schema,
            })))
        }
        other => Err(invalid(
            format!(
                "Invalid value: '{}'. Supported values are: 'text', 'json_object' and 'json_schema'.",
                other.unwrap_or("")
            ),
            "response_format.type",
        )),
    }
}

/// A tool's input is an object, so only object schemas can ride as one; a schema without a
/// `type` (as zod's `.passthrough()` can give) is taken as an object schema.
fn object_schema(schema: Option<&Value>) -> Result<Value, RelayError> {
    const PARAM: &str = "response_format.json_schema.schema";
    let mut schema = match schema.filter(|s| !s.is_null()) {
        None => return Ok(json!({"type": "object"})),
        Some(Value::Object(s)) => s.clone(),
        Some(_) => return Err(invalid("The schema must be a JSON object.", PARAM)),
    };
    match schema.get("type") {
        None => {
            schema.insert("type".into(), json!("object"));
        }
        Some(t) if t == "object" => {}
        Some(_) => {
            return Err(invalid(
                "On Claude models the schema's root must be of type 'object'.",
                PARAM,
            ))
        }
    }
    Ok(Value::Object(schema))
}

fn invalid(message: impl Into<String>, param: &str) -> RelayError {
    RelayError::invalid(message, Some(param))
}

/// A non-stream chat completion translated from Claude, with the answer tool's call turned into
/// the message content. The call's `arguments` are the JSON the client asked for; text Claude
/// wrote alongside is dropped because the client parses `content` as that JSON. Without other
/// calls the turn ended by answering, so `finish_reason` is `stop`, as OpenAI reports it.
pub fn unwrap_answer(completion: &mut Value) {
    let Some(message) = completion.pointer_mut("/choices/0/message") else {
        return;
    };
    let Some(calls) = message.get_mut("tool_calls").and_then(Value::as_array_mut) else {
        return;
    };
    let Some(pos) = calls
        .iter()
        .position(|c| c.pointer("/function/name").and_then(Value::as_str) == Some(ANSWER_TOOL))
    else {
        return;
    };
    let call = calls.remove(pos);
    let others = !calls.is_empty();
    let answer = call
        .pointer("/function/arguments")
        .and_then(Value::as_str)
        .unwrap_or("{}")
        .to_string();
    if let Some(m) = message.as_object_mut() {
        // Rebuilt rather than `remove`d: map removal is code the worker bundle has nowhere else.
        let mut rebuilt = Map::new();
        for (k, v) in m.iter().filter(|(k, _)| others || *k != "tool_calls") {
            rebuilt.insert(k.clone(), v.clone());
        }
        rebuilt.insert("content".into(), Value::String(answer));
        *m = rebuilt;
    }
    if !others {
        if let Some(f) = completion.pointer_mut("/choices/0/finish_reason") {
            *f = json!("stop");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::translate::anthropic::{to_chat_completion, to_messages_request};

    fn translate(body: Value) -> Result<Value, RelayError> {
        to_messages_request(&body, "claude-x", 1024)
    }

    fn param(body: Value) -> Option<String> {
        match translate(body) {
            Err(RelayError::InvalidRequest { param, .. }) => param,
            other => Some(format!("not a 400: {other:?}")),
        }
    }

    const ASK: &str = "Solve 8x + 31 = 2";

    fn schema() -> Value {
        json!({"type":"object","properties":{"steps":{"type":"array","items":{"type":"string"}},
            "final_answer":{"type":"string"}},"required":["steps","final_answer"],
            "additionalProperties":false})
    }

    #[test]
    fn json_schema_becomes_the_one_forced_tool() {
        let out = translate(
            json!({"model":"m","messages":[{"role":"user","content":ASK}],
            "response_format":{"type":"json_schema","json_schema":{"name":"math_response",
                "description":"Worked steps.","strict":true,"schema":schema()}}}),
        )
        .unwrap();
        assert_eq!(
            out["tools"],
            json!([{"name":"json_response",
                "description":"Give your final answer by calling this tool: its input is the answer, as JSON matching the input schema 'math_response'. Worked steps.",
                "input_schema":schema()}])
        );
        assert_eq!(
            out["tool_choice"],
            json!({"type":"tool","name":"json_response"})
        );
        assert_eq!(out.get("response_format"), None, "never sent to Anthropic");
    }

    #[test]
    fn json_object_and_text() {
        let out = translate(
            json!({"model":"m","messages":[{"role":"user","content":ASK}],
            "response_format":{"type":"json_object"}}),
        )
        .unwrap();
        assert_eq!(out["tools"][0]["input_schema"], json!({"type":"object"}));
        assert_eq!(
            out["tool_choice"],
            json!({"type":"tool","name":"json_response"})
        );
        let text = translate(
            json!({"model":"m","messages":[{"role":"user","content":ASK}],
            "response_format":{"type":"text"}}),
        )
        .unwrap();
        assert_eq!((text.get("tools"), text.get("tool_choice")), (None, None));
    }

    #[test]
    fn with_client_tools_any_tool_is_forced_unless_one_was_named() {
        let tools = json!([{"type":"function","function":{"name":"lookup","parameters":{"type":"object"}}}]);
        let fmt = json!({"type":"json_object"});
        let rows = [
            (Value::Null, json!({"type":"any"})),
            (json!("auto"), json!({"type":"any"})),
            (json!("required"), json!({"type":"any"})),
            (json!("none"), json!({"type":"tool","name":"json_response"})),
            (
                json!({"type":"function","function":{"name":"lookup"}}),
                json!({"type":"tool","name":"lookup"}),
            ),
        ];
        for (choice, want) in rows {
            let out = translate(
                json!({"model":"m","messages":[{"role":"user","content":ASK}],
                "tools":tools,"tool_choice":choice,"response_format":fmt}),
            )
            .unwrap();
            assert_eq!(out["tool_choice"], want, "{choice}");
            let names: Vec<&str> = out["tools"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap())
                .collect();
            assert_eq!(names, ["lookup", "json_response"]);
        }
        let parallel_off = translate(
            json!({"model":"m","messages":[{"role":"user","content":ASK}],
            "tools":tools,"parallel_tool_calls":false,"response_format":fmt}),
        )
        .unwrap();
        assert_eq!(
            parallel_off["tool_choice"],
            json!({"type":"any","disable_parallel_tool_use":true})
        );
    }

    #[test]
    fn shapes_it_cannot_honour_are_400s_naming_the_param() {
        let msgs = json!([{"role":"user","content":ASK}]);
        let rows = [
            (json!("json"), "response_format"),
            (json!({"type":"yaml"}), "response_format.type"),
            (json!({"type":"json_schema"}), "response_format.json_schema"),
            (
                json!({"type":"json_schema","json_schema":{"name":"x","schema":{"type":"array"}}}),
                "response_format.json_schema.schema",
            ),
            (
                json!({"type":"json_schema","json_schema":{"name":"x","schema":[1]}}),
                "response_format.json_schema.schema",
            ),
        ];
        for (fmt, want) in rows {
            let body = json!({"model":"m","messages":msgs,"response_format":fmt});
            assert_eq!(param(body).as_deref(), Some(want), "{fmt}");
        }
        let reserved = json!({"model":"m","messages":msgs,"response_format":{"type":"json_object"},
            "tools":[{"type":"function","function":{"name":"json_response"}}]});
        assert_eq!(param(reserved).as_deref(), Some("tools[0].function.name"));
        // A schema without a type is an object schema.
        let untyped = translate(json!({"model":"m","messages":msgs,"response_format":
            {"type":"json_schema","json_schema":{"name":"x","schema":{"properties":{}}}}}))
        .unwrap();
        assert_eq!(
            untyped["tools"][0]["input_schema"],
            json!({"properties":{},"type":"object"})
        );
    }

    #[test]
    fn the_answer_call_comes_back_as_content_with_stop() {
        let claude = json!({"id":"msg_1","content":[
            {"type":"tool_use","id":"toolu_1","name":"json_response",
             "input":{"steps":["8x = -29"],"final_answer":"x = -29/8"}}],
            "stop_reason":"tool_use","usage":{"input_tokens":5,"output_tokens":9}});
        let mut out = to_chat_completion(&claude, "x", 1, "relay-sonnet", &[]);
        unwrap_answer(&mut out);
        let message = &out["choices"][0]["message"];
        assert_eq!(
            message,
            &json!({"role":"assistant","content":"{\"final_answer\":\"x = -29/8\",\"steps\":[\"8x = -29\"]}","refusal":null})
        );
        assert_eq!(out["choices"][0]["finish_reason"], "stop");
        // Alongside a real tool call: that call stays, and the turn still ends for tools.
        let both = json!({"content":[
            {"type":"tool_use","id":"toolu_1","name":"lookup","input":{}},
            {"type":"tool_use","id":"toolu_2","name":"json_response","input":{"a":1}}],
            "stop_reason":"tool_use"});
        let mut out = to_chat_completion(&both, "x", 1, "m", &[]);
        unwrap_answer(&mut out);
        assert_eq!(out["choices"][0]["message"]["content"], "{\"a\":1}");
        assert_eq!(
            out["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
            "lookup"
        );
        assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
        // No answer call (max_tokens hit first): left as it is.
        let cut = json!({"content":[{"type":"text","text":"{\"a\":"}],"stop_reason":"max_tokens"});
        let mut out = to_chat_completion(&cut, "x", 1, "m", &[]);
        let before = out.clone();
        unwrap_answer(&mut out);
        assert_eq!(out, before);
        assert!(wants_json(Some(&json!({"type":"json_schema"}))));
        assert!(!wants_json(Some(&json!({"type":"text"}))));
        assert!(!wants_json(None));
    }
}
