//! Who may touch a stored OpenAI response. Every response lives in the relay's one OpenAI
//! account, so OpenAI would answer any relay key; the relay therefore records, in the usage
//! row of the request that created it, the id of each response (`response_id`), and answers
//! the stored-response routes only for the key id on that row. Anyone else, and any id the
//! relay never saw created (made directly at OpenAI, or before the column existed), gets the
//! same 404 as an id that does not exist, so a refusal says nothing about what exists.

use serde_json::Value;

use crate::metering::usage::MAX_TEXT_CHARS;

/// The id of the response an OpenAI answer describes: a non-stream body, or the `response` of
/// a stream's lifecycle event. Only an id the stored-response routes could be asked for is
/// kept (the route's charset, within the column's cap), so a recorded id is always findable
/// and a provider's odd value is never stored.
pub fn response_id(response: &Value) -> Option<String> {
    if response.get("object").and_then(Value::as_str) != Some("response") {
        return None;
    }
    let id = response.get("id").and_then(Value::as_str)?;
    routable(id).then(|| id.to_string())
}

/// An id the relay could have recorded: the stored-response routes' charset, within the
/// column's cap. Any other id names nothing this relay created.
pub fn routable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_TEXT_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// The `previous_response_id` a request builds on, when it names one: OpenAI would continue
/// from it (the earlier prompt and answer included) for any caller, so the same owner check
/// applies. An id that is not a string is left for OpenAI to refuse.
pub fn previous(body: &serde_json::Map<String, Value>) -> Option<&str> {
    body.get("previous_response_id").and_then(Value::as_str)
}

/// What the usage table says about a response id, for the key asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Created through the relay by this key: pass the call to OpenAI.
    Owner,
    /// Created by another key, or recorded with conflicting owners: 404.
    Refused,
    /// No row names it (yet): 404 once the short re-check has also found none.
    Unknown,
}

/// `owners` are the key ids of the rows whose `response_id` is the id asked for (a row
/// without a key id counts as a foreign owner). Only a single owner equal to `caller` is let
/// through; key ids survive rotation, so a rotated key keeps its responses.
pub fn access(owners: &[Option<String>], caller: &str) -> Access {
    if owners.is_empty() {
        return Access::Unknown;
    }
    if owners.iter().all(|o| o.as_deref() == Some(caller)) {
        Access::Owner
    } else {
        Access::Refused
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owned(ids: &[Option<&str>]) -> Vec<Option<String>> {
        ids.iter().map(|o| o.map(str::to_string)).collect()
    }

    #[test]
    fn only_the_creating_key_is_the_owner() {
        assert_eq!(access(&owned(&[Some("key_a")]), "key_a"), Access::Owner);
        assert_eq!(access(&owned(&[Some("key_a")]), "key_b"), Access::Refused);
        assert_eq!(access(&owned(&[None]), "key_a"), Access::Refused);
        assert_eq!(access(&[], "key_a"), Access::Unknown);
    }

    #[test]
    fn conflicting_owners_refuse_everyone() {
        let both = owned(&[Some("key_a"), Some("key_b")]);
        assert_eq!(access(&both, "key_a"), Access::Refused);
        assert_eq!(access(&both, "key_b"), Access::Refused);
        let same = owned(&[Some("key_a"), Some("key_a")]);
        assert_eq!(access(&same, "key_a"), Access::Owner);
    }

    #[test]
    fn reads_the_id_of_a_response_object_only() {
        let r = json!({"id": "resp_67c9fdcecf488190", "object": "response", "status": "completed"});
        assert_eq!(response_id(&r).as_deref(), Some("resp_67c9fdcecf488190"));
        // An error body, a list or a deletion receipt names no created response.
        assert_eq!(response_id(&json!({"error": {"message": "x"}})), None);
        assert_eq!(
            response_id(&json!({"id": "resp_1", "object": "list"})),
            None
        );
        assert_eq!(response_id(&json!({"id": "resp_1"})), None);
        assert_eq!(response_id(&json!({"id": 7, "object": "response"})), None);
    }

    #[test]
    fn the_previous_response_is_read_as_a_string_only() {
        let body = |v: Value| v.as_object().cloned().unwrap();
        let b = body(json!({"previous_response_id": "resp_1"}));
        assert_eq!(previous(&b), Some("resp_1"));
        assert_eq!(previous(&body(json!({"previous_response_id": null}))), None);
        assert_eq!(previous(&body(json!({"previous_response_id": 5}))), None);
        assert_eq!(previous(&body(json!({"input": "hi"}))), None);
    }

    #[test]
    fn an_id_no_route_could_ask_for_is_not_recorded() {
        for id in ["", "resp_1/../keys", "resp 1", "resp_1?x=1"] {
            assert_eq!(
                response_id(&json!({"id": id, "object": "response"})),
                None,
                "{id}"
            );
        }
        let long = "r".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(
            response_id(&json!({"id": long, "object": "response"})),
            None
        );
        let max = "r".repeat(MAX_TEXT_CHARS);
        assert_eq!(
            response_id(&json!({"id": max, "object": "response"})),
            Some(max)
        );
    }
}
