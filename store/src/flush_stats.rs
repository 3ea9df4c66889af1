//! Distributions of the commit log's group commits: how many bytes each fdatasync made durable
//! and how long it took. The flusher records one observation per fdatasync into plain counters
//! (the store is shard-resident: one writer, no atomics); the broker's metrics endpoint reads a
//! copy ([`crate::Store::flush_stats`]) and exposes them as histograms.
//!
//! Buckets are powers of two, so recording is a leading-zeros count and the broker picks the
//! bounds it exposes; an observation of `v` lands in bucket `k` with `2^(k-1) < v ≤ 2^k`
//! (bucket 0 holds 0 and 1).

/// Buckets of a [`Log2Histogram`]: every `u64` fits.
pub const LOG2_BUCKETS: usize = 65;

/// Observations in power-of-two buckets, with their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Log2Histogram {
    /// `counts[k]`: observations `v` with `2^(k-1) < v ≤ 2^k` (k = 0: v ≤ 1).
    pub counts: [u64; LOG2_BUCKETS],
    pub sum: u64,
    pub count: u64,
}

impl Default for Log2Histogram {
    fn default() -> Log2Histogram {
        Log2Histogram { counts: [0; LOG2_BUCKETS], sum: 0, count: 0 }
    }
}

impl Log2Histogram {
    /// The bucket `value` falls in.
    pub fn bucket_of(value: u64) -> usize {
        if value <= 1 { 0 } else { (u64::BITS - (value - 1).leading_zeros()) as usize }
    }

    pub fn record(&mut self, value: u64) {
        if let Some(count) = self.counts.get_mut(Self::bucket_of(value)) {
            *count += 1;
        }
        self.sum = self.sum.saturating_add(value);
        self.count += 1;
    }
}

/// One store's group-commit distributions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Bytes made durable by each commit-log fdatasync (the flush batch).
    pub sync_bytes: Log2Histogram,
    /// Each commit-log fdatasync's duration, in microseconds.
    pub sync_micros: Log2Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_bucket_of_their_power_of_two() {
        assert_eq!([0, 1, 2, 3, 4, 5, 1024, 1025, u64::MAX].map(Log2Histogram::bucket_of), [0, 0, 1, 2, 2, 3, 10, 11, 64]);
        let mut h = Log2Histogram::default();
        h.record(4096);
        h.record(100);
        assert_eq!((h.counts[12], h.counts[7], h.count, h.sum), (1, 1, 2, 4196));
    }
}
