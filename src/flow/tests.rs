//! The flow's decisions driven with fake targets and fake answers: every branch, no I/O.

use serde_json::json;

use super::attempts::{failure, Attempts, Call, Client, Plan, Step, MAX_RETRY_WAIT_MS};
use super::row::{self, Answer};
use super::targets::{self, Messages};
use crate::config::Config;
use crate::http::error::RelayError;
use crate::metering::usage::{Outcome, Tokens, UsageRecord, UsageSource};
use crate::providers::models::{Provider, Target};

fn target(name: &str, provider: Provider) -> Target {
    Target {
        provider,
        spec: None,
        upstream_model: name.to_string(),
        stream_usage: true,
        drop_params: Vec::new(),
    }
}

fn openai(names: &[&str]) -> Vec<Target> {
    names.iter().map(|n| target(n, Provider::OpenAi)).collect()
}

/// Sends each target's model name as the body; refuses to build for a model named "bad".
struct Fake;

impl Plan for Fake {
    fn reservation(&self) -> (u64, Option<u64>) {
        (0, None)
    }

    fn request(&self, t: &Target, _: &Config) -> Result<(Vec<u8>, &'static str), RelayError> {
        if t.upstream_model == "bad" {
            return Err(RelayError::invalid("cannot translate", Some("tools")));
        }
        Ok((t.upstream_model.clone().into_bytes(), "/chat/completions"))
    }
}

/// An upstream answer of `status` as the plan reads it.
fn status(t: &Target, status: u16, retry_after: Option<&str>) -> RelayError {
    failure(
        Client::OpenAi,
        t,
        status,
        b"{}".to_vec(),
        retry_after.map(str::to_string),
    )
}

/// What a driver sees: each call as `model#attempt`, each wait as `wait N`, then the end.
#[derive(Debug, PartialEq)]
enum Seen {
    Call(String, u32),
    Wait(u64),
}

/// Drives `targets` answering each call with the next of `answers` (`None`: served), until
/// the plan ends; returns what was done and the error, if it gave up. Bounded by `answers`.
fn drive(
    targets: &[Target],
    answers: &[Option<(u16, Option<&str>)>],
) -> (Vec<Seen>, Option<RelayError>) {
    let config = Config::default();
    let mut flow = Attempts::new(targets, "gpt-x");
    let mut step = flow.start(&Fake, &config);
    let mut seen = Vec::new();
    let mut answers = answers.iter();
    for _ in 0..32 {
        match step {
            Step::Call(Call {
                target,
                body,
                attempt,
                ..
            }) => {
                assert_eq!(body, target.upstream_model.as_bytes());
                seen.push(Seen::Call(target.upstream_model.clone(), attempt));
                match answers.next() {
                    Some(Some((code, retry_after))) => {
                        let e = status(target, *code, *retry_after);
                        step = flow.failed(e, &Fake, &config);
                    }
                    _ => return (seen, None),
                }
            }
            Step::Wait { ms } => {
                seen.push(Seen::Wait(ms));
                step = flow.waited();
            }
            Step::GiveUp(e) => return (seen, Some(e)),
        }
    }
    panic!("the plan did not end: {seen:?}");
}

fn call(model: &str, attempt: u32) -> Seen {
    Seen::Call(model.to_string(), attempt)
}

#[test]
fn a_served_first_call_is_one_attempt() {
    let (seen, err) = drive(&openai(&["a", "b"]), &[None]);
    assert_eq!(seen, vec![call("a", 1)]);
    assert_eq!(err, None);
}

#[test]
fn a_5xx_is_retried_on_the_same_target_after_a_backoff() {
    let (seen, err) = drive(&openai(&["a", "b"]), &[Some((500, None)), None]);
    assert_eq!(seen, vec![call("a", 1), Seen::Wait(100), call("a", 2)]);
    assert_eq!(err, None);
}

#[test]
fn a_429_is_retried_and_its_retry_after_is_the_wait() {
    let (seen, _) = drive(&openai(&["a"]), &[Some((429, Some(" 2 "))), None]);
    assert_eq!(seen, vec![call("a", 1), Seen::Wait(2_000), call("a", 2)]);
}

#[test]
fn a_retry_after_past_the_longest_wait_moves_to_the_next_target() {
    let secs = (MAX_RETRY_WAIT_MS / 1000 + 1).to_string();
    let (seen, _) = drive(&openai(&["a", "b"]), &[Some((429, Some(&secs))), None]);
    assert_eq!(seen, vec![call("a", 1), call("b", 2)]);
}

