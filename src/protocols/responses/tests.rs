//! Request mapping vectors (Responses → Chat), refusals, usage and the non-stream answer.

use serde_json::{json, Value};

use super::answer::{from_chat, Skeleton};
use super::*;

fn req(body: Value) -> Request {
    parse(body.to_string().as_bytes()).unwrap()
}

fn chat(body: Value) -> Value {
    req(body).to_chat().unwrap()
}

fn chat_err(body: Value) -> RelayError {
    req(body).to_chat().unwrap_err()
}

#[test]
fn string_input_and_settings() {
    let out = chat(json!({
        "model": "m", "instructions": "Be brief.", "input": "Hi",
        "stream": true, "store": true, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k", "service_tier": "auto", "truncation": "auto",
        "max_output_tokens": 64, "temperature": 0.2, "top_p": 0.9,
        "parallel_tool_calls": false, "tool_choice": "required",
        "reasoning": {"effort": "low", "summary": "auto"},
        "text": {"verbosity": "low", "format": {"type": "json_object"}},
    }));
    assert_eq!(
        out,
        json!({
            "model": "m", "stream": true, "temperature": 0.2, "top_p": 0.9,
            "parallel_tool_calls": false, "tool_choice": "required",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi"}
            ],
            "max_completion_tokens": 64, "reasoning_effort": "low",
            "verbosity": "low", "response_format": {"type": "json_object"},
        })
    );
}

#[test]
fn item_array_with_tool_calls_outputs_and_images() {
    let out = chat(json!({
        "model": "m",
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Rules."}]},
            {"role": "user", "content": [
                {"type": "input_text", "text": "What is here?"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"}
            ]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "ls", "arguments": "{\"dir\":\".\"}"},
            {"type": "function_call", "id": "fc_2", "call_id": "call_2", "name": "cat", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "hello"}]},
        ],
        "tools": [
            {"type": "function", "name": "ls", "description": "List", "parameters": {"type": "object"}, "strict": false},
            {"type": "function", "name": "cat", "parameters": {"type": "object"}},
        ],
        "tool_choice": {"type": "function", "name": "ls"},
    }));
    assert_eq!(
        out,
        json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": [{"type": "text", "text": "Rules."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is here?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
                ]},
                {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}], "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": "{\"dir\":\".\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "cat", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
                {"role": "tool", "tool_call_id": "call_2", "content": "hello"}
            ],
            "tools": [
                {"type": "function", "function": {"name": "ls", "description": "List", "parameters": {"type": "object"}, "strict": false}},
                {"type": "function", "function": {"name": "cat", "parameters": {"type": "object"}}}
            ],
            "tool_choice": {"type": "function", "function": {"name": "ls"}},
        })
    );
}

#[test]
fn custom_tools_and_json_schema() {
    let out = chat(json!({
        "model": "m",
        "input": [
            {"role": "user", "content": "patch it"},
            {"type": "custom_tool_call", "call_id": "call_9", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "call_9", "output": "Done"},
        ],
        "tools": [{"type": "custom", "name": "apply_patch", "description": "Patch files",
                   "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}}],
        "text": {"format": {"type": "json_schema", "name": "answer", "strict": true,
                            "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}},
    }));
    assert_eq!(
        out,
        json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "patch it"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_9", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}}
                ]},
                {"role": "tool", "tool_call_id": "call_9", "content": "Done"}
            ],
            "tools": [{"type": "custom", "custom": {"name": "apply_patch", "description": "Patch files",
                "format": {"type": "grammar", "grammar": {"definition": "start: x", "syntax": "lark"}}}}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "strict": true,
                "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}},
        })
    );
}

