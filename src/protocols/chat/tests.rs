//! Tests for Chat request parsing and validation.

use super::*;

fn err(body: &str) -> RelayError {
    parse(body.as_bytes()).unwrap_err()
}

#[test]
fn reads_fields() {
    let body = br#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"x"}}]}],"stream":true,"stream_options":{"include_usage":true}}"#;
    let r = parse(body).unwrap();
    assert_eq!(r.model, "m");
    assert!(r.stream);
    assert!(r.client_wants_usage);
    assert_eq!(r.prompt_chars, 10);
    assert_eq!(r.last_user_text, "hi");
}

#[test]
fn long_messages_are_counted_not_copied() {
    let long = "line\n".repeat(100_000);
    let body = serde_json::json!({"model":"m","messages":[
            {"role":"user","content":long},
            {"role":"assistant","content":[{"type":"text","text":"ab"},{"type":"image_url"},"odd",{"type":"text","text":"cd"}]},
            {"role":"tool","content":{"not":"text"}},
            {"role":"user","content":[{"type":"text","text":"  hi"}, {"type":"text","text":"there"}]}]})
        .to_string();
    let r = parse(body.as_bytes()).unwrap();
    // 500,000 + "ab\ncd" (5) + "  hi\nthere" (10)
    assert_eq!(r.prompt_chars, 500_015);
    assert_eq!(r.last_user_text, "hi\nthere");
    let one =
        serde_json::json!({"model":"m","messages":[{"role":"user","content":long}]}).to_string();
    let r = parse(one.as_bytes()).unwrap();
    assert_eq!(r.last_user_text.chars().count(), MAX_ECHO_CHARS);
}