#[test]
fn a_retry_after_that_is_no_number_of_seconds_gets_the_backoff() {
    let date = "Wed, 21 Oct 2015 07:28:00 GMT";
    let (seen, _) = drive(&openai(&["a"]), &[Some((429, Some(date))), None]);
    assert_eq!(seen, vec![call("a", 1), Seen::Wait(100), call("a", 2)]);
    let huge = "99999999999999999999";
    let (seen, _) = drive(&openai(&["a", "b"]), &[Some((429, Some(huge))), None]);
    assert_eq!(seen, vec![call("a", 1), Seen::Wait(100), call("a", 2)]);
}

#[test]
fn a_target_that_keeps_failing_falls_back_to_the_next() {
    let answers = [Some((502, None)), Some((503, None)), None];
    let (seen, err) = drive(&openai(&["a", "b"]), &answers);
    let want = vec![call("a", 1), Seen::Wait(100), call("a", 2), call("b", 3)];
    assert_eq!(seen, want);
    assert_eq!(err, None);
}

#[test]
fn the_relays_own_key_refused_skips_the_target_without_retrying() {
    for code in [401, 403] {
        let (seen, err) = drive(&openai(&["a", "b"]), &[Some((code, None)), None]);
        assert_eq!(seen, vec![call("a", 1), call("b", 2)], "status {code}");
        assert_eq!(err, None);
    }
    let (seen, err) = drive(&openai(&["a"]), &[Some((401, None))]);
    assert_eq!(seen, vec![call("a", 1)]);
    assert_eq!(err, Some(RelayError::UpstreamAuth));
}

#[test]
fn an_exhausted_quota_skips_the_target() {
    let t = openai(&["a", "b"]);
    let quota = br#"{"error":{"code":"insufficient_quota"}}"#.to_vec();
    let e = failure(Client::OpenAi, &t[0], 429, quota, None);
    assert_eq!(e, RelayError::UpstreamExhausted { quota: true });
    let config = Config::default();
    let mut flow = Attempts::new(&t, "m");
    assert!(matches!(flow.start(&Fake, &config), Step::Call(c) if c.attempt == 1));
    assert!(matches!(flow.failed(e, &Fake, &config), Step::Call(c) if c.target == &t[1]));
}

#[test]
fn a_request_the_provider_refuses_is_not_retried_anywhere() {
    for code in [400, 404, 413, 422] {
        let (seen, err) = drive(&openai(&["a", "b"]), &[Some((code, None)), None]);
        assert_eq!(seen, vec![call("a", 1)], "status {code}");
        assert!(
            matches!(err, Some(RelayError::UpstreamRejected { status, .. }) if status == code),
            "status {code}: {err:?}"
        );
    }
}

#[test]
fn attempts_stop_at_the_cap_with_the_last_failure() {
    let answers = [Some((500, None)); 6];
    let (seen, err) = drive(&openai(&["a", "b", "c"]), &answers);
    let want = vec![
        call("a", 1),
        Seen::Wait(100),
        call("a", 2),
        call("b", 3),
        Seen::Wait(100),
        call("b", 4),
    ];
    assert_eq!(seen, want);
    assert_eq!(
        err,
        Some(RelayError::UpstreamUnavailable(
            "upstream status 500".into()
        ))
    );
}

#[test]
fn when_every_target_fails_the_last_failure_is_the_answer() {
    let answers = [Some((401, None)), Some((429, Some("60")))];
    let (seen, err) = drive(&openai(&["a", "b"]), &answers);
    assert_eq!(seen, vec![call("a", 1), call("b", 2)]);
    assert!(matches!(
        err,
        Some(RelayError::UpstreamRejected { status: 429, retry_after: Some(ref r), .. }) if r == "60"
    ));
}

#[test]
fn no_target_is_model_not_found() {
    let (seen, err) = drive(&[], &[]);
    assert!(seen.is_empty());
    assert_eq!(err, Some(RelayError::ModelNotFound("gpt-x".into())));
}

#[test]
fn a_body_that_cannot_be_built_for_a_target_is_the_error() {
    let (seen, err) = drive(&openai(&["bad", "b"]), &[]);
    assert!(seen.is_empty());
    assert!(matches!(err, Some(RelayError::InvalidRequest { .. })));
    // Reached only on fallback: the earlier failure gives way to it, as before.
    let (seen, err) = drive(&openai(&["a", "bad"]), &[Some((401, None))]);
    assert_eq!(seen, vec![call("a", 1)]);
    assert!(matches!(err, Some(RelayError::InvalidRequest { .. })));
}

