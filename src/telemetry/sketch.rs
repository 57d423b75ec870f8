//! Distinct-user estimate over a sliding five minutes: HyperLogLog in five one-minute windows.
//!
//! Memory is fixed (5 KiB per route) whatever the number of users.

/// Registers per window: 2^10, a standard error of about 3%.
const P: u32 = 10;
const M: usize = 1 << P;
const WINDOWS: usize = 5;
const WINDOW_SECS: u64 = 60;

pub struct UserSketch {
    /// Register sets, one per minute, indexed by minute number modulo WINDOWS.
    windows: [[u8; M]; WINDOWS],
    /// The minute number each window holds.
    minute: [u64; WINDOWS],
}

impl Default for UserSketch {
    fn default() -> Self {
        Self::new()
    }
}

impl UserSketch {
    pub fn new() -> Self {
        UserSketch {
            windows: [[0; M]; WINDOWS],
            minute: [u64::MAX; WINDOWS],
        }
    }

    /// Adds a user given a well-mixed 64-bit hash of its id.
    pub fn add(&mut self, hash: u64, now_secs: u64) {
        let minute = now_secs / WINDOW_SECS;
        let slot = (minute % WINDOWS as u64) as usize;
        if self.minute[slot] != minute {
            self.windows[slot] = [0; M];
            self.minute[slot] = minute;
        }
        let idx = (hash >> (64 - P)) as usize;
        let rest = hash << P;
        let rank = (rest.leading_zeros() + 1).min(64 - P + 1) as u8;
        let reg = &mut self.windows[slot][idx];
        if rank > *reg {
            *reg = rank;
        }
    }

    /// Estimated distinct users over the last five minutes.
    pub fn estimate(&self, now_secs: u64) -> f64 {
        let minute = now_secs / WINDOW_SECS;
        let mut merged = [0u8; M];
        for (w, regs) in self.windows.iter().enumerate() {
            let m = self.minute[w];
            if m == u64::MAX || m + (WINDOWS as u64) <= minute || m > minute {
                continue;
            }
            for (dst, src) in merged.iter_mut().zip(regs.iter()) {
                *dst = (*dst).max(*src);
            }
        }
        let m = M as f64;
        let alpha = 0.7213 / (1.0 + 1.079 / m);
        let sum: f64 = merged.iter().map(|r| 2f64.powi(-i32::from(*r))).sum();
        let raw = alpha * m * m / sum;
        let zeros = merged.iter().filter(|r| **r == 0).count();
        if raw <= 2.5 * m && zeros > 0 {
            m * (m / zeros as f64).ln()
        } else {
            raw
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(i: u64) -> u64 {
        // splitmix64: a stand-in for the keyed hash.
        let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn small_counts_are_near_exact() {
        let mut s = UserSketch::new();
        for i in 0..10 {
            s.add(mix(i), 1000);
            s.add(mix(i), 1001);
        }
        assert_eq!(s.estimate(1000).round(), 10.0);
    }

    #[test]
    fn large_counts_within_ten_percent() {
        let mut s = UserSketch::new();
        for i in 0..100_000 {
            s.add(mix(i), 1000 + i % 200);
        }
        let e = s.estimate(1200);
        assert!((90_000.0..110_000.0).contains(&e), "estimate {e}");
    }

    #[test]
    fn users_age_out_after_five_minutes() {
        let mut s = UserSketch::new();
        for i in 0..50 {
            s.add(mix(i), 0);
        }
        assert_eq!(s.estimate(10).round(), 50.0);
        assert_eq!(s.estimate(5 * 60 + 1), 0.0);
    }
}