#[test]
fn errors_name_the_param() {
    assert_eq!(
        err("{nope"),
        RelayError::invalid(
            "We could not parse the JSON body of your request. The body must be a JSON object.",
            None
        )
    );
    assert_eq!(
        err("[1]"),
        err("{nope"),
        "a non-object body is the same parse error"
    );
    assert_eq!(
        err(r#"{"messages":[{"role":"user","content":"x"}]}"#),
        RelayError::invalid("You must provide a model parameter.", Some("model"))
    );
    assert_eq!(
        err(r#"{"model":5,"messages":[]}"#),
        RelayError::invalid(
            "Invalid type for 'model': expected a string, but got an integer instead.",
            Some("model")
        )
    );
    assert_eq!(
        err(r#"{"model":"m"}"#),
        RelayError::invalid("Missing required parameter: 'messages'.", Some("messages"))
    );
    assert_eq!(
        err(r#"{"model":"m","messages":[]}"#),
        RelayError::invalid(
            "'messages' must contain at least one item.",
            Some("messages")
        )
    );
    assert_eq!(
        err(r#"{"model":"m","messages":"hi"}"#),
        RelayError::invalid(
            "Invalid type for 'messages': expected an array, but got a string instead.",
            Some("messages")
        )
    );
    assert_eq!(
        err(r#"{"model":"m","messages":[{"content":"x"}]}"#),
        RelayError::invalid(
            "Missing required parameter: 'messages[0].role'.",
            Some("messages[0].role")
        )
    );
    assert_eq!(
        err(r#"{"model":"m","messages":[{"role":"user"}],"stream":"yes"}"#),
        RelayError::invalid(
            "Invalid type for 'stream': expected a boolean, but got a string instead.",
            Some("stream")
        )
    );
}

#[test]
fn a_repeated_key_is_refused_on_every_endpoint() {
    // serde would read the first `model`, the provider the last: refuse instead.
    let body = br#"{"model":"gpt-cheap","messages":[{"role":"user","content":"x"}],"model":"gpt-forbidden-expensive"}"#;
    let want = RelayError::invalid(
        "Duplicate key 'model' in the request body: each key may appear only once in an object.",
        Some("model"),
    );
    assert_eq!(parse(body).unwrap_err(), want);
    let legacy = br#"{"model":"a","prompt":"x","model":"b"}"#;
    assert_eq!(parse_for(legacy, Endpoint::Completions).unwrap_err(), want);
    let embed = br#"{"model":"a","input":"x","model":"b"}"#;
    assert_eq!(parse_for(embed, Endpoint::Embeddings).unwrap_err(), want);
    let options = br#"{"model":"m","messages":[{"role":"user"}],"stream":true,"stream_options":{"include_usage":true,"include_usage":false}}"#;
    assert_eq!(
            parse(options).unwrap_err(),
            RelayError::invalid(
                "Duplicate key 'stream_options.include_usage' in the request body: each key may appear only once in an object.",
                Some("stream_options.include_usage"),
            )
        );
    let twice = br#"{"model":"m","messages":[{"role":"user"}],"stream_options":{},"stream_options":{"include_usage":true}}"#;
    assert!(
        matches!(parse(twice), Err(RelayError::InvalidRequest { param: Some(p), .. }) if p == "stream_options")
    );
}

#[test]
fn model_is_capped_before_it_reaches_the_row() {
    let at_cap = format!(
        r#"{{"model":"{}","messages":[{{"role":"user"}}]}}"#,
        "m".repeat(MAX_MODEL_CHARS)
    );
    assert_eq!(
        parse(at_cap.as_bytes()).unwrap().model.len(),
        MAX_MODEL_CHARS
    );
    let over = format!(
        r#"{{"model":"{}","input":"x"}}"#,
        "é".repeat(MAX_MODEL_CHARS + 1)
    );
    assert_eq!(
        parse_for(over.as_bytes(), Endpoint::Embeddings).unwrap_err(),
        RelayError::invalid("'model' must be at most 256 characters.", Some("model"))
    );
}

#[test]
fn legacy_and_embeddings_bodies() {
    let c = parse_for(
        br#"{"model":"m","prompt":"abcd","stream":true}"#,
        Endpoint::Completions,
    )
    .unwrap();
    assert!(c.stream);
    assert_eq!(c.prompt_chars, 4);
    let e = parse_for(
        br#"{"model":"m","input":["ab","cd"],"encoding_format":"base64"}"#,
        Endpoint::Embeddings,
    )
    .unwrap();
    assert_eq!(e.prompt_chars, 4);
    assert_eq!(
        parse_for(br#"{"model":"m"}"#, Endpoint::Embeddings).unwrap_err(),
        RelayError::invalid("Missing required parameter: 'input'.", Some("input"))
    );
    assert_eq!(
        parse_for(
            br#"{"model":"m","input":"x","stream":true}"#,
            Endpoint::Embeddings
        )
        .unwrap_err(),
        RelayError::invalid("Embeddings cannot be streamed.", Some("stream"))
    );
    assert!(parse_for(br#"{"model":"m","prompt":5}"#, Endpoint::Completions).is_err());
}

#[test]
fn moderation_bodies() {
    // No `model`: OpenAI's default, named explicitly upstream so the provider reads what
    // the relay authorised.
    let body = br#"{"input":["ab",{"type":"text","text":"cde"},{"type":"image_url","image_url":{"url":"x"}}]}"#;
    let m = parse_for(body, Endpoint::Moderations).unwrap();
    assert_eq!(m.model, DEFAULT_MODERATION_MODEL);
    assert_eq!(m.prompt_chars, 5);
    let up: Value =
        serde_json::from_slice(&m.upstream_body(body, DEFAULT_MODERATION_MODEL, true, &[]))
            .unwrap();
    assert_eq!(up["model"], DEFAULT_MODERATION_MODEL);
    assert_eq!(up["input"][1]["text"], "cde");
    let named = br#"{"model":"text-moderation-stable","input":"x"}"#;
    let m = parse_for(named, Endpoint::Moderations).unwrap();
    assert_eq!(m.model, "text-moderation-stable");
    assert_eq!(
        m.upstream_body(named, "text-moderation-stable", true, &[]),
        named.to_vec()
    );
    assert_eq!(
        parse_for(br#"{"input":"x","stream":true}"#, Endpoint::Moderations).unwrap_err(),
        RelayError::invalid("Moderations cannot be streamed.", Some("stream"))
    );
    assert_eq!(
        parse_for(br#"{"model":"m"}"#, Endpoint::Moderations).unwrap_err(),
        RelayError::invalid("Missing required parameter: 'input'.", Some("input"))
    );
    // Everywhere else `model` stays required.
    assert!(parse_for(br#"{"input":"x"}"#, Endpoint::Embeddings).is_err());
}

#[test]
fn body_untouched_when_nothing_changes() {
    let body =
        br#"{ "model" : "m", "messages":[{"role":"user","content":"x"}], "x_cursor":{"a":1} }"#;
    let r = parse(body).unwrap();
    assert_eq!(r.upstream_body(body, "m", true, &[]), body.to_vec());
}

#[test]
fn injects_usage_keeping_order_and_bytes() {
    let body =
        br#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true,"z":{"b": 1}}"#;
    let r = parse(body).unwrap();
    let out = String::from_utf8(r.upstream_body(body, "up", true, &[])).unwrap();
    assert_eq!(
        out,
        r#"{"model":"up","messages":[{"role":"user","content":"x"}],"stream":true,"z":{"b": 1},"stream_options":{"include_usage":true}}"#
    );
    let body2 = br#"{"model":"m","messages":[{"role":"user"}],"stream":true,"stream_options":{"include_obfuscation":false}}"#;
    let r2 = parse(body2).unwrap();
    let out2: Value = serde_json::from_slice(&r2.upstream_body(body2, "m", true, &[])).unwrap();
    assert_eq!(
        out2["stream_options"],
        serde_json::json!({"include_obfuscation":false,"include_usage":true})
    );
    // Not streaming, or provider that refuses stream_options: nothing injected.
    assert_eq!(r2.upstream_body(body2, "m", false, &[]), body2.to_vec());
}

#[test]
fn drops_refused_fields_keeping_the_rest_byte_for_byte() {
    let body = br#"{"model":"m","reasoning_effort":"high","messages":[{"role":"user","content":"x"}],"z":{"b": 1}}"#;
    let r = parse(body).unwrap();
    let drop = vec!["reasoning_effort".to_string()];
    let out = String::from_utf8(r.upstream_body(body, "m", false, &drop)).unwrap();
    assert_eq!(
        out,
        r#"{"model":"m","messages":[{"role":"user","content":"x"}],"z":{"b": 1}}"#
    );
    // Nothing to drop: the client's bytes, untouched.
    let plain = br#"{"model":"m", "messages":[{"role":"user","content":"x"}]}"#;
    let r = parse(plain).unwrap();
    assert_eq!(r.upstream_body(plain, "m", false, &drop), plain.to_vec());
}
