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

/// Replays `transcript` whole, at every 2-way split and byte by byte, and asserts every feed
/// gives the same client bytes and the same observed state (`what` names it in a failure);
/// returns the single-chunk result.
pub fn every_split<T: PartialEq + std::fmt::Debug>(
    transcript: &[u8],
    what: &str,
    replay: impl Fn(&[&[u8]]) -> (Vec<u8>, T),
) -> (Vec<u8>, T) {
    let whole = replay(&[transcript]);
    for cut in 0..=transcript.len() {
        let (a, b) = transcript.split_at(cut);
        let split = replay(&[a, b]);
        assert_eq!(split.0, whole.0, "client bytes differ when split at {cut}");
        assert_eq!(split.1, whole.1, "{what} differs when split at {cut}");
    }
    let singles: Vec<&[u8]> = transcript.chunks(1).collect();
    let bytewise = replay(&singles);
    assert_eq!(bytewise.0, whole.0, "client bytes differ byte by byte");
    assert_eq!(bytewise.1, whole.1, "{what} differs byte by byte");
    whole
}
