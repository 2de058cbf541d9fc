//! Tests for Cursor's two body shapes.

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