#[test]
fn a_claude_target_reads_anthropic_errors() {
    let t = target("claude", Provider::Anthropic);
    let overloaded = br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#;
    let e = failure(
        Client::OpenAi,
        &t,
        529,
        overloaded.to_vec(),
        Some("1".into()),
    );
    assert!(super::attempts::retryable(&e), "{e:?}");
    let limited = br#"{"type":"error","error":{"type":"rate_limit_error","message":"x"}}"#;
    let e = failure(Client::OpenAi, &t, 429, limited.to_vec(), Some("1".into()));
    assert!(
        matches!(e, RelayError::UpstreamRejected { status: 429, retry_after: Some(ref r), .. } if r == "1"),
        "{e:?}"
    );
    let (seen, _) = drive(&[t], &[Some((401, None))]);
    assert_eq!(seen, vec![call("claude", 1)]);
}

#[test]
fn retryable_and_skip_rules() {
    use super::attempts::{retryable, skip_target};
    assert!(retryable(&RelayError::UpstreamTimeout));
    assert!(retryable(&RelayError::UpstreamExhausted { quota: false }));
    assert!(!retryable(&RelayError::UpstreamExhausted { quota: true }));
    assert!(skip_target(&RelayError::UpstreamExhausted { quota: true }));
    assert!(!skip_target(&RelayError::UpstreamTimeout));
    assert!(!retryable(&RelayError::ModelNotFound("m".into())));
    assert!(!skip_target(&RelayError::ModelNotFound("m".into())));
}

fn rec() -> UsageRecord {
    UsageRecord::begin("req_1", "POST", "/v1/chat/completions", "t".into())
}

#[test]
fn the_row_names_each_attempt_and_the_key() {
    let mut r = rec();
    let t = target("gpt-4o", Provider::OpenAi);
    row::attempting(&mut r, &t, 3);
    assert_eq!(r.provider.as_deref(), Some("relay"));
    assert_eq!(r.model_upstream.as_deref(), Some("gpt-4o"));
    assert_eq!(r.attempts, 3);
    row::echoed(&mut r);
    assert_eq!(
        r.model_upstream.as_deref(),
        Some(crate::providers::models::ECHO_MODEL)
    );
    row::requested(&mut r, "m", true);
    assert_eq!((r.model_requested.as_deref(), r.stream), (Some("m"), true));
}

#[test]
fn a_refusal_keeps_the_usage_its_body_reports_and_its_request_id() {
    let mut r = rec();
    let body = br#"{"error":{},"usage":{"prompt_tokens":7,"completion_tokens":0}}"#;
    row::rejected(&mut r, Some("up_1".into()), body);
    assert_eq!(r.upstream_request_id.as_deref(), Some("up_1"));
    assert_eq!(r.tokens.prompt, 7);
    assert_eq!(r.usage_source, UsageSource::Upstream);
    row::rejected(&mut r, None, b"not json");
    assert_eq!(r.upstream_request_id, None);
    assert_eq!(r.tokens.prompt, 7);
}

#[test]
fn the_row_of_a_failed_request() {
    // Refused before any provider served it: no tokens, nothing estimated.
    let mut r = rec();
    row::failed(&mut r, &RelayError::ModelNotFound("m".into()));
    assert_eq!(r.outcome, Outcome::RelayError);
    assert_eq!(r.error_code.as_deref(), Some("model_not_found"));
    assert_eq!(r.usage_source, UsageSource::None);
    // Served, then failed: the prompt estimate stands, said to be one.
    let mut r = rec();
    row::served(&mut r, 400);
    assert_eq!(r.tokens, Tokens::estimated(400, 0));
    row::failed(&mut r, &RelayError::UpstreamTimeout);
    assert_eq!(r.outcome, Outcome::UpstreamError);
    assert_eq!(r.error_code.as_deref(), Some("timeout"));
    assert_eq!(r.usage_source, UsageSource::Estimated);
    // A provider's own count is kept as its own.
    let mut r = rec();
    row::upstream_usage(&mut r, Tokens::from_openai(&json!({"prompt_tokens": 3})));
    row::failed(&mut r, &RelayError::UpstreamStreamEnded);
    assert_eq!(r.outcome, Outcome::Truncated);
    assert_eq!(r.usage_source, UsageSource::Upstream);
    row::close(&mut r, 502, 42);
    assert_eq!((r.status, r.duration_ms), (502, 42));
}

