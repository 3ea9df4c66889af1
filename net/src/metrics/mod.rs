//! Prometheus metrics both binaries share: the RPC latency every connection records, the
//! histogram type behind it, the text exposition, and the HTTP endpoint ([`http`]).
//!
//! Recording is per thread and lock-free: a connection records each answered request into its
//! thread's table ([`record_rpc`]), a plain `RefCell` that only that thread touches (a broker
//! shard, the name server's thread). A scrape asks each such thread for a copy
//! ([`rpc_latency_snapshot`], run *on* that thread through its mailbox), merges the copies and
//! encodes them ([`Exposition`]) off the serving threads. Nothing on the request path takes a
//! lock or touches an atomic.
//!
//! Names, labels and buckets are RocketMQ 5's (`RemotingMetricsConstant`,
//! `RemotingMetricsManager`): `rocketmq_rpc_latency`, a histogram in milliseconds with labels
//! `protocol_type`, `request_code`, `response_code` and `result`.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

mod code_names;
pub mod http;
#[cfg(test)]
mod tests;

pub use code_names::{request_code_name, response_code_name, version_name};

/// `rocketmq_rpc_latency`'s bucket bounds in milliseconds (Java's `rpcCostTimeBuckets`).
pub const RPC_LATENCY_BUCKETS_MS: &[f64] = &[1.0, 3.0, 5.0, 7.0, 10.0, 100.0, 1000.0, 2000.0, 3000.0];

/// (request code, response code, result) series one thread keeps for `rocketmq_rpc_latency`.
/// Named codes are bounded by Java's tables, but a peer can send any number as a request code
/// (answered REQUEST_CODE_NOT_SUPPORTED): beyond this many series a thread counts further
/// observations of new series in `ferromq_rpc_latency_dropped_total` instead.
pub const MAX_RPC_LATENCY_SERIES_PER_THREAD: usize = 1024;

/// The value of every `protocol_type` label: requests over RocketMQ's remoting protocol.
pub const PROTOCOL_TYPE_REMOTING: &str = "remoting";

/// A label set: (name, value) pairs.
pub type Labels = Vec<(Cow<'static, str>, Cow<'static, str>)>;

/// A histogram with fixed bucket bounds: per-bucket counts (not cumulative), the overflow
/// bucket last, and the sum of the observed values.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// `bounds.len() + 1` counts: values ≤ `bounds[i]` (and above the previous bound), then
    /// those above every bound.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0, count: 0 }
    }

    /// A histogram from per-bucket counts (`bounds.len() + 1` of them, the overflow last) and
    /// the sum of the values; `None` when the counts do not fit the bounds.
    pub fn from_parts(bounds: &'static [f64], counts: Vec<u64>, sum: f64) -> Option<Histogram> {
        if counts.len() != bounds.len() + 1 {
            return None;
        }
        let count = counts.iter().sum();
        Some(Histogram { bounds, counts, sum, count })
    }

    pub fn observe(&mut self, value: f64) {
        let bucket = self.bounds.partition_point(|bound| *bound < value);
        if let Some(count) = self.counts.get_mut(bucket) {
            *count += 1;
        }
        self.sum += value;
        self.count += 1;
    }

    /// Adds `other`'s observations (same bounds; a histogram with other bounds is skipped,
    /// which never happens: every histogram of one metric is made with the same constant).
    pub fn merge(&mut self, other: &Histogram) {
        if other.bounds != self.bounds {
            debug_assert!(false, "merging histograms with different bounds");
            return;
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.sum += other.sum;
        self.count += other.count;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// (upper bound, count in that bucket) pairs, the last one `+Inf`, as the encoder takes them.
    fn buckets(&self) -> Vec<(f64, u64)> {
        self.bounds.iter().copied().chain(std::iter::once(f64::INFINITY)).zip(self.counts.iter().copied()).collect()
    }
}

/// The value of one series.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Counter(u64),
    Gauge(i64),
    Histogram(Histogram),
}

/// One metric family: its name (counters with their `_total`, as RocketMQ names them), help,
/// and samples.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub samples: Vec<(Labels, Value)>,
}

impl Family {
    pub fn new(name: &'static str, help: &'static str) -> Family {
        Family { name, help, samples: Vec::new() }
    }

