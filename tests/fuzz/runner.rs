//! The fuzz runner: the budget read from the environment, seeded case generation, panics caught
//! quietly as findings, greedy shrinking, and the report that replays a failure.

use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::gen::Rng;

/// The default seed: `npm test` explores the same cases every run; `npm run fuzz` picks a new
/// one unless `FUZZ_SEED` is set.
const DEFAULT_SEED: u64 = 0x5EED_0012;
const DEFAULT_SECONDS: f64 = 0.25;
const DEFAULT_MAX_ITERS: u64 = 400;
/// Checks spent shrinking a failing case before it is reported.
const SHRINK_BUDGET: usize = 2_000;

struct Budget {
    seed: u64,
    iters: u64,
    time: Duration,
    only: Option<String>,
}

fn budget() -> Budget {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let seed = var("FUZZ_SEED").map(|s| {
        let s = s.trim_start_matches("0x");
        u64::from_str_radix(s, 16).unwrap_or_else(|_| panic!("FUZZ_SEED must be hex, got {s}"))
    });
    let iters = var("FUZZ_ITERS").map(|s| s.parse::<u64>().expect("FUZZ_ITERS must be a number"));
    let seconds =
        var("FUZZ_SECONDS").map(|s| s.parse::<f64>().expect("FUZZ_SECONDS must be a number"));
    Budget {
        seed: seed.unwrap_or(DEFAULT_SEED),
        // An explicit iteration count is run in full; otherwise time bounds the run.
        iters: iters.unwrap_or(if seconds.is_some() {
            u64::MAX
        } else {
            DEFAULT_MAX_ITERS
        }),
        time: Duration::from_secs_f64(seconds.unwrap_or(if iters.is_some() {
            1e9
        } else {
            DEFAULT_SECONDS
        })),
        only: var("FUZZ_TARGET"),
    }
}

thread_local! {
    /// Set while a check runs: its panic is caught and reported, not printed.
    static QUIET: RefCell<bool> = const { RefCell::new(false) };
    /// Where the last caught panic happened.
    static PANIC_AT: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Panics inside checks are expected findings; the default hook would print each shrink step.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(|q| *q.borrow()) {
                let at = info.location().map(|l| l.to_string()).unwrap_or_default();
                PANIC_AT.with(|p| *p.borrow_mut() = at);
            } else {
                default(info);
            }
        }));
    });
}

/// Runs `check`, turning a panic into an error that says where it happened.
pub fn guarded<C>(check: fn(&C) -> Result<(), String>, case: &C) -> Result<(), String> {
    QUIET.with(|q| *q.borrow_mut() = true);
    let result = panic::catch_unwind(AssertUnwindSafe(|| check(case)));
    QUIET.with(|q| *q.borrow_mut() = false);
    match result {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let at = PANIC_AT.with(|p| p.borrow().clone());
            Err(format!("panic at {at}: {msg}"))
        }
    }
}

/// One fuzz target: cases from `gen`, judged by `check`, made smaller by `shrink`.
pub struct Target<C> {
    pub name: &'static str,
    pub gen: fn(&mut Rng) -> C,
    pub check: fn(&C) -> Result<(), String>,
    pub shrink: fn(&C) -> Vec<C>,
    pub show: fn(&C) -> String,
}

impl<C> Target<C> {
    pub fn run(&self) {
        let b = budget();
        if b.only.as_deref().is_some_and(|o| o != self.name) {
            return;
        }
        install_quiet_hook();
        let started = Instant::now();
        let mut done = 0u64;
        while done < b.iters && started.elapsed() < b.time {
            // Case i is generated from seed + i alone, so any case replays on its own.
            let case_seed = b.seed.wrapping_add(done);
            let case = (self.gen)(&mut Rng::new(case_seed));
            if let Err(err) = guarded(self.check, &case) {
                let (small, small_err) = self.minimise(case, err.clone());
                panic!(
                    "fuzz target `{}` failed: {err}\n  minimal case fails with: {small_err}\n  minimal input: {}\n  replay: FUZZ_TARGET={} FUZZ_SEED={case_seed:x} FUZZ_ITERS=1 cargo test --test fuzz",
                    self.name,
                    (self.show)(&small),
                    self.name
                );
            }
            done += 1;
        }
        eprintln!(
            "fuzz {}: seed {:x}, {done} cases in {:.2} s",
            self.name,
            b.seed,
            started.elapsed().as_secs_f64()
        );
    }

