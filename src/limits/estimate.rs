//! The worst case a request can cost, reserved before it is forwarded: the prompt estimate at
//! the input price plus the output cap at the output price, at the dearest of the targets it
//! may be served by. A model with no price has no worst case, so it cannot be reserved.

use serde_json::Value;

use crate::metering::pricing::PriceTable;
use crate::metering::usage::{add_tokens, estimate_tokens, token_count, Tokens};
use crate::protocols::chat::ChatRequest;

/// The output cap assumed when a request names none (`max_tokens`, `max_completion_tokens`,
/// `max_output_tokens`). A reply may run longer; settlement then counts what it really cost,
/// so the overshoot is bounded by that one request.
pub const DEFAULT_OUTPUT_CAP: u64 = 4096;

/// The output cap a body names: the largest of `max_tokens`, `max_completion_tokens` and
/// `max_output_tokens` (given as the values of those fields), read as every count is: clamped,
/// never trusted. None when it names none.
pub fn cap_of<'a>(fields: impl IntoIterator<Item = Option<&'a Value>>) -> Option<u64> {
    fields.into_iter().flatten().filter_map(token_count).max()
}

/// The spellings of an output cap, in the order `cap_of` takes them.
pub const CAP_FIELDS: [&str; 3] = ["max_tokens", "max_completion_tokens", "max_output_tokens"];

/// What a Chat-shaped request (Chat, legacy completions, Messages) reserves from: its prompt
/// characters and the output cap it names, if any.
pub fn of_chat(parsed: &ChatRequest) -> (u64, Option<u64>) {
    let caps = CAP_FIELDS.map(|f| parsed.field(f));
    (parsed.prompt_chars, cap_of(caps.iter().map(Option::as_ref)))
}

/// What the reservation is sized from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    pub prompt_tokens: u64,
    pub output_cap: u64,
    /// Whether the client named the cap; only then does it count towards `tpm` up front
    /// (as OpenAI counts `max_tokens`).
    pub explicit_cap: bool,
}

impl Estimate {
    /// From the prompt's character count (the relay's chars/4 estimate) and the client's own
    /// output cap, if it named one (`cap_of`).
    pub fn new(prompt_chars: u64, cap: Option<u64>) -> Estimate {
        Estimate {
            prompt_tokens: estimate_tokens(prompt_chars),
            output_cap: cap.unwrap_or(DEFAULT_OUTPUT_CAP),
            explicit_cap: cap.is_some(),
        }
    }

    pub fn worst_tokens(&self) -> Tokens {
        Tokens {
            prompt: self.prompt_tokens,
            completion: self.output_cap,
            ..Tokens::default()
        }
    }

    /// Tokens counted towards `tpm` at admission; settlement replaces them with the real count.
    pub fn rate_tokens(&self) -> u64 {
        if self.explicit_cap {
            add_tokens(self.prompt_tokens, self.output_cap)
        } else {
            self.prompt_tokens
        }
    }

    /// The worst-case cost over `targets` (each `[upstream model, requested model]`, priced as
    /// a usage row is: the first with a price). None when any target has no price.
    pub fn worst_usd(&self, prices: &PriceTable, targets: &[[&str; 2]]) -> Option<f64> {
        let tokens = self.worst_tokens();
        let mut worst: f64 = 0.0;
        for models in targets {
            let models: Vec<&str> = models.iter().copied().filter(|m| !m.is_empty()).collect();
            models.iter().find(|m| prices.lookup(m).is_some())?;
            worst = worst.max(prices.cost(&models, &tokens)?);
        }
        Some(worst)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::load(Some(
            r#"{"models": {"cheap": {"input": 1.0, "output": 2.0}, "dear": {"input": 10.0, "output": 30.0}}}"#,
        ))
        .unwrap()
    }

    fn of(prompt_chars: u64, body: &str) -> Estimate {
        let v: Value = serde_json::from_slice(body.as_bytes()).unwrap_or(Value::Null);
        Estimate::new(prompt_chars, cap_of(CAP_FIELDS.iter().map(|f| v.get(f))))
    }

    #[test]
    fn reads_each_cap_spelling_and_defaults() {
        assert_eq!(of(40, r#"{"max_tokens": 100}"#).output_cap, 100);
        assert_eq!(
            of(40, r#"{"max_completion_tokens": 300, "max_tokens": 100}"#).output_cap,
            300
        );
        assert_eq!(of(40, r#"{"max_output_tokens": 64}"#).output_cap, 64);
        let none = of(40, r#"{"model": "x", "messages": []}"#);
        assert_eq!(
            (none.output_cap, none.explicit_cap),
            (DEFAULT_OUTPUT_CAP, false)
        );
        // Nonsense caps read as the relay reads any count: clamped, never trusted.
        assert_eq!(of(0, r#"{"max_tokens": -5}"#).output_cap, 0);
        assert_eq!(
            of(0, r#"{"max_tokens": "9"}"#).output_cap,
            DEFAULT_OUTPUT_CAP
        );
        assert_eq!(of(0, "not json").output_cap, DEFAULT_OUTPUT_CAP);
        assert_eq!(of(9, "{}").prompt_tokens, 3);
    }

    #[test]
    fn worst_case_is_prompt_at_input_plus_cap_at_output() {
        let e = of(4000, r#"{"max_tokens": 1000}"#);
        // 1000 prompt tokens × $1/M + 1000 output × $2/M.
        let usd = e.worst_usd(&table(), &[["cheap", "alias"]]).unwrap();
        assert!((usd - 0.003).abs() < 1e-12, "{usd}");
        // A fallback to a dearer model is reserved at its price.
        let usd = e
            .worst_usd(&table(), &[["cheap", ""], ["dear", ""]])
            .unwrap();
        assert!((usd - 0.04).abs() < 1e-12, "{usd}");
        // The requested name prices it when the upstream name has no price, like a usage row.
        assert!(e.worst_usd(&table(), &[["unlisted", "cheap"]]).is_some());
    }

    #[test]
    fn an_unpriced_target_has_no_worst_case() {
        let e = of(4, "{}");
        assert_eq!(
            e.worst_usd(&table(), &[["cheap", ""], ["mystery", ""]]),
            None
        );
        // Even a request that would use no tokens: it is the price that is missing.
        let zero = of(0, r#"{"max_tokens": 0}"#);
        assert_eq!(zero.worst_usd(&table(), &[["mystery", ""]]), None);
    }

    #[test]
    fn only_an_explicit_cap_counts_towards_tpm() {
        assert_eq!(of(400, r#"{"max_tokens": 50}"#).rate_tokens(), 150);
        assert_eq!(of(400, "{}").rate_tokens(), 100);
    }
}