#[test]
fn state_refused_naming_the_param() {
    let e = chat_err(json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}));
    assert_eq!(
        e,
        RelayError::invalid(
            "'previous_response_id' is not supported for model 'm': the relay keeps no previous \
             responses for providers other than OpenAI. Send the full conversation in 'input'.",
            Some("previous_response_id")
        )
    );
    let e = chat_err(json!({"model": "m", "input": "x", "conversation": "conv_1"}));
    assert_eq!(
        e.openai_body(),
        RelayError::invalid(
            "'conversation' is not supported for model 'm': the relay keeps no conversations \
             for providers other than OpenAI. Send the full conversation in 'input'.",
            Some("conversation")
        )
        .openai_body()
    );
    let e = chat_err(json!({"model": "m", "input": "x", "background": true}));
    assert!(matches!(e, RelayError::InvalidRequest { param: Some(p), .. } if p == "background"));
    // null means absent, as everywhere in the API.
    assert!(
        req(json!({"model": "m", "input": "x", "previous_response_id": null}))
            .to_chat()
            .is_ok()
    );
}

#[test]
fn hosted_tools_are_left_out() {
    // What Codex offers by default besides its functions.
    let out = chat(json!({"model": "m", "input": "x", "tools": [
        {"type": "function", "name": "f"},
        {"type": "web_search"},
        {"type": "namespace", "name": "multi_agent_v1", "tools": []},
    ]}));
    assert_eq!(
        out["tools"],
        json!([{"type": "function", "function": {"name": "f"}}])
    );
    let only_hosted = chat(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}));
    assert_eq!(
        only_hosted.get("tools"),
        None,
        "an empty tools array is refused by some servers"
    );
    let e = chat_err(
        json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}],
        "tool_choice": {"type": "web_search"}}),
    );
    assert!(
        matches!(e, RelayError::InvalidRequest { param: Some(p), .. } if p == "tool_choice.type")
    );
}

#[test]
fn malformed_items_are_400_with_param() {
    let cases = [
        (json!({"model": "m"}), "input"),
        (json!({"model": "m", "input": []}), "input"),
        (json!({"model": "m", "input": 5}), "input"),
        (json!({"model": "m", "input": ["hi"]}), "input[0]"),
        (
            json!({"model": "m", "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
            "input[0].call_id",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]}),
            "input[0].output",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}),
            "input[1].role",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}),
            "input[0].type",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "function"}]}),
            "tools[0].name",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}, {"type": "function"}]}),
            "tools[1].name",
        ),
        (
            json!({"model": "m", "input": "x", "text": {"format": {"type": "yaml"}}}),
            "text.format.type",
        ),
    ];
    for (body, param) in cases {
        match req(body.clone()).to_chat() {
            Err(RelayError::InvalidRequest { param: Some(p), .. }) => {
                assert_eq!(p, param, "{body}")
            }
            other => panic!("{body}: {other:?}"),
        }
    }
    let top = [
        (json!({"input": "x"}), "model"),
        (json!({"model": 5, "input": "x"}), "model"),
        (
            json!({"model": "m", "input": "x", "stream": "yes"}),
            "stream",
        ),
    ];
    for (body, param) in top {
        match parse(body.to_string().as_bytes()) {
            Err(RelayError::InvalidRequest { param: Some(p), .. }) => assert_eq!(p, param),
            other => panic!("{body}: {other:?}"),
        }
    }
    // The relay and OpenAI must read the same `model`: a repeated key is refused, naming it.
    match parse(br#"{"model":"cheap","input":"x","model":"dear"}"#) {
        Err(RelayError::InvalidRequest { param: Some(p), .. }) => assert_eq!(p, "model"),
        other => panic!("{other:?}"),
    }
    match parse(br#"{"model":"m","input":[{"role":"user","content":"a","role":"system"}]}"#) {
        Err(RelayError::InvalidRequest { param: Some(p), .. }) => assert_eq!(p, "input[0].role"),
        other => panic!("{other:?}"),
    }
    let long = format!(r#"{{"model":"{}","input":"x"}}"#, "m".repeat(257));
    assert_eq!(
        parse(long.as_bytes()).unwrap_err(),
        RelayError::invalid("'model' must be at most 256 characters.", Some("model"))
    );
    assert!(parse(format!(r#"{{"model":"{}","input":"x"}}"#, "m".repeat(256)).as_bytes()).is_ok());
    assert_eq!(
        parse(b"[1]").unwrap_err(),
        RelayError::invalid(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            None
        )
    );
}

#[test]
fn prompt_estimate_and_echo_text() {
    let r = req(json!({"model": "m", "instructions": "abc", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "hello"}]},
        {"type": "function_call_output", "call_id": "c", "output": "xy"},
        {"role": "user", "content": "last"},
    ]}));
    assert_eq!(r.prompt_chars, 3 + 5 + 2 + 4);
    assert_eq!(r.last_user_text, "last");
}

