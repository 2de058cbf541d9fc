//! A small bounded cache with a time-to-live, kept per isolate: key records read from KV are
//! reused for a few seconds so a burst of requests from one key costs one KV read.

use std::collections::HashMap;

#[derive(Debug)]
pub struct TtlCache<V> {
    entries: HashMap<String, (V, u64)>,
    capacity: usize,
    ttl_ms: u64,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(capacity: usize, ttl_ms: u64) -> Self {
        TtlCache {
            entries: HashMap::new(),
            capacity,
            ttl_ms,
        }
    }

    /// The value stored under `key` if it is younger than the TTL at `now_ms`.
    pub fn get(&mut self, key: &str, now_ms: u64) -> Option<V> {
        match self.entries.get(key) {
            Some((v, at)) if now_ms.saturating_sub(*at) < self.ttl_ms => Some(v.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&mut self, key: String, value: V, now_ms: u64) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            // Expired entries go first; if none, the oldest one. Linear, but the map is small.
            let ttl = self.ttl_ms;
            self.entries
                .retain(|_, (_, at)| now_ms.saturating_sub(*at) < ttl);
            if self.entries.len() >= self.capacity {
                let oldest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, at))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    self.entries.remove(&k);
                }
            }
        }
        self.entries.insert(key, (value, now_ms));
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_after_ttl() {
        let mut c = TtlCache::new(4, 100);
        c.insert("a".into(), 1, 1000);
        assert_eq!(c.get("a", 1099), Some(1));
        assert_eq!(c.get("a", 1100), None);
        assert!(c.is_empty(), "expired entries are dropped on read");
    }

    #[test]
    fn bounded_by_capacity_evicting_oldest() {
        let mut c = TtlCache::new(2, 1000);
        c.insert("a".into(), 1, 0);
        c.insert("b".into(), 2, 10);
        c.insert("c".into(), 3, 20);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("a", 30), None);
        assert_eq!(c.get("b", 30), Some(2));
        assert_eq!(c.get("c", 30), Some(3));
        c.insert("b".into(), 4, 40);
        assert_eq!(c.len(), 2, "replacing a key does not evict");
        c.remove("b");
        assert_eq!(c.get("b", 41), None);
    }
}
