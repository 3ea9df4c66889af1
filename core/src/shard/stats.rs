//! What one shard measures for the admin answers: GET_BROKER_RUNTIME_INFO's TPS triples and
//! daily totals, GET_CONSUME_STATS's `consumeTps` (PROTOCOL.md §4.7, §4.8).
//!
//! The pull path bumps plain counters here (no lock, no atomic: the shard is the only
//! writer and reader); the **stats sampler** task of each shard (`run.rs`) snapshots them, with the
//! store's append count, once a second into a ring of Java's size (`MAX_RECORDS_OF_SAMPLING`,
//! 601), and the per-(group, topic) pulled-message counters every 10 s. Rates are differences
//! between samples, as Java's `StoreStatsService` computes them; the admin handler asks every
//! shard for its figures through the mailboxes and sums them.
//!
//! Shard-resident: one [`RuntimeStats`] per shard, in its `ShardCtx`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ferromq_store::QueueId;

/// How often the sampler runs.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(1);
/// Samples kept: ten minutes and one at one a second, Java's `MAX_RECORDS_OF_SAMPLING`.
pub const MAX_SAMPLES: usize = 601;
/// The windows of Java's TPS triples ("<10 s> <60 s> <600 s>"), in samples.
pub const TPS_WINDOWS: [usize; 3] = [10, 60, 600];
/// The per-(group, topic) counters are sampled this often …
const GROUP_SAMPLE_PERIOD_MS: i64 = 10_000;
/// … and this many samples are kept: `consumeTps` is the rate over the last minute, as Java's
/// `tpsGroupGetNums` (a minute statistic).
const GROUP_SAMPLES: usize = 7;
/// A (group, topic) nothing was pulled for in this long is forgotten (its rate is 0 by then).
const GROUP_IDLE_FORGET_MS: i64 = 600_000;
/// A queue's pull offset no pull of its group refreshed in this long is forgotten: consumers
/// that are online pull at least every long-poll period (15–30 s), even with nothing new.
const PULL_OFFSET_IDLE_FORGET_MS: i64 = 600_000;

/// Running totals since the shard started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Messages appended to the shard's log (Java's `putMessageTimesTotal`).
    pub put: u64,
    /// Store reads for pulls that found messages (Java's `getMessageTimesTotalFound`).
    pub get_found: u64,
    /// Store reads for pulls that found none (`getMessageTimesTotalMiss`).
    pub get_miss: u64,
    /// Messages those reads returned (`getMessageTransferedMsgCount`).
    pub get_transferred: u64,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    at_ms: i64,
    totals: Totals,
}

/// The totals at the last two local midnights (Java's `BrokerStats`): 0 until the first
/// midnight after start, as in Java.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayMarks {
    day: Option<i64>,
    pub today_morning: Totals,
    pub yesterday_morning: Totals,
}

/// One (group, topic)'s pulled messages on this shard and their samples.
#[derive(Debug, Default)]
struct GroupGets {
    total: u64,
    samples: VecDeque<(i64, u64)>,
    last_change_ms: i64,
}

/// One shard's figures as GET_BROKER_RUNTIME_INFO sums them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Figures {
    pub totals: Totals,
    pub days: DayMarks,
    /// Per second over [`TPS_WINDOWS`]: put, get found, get miss, get transferred, get total.
    pub put_tps: [f64; 3],
    pub get_found_tps: [f64; 3],
    pub get_miss_tps: [f64; 3],
    pub get_transferred_tps: [f64; 3],
    pub get_total_tps: [f64; 3],
}

impl Figures {
    /// Adds another shard's figures (rates and totals add up over shards).
    pub fn add(&mut self, other: &Figures) {
        let t = &mut self.totals;
        let o = &other.totals;
        t.put += o.put;
        t.get_found += o.get_found;
        t.get_miss += o.get_miss;
        t.get_transferred += o.get_transferred;
        for (mine, theirs) in [(&mut self.days.today_morning, &other.days.today_morning), (&mut self.days.yesterday_morning, &other.days.yesterday_morning)] {
            mine.put += theirs.put;
            mine.get_transferred += theirs.get_transferred;
        }
        for (mine, theirs) in [
            (&mut self.put_tps, &other.put_tps),
            (&mut self.get_found_tps, &other.get_found_tps),
            (&mut self.get_miss_tps, &other.get_miss_tps),
            (&mut self.get_transferred_tps, &other.get_transferred_tps),
            (&mut self.get_total_tps, &other.get_total_tps),
        ] {
            for (m, t) in mine.iter_mut().zip(theirs) {
                *m += t;
            }
        }
    }
}

