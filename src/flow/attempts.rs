//! The retry/fallback plan for one request, as a state machine with no I/O: it says which
//! target to call with which body, how long to wait before trying again, and when to give up.
//! The edge performs each step and feeds the answer back.

use crate::config::Config;
use crate::http::error::RelayError;
use crate::providers::models::{Provider, Target};

/// Attempts per target before moving to the next, and in all: each attempt is a subrequest,
/// and the free plan allows 50 per request (KV and D1 calls included).
pub const ATTEMPTS_PER_TARGET: u32 = 2;
pub const MAX_ATTEMPTS: u32 = 4;
/// Longest `retry-after` the relay waits out before its one retry; longer ones fall through.
pub const MAX_RETRY_WAIT_MS: u64 = 2_000;

/// What trying one target means for an endpoint: the body and path to send it, and whose
/// error shapes the client reads. Chat, legacy, Messages and Responses differ only in these.
pub trait Plan {
    fn request(
        &self,
        target: &Target,
        config: &Config,
    ) -> Result<(Vec<u8>, &'static str), RelayError>;

    fn client(&self) -> Client {
        Client::OpenAi
    }

    /// What a limits reservation is sized from (README: "Limits"): the prompt's character
    /// count and the output cap the client named (`limits::estimate::cap_of`). No default, so
    /// no endpoint is reserved as if it had no prompt.
    fn reservation(&self) -> (u64, Option<u64>);
}

/// The wire format of the client's errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    OpenAi,
    /// `/v1/messages`: Anthropic's SDKs and Claude Code.
    Anthropic,
}

/// The client-facing error for an upstream answer of `status` (at least 400). The relay's own
/// key problems are never the caller's (401/403 become `UpstreamAuth`, a 502).
pub fn failure(
    client: Client,
    target: &Target,
    status: u16,
    body: Vec<u8>,
    retry_after: Option<String>,
) -> RelayError {
    match (client, target.provider) {
        (Client::Anthropic, Provider::Anthropic) => native_error(status, body, retry_after),
        // In Anthropic's shape with the provider's own message; a 503 is 529 (§6.7).
        (Client::Anthropic, _) => {
            crate::translate::anthropic::errors::from_openai_provider(status, body, retry_after)
        }
        (Client::OpenAi, Provider::Anthropic) => {
            match crate::translate::anthropic::error_from_anthropic(status, &body) {
                RelayError::UpstreamRejected { status, body, .. } => RelayError::UpstreamRejected {
                    status,
                    body,
                    retry_after,
                },
                other => other,
            }
        }
        (Client::OpenAi, _) => RelayError::from_upstream_status(status, body, retry_after),
    }
}

/// Anthropic-client errors from Anthropic: billing is 503, overload and rate limits pass
/// through with Anthropic's body so the SDK retries as it would against Anthropic.
fn native_error(status: u16, body: Vec<u8>, retry_after: Option<String>) -> RelayError {
    match status {
        401 | 403 => RelayError::UpstreamAuth,
        // Billing concerns the relay's Anthropic account, not the caller (§6.7, R2.4).
        402 => RelayError::UpstreamExhausted { quota: true },
        _ => RelayError::UpstreamRejected {
            status,
            body: Some(body),
            retry_after,
        },
    }
}

/// One upstream call the edge is to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Call<'t> {
    pub target: &'t Target,
    /// `/chat/completions`, `/v1/messages`, … on the target's provider.
    pub path: &'static str,
    pub body: Vec<u8>,
    /// This call's number among all attempts of the request, from 1: the row's `attempts`.
    pub attempt: u32,
}

/// What the edge does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<'t> {
    Call(Call<'t>),
    /// Sleep this long, then report `Attempts::waited`.
    Wait {
        ms: u64,
    },
    /// No target will answer: this is the request's error.
    GiveUp(RelayError),
}

