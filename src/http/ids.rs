//! Request ids: `req_` + 24 base62 characters drawn from the platform's RNG, and a fallback
//! that stays unique per request if the RNG ever fails (every row is keyed by this id, so a
//! constant one would make each request's row overwrite the last).

use crate::keys::auth;

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
    if let Some(id) = random.and_then(|r| auth::base62(r, ID_CHARS)) {
        return format!("req_{id}");
    }
    format!(
        "req_f{:x}{:08x}{:016x}",
        fallback.now_ms, fallback.seq, fallback.noise
    )
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