/// A TPS triple as Java writes it: three doubles, space-separated ("0.0 12.5 3.25").
pub fn tps_triple(rates: &[f64; 3]) -> String {
    format!("{} {} {}", java_double(rates[0]), java_double(rates[1]), java_double(rates[2]))
}

/// A rate as Java's `String.valueOf(double)` writes small values: always with a fraction.
pub fn java_double(value: f64) -> String {
    format!("{value:?}")
}

/// The counters and samples of one shard.
#[derive(Debug, Default)]
pub struct RuntimeStats {
    get_found: Cell<u64>,
    get_miss: Cell<u64>,
    get_transferred: Cell<u64>,
    samples: RefCell<VecDeque<Sample>>,
    days: Cell<DayMarks>,
    groups: RefCell<HashMap<String, HashMap<String, GroupGets>>>,
    last_group_sample_ms: Cell<Option<i64>>,
    /// Group → topic → queue → (the nextBeginOffset of the last pull this shard's connections
    /// served, when): GET_CONSUME_STATS `pullOffset` (Java's `pullOffsetTable`). One entry per
    /// queue a group pulls, forgotten after [`PULL_OFFSET_IDLE_FORGET_MS`] without a pull, so
    /// deleted groups and topics do not stay: then `pullOffset` is the committed offset again,
    /// as Java's answer for a queue it has no pull offset for.
    pull_offsets: RefCell<HashMap<String, HashMap<String, PullOffsets>>>,
}

/// Queue id → (the next offset the last pull told the consumer, when it was served, ms).
pub type PullOffsets = HashMap<QueueId, (u64, i64)>;

impl RuntimeStats {
    /// One store read for a pull on this (owner) shard: found `messages`, or none.
    pub fn count_get(&self, messages: u32) {
        if messages > 0 {
            self.get_found.set(self.get_found.get() + 1);
            self.get_transferred.set(self.get_transferred.get() + u64::from(messages));
        } else {
            self.get_miss.set(self.get_miss.get() + 1);
        }
    }

    /// Messages a pull of `group` on `topic` answered, counted on the pull's connection shard.
    pub fn count_group_get(&self, group: &str, topic: &str, messages: u32) {
        if messages == 0 {
            return;
        }
        let mut groups = self.groups.borrow_mut();
        if let Some(gets) = groups.get_mut(group).and_then(|topics| topics.get_mut(topic)) {
            gets.total += u64::from(messages);
            return;
        }
        // New: it had pulled nothing at the last sample, which the rate counts from.
        let mut gets = GroupGets { total: u64::from(messages), ..Default::default() };
        if let Some(at) = self.last_group_sample_ms.get() {
            gets.samples.push_back((at, 0));
            gets.last_change_ms = at;
        }
        groups.entry(group.to_owned()).or_default().insert(topic.to_owned(), gets);
    }

    /// A pull of `group` on `queue_id` of `topic` told the consumer to go on at `next_offset`
    /// (counted on the pull's connection shard; no allocation once the queue is known).
    pub fn note_pull_offset(&self, group: &str, topic: &str, queue_id: QueueId, next_offset: u64, at_ms: i64) {
        let mut groups = self.pull_offsets.borrow_mut();
        if let Some(queues) = groups.get_mut(group).and_then(|topics| topics.get_mut(topic)) {
            queues.insert(queue_id, (next_offset, at_ms));
            return;
        }
        groups.entry(group.to_owned()).or_default().entry(topic.to_owned()).or_default().insert(queue_id, (next_offset, at_ms));
    }

    /// Queue → (next offset, when) of the last pulls of `group` on `topic` served here.
    pub fn pull_offsets(&self, group: &str, topic: &str) -> PullOffsets {
        self.pull_offsets.borrow().get(group).and_then(|topics| topics.get(topic)).cloned().unwrap_or_default()
    }

    /// The totals now, with `put` the store's append count.
    pub fn totals(&self, put: u64) -> Totals {
        Totals { put, get_found: self.get_found.get(), get_miss: self.get_miss.get(), get_transferred: self.get_transferred.get() }
    }

