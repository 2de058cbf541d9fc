//! Request bodies as JSON the relay and the provider read alike: one scan that refuses a key
//! repeated in any object. Parsers disagree on duplicates (serde keeps the first value the
//! relay looks up, most providers keep the last), so a body with one would let the relay
//! authorise one `model` while the provider serves another.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::http::error::RelayError;

/// Above this many keys an object's seen-set switches from a linear scan to a hash set, so a
/// hostile object with 10^5 keys costs O(n), not O(n²).
const LINEAR_KEYS: usize = 16;

/// Refuses a body whose JSON repeats a key in any object, naming the key's path
/// (`stream_options.include_usage`, `messages[2].content[0].type`) as the `param`.
/// A body that is not JSON at all passes: the caller's parser reports that in its own words.
/// Every route that reads a JSON body calls this before reading any field.
pub fn refuse_duplicate_keys(body: &[u8]) -> Result<(), RelayError> {
    match duplicate_key(body) {
        None => Ok(()),
        Some(path) => Err(RelayError::invalid(
            format!(
                "Duplicate key '{path}' in the request body: each key may appear only once in an object."
            ),
            Some(&path),
        )),
    }
}

/// The path of the first repeated key in `body`, or None when every object's keys are unique
/// (or the body is not JSON). Keys compare after unescaping: `"model"` and `"mod\u0065l"`
/// are the same key to every parser.
pub fn duplicate_key(body: &[u8]) -> Option<String> {
    let mut path = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    match Scan(&mut path).deserialize(&mut de) {
        Ok(()) => None,
        // The path is only ever filled by a duplicate: a syntax error leaves it empty.
        Err(_) if !path.is_empty() => Some(render(&path)),
        Err(_) => None,
    }
}

/// One step of a key path, collected innermost first while the error unwinds, so a body
/// without duplicates pays nothing for paths.
enum Step {
    Key(String),
    Index(usize),
}

fn render(reversed: &[Step]) -> String {
    let mut out = String::new();
    for step in reversed.iter().rev() {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Walks one JSON value; the vector receives the path of a duplicate.
struct Scan<'p>(&'p mut Vec<Step>);

impl<'de> DeserializeSeed<'de> for Scan<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// A key borrowed from the body when it has no escapes (the common case), owned otherwise.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct K;
        impl<'de> Visitor<'de> for K {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(K)
    }
}

impl<'de> Visitor<'de> for Scan<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        loop {
            match seq.next_element_seed(Scan(&mut *self.0)) {
                Ok(Some(())) => index += 1,
                Ok(None) => return Ok(()),
                Err(e) => {
                    if !self.0.is_empty() {
                        self.0.push(Step::Index(index));
                    }
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        let mut many: Option<HashSet<Cow<'de, str>>> = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let repeated = match &many {
                Some(set) => set.contains(&key),
                None => seen.contains(&key),
            };
            if repeated {
                self.0.push(Step::Key(key.into_owned()));
                return Err(de::Error::custom("duplicate key"));
            }
            if let Err(e) = map.next_value_seed(Scan(&mut *self.0)) {
                if !self.0.is_empty() {
                    self.0.push(Step::Key(key.into_owned()));
                }
                return Err(e);
            }
            match many.as_mut() {
                Some(set) => {
                    set.insert(key);
                }
                None if seen.len() < LINEAR_KEYS => seen.push(key),
                None => {
                    let mut set: HashSet<Cow<'de, str>> = seen.drain(..).collect();
                    set.insert(key);
                    many = Some(set);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dup(body: &str) -> Option<String> {
        duplicate_key(body.as_bytes())
    }

    #[test]
    fn unique_bodies_pass() {
        assert_eq!(
            dup(r#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#),
            None
        );
        // The same key in sibling objects, or nested under itself, is not a repeat.
        assert_eq!(
            dup(r#"{"a":{"a":1},"b":[{"a":1},{"a":2}],"c":[[{"x":1,"y":2}]]}"#),
            None
        );
        assert_eq!(dup(r#"[1,"two",null,true,-3.5e2,{}]"#), None);
        assert_eq!(dup("\"just a string\""), None);
    }

    #[test]
    fn names_the_repeated_key_by_path() {
        assert_eq!(
            dup(r#"{"model":"gpt-cheap","model":"gpt-forbidden-expensive"}"#),
            Some("model".to_string())
        );
        assert_eq!(
            dup(r#"{"model":"m","stream_options":{"include_usage":false,"include_usage":true}}"#),
            Some("stream_options.include_usage".to_string())
        );
        assert_eq!(
            dup(
                r#"{"messages":[{"role":"user"},{"role":"user","content":[{"type":"text","type":"image_url"}]}]}"#
            ),
            Some("messages[1].content[0].type".to_string())
        );
        assert_eq!(
            dup(r#"{"tool_choice":{"type":"function","function":{"name":"a","name":"b"}}}"#),
            Some("tool_choice.function.name".to_string())
        );
        assert_eq!(dup(r#"[{"a":1,"a":2}]"#), Some("[0].a".to_string()));
    }

    #[test]
    fn escaped_spellings_of_one_key_are_the_same_key() {
        assert_eq!(
            dup(r#"{"model":"a","mod\u0065l":"b"}"#),
            Some("model".to_string())
        );
        assert_eq!(dup(r#"{"a\"b":1,"a\u0022b":2}"#), Some("a\"b".to_string()));
    }

    #[test]
    fn large_objects_switch_to_a_set_and_still_catch_repeats() {
        let keys: Vec<String> = (0..200).map(|i| format!("\"k{i}\":{i}")).collect();
        let unique = format!("{{{}}}", keys.join(","));
        assert_eq!(dup(&unique), None);
        let early = format!("{{{},\"k3\":0}}", keys.join(","));
        assert_eq!(dup(&early), Some("k3".to_string()));
        let late = format!("{{{},\"k199\":0}}", keys.join(","));
        assert_eq!(dup(&late), Some("k199".to_string()));
    }

    #[test]
    fn malformed_json_is_left_to_the_parser() {
        assert_eq!(dup("{nope"), None);
        assert!(refuse_duplicate_keys(b"").is_ok());
    }

    #[test]
    fn refusal_is_a_400_naming_the_param() {
        let e = refuse_duplicate_keys(br#"{"model":"a","model":"b"}"#).unwrap_err();
        assert_eq!(e.status(), 400);
        assert_eq!(
            e,
            RelayError::invalid(
                "Duplicate key 'model' in the request body: each key may appear only once in an object.",
                Some("model")
            )
        );
    }

    #[test]
    fn deep_nesting_is_refused_by_the_parser_not_the_stack() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(dup(&deep), None);
    }
}