    /// Greedy shrinking: take the first smaller case that still fails, until none does.
    pub fn minimise(&self, mut case: C, mut err: String) -> (C, String) {
        let mut spent = 0;
        'outer: while spent < SHRINK_BUDGET {
            for smaller in (self.shrink)(&case) {
                spent += 1;
                if let Err(e) = guarded(self.check, &smaller) {
                    case = smaller;
                    err = e;
                    continue 'outer;
                }
                if spent >= SHRINK_BUDGET {
                    break 'outer;
                }
            }
            break;
        }
        (case, err)
    }
}

// ---------------------------------------------------------------------------------------------
// Shrinking and display helpers
// ---------------------------------------------------------------------------------------------

/// Smaller versions of `bytes`: each SSE event left out, then ranges of halving length removed.
pub fn shrink_bytes(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut starts = vec![0];
    starts.extend(
        bytes
            .windows(2)
            .enumerate()
            .filter(|(_, w)| w == b"\n\n")
            .map(|(i, _)| i + 2),
    );
    starts.push(bytes.len());
    starts.dedup();
    for w in starts.windows(2) {
        let mut v = bytes[..w[0]].to_vec();
        v.extend_from_slice(&bytes[w[1]..]);
        out.push(v);
    }
    let mut len = bytes.len() / 2;
    while len > 0 {
        for at in (0..bytes.len().saturating_sub(len - 1)).step_by(len.max(1)) {
            let mut v = bytes[..at].to_vec();
            v.extend_from_slice(&bytes[at + len..]);
            out.push(v);
        }
        len /= 2;
    }
    out
}

/// Smaller (bytes, cuts) pairs: one cut fewer, or fewer bytes with the cuts kept in range.
pub fn shrink_cut_bytes(bytes: &[u8], cuts: &[usize]) -> Vec<(Vec<u8>, Vec<usize>)> {
    let mut out: Vec<(Vec<u8>, Vec<usize>)> = (0..cuts.len())
        .map(|i| {
            let mut fewer = cuts.to_vec();
            fewer.remove(i);
            (bytes.to_vec(), fewer)
        })
        .collect();
    for smaller in shrink_bytes(bytes) {
        let kept = cuts.iter().map(|&x| x.min(smaller.len())).collect();
        out.push((smaller, kept));
    }
    out
}

pub fn show_bytes(bytes: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(bytes))
}

/// Smaller JSON values: each array item or object key dropped, or a child put in its place.
pub fn shrink_value(v: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    match v {
        Value::Array(a) => {
            for i in 0..a.len() {
                out.push(a[i].clone());
                let mut b = a.clone();
                b.remove(i);
                out.push(Value::Array(b));
            }
            for i in 0..a.len() {
                for smaller in shrink_value(&a[i]) {
                    let mut b = a.clone();
                    b[i] = smaller;
                    out.push(Value::Array(b));
                }
            }
        }
        Value::Object(o) => {
            for k in o.keys() {
                let mut b = o.clone();
                b.remove(k);
                out.push(Value::Object(b));
            }
            for (k, child) in o {
                for smaller in shrink_value(child) {
                    let mut b = o.clone();
                    b.insert(k.clone(), smaller);
                    out.push(Value::Object(b));
                }
            }
        }
        Value::String(s) if !s.is_empty() => out.push(Value::String(String::new())),
        _ => {}
    }
    out
}
