//! A hash map split into [`SHARDS`] maps, so that growing never pauses the
//! owner for long: a hash map doubles by rehashing every entry at once
//! (about 65 ms at 229,376 transactions on this machine), while one shard
//! of this map holds a 256th of the entries and rehashes only those.
//! The shard of a key comes from [`ShardKey`], a cheap function of the key
//! and a seed drawn per map (a peer choosing keys cannot aim them at one
//! shard without knowing it); each shard keeps std's randomly seeded
//! hasher for its lookups.
//!
//! It owns the split and nothing else: no ordering, no iteration order
//! promises, no locking (one owner, like the rest of the transaction layer).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// Shards per map: a power of two.
pub(crate) const SHARDS: usize = 256;
const _: () = assert!(SHARDS.is_power_of_two());

/// Which shard a key (and anything that borrows as it) lives in.
pub(crate) trait ShardKey {
    fn shard(&self, seed: u64) -> usize;
}

impl ShardKey for str {
    /// A multiply-xor over the key eight bytes at a time: transaction keys
    /// are branch-based, any of their bytes may be the one that differs,
    /// and this runs on every lookup (a byte-wise hash cost ten times more).
    fn shard(&self, seed: u64) -> usize {
        let mut h: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed;
        let mut chunks = self.as_bytes().chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0x0100_0000_01b3);
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(0x0100_0000_01b3);
        (h >> (64 - SHARDS.trailing_zeros())) as usize
    }
}

impl ShardKey for String {
    fn shard(&self, seed: u64) -> usize {
        self.as_str().shard(seed)
    }
}

pub(crate) struct ShardedMap<K, V> {
    shards: Vec<HashMap<K, V>>,
    len: usize,
    seed: u64,
}

impl<K: Hash + Eq + ShardKey, V> ShardedMap<K, V> {
    /// Room for `capacity` entries spread evenly before any shard grows.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let each = capacity.div_ceil(SHARDS);
        use std::hash::BuildHasher;
        ShardedMap {
            shards: (0..SHARDS).map(|_| HashMap::with_capacity(each)).collect(),
            len: 0,
            seed: std::collections::hash_map::RandomState::new().hash_one(SHARDS),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ShardKey + ?Sized,
    {
        self.shards[key.shard(self.seed)].get(key)
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ShardKey + ?Sized,
    {
        self.shards[key.shard(self.seed)].get_mut(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let old = self.shards[key.shard(self.seed)].insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ShardKey + ?Sized,
    {
        let removed = self.shards[key.shard(self.seed)].remove(key);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// The entries of one shard in `every` (an unbiased sample: keys
    /// spread evenly over the shards), for estimates that cannot afford a
    /// walk over the whole table.
    pub(crate) fn sample(&self, every: usize) -> impl Iterator<Item = (&K, &V)> {
        self.shards
            .iter()
            .step_by(every.max(1))
            .flat_map(|s| s.iter())
    }

    /// Every entry, shard by shard (for rare walks over the whole table).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|s| s.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_spread_over_every_shard_and_the_count_follows_inserts_and_removes() {
        let mut map: ShardedMap<String, u32> = ShardedMap::with_capacity(0);
        for i in 0..64_000u32 {
            let key = format!("s|z9hG4bK{i:x}|127.0.0.1:5060|INVITE");
            assert!(map.insert(key, i).is_none());
        }
        assert_eq!(map.len(), 64_000);
        // No shard far from its share: growth stays a 256th of the table.
        for shard in &map.shards {
            assert!((180..330).contains(&shard.len()), "{}", shard.len());
        }
        let key = "s|z9hG4bK1f|127.0.0.1:5060|INVITE";
        assert_eq!(map.get(key), Some(&0x1f));
        assert_eq!(map.insert(key.to_string(), 7), Some(0x1f));
        assert_eq!(map.len(), 64_000, "a replacement is no new entry");
        *map.get_mut(key).unwrap_or(&mut 0) += 1;
        assert_eq!(map.remove(key), Some(8));
        assert_eq!(map.remove(key), None);
        assert_eq!(map.len(), 63_999);
        assert_eq!(map.iter().count(), 63_999);
        assert!(!map.is_empty());
    }
}
