//! Helpers the native integration tests share: replaying upstream bytes through any `Relay`.
#![allow(dead_code)]

use llm_relay::protocols::stream::{Relay, Settled};

/// Feeds `chunks` in order, then ends the upstream; returns the client bytes and how the
/// stream settled (for a finished and for a cancelled client, since both rows are written).
pub fn replay(relay: &mut dyn Relay, chunks: &[&[u8]]) -> (Vec<u8>, Settled, Settled) {
    let mut out = Vec::new();
    for c in chunks {
        out.extend(relay.feed(c.to_vec()));
    }
    out.extend(relay.finish());
    (out, relay.settle(40, false), relay.settle(40, true))
}

/// `bytes` cut at each of `cuts` (any order, duplicates and out-of-range offsets allowed).
pub fn split_at<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut at = 0;
    for c in cuts {
        out.push(&bytes[at..c]);
        at = c;
    }
    out.push(&bytes[at..]);
    out
}
