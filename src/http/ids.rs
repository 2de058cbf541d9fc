//! Ids: request ids (`req_` + 24 base62 characters drawn from the platform's RNG, and a fallback
//! that stays unique per request if the RNG ever fails: every row is keyed by this id, so a
//! constant one would make each request's row overwrite the last), the base62 text keys and ids
//! are drawn in, and the SHA-256 hex digest that stands in for a secret or a personal value
//! (key hashes, hashed end-user ids sent upstream).

use sha2::{Digest, Sha256};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8; 16] = b"0123456789abcdef";

const ID_CHARS: usize = 24;

/// What the edge can still tell requests apart by when the RNG has failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback {
    pub now_ms: u64,
    /// This isolate's count of requests so far: unique within the isolate.
    pub seq: u64,
    /// Non-cryptographic noise (`Math.random`), so two isolates at the same millisecond and
    /// count still differ.
    pub noise: u64,
}

/// The id for one request. `random` is None when the RNG failed; the id then has a visibly
/// different form (`req_f…`) so such rows can be found.
pub fn request_id(random: Option<&[u8]>, fallback: Fallback) -> String {
    if let Some(id) = random.and_then(|r| base62(r, ID_CHARS)) {
        return format!("req_{id}");
    }
    format!(
        "req_f{:x}{:08x}{:016x}",
        fallback.now_ms, fallback.seq, fallback.noise
    )
}

/// Base62 text from random bytes by rejection sampling, so every symbol is equally likely.
/// Returns None when `random` runs out before `len` symbols (the caller supplies enough).
pub fn base62(random: &[u8], len: usize) -> Option<String> {
    let mut out = String::with_capacity(len);
    for &b in random {
        if out.len() == len {
            break;
        }
        // 248 = 4 × 62: values at or above it would bias the first symbols.
        if b < 248 {
            out.push(char::from(BASE62[usize::from(b % 62)]));
        }
    }
    (out.len() == len).then_some(out)
}

/// Lowercase hex SHA-256 of `s`: stable per input, and nothing of the input can be read back.
pub fn sha256_hex(s: &str) -> String {
    let digest = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const AT: Fallback = Fallback {
        now_ms: 1_764_620_000_000,
        seq: 7,
        noise: 0xdead_beef,
    };

    #[test]
    fn random_ids_are_base62() {
        let bytes: Vec<u8> = (0..64).collect();
        let id = request_id(Some(&bytes), AT);
        assert_eq!(id.len(), 4 + ID_CHARS);
        assert!(id.starts_with("req_"));
        assert!(id[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn a_failed_rng_still_gives_each_request_its_own_id() {
        let first = request_id(None, AT);
        let next = request_id(None, Fallback { seq: 8, ..AT });
        let other_isolate = request_id(None, Fallback { noise: 1, ..AT });
        assert!(first.starts_with("req_f"));
        assert_ne!(first, next);
        assert_ne!(first, other_isolate);
        // Not enough usable bytes is a failure too, not a short id.
        assert_eq!(request_id(Some(&[255u8; 64]), AT), first);
    }
}
