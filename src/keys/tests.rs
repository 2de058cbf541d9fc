//! Tests for key lifecycle, model policy and KV repairs.

use super::*;

fn stored() -> KeyRecord {
    record(
        new(r#"{"team":"t","user":"u"}"#).unwrap(),
        "key_1".into(),
        "2026-01-01T00:00:00.000Z",
    )
}

#[test]
fn cache_setting_is_set_replaced_shown_and_cleared() {
    let made = new(r#"{"team":"t","user":"u","cache":{"ttl_s":300,"scope":"team"}}"#).unwrap();
    let mut rec = record(made, "key_1".into(), "2026-01-01T00:00:00.000Z");
    assert_eq!(
        public(&rec)["cache"],
        json!({"ttl_s": 300, "scope": "team", "sampled": false})
    );
    assert_eq!(public(&stored())["cache"], Value::Null);
    let change = parse_change(br#"{"cache":{"ttl_s":60,"sampled":true}}"#).unwrap();
    let diff = apply(&mut rec, &change, "2026-01-02T00:00:00.000Z");
    assert_eq!(
        diff["cache"]["to"],
        json!({"ttl_s": 60, "scope": "key", "sampled": true})
    );
    let off = parse_change(br#"{"cache":null}"#).unwrap();
    apply(&mut rec, &off, "2026-01-03T00:00:00.000Z");
    assert_eq!(rec.cache, None);
    // KV's copy round-trips the setting (and omits it when off).
    rec.cache = stored_cache();
    let text = serde_json::to_string(&rec).unwrap();
    assert_eq!(serde_json::from_str::<KeyRecord>(&text).unwrap(), rec);
    assert!(!serde_json::to_string(&stored()).unwrap().contains("cache"));
    let bad = parse_change(br#"{"cache":{"ttl_s":10}}"#).unwrap_err();
    assert!(matches!(bad, RelayError::InvalidRequest { param: Some(p), .. } if p == "cache.ttl_s"));
}

fn stored_cache() -> Option<crate::cache::KeyCache> {
    crate::cache::parse_key_cache(&json!({"ttl_s": 120})).unwrap()
}

#[test]
fn kv_in_line_needs_no_write() {
    let rec = stored();
    let kv = KvCopy {
        record: Some(rec.clone()),
        id_hash: Some("h1".into()),
    };
    assert!(kv_repairs(&rec, "h1", &[], &kv).is_empty());
}

#[test]
fn a_retried_revoke_rewrites_the_stale_active_copy() {
    // The first revoke wrote D1 and then failed on KV: D1 says revoked, KV still active.
    let active = stored();
    let mut revoked = active.clone();
    let change = parse_change(br#"{"status":"revoked"}"#).unwrap();
    assert!(!apply(&mut revoked, &change, "2026-02-01T00:00:00.000Z").is_empty());
    let kv = KvCopy {
        record: Some(active.clone()),
        id_hash: Some("h1".into()),
    };
    // The retry's change is a no-op on D1 (already revoked)...
    let mut again = revoked.clone();
    assert!(apply(&mut again, &change, "2026-02-01T00:00:01.000Z").is_empty());
    // ...but the sync still sees KV behind and rewrites the record.
    assert_eq!(kv_repairs(&again, "h1", &[], &kv), vec![KvWrite::PutRecord]);
    // Unreadable or missing KV copies are written, never assumed right.
    assert_eq!(
        kv_repairs(&again, "h1", &[], &KvCopy::default()),
        vec![KvWrite::PutRecord, KvWrite::PutIdHash]
    );
}

#[test]
fn a_retried_rotate_retires_every_earlier_secret() {
    let rec = stored();
    // First rotation h0 -> h1: D1 written, then KV failed, so h0 is still live in KV.
    let pending = retire(&[], "h0", "h1");
    assert_eq!(pending, vec!["h0".to_string()]);
    // Nothing is stored under the new hash yet; the id still points at the old one.
    let kv_after_failure = KvCopy {
        record: None,
        id_hash: Some("h0".into()),
    };
    assert_eq!(
        kv_repairs(&rec, "h1", &pending, &kv_after_failure),
        vec![
            KvWrite::Retire("h0".into()),
            KvWrite::PutRecord,
            KvWrite::PutIdHash
        ]
    );
    // The admin retries the rotation (h1 -> h2): both earlier secrets are retired, the
    // old code deleted only h1 and left h0 working for good.
    let pending = retire(&pending, "h1", "h2");
    assert_eq!(pending, vec!["h0".to_string(), "h1".to_string()]);
    let writes = kv_repairs(&rec, "h2", &pending, &kv_after_failure);
    assert_eq!(
        writes,
        vec![
            KvWrite::Retire("h0".into()),
            KvWrite::Retire("h1".into()),
            KvWrite::PutRecord,
            KvWrite::PutIdHash
        ]
    );
    // The hash in use is never retired, and nothing is listed twice.
    assert_eq!(retire(&["h2".into(), "h0".into()], "h0", "h2"), vec!["h0"]);
    assert!(kv_repairs(
        &rec,
        "h2",
        &["h2".into()],
        &KvCopy {
            record: Some(rec.clone()),
            id_hash: Some("h2".into()),
        }
    )
    .is_empty());
}

fn new(body: &str) -> Result<NewKey, RelayError> {
    parse_new(body.as_bytes())
}

#[test]
fn create_defaults_and_full() {
    let k = new(r#"{"team":"t1","user":"ann"}"#).unwrap();
    assert_eq!((k.env.as_str(), k.name, k.models), ("prod", None, None));
    let k = new(r#"{"team":"t1","user":"ann","env":"dev","name":" Ann's laptop ","expires_at":"2027-01-01","models":["gpt-4o","o*"],"aliases":{"fast":"gpt-4o-mini"},"metadata":{"cost_center":"42"}}"#).unwrap();
    assert_eq!(k.name.as_deref(), Some("Ann's laptop"));
    assert_eq!(k.expires_at.as_deref(), Some("2027-01-01T00:00:00.000Z"));
    assert_eq!(k.models, Some(vec!["gpt-4o".to_string(), "o*".to_string()]));
    assert_eq!(
        k.aliases.get("fast").map(String::as_str),
        Some("gpt-4o-mini")
    );
}

#[test]
fn create_rejections_name_the_param() {
    let cases = [
            (r#"{"user":"ann"}"#, "Missing required parameter: 'team'.", Some("team")),
            (r#"{"team":"T 1","user":"ann"}"#, "'team' must be 1-32 characters of a-z, 0-9 and '-'.", Some("team")),
            (r#"{"team":"t","user":"u","admin":true}"#, "Unrecognized request argument supplied: admin", Some("admin")),
            (r#"{"team":"t","user":"u","expires_at":"tomorrow"}"#, "'expires_at' must be an RFC 3339 UTC time such as 2026-12-31T23:59:59Z.", Some("expires_at")),
            (r#"{"team":"t","user":"u","models":"gpt-4o"}"#, "'models' must be an array of at most 100 model names or patterns (a trailing * matches a prefix), or null.", Some("models")),
            (r#"{"team":"t","user":"u","aliases":{"a":1}}"#, "'aliases.a' must be a string.", Some("aliases.a")),
            (r#"[]"#, "The request body must be a JSON object.", None),
            // A repeated key is ambiguous (a policy of `["gpt-cheap"]` then `null`): refused.
            (r#"{"team":"t","user":"u","models":["gpt-cheap"],"models":null}"#, "Duplicate key 'models' in the request body: each key may appear only once in an object.", Some("models")),
            (r#"{"team":"t","user":"u","aliases":{"a":"x","a":"y"}}"#, "Duplicate key 'aliases.a' in the request body: each key may appear only once in an object.", Some("aliases.a")),
        ];
    for (body, message, param) in cases {
        assert_eq!(
            new(body).unwrap_err(),
            RelayError::invalid(message, param),
            "{body}"
        );
    }
    let long = format!(r#"{{"team":"t","user":"u","name":"{}"}}"#, "x".repeat(101));
    assert_eq!(
        new(&long).unwrap_err(),
        RelayError::invalid("'name' must be 1-100 characters.", Some("name"))
    );
}

#[test]
fn change_applies_and_diffs() {
    let mut rec = record(
        new(r#"{"team":"t","user":"u"}"#).unwrap(),
        "key_1".into(),
        "2026-01-01T00:00:00.000Z",
    );
    let change =
        parse_change(br#"{"name":"laptop","models":["gpt-4o"],"status":"revoked"}"#).unwrap();
    let diff = apply(&mut rec, &change, "2026-02-01T00:00:00.000Z");
    assert_eq!(
        Value::Object(diff),
        json!({"name":{"from":null,"to":"laptop"},"models":{"from":null,"to":["gpt-4o"]},"status":{"from":"active","to":"revoked"}})
    );
    assert_eq!(rec.updated_at.as_deref(), Some("2026-02-01T00:00:00.000Z"));
    let again = apply(&mut rec, &change, "2026-03-01T00:00:00.000Z");
    assert!(again.is_empty());
    assert_eq!(
        rec.updated_at.as_deref(),
        Some("2026-02-01T00:00:00.000Z"),
        "no-op keeps updated_at"
    );
    let clear = parse_change(br#"{"expires_at":null,"models":null}"#).unwrap();
    assert_eq!(clear.models, Some(None));
    assert_eq!(
        parse_change(b"{}").unwrap_err(),
        RelayError::invalid("Nothing to change: give at least one field.", None)
    );
    assert_eq!(
        parse_change(br#"{"status":"gone"}"#).unwrap_err(),
        RelayError::invalid(
            "'status' must be \"active\" or \"revoked\".",
            Some("status")
        )
    );
    assert!(
        parse_change(br#"{"team":"x"}"#).is_err(),
        "identity cannot be changed"
    );
}

#[test]
fn policy() {
    let rec = record(
        new(
            r#"{"team":"t","user":"u","models":["gpt-4o","o3*"],"aliases":{"fast":"gpt-4o-mini"}}"#,
        )
        .unwrap(),
        "key_1".into(),
        "2026-01-01T00:00:00.000Z",
    );
    assert_eq!(effective_model(&rec, "gpt-4o").unwrap(), "gpt-4o");
    assert_eq!(effective_model(&rec, "o3-mini").unwrap(), "o3-mini");
    assert_eq!(effective_model(&rec, "fast").unwrap(), "gpt-4o-mini");
    assert_eq!(
        effective_model(&rec, "gpt-4o-mini"),
        Err(RelayError::ModelNotAllowed("gpt-4o-mini".into()))
    );
    let open = record(
        new(r#"{"team":"t","user":"u"}"#).unwrap(),
        "key_2".into(),
        "x",
    );
    assert!(allows(&open, "anything"));
}

#[test]
fn limits_are_set_merged_cleared_and_audited() {
    let input = new(r#"{"team":"t","user":"u","limits":{"budget_usd":25,"rpm":60}}"#).unwrap();
    let mut rec = record(input, "key_1".into(), "2026-01-01T00:00:00.000Z");
    assert_eq!(
        public(&rec)["limits"],
        json!({"budget_usd": 25.0, "budget_period": "month", "rpm": 60})
    );
    let change = parse_change(br#"{"limits":{"rpm":null,"max_parallel":4}}"#).unwrap();
    let diff = apply(&mut rec, &change, "2026-01-02T00:00:00.000Z");
    assert_eq!(
        diff["limits"],
        json!({"from": {"budget_usd": 25.0, "budget_period": "month", "rpm": 60},
               "to": {"budget_usd": 25.0, "budget_period": "month", "max_parallel": 4}})
    );
    let clear = parse_change(br#"{"limits":null}"#).unwrap();
    apply(&mut rec, &clear, "2026-01-03T00:00:00.000Z");
    assert_eq!(public(&rec)["limits"], json!({}));
    // The KV copy of a key without limits carries no limits field at all.
    assert!(!serde_json::to_string(&rec).unwrap().contains("limits"));
    let bad = parse_change(br#"{"limits":{"rpm":0}}"#).unwrap_err();
    assert!(matches!(bad, RelayError::InvalidRequest { param: Some(p), .. } if p == "limits.rpm"));
    let unknown = new(r#"{"team":"t","user":"u","limits":{"budget":1}}"#).unwrap_err();
    assert!(
        matches!(unknown, RelayError::InvalidRequest { param: Some(p), .. } if p == "limits.budget")
    );
}
