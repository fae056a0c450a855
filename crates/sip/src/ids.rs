//! Branches, tags and Call-IDs from a seedable generator: random in
//! production, repeatable in tests.

use std::fmt::Write;

use crate::header::BRANCH_COOKIE;

/// Source of protocol identifiers.
#[derive(Clone, Debug)]
pub struct IdGenerator {
    rng: fastrand::Rng,
}

impl IdGenerator {
    /// Seeded from the operating system's entropy.
    pub fn new() -> Self {
        IdGenerator {
            rng: fastrand::Rng::new(),
        }
    }

    /// The same seed gives the same identifiers, in the same order.
    pub fn with_seed(seed: u64) -> Self {
        IdGenerator {
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    fn push_token(&mut self, out: &mut String, bits: u32) {
        let mut first = true;
        let mut left = bits;
        while left > 0 || first {
            first = false;
            let v = self.rng.u64(..);
            let _ = write!(out, "{v:016x}");
            left = left.saturating_sub(64);
        }
    }

    /// A branch with the RFC 3261 magic cookie and 64 random bits.
    pub fn branch(&mut self) -> String {
        let mut s = String::with_capacity(BRANCH_COOKIE.len() + 16);
        s.push_str(BRANCH_COOKIE);
        self.push_token(&mut s, 64);
        s
    }

    /// A From/To tag with 64 random bits (§19.3 asks for at least 32).
    pub fn tag(&mut self) -> String {
        let mut s = String::with_capacity(16);
        self.push_token(&mut s, 64);
        s
    }

    /// A Call-ID with 128 random bits, unique without a host part.
    pub fn call_id(&mut self) -> String {
        let mut s = String::with_capacity(32);
        self.push_token(&mut s, 128);
        s
    }

    /// Random bytes for secrets (nonce keys).
    pub fn secret(&mut self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.u64(..).to_le_bytes());
        }
        out
    }

    pub fn u64(&mut self) -> u64 {
        self.rng.u64(..)
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        IdGenerator::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_repeat() {
        let mut a = IdGenerator::with_seed(7);
        let mut b = IdGenerator::with_seed(7);
        assert_eq!(a.branch(), b.branch());
        assert_eq!(a.call_id(), b.call_id());
        assert!(a.branch().starts_with("z9hG4bK"));
        assert_eq!(a.call_id().len(), 32);
    }
}
