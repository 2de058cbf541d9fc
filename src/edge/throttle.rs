//! Per-address throttling of failed authentication (the `AUTH_LIMIT` rate-limit binding), and
//! the isolate's tally of throttled requests, flushed to D1's `refused` table from
//! `wait_until` (rules in `crate::metering::refused`).

use std::cell::{Cell, RefCell};
use std::time::Duration;

use serde_json::json;
use worker::{console_warn, Context, Delay, Env, Request};

use super::{header, keystore, now_ms};
use crate::http::error::RelayError;
use crate::metering::refused::{self, Reason, Tally};
use crate::ttl_cache::TtlCache;

const LIMITER_BINDING: &str = "AUTH_LIMIT";
/// Addresses this isolate remembers as blocked; beyond it the oldest is forgotten and asks
/// the rate limiter again, so the bound holds either way.
const BLOCKED_CAPACITY: usize = 4096;

thread_local! {
    static BLOCKED: RefCell<TtlCache<u64>> =
        RefCell::new(TtlCache::new(BLOCKED_CAPACITY, refused::BLOCK_MS));
    static TALLY: RefCell<Tally> = RefCell::new(Tally::default());
    static NO_LIMITER_LOGGED: Cell<bool> = const { Cell::new(false) };
}

/// The client's address as Cloudflare saw it (`cf-connecting-ip` is set by the edge and
/// cannot be supplied by the client in production); `unknown` when absent, as in local runs.
pub fn client_ip(req: &Request) -> String {
    header(req, "cf-connecting-ip")
        .map(|ip| ip.trim().chars().take(64).collect())
        .unwrap_or_else(|| "unknown".to_string())
}

/// The 429 for an address already blocked for `reason` in this isolate, if it is.
pub fn blocked(reason: Reason, ip: &str) -> Option<RelayError> {
    let now = now_ms();
    let key = reason.limiter_key(ip);
    BLOCKED
        .with(|b| b.borrow_mut().get(&key, now))
        .map(|at| RelayError::AuthThrottled {
            retry_after_s: refused::retry_after_s(at, now),
        })
}

/// After a failure that counts against the address: the 429 that replaces it once the address
/// is over the limit (and its reason, for the tally), or the failure unchanged.
pub async fn judge(env: &Env, ip: &str, e: RelayError) -> (RelayError, Option<Reason>) {
    let Some(reason) = Reason::of(&e) else {
        return (e, None);
    };
    if let Some(throttled) = blocked(reason, ip) {
        return (throttled, Some(reason));
    }
    let key = reason.limiter_key(ip);
    let over = match env.rate_limiter(LIMITER_BINDING) {
        Ok(limiter) => match limiter.limit(key.clone()).await {
            Ok(outcome) => !outcome.success,
            Err(err) => {
                console_warn!("rate limiter {LIMITER_BINDING}: {err}; not throttling");
                false
            }
        },
        Err(_) => {
            if !NO_LIMITER_LOGGED.with(|l| l.replace(true)) {
                console_warn!(
                    "no {LIMITER_BINDING} rate-limit binding ([[ratelimits]] in wrangler.toml): failed authentication is not throttled"
                );
            }
            false
        }
    };
    if !over {
        return (e, None);
    }
    let now = now_ms();
    BLOCKED.with(|b| b.borrow_mut().insert(key, now, now));
    (
        RelayError::AuthThrottled {
            retry_after_s: refused::retry_after_s(now, now),
        },
        Some(reason),
    )
}

/// Counts a throttled request; the first one since the last flush schedules the next flush.
pub fn count(env: &Env, wctx: &Context, reason: Reason) {
    if TALLY.with(|t| t.borrow_mut().add(reason, now_ms())) {
        let env = env.clone();
        wctx.wait_until(async move {
            Delay::from(Duration::from_millis(refused::FLUSH_DELAY_MS)).await;
            flush(&env).await;
        });
    }
}

async fn flush(env: &Env) {
    let rows = TALLY.with(|t| t.borrow_mut().take());
    if rows.is_empty() {
        return;
    }
    // D1 takes 100 bound parameters a statement: 30 rows of three.
    for chunk in rows.chunks(30) {
        let params: Vec<serde_json::Value> = chunk
            .iter()
            .flat_map(|(w, r, n)| [json!(w), json!(r.as_str()), json!(n)])
            .collect();
        if let Err(e) = keystore::query(env, &refused::upsert_sql(chunk.len()), &params).await {
            console_warn!("refused tally not written ({e:?}); kept for the next flush");
            TALLY.with(|t| t.borrow_mut().restore(chunk.to_vec()));
        }
    }
}