/// The plan's position: which target, which try on it, how many calls so far, and the failure
/// to report if none is left.
#[derive(Debug)]
pub struct Attempts<'t> {
    targets: &'t [Target],
    index: usize,
    retry: u32,
    made: u32,
    last: Option<RelayError>,
    model: String,
    prepared: Option<(Vec<u8>, &'static str)>,
}

impl<'t> Attempts<'t> {
    /// `model` names the request's model in the error when there is no target at all.
    pub fn new(targets: &'t [Target], model: &str) -> Self {
        Attempts {
            targets,
            index: 0,
            retry: 0,
            made: 0,
            last: None,
            model: model.to_string(),
            prepared: None,
        }
    }

    /// The first step. (Limits reserve, and a cache looks up, before this: see `flow`.)
    pub fn start(&mut self, plan: &dyn Plan, config: &Config) -> Step<'t> {
        self.enter(plan, config)
    }

    /// The call failed with `error` (a connection failure, or `Plan::failure` of its answer).
    pub fn failed(&mut self, error: RelayError, plan: &dyn Plan, config: &Config) -> Step<'t> {
        if !retryable(&error) && !skip_target(&error) {
            // The request itself is at fault (400, 404, 413, 422…): no other target will differ.
            return Step::GiveUp(error);
        }
        let wait = retry_after_ms(&error);
        let again = retryable(&error)
            && self.retry + 1 < ATTEMPTS_PER_TARGET
            && wait.is_none_or(|w| w <= MAX_RETRY_WAIT_MS);
        self.last = Some(error);
        if !again {
            self.index += 1;
            return self.enter(plan, config);
        }
        let ms = wait.unwrap_or(100 << (self.retry * 2));
        self.retry += 1;
        Step::Wait { ms }
    }

    /// The wait asked for has passed.
    pub fn waited(&mut self) -> Step<'t> {
        self.call()
    }

    /// Moves to target `index` (building its body once for all its tries), or gives up.
    fn enter(&mut self, plan: &dyn Plan, config: &Config) -> Step<'t> {
        let Some(target) = self.targets.get(self.index) else {
            return Step::GiveUp(self.give_up());
        };
        match plan.request(target, config) {
            Ok(prepared) => self.prepared = Some(prepared),
            Err(e) => return Step::GiveUp(e),
        }
        self.retry = 0;
        self.call()
    }

    fn call(&mut self) -> Step<'t> {
        let (Some(target), Some((body, path))) =
            (self.targets.get(self.index), self.prepared.clone())
        else {
            return Step::GiveUp(self.give_up());
        };
        if self.made >= MAX_ATTEMPTS {
            return Step::GiveUp(self.give_up());
        }
        self.made += 1;
        Step::Call(Call {
            target,
            path,
            body,
            attempt: self.made,
        })
    }

    fn give_up(&mut self) -> RelayError {
        self.last
            .take()
            .unwrap_or_else(|| RelayError::ModelNotFound(self.model.clone()))
    }
}

/// Failures another attempt may fix: rate limits, the provider's 5xx, no connection, timeouts.
/// (A 5xx is an `UpstreamRejected` only where it is passed through, as to Anthropic clients.)
pub fn retryable(e: &RelayError) -> bool {
    matches!(
        e,
        RelayError::UpstreamUnavailable(_)
            | RelayError::UpstreamExhausted { quota: false }
            | RelayError::UpstreamTimeout
            | RelayError::UpstreamRejected {
                status: 429 | 500..=599,
                ..
            }
    )
}

/// Failures of the relay's own provider account: no point retrying that provider, but the
/// next target may well answer.
pub fn skip_target(e: &RelayError) -> bool {
    matches!(
        e,
        RelayError::UpstreamAuth | RelayError::UpstreamExhausted { quota: true }
    )
}

/// The provider's `retry-after` in whole seconds, as milliseconds (dates are not waited for).
fn retry_after_ms(e: &RelayError) -> Option<u64> {
    match e {
        RelayError::UpstreamRejected {
            retry_after: Some(v),
            ..
        } => v.trim().parse::<u64>().ok().map(|s| s.saturating_mul(1000)),
        _ => None,
    }
}
