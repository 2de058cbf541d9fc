//! Output-token caps per model, for translated requests: a client that speaks one protocol asks
//! for what its own models take (Claude Code asks for 32,000), and a smaller model on the other
//! side refuses it with a 400 (gpt-4o-mini stops at 16,384). Above the target model's cap the
//! relay lowers `max_tokens` instead, and says so in the log. Shipped table, overridden by the
//! `MAX_OUTPUT_TOKENS` var (JSON `{"model": cap, "prefix*": cap, "name": null}`).

use serde_json::Value;

/// Output caps from the providers' model pages (as of 2026-11). Keys ending in `*` match by
/// prefix, the longest winning; an exact name beats every prefix. Unknown models are never
/// clamped: the provider's own answer is better than a guess.
pub const DEFAULT_CAPS: &[(&str, u64)] = &[
    ("gpt-4o*", 16_384),
    ("gpt-4o-2024-05-13", 4_096),
    ("gpt-4o-mini*", 16_384),
    ("chatgpt-4o*", 16_384),
    ("gpt-4.1*", 32_768),
    ("gpt-4-turbo*", 4_096),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo*", 4_096),
    ("gpt-5*", 128_000),
    ("gpt-5-chat*", 16_384),
    ("o1*", 100_000),
    ("o1-mini*", 65_536),
    ("o1-preview*", 32_768),
    ("o3*", 100_000),
    ("o4-mini*", 100_000),
    ("claude-opus-4*", 32_000),
    ("claude-opus-4-5*", 64_000),
    ("claude-sonnet-4*", 64_000),
    ("claude-haiku-4-5*", 64_000),
    ("claude-3-7-sonnet*", 64_000),
    ("claude-3-5-sonnet*", 8_192),
    ("claude-3-5-haiku*", 8_192),
    ("claude-3-haiku*", 4_096),
    ("claude-3-opus*", 4_096),
];

/// The caps in force, as `(name or prefix*, cap)`. A plain list searched per lookup: it has
/// a few dozen entries, and a sorted map would cost the worker bundle more than the search.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutputCaps {
    entries: Vec<(String, u64)>,
}

/// One lowered request, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clamped {
    pub field: &'static str,
    pub asked: u64,
    pub cap: u64,
}

impl OutputCaps {
    /// The shipped table with `overrides` applied: a number replaces or adds an entry, `null`
    /// removes one (that model is then never clamped). Anything else is a configuration error.
    pub fn load(overrides: Option<&str>) -> Result<OutputCaps, String> {
        let mut entries: Vec<(String, Option<u64>)> = DEFAULT_CAPS
            .iter()
            .map(|(k, v)| ((*k).to_string(), Some(*v)))
            .collect();
        if let Some(json) = overrides {
            let parsed: Value = serde_json::from_str(json)
                .map_err(|e| format!("MAX_OUTPUT_TOKENS is not valid JSON: {e}"))?;
            let Value::Object(given) = parsed else {
                return Err("MAX_OUTPUT_TOKENS must be a JSON object of model → cap".to_string());
            };
            for (model, cap) in given {
                let cap = match cap {
                    Value::Null => None,
                    Value::Number(n) if n.as_u64().is_some_and(|n| n > 0) => n.as_u64(),
                    other => {
                        return Err(format!(
                            "MAX_OUTPUT_TOKENS.{model}: expected a positive integer or null, got {other}"
                        ))
                    }
                };
                match entries.iter_mut().find(|(k, _)| *k == model) {
                    Some(entry) => entry.1 = cap,
                    None => entries.push((model, cap)),
                }
            }
        }
        let entries = entries
            .into_iter()
            .filter_map(|(k, cap)| Some((k, cap?)))
            .collect();
        Ok(OutputCaps { entries })
    }