    /// Takes a sample at `at_ms` (the sampler calls it once a second; tests with chosen times).
    pub fn sample(&self, at_ms: i64, put: u64) {
        let totals = self.totals(put);
        {
            let mut samples = self.samples.borrow_mut();
            if samples.len() == MAX_SAMPLES {
                samples.pop_front();
            }
            samples.push_back(Sample { at_ms, totals });
        }
        let day = ferromq_store::retention::local_day(at_ms);
        let mut days = self.days.get();
        match days.day {
            None => days.day = Some(day),
            Some(d) if d != day => {
                days = DayMarks { day: Some(day), today_morning: totals, yesterday_morning: days.today_morning };
            }
            Some(_) => {}
        }
        self.days.set(days);
        if self.last_group_sample_ms.get().is_none_or(|last| at_ms - last >= GROUP_SAMPLE_PERIOD_MS) {
            self.sample_groups(at_ms);
        }
    }

    fn sample_groups(&self, at_ms: i64) {
        self.last_group_sample_ms.set(Some(at_ms));
        let mut pull_offsets = self.pull_offsets.borrow_mut();
        for topics in pull_offsets.values_mut() {
            for queues in topics.values_mut() {
                queues.retain(|_, &mut (_, pulled_at_ms)| at_ms - pulled_at_ms < PULL_OFFSET_IDLE_FORGET_MS);
            }
            topics.retain(|_, queues| !queues.is_empty());
        }
        pull_offsets.retain(|_, topics| !topics.is_empty());
        let mut groups = self.groups.borrow_mut();
        for topics in groups.values_mut() {
            topics.retain(|_, gets| {
                if gets.samples.back().is_none_or(|&(_, total)| total != gets.total) {
                    gets.last_change_ms = at_ms;
                }
                if gets.samples.len() == GROUP_SAMPLES {
                    gets.samples.pop_front();
                }
                gets.samples.push_back((at_ms, gets.total));
                at_ms - gets.last_change_ms < GROUP_IDLE_FORGET_MS
            });
        }
        groups.retain(|_, topics| !topics.is_empty());
    }

    /// Messages per second `group` pulled of `topic` on this shard over the last minute of
    /// samples (0.0 until two samples exist).
    pub fn group_get_tps(&self, group: &str, topic: &str) -> f64 {
        let groups = self.groups.borrow();
        let Some(gets) = groups.get(group).and_then(|topics| topics.get(topic)) else { return 0.0 };
        match (gets.samples.front(), gets.samples.back()) {
            (Some(&(from, first)), Some(&(to, last))) if to > from => (last - first) as f64 * 1000.0 / (to - from) as f64,
            _ => 0.0,
        }
    }

    /// This shard's figures, with `put` the store's append count now.
    pub fn figures(&self, put: u64) -> Figures {
        let samples = self.samples.borrow();
        let rates = |pick: fn(&Totals) -> u64| -> [f64; 3] { TPS_WINDOWS.map(|window| rate(&samples, window, pick)) };
        Figures {
            totals: self.totals(put),
            days: self.days.get(),
            put_tps: rates(|t| t.put),
            get_found_tps: rates(|t| t.get_found),
            get_miss_tps: rates(|t| t.get_miss),
            get_transferred_tps: rates(|t| t.get_transferred),
            get_total_tps: rates(|t| t.get_found + t.get_miss),
        }
    }

    /// Samples taken (at most [`MAX_SAMPLES`]).
    pub fn sample_count(&self) -> usize {
        self.samples.borrow().len()
    }
}