    pub fn with(mut self, labels: Labels, value: Value) -> Family {
        self.samples.push((labels, value));
        self
    }

    pub fn push(&mut self, labels: Labels, value: Value) {
        self.samples.push((labels, value));
    }

    /// The type of the family's samples (all of one kind).
    fn metric_type(&self) -> MetricType {
        match self.samples.first().map(|(_, v)| v) {
            Some(Value::Counter(_)) => MetricType::Counter,
            Some(Value::Histogram(_)) => MetricType::Histogram,
            Some(Value::Gauge(_)) | None => MetricType::Gauge,
        }
    }
}

/// Everything one scrape answers: families gathered from snapshots, encoded once.
#[derive(Debug, Default)]
pub struct Exposition {
    pub families: Vec<Family>,
}

impl Exposition {
    pub fn push(&mut self, family: Family) {
        self.families.push(family);
    }

    /// The Prometheus text format (0.0.4, what Java's exporter serves by default), with
    /// `common` (cluster, node_type, node_id, …) on every series.
    pub fn encode(self, common: Labels) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::with_labels(common.into_iter());
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

/// The `Content-Type` of [`Exposition::encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.families {
            // A family without samples is left out (its type is not known), as Java's
            // exporter leaves out instruments without data points.
            if family.samples.is_empty() {
                continue;
            }
            let kind = family.metric_type();
            // The encoder appends `_total` to a counter's name itself.
            let name = match kind {
                MetricType::Counter => family.name.strip_suffix("_total").unwrap_or(family.name),
                _ => family.name,
            };
            let mut metric = encoder.encode_descriptor(name, family.help, None, kind)?;
            for (labels, value) in &family.samples {
                let mut sample = metric.encode_family(labels)?;
                match value {
                    Value::Counter(v) => sample.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(v, None)?,
                    Value::Gauge(v) => sample.encode_gauge(v)?,
                    Value::Histogram(h) => sample.encode_histogram::<prometheus_client::encoding::NoLabelSet>(h.sum, h.count, &h.buckets(), None)?,
                }
            }
        }
        Ok(())
    }
}

/// Builds a label set from `(name, value)` pairs.
pub fn labels<const N: usize>(pairs: [(&'static str, Cow<'static, str>); N]) -> Labels {
    pairs.into_iter().map(|(k, v)| (Cow::Borrowed(k), v)).collect()
}

/// A `true`/`false` label value, as Java's attribute builder writes booleans.
pub fn bool_label(value: bool) -> Cow<'static, str> {
    Cow::Borrowed(if value { "true" } else { "false" })
}

/// How a request ended, Java's `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcResult {
    /// The answer was queued for writing (Java: written).
    Success,
    /// The answer could not be queued: the connection had failed (Java's `write_channel_failed`).
    WriteChannelFailed,
}

impl RpcResult {
    fn label(self) -> &'static str {
        match self {
            RpcResult::Success => "success",
            RpcResult::WriteChannelFailed => "write_channel_failed",
        }
    }
}

/// One `rocketmq_rpc_latency` series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RpcKey {
    pub request_code: i32,
    pub response_code: i32,
    pub result: RpcResult,
}

/// One thread's RPC latencies (a snapshot), or several threads' merged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RpcLatency {
    pub series: HashMap<RpcKey, Histogram>,
    /// Observations not recorded because the thread held [`MAX_RPC_LATENCY_SERIES_PER_THREAD`].
    pub dropped: u64,
}

impl RpcLatency {
    fn record(&mut self, key: RpcKey, millis: f64) {
        if let Some(histogram) = self.series.get_mut(&key) {
            histogram.observe(millis);
        } else if self.series.len() < MAX_RPC_LATENCY_SERIES_PER_THREAD {
            let mut histogram = Histogram::new(RPC_LATENCY_BUCKETS_MS);
            histogram.observe(millis);
            self.series.insert(key, histogram);
        } else {
            self.dropped += 1;
        }
    }

    /// Adds another thread's latencies (no limit: the sum of bounded tables).
    pub fn merge(&mut self, other: &RpcLatency) {
        for (key, histogram) in &other.series {
            match self.series.get_mut(key) {
                Some(mine) => mine.merge(histogram),
                None => {
                    self.series.insert(*key, histogram.clone());
                }
            }
        }
        self.dropped += other.dropped;
    }

