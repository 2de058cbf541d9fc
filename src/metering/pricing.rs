//! Model prices and the cost of one usage row. The table ships as data (`src/metering/prices.json`) and
//! a deployer overrides it without a code change through the `PRICES` var; a model with no
//! price gets no cost (NULL), never a guessed one.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::metering::usage::Tokens;

/// The table compiled into the worker.
pub const DEFAULT_PRICES: &str = include_str!("prices.json");

/// USD per million tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates {
    pub input: f64,
    pub cached_input: Option<f64>,
    pub cache_write: Option<f64>,
    pub output: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tier {
    pub above_prompt_tokens: u64,
    pub rates: Rates,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Price {
    pub rates: Rates,
    pub tiers: Vec<Tier>,
}

/// The JSON shape, spelled out field by field so a typo is an error, not a silent default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceSpec {
    input: f64,
    #[serde(default)]
    cached_input: Option<f64>,
    #[serde(default)]
    cache_write: Option<f64>,
    output: f64,
    #[serde(default)]
    tiers: Vec<TierSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierSpec {
    above_prompt_tokens: u64,
    input: f64,
    #[serde(default)]
    cached_input: Option<f64>,
    #[serde(default)]
    cache_write: Option<f64>,
    output: f64,
}

impl From<PriceSpec> for Price {
    fn from(s: PriceSpec) -> Price {
        Price {
            rates: Rates {
                input: s.input,
                cached_input: s.cached_input,
                cache_write: s.cache_write,
                output: s.output,
            },
            tiers: s
                .tiers
                .into_iter()
                .map(|t| Tier {
                    above_prompt_tokens: t.above_prompt_tokens,
                    rates: Rates {
                        input: t.input,
                        cached_input: t.cached_input,
                        cache_write: t.cache_write,
                        output: t.output,
                    },
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTable {
    exact: HashMap<String, Price>,
    /// `prefix*` entries, longest prefix first so the most specific one wins.
    prefixes: Vec<(String, Price)>,
}

/// Reads `{"models": {name: price | null}}` into `entries`; `null` removes a model.
fn merge(entries: &mut HashMap<String, Price>, json: &str, what: &str) -> Result<(), String> {
    let doc: Value =
        serde_json::from_str(json).map_err(|e| format!("{what}: invalid JSON: {e}"))?;
    let models = doc
        .get("models")
        .and_then(Value::as_object)
        .ok_or_else(|| format!("{what}: expected {{\"models\": {{…}}}}"))?;
    for (name, v) in models {
        if v.is_null() {
            entries.remove(name);
            continue;
        }
        let price: Price = serde_json::from_value::<PriceSpec>(v.clone())
            .map_err(|e| format!("{what}: price of {name:?}: {e}"))?
            .into();
        let all = std::iter::once(&price.rates).chain(price.tiers.iter().map(|t| &t.rates));
        for r in all {
            let values = [Some(r.input), r.cached_input, r.cache_write, Some(r.output)];
            if values.iter().flatten().any(|x| !x.is_finite() || *x < 0.0) {
                return Err(format!(
                    "{what}: price of {name:?} must be non-negative numbers"
                ));
            }
        }
        entries.insert(name.clone(), price);
    }
    Ok(())
}

impl PriceTable {
    /// The shipped table with the deployer's `PRICES` override (same shape) merged over it.
    pub fn load(overrides: Option<&str>) -> Result<PriceTable, String> {
        let mut entries = HashMap::new();
        merge(&mut entries, DEFAULT_PRICES, "src/metering/prices.json")?;
        if let Some(o) = overrides {
            merge(&mut entries, o, "PRICES")?;
        }
        let mut table = PriceTable::default();
        for (name, price) in entries {
            match name.strip_suffix('*') {
                Some(prefix) => table.prefixes.push((prefix.to_string(), price)),
                None => {
                    table.exact.insert(name, price);
                }
            }
        }
        table
            .prefixes
            .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Ok(table)
    }

    pub fn lookup(&self, model: &str) -> Option<&Price> {
        self.exact.get(model).or_else(|| {
            self.prefixes
                .iter()
                .find(|(p, _)| model.starts_with(p.as_str()))
                .map(|(_, price)| price)
        })
    }

    /// Cost in USD of `tokens` for the first of `models` that has a price. None when none has
    /// one and tokens were used; a request that used no tokens cost nothing either way.
    pub fn cost(&self, models: &[&str], tokens: &Tokens) -> Option<f64> {
        if *tokens == Tokens::default() {
            return Some(0.0);
        }
        let price = models.iter().find_map(|m| self.lookup(m))?;
        let rates = price
            .tiers
            .iter()
            .filter(|t| tokens.prompt > t.above_prompt_tokens)
            .max_by_key(|t| t.above_prompt_tokens)
            .map_or(&price.rates, |t| &t.rates);
        // Prompt tokens include cache reads and writes; each part has its own rate.
        let uncached = tokens
            .prompt
            .saturating_sub(tokens.cached)
            .saturating_sub(tokens.cache_write);
        let micro = uncached as f64 * rates.input
            + tokens.cached as f64 * rates.cached_input.unwrap_or(rates.input)
            + tokens.cache_write as f64 * rates.cache_write.unwrap_or(rates.input)
            + tokens.completion as f64 * rates.output;
        Some(micro / 1_000_000.0)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(prompt: u64, cached: u64, cache_write: u64, completion: u64) -> Tokens {
        Tokens {
            prompt,
            completion,
            cached,
            cache_write,
            reasoning: 0,
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-12)
    }

    #[test]
    fn shipped_table_parses_and_prices_known_models() {
        let table = PriceTable::load(None).unwrap();
        // gpt-4o: 1000 prompt (200 cached) + 500 output = 800×2.5 + 200×1.25 + 500×10 per 1M.
        assert!(close(
            table.cost(&["gpt-4o"], &t(1000, 200, 0, 500)),
            (800.0 * 2.5 + 200.0 * 1.25 + 500.0 * 10.0) / 1e6
        ));
        assert!(close(table.cost(&["relay-echo"], &t(5, 0, 0, 8)), 0.0));
        // A dated snapshot matches its family's prefix entry.
        assert_eq!(
            table.lookup("gpt-4o-mini-2024-07-18"),
            table.lookup("gpt-4o-mini")
        );
        assert_eq!(table.cost(&["unknown-model"], &t(1, 0, 0, 1)), None);
        assert_eq!(
            table.cost(&["unknown-model"], &Tokens::default()),
            Some(0.0)
        );
    }

    /// (model, input, cached_input, output) per million: the newest model of each family, and
    /// the neighbours a prefix rule must not swallow.
    const FAMILIES: &[(&str, f64, f64, f64)] = &[
        ("gpt-4o", 2.5, 1.25, 10.0),
        ("gpt-4o-2024-11-20", 2.5, 1.25, 10.0),
        ("gpt-4o-mini-2024-07-18", 0.15, 0.075, 0.6),
        ("gpt-4.1-2025-04-14", 2.0, 0.5, 8.0),
        ("gpt-4.1-mini-2025-04-14", 0.4, 0.1, 1.6),
        ("gpt-4.1-nano", 0.1, 0.025, 0.4),
        ("gpt-5-2025-08-07", 1.25, 0.125, 10.0),
        ("gpt-5-mini-2025-08-07", 0.25, 0.025, 2.0),
        ("gpt-5-nano", 0.05, 0.005, 0.4),
        ("gpt-5.1", 1.25, 0.125, 10.0),
        ("gpt-5.2", 1.75, 0.175, 14.0),
        ("gpt-5.4", 2.5, 0.25, 15.0),
        ("gpt-5.4-mini", 0.75, 0.075, 4.5),
        ("gpt-5.4-nano", 0.2, 0.02, 1.25),
        ("gpt-5.4-pro", 30.0, 30.0, 180.0),
        ("gpt-5.5", 5.0, 0.5, 30.0),
        ("gpt-5.5-2026-04-23", 5.0, 0.5, 30.0),
        ("gpt-5.5-pro", 30.0, 30.0, 180.0),
        ("o1", 15.0, 7.5, 60.0),
        ("o3-2025-04-16", 2.0, 0.5, 8.0),
        ("o3-mini", 1.1, 0.55, 4.4),
        ("o4-mini-2025-04-16", 1.1, 0.275, 4.4),
        // Opus 4 and 4.1 kept Opus 3's price; 4.5 and later (Claude Code's default
        // claude-opus-4-8 included) are a third of it.
        ("claude-opus-4-20250514", 15.0, 1.5, 75.0),
        ("claude-opus-4-0", 15.0, 1.5, 75.0),
        ("claude-opus-4-1-20250805", 15.0, 1.5, 75.0),
        ("claude-opus-4-5-20251101", 5.0, 0.5, 25.0),
        ("claude-opus-4-6", 5.0, 0.5, 25.0),
        ("claude-opus-4-8", 5.0, 0.5, 25.0),
        ("claude-opus-5", 5.0, 0.5, 25.0),
        ("claude-opus-5-5", 4.0, 0.2, 20.0),
        ("claude-sonnet-4-20250514", 3.0, 0.3, 15.0),
        ("claude-sonnet-4-5-20250929", 3.0, 0.3, 15.0),
        ("claude-sonnet-4-6", 3.0, 0.3, 15.0),
        ("claude-sonnet-5", 2.0, 0.2, 10.0),
        ("claude-sonnet-5-5", 2.0, 0.2, 10.0),
        ("claude-3-7-sonnet-20250219", 3.0, 0.3, 15.0),
        ("claude-haiku-4-5-20251001", 1.0, 0.1, 5.0),
        ("claude-haiku-5-5", 0.1, 0.01, 0.5),
        ("claude-3-5-haiku-20241022", 0.8, 0.08, 4.0),
    ];

    #[test]
    fn newest_models_of_each_family_match_the_right_entry() {
        let table = PriceTable::load(None).unwrap();
        for &(model, input, cached, output) in FAMILIES {
            let price = table.lookup(model);
            assert!(price.is_some(), "{model} unpriced");
            let r = &price.unwrap().rates;
            assert_eq!(
                (r.input, r.cached_input.unwrap_or(r.input), r.output),
                (input, cached, output),
                "{model}"
            );
        }
        // Variants priced differently from their family stay unpriced rather than guessed.
        for model in ["gpt-5-pro", "o3-pro", "o1-pro", "gpt-4o-mini-transcribe"] {
            assert_eq!(table.lookup(model), None, "{model}");
        }
        // OpenAI's moderation endpoint is free: its rows cost 0, not NULL (unpriced).
        for model in [
            "omni-moderation-latest",
            "omni-moderation-2024-09-26",
            "text-moderation-stable",
        ] {
            assert_eq!(
                table.cost(&[model], &t(1000, 0, 0, 0)),
                Some(0.0),
                "{model}"
            );
        }
        // The Claude Code default: 1000 in + 1000 out at $5/$25, not Opus 4's $15/$75.
        assert!(close(
            table.cost(&["claude-opus-4-8"], &t(1000, 0, 0, 1000)),
            0.03
        ));
    }

    #[test]
    fn shipped_table_is_dated() {
        let doc: Value = serde_json::from_str(DEFAULT_PRICES).unwrap();
        let as_of = doc["as_of"].as_str().unwrap();
        assert!(crate::time::parse_rfc3339(as_of).is_some(), "{as_of}");
    }

    #[test]
    fn anthropic_cache_writes_and_tiers() {
        let table = PriceTable::load(None).unwrap();
        let small = t(1000, 100, 50, 10);
        let expect = (850.0 * 3.0 + 100.0 * 0.3 + 50.0 * 3.75 + 10.0 * 15.0) / 1e6;
        assert!(close(
            table.cost(&["claude-sonnet-4-5-20250929"], &small),
            expect
        ));
        let big = t(300_000, 0, 0, 1000);
        let expect = (300_000.0 * 6.0 + 1000.0 * 22.5) / 1e6;
        assert!(close(
            table.cost(&["claude-sonnet-4-5-20250929"], &big),
            expect
        ));
    }

    #[test]
    fn overrides_merge_replace_and_remove() {
        let o = r#"{"models": {"mock-*": {"input": 1, "cached_input": 0.5, "output": 2}, "gpt-4o": null}}"#;
        let table = PriceTable::load(Some(o)).unwrap();
        assert!(close(
            table.cost(&["mock-cached"], &t(15, 4, 0, 5)),
            23.0 / 1e6
        ));
        assert_eq!(table.cost(&["gpt-4o"], &t(1, 0, 0, 0)), None);
        // The first model with a price wins (upstream model, then the name asked for).
        assert!(close(
            table.cost(&["nope", "mock-x"], &t(0, 0, 0, 1)),
            2.0 / 1e6
        ));
    }

    #[test]
    fn bad_overrides_are_precise_errors() {
        assert!(PriceTable::load(Some("{"))
            .unwrap_err()
            .starts_with("PRICES: invalid JSON"));
        assert_eq!(
            PriceTable::load(Some(r#"{"prices": {}}"#)).unwrap_err(),
            "PRICES: expected {\"models\": {…}}"
        );
        assert!(PriceTable::load(Some(r#"{"models": {"m": {"input": 1}}}"#))
            .unwrap_err()
            .contains("price of \"m\""));
        assert!(
            PriceTable::load(Some(r#"{"models": {"m": {"input": -1, "output": 1}}}"#))
                .unwrap_err()
                .contains("non-negative")
        );
        assert!(PriceTable::load(Some(
            r#"{"models": {"m": {"input": 1, "output": 1, "typo": 2}}}"#
        ))
        .is_err());
    }
}