/// Per second between the newest sample and the one `window` samples before it — or the
/// oldest, while fewer are kept (Java leaves the figure empty then, which tools cannot parse);
/// 0.0 with fewer than two samples.
fn rate(samples: &VecDeque<Sample>, window: usize, pick: fn(&Totals) -> u64) -> f64 {
    let (Some(last), Some(first)) = (samples.back(), samples.get(samples.len().saturating_sub(window + 1))) else { return 0.0 };
    if last.at_ms <= first.at_ms {
        return 0.0;
    }
    pick(&last.totals).saturating_sub(pick(&first.totals)) as f64 * 1000.0 / (last.at_ms - first.at_ms) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_differences_between_samples_over_each_window() {
        let stats = RuntimeStats::default();
        assert_eq!(stats.figures(0).put_tps, [0.0; 3], "no samples");
        let t0 = 1_700_000_000_000;
        stats.sample(t0, 0);
        for _ in 0..3 {
            stats.count_get(4);
        }
        stats.count_get(0);
        stats.sample(t0 + 2_000, 100);
        let f = stats.figures(100);
        // Fewer samples than any window: the rate over what there is.
        assert_eq!(f.put_tps, [50.0; 3]);
        assert_eq!(f.get_found_tps, [1.5; 3]);
        assert_eq!(f.get_miss_tps, [0.5; 3]);
        assert_eq!(f.get_transferred_tps, [6.0; 3]);
        assert_eq!(f.get_total_tps, [2.0; 3]);
        assert_eq!(f.totals, Totals { put: 100, get_found: 3, get_miss: 1, get_transferred: 12 });
        // Twenty more seconds at 10/s: the 10 s window sees only them.
        for s in 1..=20 {
            stats.sample(t0 + 2_000 + s * 1_000, 100 + 10 * s as u64);
        }
        let f = stats.figures(300);
        assert_eq!(f.put_tps[0], 10.0);
        assert_eq!(f.put_tps[1], 300.0 * 1000.0 / 22_000.0);
        assert_eq!(tps_triple(&[0.0, 2.5, 10.0]), "0.0 2.5 10.0");
    }

    #[test]
    fn the_ring_keeps_ten_minutes_of_samples() {
        let stats = RuntimeStats::default();
        for s in 0..(MAX_SAMPLES as i64 + 50) {
            stats.sample(1_700_000_000_000 + s * 1_000, s as u64);
        }
        assert_eq!(stats.sample_count(), MAX_SAMPLES);
        assert_eq!(stats.figures(0).put_tps, [1.0; 3]);
    }

    #[test]
    fn group_rates_count_from_the_sample_before_the_first_pull_and_idle_groups_are_forgotten() {
        let stats = RuntimeStats::default();
        let t0 = 1_700_000_000_000;
        stats.sample(t0, 0);
        stats.count_group_get("g", "T", 30);
        stats.count_group_get("g", "T", 20);
        stats.count_group_get("g", "Other", 0);
        assert_eq!(stats.group_get_tps("g", "T"), 0.0, "one sample only");
        stats.sample(t0 + 10_000, 0);
        assert_eq!(stats.group_get_tps("g", "T"), 5.0);
        assert_eq!(stats.group_get_tps("g", "Other"), 0.0);
        assert_eq!(stats.group_get_tps("h", "T"), 0.0);
        for s in 2..=70 {
            stats.sample(t0 + s * 10_000, 0);
        }
        assert!(stats.groups.borrow().is_empty(), "idle for over 10 minutes");
    }

    #[test]
    fn pull_offsets_are_kept_while_pulled_and_forgotten_when_idle() {
        let stats = RuntimeStats::default();
        let t0 = 1_700_000_000_000;
        stats.sample(t0, 0);
        stats.note_pull_offset("g", "T", QueueId(0), 5, t0);
        stats.note_pull_offset("g", "T", QueueId(1), 7, t0);
        stats.note_pull_offset("gone", "T", QueueId(0), 3, t0);
        for s in 1..=70 {
            let now = t0 + s * 10_000;
            // Queue 0 of g is pulled every 30 s (a long poll); nothing else is.
            if s % 3 == 0 {
                stats.note_pull_offset("g", "T", QueueId(0), 5 + s as u64, now);
            }
            stats.sample(now, 0);
        }
        assert_eq!(stats.pull_offsets("g", "T"), PullOffsets::from([(QueueId(0), (74, t0 + 690_000))]), "queue 1 idle for over 10 minutes");
        assert!(stats.pull_offsets("gone", "T").is_empty());
        assert!(!stats.pull_offsets.borrow().contains_key("gone"), "an emptied group leaves no entry");
    }

    #[test]
    fn daily_totals_roll_over_at_local_midnight() {
        let stats = RuntimeStats::default();
        let t0 = 1_700_000_000_000;
        stats.sample(t0, 5);
        assert_eq!(stats.figures(5).days.today_morning.put, 0, "0 until the first midnight, as Java");
        let next_day = (1..48).map(|h| t0 + h * 3_600_000).find(|t| ferromq_store::retention::local_day(*t) != ferromq_store::retention::local_day(t0)).unwrap();
        stats.sample(next_day, 40);
        assert_eq!(stats.figures(40).days.today_morning.put, 40);
        assert_eq!(stats.figures(40).days.yesterday_morning.put, 0);
    }
}
