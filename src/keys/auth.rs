//! Relay keys: the `lc_<env>_<team>_<user>_<secret>` format (protocol.md R1.9), minting from
//! random bytes, SHA-256 hashing (the only form stored), the KV record, and authorization checks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::http::error::{KeyProblem, RelayError};
pub use crate::http::ids::base62;
use crate::http::ids::sha256_hex;

/// Base62 secret length: 32 chars × log2(62) ≈ 190 bits, well over the 128 R1.9 asks for.
pub const SECRET_LEN: usize = 32;
/// Shortest secret we accept when parsing (≥ 128 bits).
const MIN_SECRET_LEN: usize = 22;
const MAX_SLUG_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    Active,
    Revoked,
}

/// What KV holds under `key:<sha256 hex>`: the authority for identity and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub team: String,
    pub user: String,
    pub env: String,
    pub created_at: String,
    pub status: KeyStatus,
    /// RFC 3339 instant after which the key stops working; compared as text (same format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// Models (or `prefix*` patterns) the key may call; None means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// Names this key may use for other models (e.g. to dodge Cursor's model-name routing).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The key's spend and rate limits (README: "Limits"); empty when it has none, and then
    /// its requests never reach a limits object.
    #[serde(default, skip_serializing_if = "crate::limits::Limits::is_empty")]
    pub limits: crate::limits::Limits,
    /// Response caching for every request of the key (issue 17); None: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::cache::KeyCache>,
}

/// The KV name a key's record lives under.
pub fn kv_name(key: &str) -> String {
    format!("key:{}", hash_key(key))
}

/// Lowercase hex SHA-256 of the whole key string.
pub fn hash_key(key: &str) -> String {
    sha256_hex(key)
}

/// Extracts the token from `Authorization: Bearer <token>`; scheme matched case-insensitively (R1.5).
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

/// True when `key` has the relay's shape; a cheap filter before the KV lookup.
pub fn well_formed(key: &str) -> bool {
    let parts: Vec<&str> = key.split('_').collect();
    match parts.as_slice() {
        ["lc", env, team, user, secret] => {
            is_slug(env)
                && is_slug(team)
                && is_slug(user)
                && secret.len() >= MIN_SECRET_LEN
                && secret.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        _ => false,
    }
}

/// `[a-z0-9-]{1,32}`: what env, team and user may be, so the key stays `_`-separable.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SLUG_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// How a key is shown back in an error: enough to recognise, too little to use.
pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 16 {
        return "****".to_string();
    }
    let head: String = chars.iter().take(8).collect();
    let tail: String = chars.iter().skip(chars.len() - 4).collect();
    format!("{head}****{tail}")
}

/// Random bytes needed to draw `len` base62 symbols with overwhelming probability.
pub fn random_budget(len: usize) -> usize {
    len * 2 + 16
}

pub fn mint_key(env: &str, team: &str, user: &str, random: &[u8]) -> Option<String> {
    let secret = base62(random, SECRET_LEN)?;
    Some(format!("lc_{env}_{team}_{user}_{secret}"))
}

/// Equal-time comparison for the admin token, so response timing leaks nothing about it.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        let y = b.get(i % b.len().max(1)).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    diff == 0
}

/// Decides whether a presented key, and the record KV returned for it, may be used at `now`.
pub fn authorize(
    presented: Option<&str>,
    record: Option<KeyRecord>,
    now_rfc3339: &str,
) -> Result<KeyRecord, RelayError> {
    let key = presented.ok_or(RelayError::InvalidApiKey(KeyProblem::Missing))?;
    let unknown = || RelayError::InvalidApiKey(KeyProblem::Unknown(mask(key)));
    let record = record.ok_or_else(unknown)?;
    if record.status == KeyStatus::Revoked {
        return Err(RelayError::InvalidApiKey(KeyProblem::Revoked));
    }
    if let Some(exp) = &record.expires_at {
        if exp.as_str() <= now_rfc3339 {
            return Err(RelayError::InvalidApiKey(KeyProblem::Expired));
        }
    }
    Ok(record)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sha256_known_vectors() {
        assert_eq!(
            hash_key(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("  bearer   abc  ")), Some("abc"));
        assert_eq!(bearer(Some("BEARER abc")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(Some("Bearer   ")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn minted_keys_are_well_formed_and_unbiased() {
        let random: Vec<u8> = (0..=255u8)
            .cycle()
            .take(random_budget(SECRET_LEN))
            .collect();
        let key = mint_key("prod", "team-1", "ann", &random).unwrap();
        assert!(key.starts_with("lc_prod_team-1_ann_"));
        assert!(well_formed(&key));
        assert_eq!(key.len(), "lc_prod_team-1_ann_".len() + SECRET_LEN);
        // Bytes ≥ 248 are skipped, never mapped.
        assert_eq!(base62(&[248, 255, 0, 61, 62], 3).unwrap(), "0z0");
        assert_eq!(base62(&[1, 2], 3), None);
    }

    #[test]
    fn well_formed_rejects_edits() {
        let secret = "a".repeat(SECRET_LEN);
        assert!(well_formed(&format!("lc_prod_t_u_{secret}")));
        assert!(!well_formed(&format!("lc_prod_T_u_{secret}")));
        assert!(!well_formed(&format!("lc_prod_t_u_x_{secret}")));
        assert!(!well_formed("lc_prod_t_u_short"));
        assert!(!well_formed(&format!("sk_prod_t_u_{secret}")));
        assert!(!well_formed(&format!("lc_prod_t_u_{secret}!")));
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret1"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    fn record(status: KeyStatus, expires_at: Option<&str>) -> KeyRecord {
        KeyRecord {
            id: "key_1".into(),
            team: "t".into(),
            user: "u".into(),
            env: "prod".into(),
            created_at: "2026-01-01T00:00:00.000Z".into(),
            status,
            expires_at: expires_at.map(str::to_string),
            name: None,
            updated_at: None,
            models: None,
            aliases: BTreeMap::new(),
            metadata: BTreeMap::new(),
            limits: Default::default(),
            cache: None,
        }
    }

    #[test]
    fn authorize_cases() {
        let now = "2026-06-01T00:00:00.000Z";
        assert_eq!(
            authorize(None, None, now),
            Err(RelayError::InvalidApiKey(KeyProblem::Missing))
        );
        assert_eq!(
            authorize(Some("lc_prod_t_u_abcdefghijklmnopqrstuvwxyz"), None, now),
            Err(RelayError::InvalidApiKey(KeyProblem::Unknown(
                "lc_prod_****wxyz".into()
            )))
        );
        assert_eq!(
            authorize(Some("k"), Some(record(KeyStatus::Revoked, None)), now),
            Err(RelayError::InvalidApiKey(KeyProblem::Revoked))
        );
        let expired = record(KeyStatus::Active, Some("2026-05-01T00:00:00.000Z"));
        assert_eq!(
            authorize(Some("k"), Some(expired), now),
            Err(RelayError::InvalidApiKey(KeyProblem::Expired))
        );
        let ok = record(KeyStatus::Active, Some("2027-01-01T00:00:00.000Z"));
        assert!(authorize(Some("k"), Some(ok), now).is_ok());
    }
}