    /// The most output tokens `model` (the provider's name for it) accepts, when known: an exact
    /// name first, else the longest matching prefix.
    pub fn cap(&self, model: &str) -> Option<u64> {
        let mut best: Option<(usize, u64)> = None;
        for (name, cap) in &self.entries {
            match name.strip_suffix('*') {
                None if name == model => return Some(*cap),
                Some(prefix)
                    if model.starts_with(prefix) && best.is_none_or(|(n, _)| prefix.len() > n) =>
                {
                    best = Some((prefix.len(), *cap));
                }
                _ => {}
            }
        }
        best.map(|(_, cap)| cap)
    }

    /// Lowers the first of `fields` present in `body` to `model`'s cap; the one it lowered.
    /// Fields that are not positive integers are left for the provider to refuse.
    pub fn clamp(&self, model: &str, body: &mut Value, fields: &[&'static str]) -> Option<Clamped> {
        let cap = self.cap(model)?;
        let obj = body.as_object_mut()?;
        let field = fields.iter().copied().find(|f| obj.contains_key(*f))?;
        let slot = obj.get_mut(field)?;
        let asked = slot.as_u64().filter(|n| *n > cap)?;
        *slot = Value::from(cap);
        Some(Clamped { field, asked, cap })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_longest_prefix_and_exact_names() {
        let caps = OutputCaps::load(None).unwrap();
        let rows = [
            ("gpt-4o-mini", Some(16_384)),
            ("gpt-4o-mini-2024-07-18", Some(16_384)),
            ("gpt-4o", Some(16_384)),
            ("gpt-4o-2024-05-13", Some(4_096)),
            ("gpt-4.1-nano", Some(32_768)),
            ("gpt-4", Some(8_192)),
            ("gpt-4-0613", None),
            ("gpt-5-chat-latest", Some(16_384)),
            ("gpt-5-mini", Some(128_000)),
            ("o1-mini-2024-09-12", Some(65_536)),
            ("claude-opus-4-1-20250805", Some(32_000)),
            ("claude-opus-4-5", Some(64_000)),
            ("claude-3-5-haiku-latest", Some(8_192)),
            ("llama-3.3-70b", None),
        ];
        for (model, want) in rows {
            assert_eq!(caps.cap(model), want, "{model}");
        }
    }

    #[test]
    fn overrides_replace_add_and_remove() {
        let caps = OutputCaps::load(Some(
            r#"{"gpt-4o-mini*": 8000, "llama-*": 4096, "gpt-4.1*": null}"#,
        ))
        .unwrap();
        assert_eq!(caps.cap("gpt-4o-mini"), Some(8000));
        assert_eq!(caps.cap("llama-3.3-70b"), Some(4096));
        assert_eq!(caps.cap("gpt-4.1"), None);
        for bad in [
            "[1]",
            "{\"x\": 0}",
            "{\"x\": \"8k\"}",
            "{\"x\": -1}",
            "nope",
        ] {
            assert!(OutputCaps::load(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn clamp_lowers_only_above_the_cap() {
        let caps = OutputCaps::load(None).unwrap();
        let fields = ["max_completion_tokens", "max_tokens"];
        let mut body = json!({"model": "gpt-4o-mini", "max_completion_tokens": 32000});
        assert_eq!(
            caps.clamp("gpt-4o-mini", &mut body, &fields),
            Some(Clamped {
                field: "max_completion_tokens",
                asked: 32000,
                cap: 16_384
            })
        );
        assert_eq!(body["max_completion_tokens"], 16_384);
        let mut under = json!({"max_tokens": 1000});
        assert_eq!(caps.clamp("gpt-4o-mini", &mut under, &fields), None);
        assert_eq!(under["max_tokens"], 1000);
        let mut unknown = json!({"max_tokens": 999_999});
        assert_eq!(caps.clamp("llama-3", &mut unknown, &fields), None);
        let mut absent = json!({});
        assert_eq!(caps.clamp("gpt-4o-mini", &mut absent, &fields), None);
        assert_eq!(absent, json!({}), "no field is invented");
    }
}