#[test]
fn the_row_of_a_chat_answer() {
    let answer = Answer::Chat {
        prompt_chars: 40,
        stream: false,
    };
    let mut r = rec();
    let with_usage = json!({"choices":[{"finish_reason":"stop"}],
        "usage":{"prompt_tokens":5,"completion_tokens":2}});
    answer.read(&with_usage, &mut r).unwrap();
    assert_eq!((r.tokens.prompt, r.tokens.completion), (5, 2));
    assert_eq!(r.usage_source, UsageSource::Upstream);
    assert_eq!(r.finish_reason.as_deref(), Some("stop"));

    let mut r = rec();
    let bare = json!({"choices":[{"message":{"content":"abcdefgh"}}]});
    answer.read(&bare, &mut r).unwrap();
    assert_eq!(r.tokens, Tokens::estimated(40, 8));
    assert_eq!(r.usage_source, UsageSource::Estimated);

    let mut r = rec();
    row::served(&mut r, 40);
    let error = json!({"error":{"message":"no"},"usage":{"prompt_tokens":1}});
    let e = answer.read(&error, &mut r).unwrap_err();
    assert!(matches!(e, RelayError::UpstreamUnavailable(_)));
    assert_eq!(r.tokens.prompt, 1);
    let mut r = rec();
    row::served(&mut r, 40);
    answer.read(&json!({"error":{}}), &mut r).unwrap_err();
    assert_eq!(r.tokens, Tokens::default());

    let streamed = Answer::Chat {
        prompt_chars: 40,
        stream: true,
    };
    let e = streamed.read(&with_usage, &mut rec()).unwrap_err();
    assert!(matches!(e, RelayError::UpstreamUnavailable(m) if m.contains("non-stream")));
}

#[test]
fn the_row_of_a_messages_answer() {
    let answer = Answer::Messages {
        count_tokens: false,
    };
    let mut r = rec();
    let body = json!({"stop_reason":"end_turn","usage":{"input_tokens":9,"output_tokens":4}});
    answer.read(&body, &mut r).unwrap();
    assert_eq!((r.tokens.prompt, r.tokens.completion), (9, 4));
    assert_eq!(r.finish_reason.as_deref(), Some("end_turn"));
    let mut r = rec();
    row::served(&mut r, 40);
    answer.read(&json!({}), &mut r).unwrap();
    assert_eq!(r.usage_source, UsageSource::Estimated);
    assert_eq!(r.tokens, Tokens::estimated(40, 0));

    let mut r = rec();
    row::served(&mut r, 40);
    Answer::Messages { count_tokens: true }
        .read(&json!({"input_tokens": 12}), &mut r)
        .unwrap();
    assert_eq!(r.tokens, Tokens::default());
}

#[test]
fn the_row_of_a_responses_answer() {
    let body = json!({"object":"response","id":"resp_abc","status":"completed",
        "usage":{"input_tokens":3,"output_tokens":1}});
    let mut r = rec();
    Answer::Responses { created: true }
        .read(&body, &mut r)
        .unwrap();
    assert_eq!(r.response_id.as_deref(), Some("resp_abc"));
    assert_eq!(r.finish_reason.as_deref(), Some("completed"));
    assert_eq!(r.usage_source, UsageSource::Upstream);
    let mut r = rec();
    Answer::Responses { created: false }
        .read(&body, &mut r)
        .unwrap();
    assert_eq!(r.response_id, None);
    let mut r = rec();
    Answer::Responses { created: true }
        .read(&json!({"status":"failed"}), &mut r)
        .unwrap();
    assert_eq!(r.usage_source, UsageSource::Estimated);
}