    /// Answers with `response_code`, per request code.
    pub fn answers_with(&self, response_code: i32) -> HashMap<i32, u64> {
        let mut out = HashMap::new();
        for (key, histogram) in &self.series {
            if key.response_code == response_code {
                *out.entry(key.request_code).or_insert(0) += histogram.count();
            }
        }
        out
    }

    /// `rocketmq_rpc_latency` and `ferromq_rpc_latency_dropped_total`.
    pub fn families(&self) -> Vec<Family> {
        let mut latency = Family::new("rocketmq_rpc_latency", "Rpc latency in milliseconds, from reading a request to queueing its answer");
        let mut keys: Vec<&RpcKey> = self.series.keys().collect();
        keys.sort_by_key(|k| (k.request_code, k.response_code, k.result.label()));
        for key in keys {
            let Some(histogram) = self.series.get(key) else { continue };
            let labels = labels([
                ("protocol_type", Cow::Borrowed(PROTOCOL_TYPE_REMOTING)),
                ("request_code", code_label(request_code_name(key.request_code), key.request_code)),
                ("response_code", code_label(response_code_name(key.response_code), key.response_code)),
                ("result", Cow::Borrowed(key.result.label())),
            ]);
            latency.push(labels, Value::Histogram(histogram.clone()));
        }
        let dropped = Family::new("ferromq_rpc_latency_dropped_total", "Requests not recorded in rocketmq_rpc_latency: their thread already held its series limit")
            .with(Labels::new(), Value::Counter(self.dropped));
        vec![latency, dropped]
    }
}

/// `metricsLabel`: `name:value` pairs separated by commas (empty items skipped, as Java's
/// splitter does), none of them one of `reserved` (the labels every series carries already).
/// Java logs a malformed item and skips it; both binaries refuse it at start, naming it.
pub fn parse_metrics_label(value: &str, reserved: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut labels: Vec<(String, String)> = Vec::new();
    for item in value.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let Some((name, label_value)) = item.split_once(':').filter(|(_, v)| !v.contains(':')) else {
            return Err(format!("name:value pairs separated by commas; {item:?} is not one"));
        };
        let (name, label_value) = (name.trim(), label_value.trim());
        let valid_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with("__");
        if !valid_name {
            return Err(format!("{name:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"));
        }
        if reserved.contains(&name) || labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name:?} is set twice ({} are always set)", reserved.join(", ")));
        }
        labels.push((name.to_owned(), label_value.to_owned()));
    }
    Ok(labels)
}

/// A code's label: Java's lower-cased constant name, or the number for a code it does not name
/// (as `RemotingHelper.getRequestCodeDesc`).
pub fn code_label(name: Option<&'static str>, code: i32) -> Cow<'static, str> {
    match name {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(code.to_string()),
    }
}

thread_local! {
    /// This thread's RPC latencies; only connections served on this thread write it.
    static RPC_LATENCY: RefCell<RpcLatency> = RefCell::new(RpcLatency::default());
}

/// Records one answered request on this thread's table.
pub fn record_rpc(request_code: i32, response_code: i32, result: RpcResult, elapsed: Duration) {
    let key = RpcKey { request_code, response_code, result };
    RPC_LATENCY.with(|table| table.borrow_mut().record(key, elapsed.as_secs_f64() * 1000.0));
}

/// A copy of this thread's RPC latencies (run it on the thread whose figures are wanted).
pub fn rpc_latency_snapshot() -> RpcLatency {
    RPC_LATENCY.with(|table| table.borrow().clone())
}

/// The response code of an encoded JSON response frame (length prefix, header-length word,
/// then `{"code":N,…` as [`crate::codec::ResponseFrame`] writes it); `None` for anything else.
pub fn frame_response_code(frame: &[u8]) -> Option<i32> {
    const PREFIX_BYTES: usize = 8;
    let rest = frame.get(PREFIX_BYTES..)?.strip_prefix(b"{\"code\":")?;
    let end = rest.iter().position(|b| !(b.is_ascii_digit() || *b == b'-'))?;
    std::str::from_utf8(rest.get(..end)?).ok()?.parse().ok()
}