#[test]
fn usage_both_ways() {
    let usage = json!({"input_tokens": 36, "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 87, "output_tokens_details": {"reasoning_tokens": 9}, "total_tokens": 123});
    let t = tokens_from_usage(&usage).unwrap();
    assert_eq!(
        t,
        Tokens {
            prompt: 36,
            completion: 87,
            cached: 4,
            cache_write: 0,
            reasoning: 9
        }
    );
    assert_eq!(usage_json(&t), usage);
    assert_eq!(tokens_from_usage(&Value::Null), None);
}

fn skeleton() -> Skeleton {
    Skeleton::new(
        "abc",
        1700000000,
        &req(
            json!({"model": "alias", "input": "x", "store": true, "tools": [{"type": "function", "name": "ls"}]}),
        ),
    )
}

#[test]
fn answer_from_chat_text() {
    let completion = json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "Hello.", "refusal": null}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11,
                  "prompt_tokens_details": {"cached_tokens": 3}}});
    let r = from_chat(&completion, &skeleton());
    assert_eq!(
        r,
        json!({
            "id": "resp_abc", "object": "response", "created_at": 1700000000, "status": "completed",
            "background": false, "error": null, "incomplete_details": null, "instructions": null,
            "max_output_tokens": null, "metadata": {}, "model": "alias",
            "output": [{"id": "msg_abc_0", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello.", "annotations": [], "logprobs": []}]}],
            "parallel_tool_calls": true, "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null}, "store": false, "temperature": 1.0,
            "text": {"format": {"type": "text"}}, "tool_choice": "auto",
            "tools": [{"type": "function", "name": "ls"}], "top_p": 1.0, "truncation": "disabled",
            "usage": {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": 2,
                      "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 11},
            "user": null,
        })
    );
}

#[test]
fn answer_from_chat_tool_calls_refusal_and_length() {
    let completion = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": null,
        "tool_calls": [
            {"id": "call_A", "type": "function", "function": {"name": "ls", "arguments": "{\"d\":1}"}},
            {"id": "call_B", "type": "custom", "custom": {"name": "apply_patch", "input": "P"}}
        ]}, "finish_reason": "tool_calls"}]});
    let r = from_chat(&completion, &skeleton());
    assert_eq!(r["status"], "completed");
    assert_eq!(r["usage"], Value::Null);
    assert_eq!(
        r["output"],
        json!([
            {"id": "fc_abc_0", "type": "function_call", "status": "completed", "call_id": "call_A",
             "name": "ls", "arguments": "{\"d\":1}"},
            {"id": "ctc_abc_1", "type": "custom_tool_call", "status": "completed", "call_id": "call_B",
             "name": "apply_patch", "input": "P"}
        ])
    );
    let refused = json!({"choices": [{"message": {"role": "assistant", "content": null,
        "refusal": "I can't."}, "finish_reason": "stop"}]});
    assert_eq!(
        from_chat(&refused, &skeleton())["output"][0]["content"],
        json!([{"type": "refusal", "refusal": "I can't."}])
    );
    let cut = json!({"choices": [{"message": {"role": "assistant", "content": "Hel"}, "finish_reason": "length"}]});
    let r = from_chat(&cut, &skeleton());
    assert_eq!(r["status"], "incomplete");
    assert_eq!(
        r["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
}