#[test]
fn targets_per_endpoint() {
    let mixed = vec![
        target("claude", Provider::Anthropic),
        target("gpt", Provider::OpenAi),
    ];
    assert_eq!(
        targets::legacy(mixed.clone(), "m", "/embeddings").unwrap(),
        vec![mixed[1].clone()]
    );
    let only_claude = vec![mixed[0].clone()];
    assert_eq!(
        targets::legacy(only_claude.clone(), "m", "/embeddings").unwrap_err(),
        RelayError::UnsupportedEndpoint {
            model: "m".into(),
            path: "/v1/embeddings".into()
        }
    );
    // Counting: the estimate when an OpenAI-format provider comes first, else Claude only.
    let gpt_first = vec![mixed[1].clone(), mixed[0].clone()];
    assert_eq!(
        targets::messages(gpt_first.clone(), "m", true).unwrap(),
        Messages::Estimate(Box::new(mixed[1].clone()))
    );
    assert_eq!(
        targets::messages(mixed.clone(), "m", true).unwrap(),
        Messages::Send(only_claude)
    );
    assert_eq!(
        targets::messages(gpt_first.clone(), "m", false).unwrap(),
        Messages::Send(gpt_first)
    );
    let echo = vec![target("relay-echo", Provider::Echo)];
    assert!(targets::is_echo(&echo));
    assert!(!targets::is_echo(&mixed));
    assert_eq!(
        targets::messages(echo, "m", false).unwrap_err(),
        RelayError::ModelNotFound("m".into())
    );
}

#[test]
fn a_stateful_responses_request_stays_on_openais_responses_api() {
    let mut native = target("gpt", Provider::OpenAi);
    native.spec = Some(crate::providers::ProviderSpec {
        id: "openai".into(),
        kind: crate::providers::Kind::OpenAi,
        base_url: "http://127.0.0.1:1".into(),
        api_key: Some("sk".into()),
        key_header: crate::providers::KeyHeader::Bearer,
        stream_usage: true,
        models: Vec::new(),
        query: None,
        ttfb_timeout_ms: None,
        idle_timeout_ms: None,
        drop_params: Vec::new(),
        reasoning_models: None,
        responses_api: true,
    });
    let chat = target("other", Provider::OpenAi);
    let claude = target("claude", Provider::Anthropic);
    assert_eq!(targets::way(&native), targets::Way::Native);
    assert_eq!(targets::way(&chat), targets::Way::Chat);
    assert_eq!(targets::way(&claude), targets::Way::Claude);
    let all = vec![chat.clone(), native.clone(), claude.clone()];
    assert_eq!(targets::responses(all.clone(), true), vec![native]);
    assert_eq!(targets::responses(all.clone(), false), all);
    let no_native = vec![chat, claude];
    assert_eq!(targets::responses(no_native.clone(), true), no_native);
    assert!(!targets::any_native(&no_native));
}

#[test]
fn anthropic_clients_read_anthropic_errors() {
    let claude = target("claude", Provider::Anthropic);
    let gpt = target("gpt", Provider::OpenAi);
    let read =
        |t: &Target, status: u16| failure(Client::Anthropic, t, status, b"{}".to_vec(), None);
    assert_eq!(read(&claude, 401), RelayError::UpstreamAuth);
    assert_eq!(read(&claude, 403), RelayError::UpstreamAuth);
    assert_eq!(
        read(&claude, 402),
        RelayError::UpstreamExhausted { quota: true }
    );
    for status in [400, 429, 529] {
        assert!(
            matches!(read(&claude, status), RelayError::UpstreamRejected { status: s, body: Some(_), .. } if s == status),
            "{status}"
        );
    }
    // An OpenAI-format provider behind /v1/messages: its errors in Anthropic's shape.
    let body = br#"{"error":{"message":"slow down"}}"#.to_vec();
    assert_eq!(
        failure(Client::Anthropic, &gpt, 429, body.clone(), None),
        crate::translate::anthropic::errors::from_openai_provider(429, body, None)
    );
    assert_eq!(read(&gpt, 401), RelayError::UpstreamAuth);
}

#[test]
fn the_row_of_a_chat_answer_rebuilt_for_the_client() {
    let mut r = rec();
    row::served(&mut r, 40);
    row::chat_answer(&json!({"choices":[{"finish_reason":"length"}]}), &mut r).unwrap();
    assert_eq!(r.usage_source, UsageSource::Estimated);
    assert_eq!(r.tokens, Tokens::estimated(40, 0));
    assert_eq!(r.finish_reason.as_deref(), Some("length"));
    let usage = json!({"usage":{"prompt_tokens":2,"completion_tokens":1}});
    row::chat_answer(&usage, &mut r).unwrap();
    assert_eq!(r.usage_source, UsageSource::Upstream);
    let e = row::chat_answer(&json!({"error":{"message":"x"}}), &mut rec()).unwrap_err();
    assert!(matches!(e, RelayError::UpstreamUnavailable(m) if m.contains("error body")));
}
