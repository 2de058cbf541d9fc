//! Tests for the O→A request mapping.

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
            "metadata":{"user_id":sha256_hex("u_42")},
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
    let mid = map(json!({"model":"m","temperature":0.3,"max_tokens":9,"messages":[user("hi")]}));
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
