//! What the broker modes (`produce`, `consume`, `e2e`, `rss`) share: the requests they send, in
//! plain RocketMQ remoting (PROTOCOL.md §2.1 SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE, §2.2
//! PULL_MESSAGE, §2.2 GET_MAX_OFFSET, §2.7 UPDATE_AND_CREATE_TOPIC), pull-body decoding, bench
//! message bodies (with an optional send timestamp for end-to-end latency), counters by
//! response code, latency summaries, the `rss` mode, and — FerroMQ only — finding which shard
//! thread serves a connection (for the cross-shard comparison).
//!
//! Nothing here depends on `ferromq-core`: queue ownership is recomputed with the same formula
//! (`owner_of`, Java hash of the topic × 31 + queue id, mod shards) and shards are found by their
//! thread names (`shard-N`) under `/proc/<pid>/task`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferromq_net::RemotingCommand;
use ferromq_net::backend::{IoBackend, build_runtime};
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_net::conn::{ConnLimits, NotSupported, RpcError};
use ferromq_net::tls::{ClientTlsFiles, TlsConnector};
use ferromq_store::record::{decode_body_strict, java_string_hash};
use hdrhistogram::Histogram;

/// First 8 bytes of a stamped bench body; the next 8 are the send time (ns since [`epoch`], big-endian).
pub const STAMP_MAGIC: [u8; 8] = *b"FMQBENCH";
/// Bytes of a stamp (magic + timestamp).
pub const STAMP_BYTES: usize = 16;
/// Topic the send header names as the template for auto-creation (§2.1 step 2).
pub const DEFAULT_TOPIC: &str = "TBW102";
/// Tag every bench message carries.
pub const BENCH_TAG: &str = "bench";
/// Timeout of one send or admin request; a timeout counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The account the produce bench signs its requests with (`--access-key`/`--secret-key`:
/// a broker with `aclEnable=true`; the account needs admin to create the bench's topics).
static SIGNER: OnceLock<ferromq_net::acl::Credentials> = OnceLock::new();

/// Signs every request of connections opened by [`connect`] from now on.
pub fn sign_requests_with(credentials: ferromq_net::acl::Credentials) {
    let _ = SIGNER.set(credentials);
}

/// The TLS client configuration of connections opened by [`connect`] (`--tls`), if any.
static TLS: OnceLock<TlsConnector> = OnceLock::new();

/// Opens every connection of [`connect`] from now on over TLS (a broker with
/// `tls.server.mode=permissive` or `enforcing`), accepting any server certificate as Java's
/// client does by default (`tls.client.authServer=false`): the bench measures the record layer,
/// not certificate checks.
pub fn connect_over_tls() -> Result<(), String> {
    let connector = TlsConnector::from_files(&ClientTlsFiles::default()).map_err(|e| format!("TLS client configuration: {e}"))?;
    let _ = TLS.set(connector);
    Ok(())
}

/// Connects to `addr`, over TLS after [`connect_over_tls`]; the connection signs its requests
/// if [`sign_requests_with`] was called.
pub async fn connect(addr: SocketAddr) -> Result<Client, RpcError> {
    let client = Client::connect_with_tls(addr, CONNECT_TIMEOUT, Rc::new(NotSupported), ConnLimits::default(), TLS.get()).await?;
    Ok(client.signed_by(SIGNER.get().cloned()))
}

/// The in-process epoch that stamped bodies count from (fixed at first use).
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since [`epoch`] at `at`.
pub fn nanos_at(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch()).as_nanos()).unwrap_or(u64::MAX)
}

/// A bench message body of `size` bytes; with `stamp`, it starts with [`STAMP_MAGIC`] and the
/// stamp (when `size` ≥ [`STAMP_BYTES`]).
pub fn make_body(size: usize, stamp: Option<u64>) -> Vec<u8> {
    let mut body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    if let (Some(ns), Some(head)) = (stamp, body.get_mut(..STAMP_BYTES)) {
        head[..8].copy_from_slice(&STAMP_MAGIC);
        head[8..].copy_from_slice(&ns.to_be_bytes());
    }
    body
}

/// The stamp of a stamped body, if it carries one.
pub fn body_stamp(body: &[u8]) -> Option<u64> {
    let head = body.get(..STAMP_BYTES)?;
    if head[..8] != STAMP_MAGIC {
        return None;
    }
    Some(u64::from_be_bytes(head[8..].try_into().ok()?))
}

/// A message unique id like the Java client's (32 upper-case hex digits), unique per process.
pub fn uniq_key() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("7F000001{:04X}{:08X}{:012X}", std::process::id() as u16, nanos_at(Instant::now()) as u32, n & 0xFFFF_FFFF_FFFF)
}

/// Encoded message properties (§5.4) as a Java producer sends them: UNIQ_KEY, WAIT, TAGS.
pub fn message_properties(uniq: &str) -> String {
    format!("UNIQ_KEY\u{1}{uniq}\u{2}WAIT\u{1}true\u{2}TAGS\u{1}{BENCH_TAG}\u{2}")
}

/// One message of a client batch: (flag, body, encoded properties).
pub type BatchEntry = (i32, Vec<u8>, Vec<u8>);

/// Encodes messages in the client batch layout of SEND_BATCH_MESSAGE (§2.1, 320; the Java
/// client's `MessageDecoder.encodeMessages`): per message `totalSize i32 | magic i32 (0) |
/// bodyCRC i32 (0) | flag i32 | bodyLength i32 | body | propertiesLength i16 | properties`.
pub fn encode_batch(entries: &[BatchEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(|(_, b, p)| 22 + b.len() + p.len()).sum());
    for (flag, body, props) in entries {
        let total = 4 + 4 + 4 + 4 + 4 + body.len() + 2 + props.len();
        out.extend_from_slice(&(total as i32).to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&flag.to_be_bytes());
        out.extend_from_slice(&(body.len() as i32).to_be_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&(props.len() as u16).to_be_bytes());
        out.extend_from_slice(props);
    }
    out
}

/// Decodes [`encode_batch`]'s layout (what a broker does with a 320 body); `None` on malformed input.
pub fn decode_batch(mut body: &[u8]) -> Option<Vec<BatchEntry>> {
    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if rest.len() < n {
            return None;
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Some(head)
    }
    fn int(rest: &mut &[u8]) -> Option<i32> {
        Some(i32::from_be_bytes(take(rest, 4)?.try_into().ok()?))
    }
    let mut out = Vec::new();
    while !body.is_empty() {
        let total = usize::try_from(int(&mut body)?).ok()?;
        let mut entry = take(&mut body, total.checked_sub(4)?)?;
        let (_magic, _crc, flag) = (int(&mut entry)?, int(&mut entry)?, int(&mut entry)?);
        let len = usize::try_from(int(&mut entry)?).ok()?;
        let message = take(&mut entry, len)?.to_vec();
        let props_len = u16::from_be_bytes(take(&mut entry, 2)?.try_into().ok()?) as usize;
        let props = take(&mut entry, props_len)?.to_vec();
        if !entry.is_empty() {
            return None;
        }
        out.push((flag, message, props));
    }
    Some(out)
}

/// What every send of a run has in common.
#[derive(Debug, Clone)]
pub struct SendTemplate {
    pub producer_group: String,
    pub topic: String,
    /// Queues of the topic (also the queue count asked for on auto-creation).
    pub queues: u32,
    pub message_bytes: usize,
    /// Messages per send: 1 = SEND_MESSAGE_V2 (310), more = SEND_BATCH_MESSAGE (320).
    pub batch: usize,
    /// The unstamped body (built once; a clone shares it).
    body: Bytes,
}

impl SendTemplate {
    pub fn new(producer_group: &str, topic: &str, queues: u32, message_bytes: usize, batch: usize) -> SendTemplate {
        SendTemplate {
            producer_group: producer_group.to_owned(),
            topic: topic.to_owned(),
            queues,
            message_bytes,
            batch: batch.max(1),
            body: Bytes::from(make_body(message_bytes, None)),
        }
    }

    /// A send of `batch` fresh messages to `queue_id` of the template's topic, bodies stamped
    /// with `stamp` if given.
    pub fn request(&self, queue_id: u32, stamp: Option<u64>) -> RemotingCommand {
        self.request_to(&self.topic, queue_id, stamp)
    }

    /// The same to `queue_id` of `topic`.
    pub fn request_to(&self, topic: &str, queue_id: u32, stamp: Option<u64>) -> RemotingCommand {
        let batch = self.batch.max(1);
        let one_body = || match stamp {
            Some(_) => Bytes::from(make_body(self.message_bytes, stamp)),
            None if self.body.len() == self.message_bytes => self.body.clone(),
            None => Bytes::from(make_body(self.message_bytes, None)),
        };
        let (code, body, header_props) = if batch == 1 {
            (request_code::SEND_MESSAGE_V2, one_body(), message_properties(&uniq_key()))
        } else {
            let entries: Vec<BatchEntry> = (0..batch).map(|_| (0, one_body().to_vec(), message_properties(&uniq_key()).into_bytes())).collect();
            (request_code::SEND_BATCH_MESSAGE, Bytes::from(encode_batch(&entries)), "WAIT\u{1}true\u{2}".to_owned())
        };
        self.send_header(code, topic, queue_id, header_props, 0, batch > 1).with_body(body)
    }

    /// One message (SEND_MESSAGE_V2) of the template's body to `queue_id` of `topic`, with the
    /// encoded `properties` (§5.4: `name \u{1} value \u{2}` each) and the header's `sysFlag` —
    /// messages that differ by tag or property (filters), or half messages (sysFlag 4).
    pub fn request_with(&self, topic: &str, queue_id: u32, properties: String, sys_flag: i32) -> RemotingCommand {
        self.send_header(request_code::SEND_MESSAGE_V2, topic, queue_id, properties, sys_flag, false).with_body(self.body.clone())
    }

    /// The short-key header of SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE (§2.1), born now.
    fn send_header(&self, code: i32, topic: &str, queue_id: u32, properties: String, sys_flag: i32, batch: bool) -> RemotingCommand {
        let born_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        RemotingCommand::request(code)
            .with_ext("a", &self.producer_group)
            .with_ext("b", topic)
            .with_ext("c", DEFAULT_TOPIC)
            .with_ext("d", self.queues)
            .with_ext("e", queue_id)
            .with_ext("f", sys_flag)
            .with_ext("g", born_ms)
            .with_ext("h", 0)
            .with_ext("i", properties)
            .with_ext("j", 0)
            .with_ext("k", false)
            .with_ext("m", batch)
    }
}

/// A PULL_MESSAGE (11) request with the subscription inline (`*`); `suspend_ms` > 0 sets the
/// suspend flag (long polling) with that hold time.
pub fn pull_request(group: &str, topic: &str, queue_id: u32, offset: u64, max_messages: u32, suspend_ms: u64) -> RemotingCommand {
    pull_request_with(group, topic, queue_id, offset, max_messages, suspend_ms, "*", "TAG")
}

/// [`pull_request`] with another inline subscription: a TAG expression (`"TagA || TagB"`) or,
/// with `expression_type` `SQL92`, a selector (served only with `enablePropertyFilter=true`).
#[allow(clippy::too_many_arguments)]
pub fn pull_request_with(
    group: &str,
    topic: &str,
    queue_id: u32,
    offset: u64,
    max_messages: u32,
    suspend_ms: u64,
    subscription: &str,
    expression_type: &str,
) -> RemotingCommand {
    const FLAG_SUSPEND: i32 = 2;
    const FLAG_SUBSCRIPTION: i32 = 4;
    let sys_flag = FLAG_SUBSCRIPTION | if suspend_ms > 0 { FLAG_SUSPEND } else { 0 };
    RemotingCommand::request(request_code::PULL_MESSAGE)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id)
        .with_ext("queueOffset", offset)
        .with_ext("maxMsgNums", max_messages)
        .with_ext("sysFlag", sys_flag)
        .with_ext("commitOffset", 0)
        .with_ext("suspendTimeoutMillis", suspend_ms)
        .with_ext("subscription", subscription)
        .with_ext("subVersion", 0)
        .with_ext("expressionType", expression_type)
}

/// A decoded pull answer.
#[derive(Debug, Clone, Default)]
pub struct PullOutcome {
    pub code: i32,
    pub next_begin_offset: u64,
    pub max_offset: u64,
    pub messages: u64,
    /// Sum of message body sizes.
    pub body_bytes: u64,
    /// Size of the response body (whole stored records).
    pub wire_bytes: u64,
    /// Queue offset of each record, in order.
    pub queue_offsets: Vec<i64>,
    /// Stamps of stamped bodies.
    pub stamps: Vec<u64>,
}

/// Reads a PULL_MESSAGE response; a FOUND body is decoded strictly (BODYCRC checked).
pub fn parse_pull_response(response: &RemotingCommand) -> Result<PullOutcome, String> {
    let number = |key: &str| response.ext(key).and_then(|v| v.trim().parse::<i64>().ok()).map(|v| v.max(0) as u64);
    let mut outcome = PullOutcome {
        code: response.code,
        next_begin_offset: number("nextBeginOffset").unwrap_or(0),
        max_offset: number("maxOffset").unwrap_or(0),
        wire_bytes: response.body.len() as u64,
        ..PullOutcome::default()
    };
    if response.code == response_code::SUCCESS {
        let records = decode_body_strict(&response.body).map_err(|(pos, e)| format!("pull body bad at byte {pos}: {e}"))?;
        for r in records {
            outcome.messages += 1;
            outcome.body_bytes += r.body.len() as u64;
            outcome.queue_offsets.push(r.queue_offset);
            if let Some(stamp) = body_stamp(r.body) {
                outcome.stamps.push(stamp);
            }
        }
    }
    Ok(outcome)
}

/// GET_MAX_OFFSET (30) of one queue.
pub async fn max_offset(client: &Client, topic: &str, queue_id: u32) -> Result<u64, String> {
    let request = RemotingCommand::request(request_code::GET_MAX_OFFSET).with_ext("topic", topic).with_ext("queueId", queue_id);
    let response = client.invoke(request, REQUEST_TIMEOUT).await.map_err(|e| e.to_string())?;
    if response.code != response_code::SUCCESS {
        return Err(format!("GET_MAX_OFFSET {topic}/{queue_id} answered {}: {:?}", response.code, response.remark));
    }
    response.ext("offset").and_then(|v| v.parse::<i64>().ok()).map(|v| v.max(0) as u64).ok_or_else(|| "GET_MAX_OFFSET without offset".to_string())
}

/// Max offsets of queues `0..queues` (queues that do not exist yet count as 0).
pub async fn max_offsets(client: &Client, topic: &str, queues: u32) -> Vec<u64> {
    let mut out = Vec::with_capacity(queues as usize);
    for q in 0..queues {
        out.push(max_offset(client, topic, q).await.unwrap_or(0));
    }
    out
}

/// UPDATE_AND_CREATE_TOPIC (17) with `queues` read and write queues, perm RW.
pub async fn create_topic(client: &Client, topic: &str, queues: u32) -> Result<(), String> {
    let request = create_topic_request(topic, queues);
    let response = client.invoke(request, REQUEST_TIMEOUT).await.map_err(|e| e.to_string())?;
    if response.code != response_code::SUCCESS {
        return Err(format!("UPDATE_AND_CREATE_TOPIC {topic} answered {}: {:?}", response.code, response.remark));
    }
    Ok(())
}

/// The UPDATE_AND_CREATE_TOPIC (17) request of [`create_topic`].
pub fn create_topic_request(topic: &str, queues: u32) -> RemotingCommand {
    RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", topic)
        .with_ext("defaultTopic", DEFAULT_TOPIC)
        .with_ext("readQueueNums", queues)
        .with_ext("writeQueueNums", queues)
        .with_ext("perm", 6)
        .with_ext("topicFilterType", "SINGLE_TAG")
        .with_ext("topicSysFlag", 0)
        .with_ext("order", false)
}

/// The name of a response code, for the error tables.
pub fn code_name(code: i32) -> String {
    use response_code as c;
    let name = match code {
        c::SUCCESS => "SUCCESS",
        c::SYSTEM_ERROR => "SYSTEM_ERROR",
        c::SYSTEM_BUSY => "SYSTEM_BUSY",
        c::REQUEST_CODE_NOT_SUPPORTED => "REQUEST_CODE_NOT_SUPPORTED",
        c::FLUSH_DISK_TIMEOUT => "FLUSH_DISK_TIMEOUT",
        c::SLAVE_NOT_AVAILABLE => "SLAVE_NOT_AVAILABLE",
        c::FLUSH_SLAVE_TIMEOUT => "FLUSH_SLAVE_TIMEOUT",
        c::MESSAGE_ILLEGAL => "MESSAGE_ILLEGAL",
        c::SERVICE_NOT_AVAILABLE => "SERVICE_NOT_AVAILABLE",
        c::NO_PERMISSION => "NO_PERMISSION",
        c::TOPIC_NOT_EXIST => "TOPIC_NOT_EXIST",
        c::PULL_NOT_FOUND => "PULL_NOT_FOUND",
        c::PULL_RETRY_IMMEDIATELY => "PULL_RETRY_IMMEDIATELY",
        c::PULL_OFFSET_MOVED => "PULL_OFFSET_MOVED",
        c::SUBSCRIPTION_NOT_EXIST => "SUBSCRIPTION_NOT_EXIST",
        c::INVALID_PARAMETER => "INVALID_PARAMETER",
        _ => return format!("code_{code}"),
    };
    name.to_owned()
}

/// The name of a client-side failure, for the error tables.
pub fn rpc_error_name(e: &RpcError) -> String {
    match e {
        RpcError::Timeout { .. } => "client_timeout",
        RpcError::Closed => "connection_closed",
        RpcError::TooManyPending { .. } => "too_many_pending",
        RpcError::Encode(_) => "encode_error",
        RpcError::Io(_) => "io_error",
    }
    .to_owned()
}

/// Counts by name (response codes, client errors), merged over threads.
pub type Counts = BTreeMap<String, u64>;

/// Adds `other` into `into`.
pub fn merge_counts(into: &mut Counts, other: &Counts) {
    for (k, v) in other {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// A histogram of microseconds, 1 µs to 60 s.
pub fn micros_histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("constant histogram bounds are valid")
}

/// Microseconds since `start`, at least 1.
pub fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Percentiles of a µs histogram: (p50, p90, p99, p99.9, p99.99, max).
pub fn percentiles(h: &Histogram<u64>) -> [u64; 6] {
    let q = |q: f64| if h.is_empty() { 0 } else { h.value_at_quantile(q) };
    [q(0.5), q(0.9), q(0.99), q(0.999), q(0.9999), h.max()]
}

/// `"p50 … max"` of a µs histogram.
pub fn percentile_line(h: &Histogram<u64>) -> String {
    let [p50, p90, p99, p999, p9999, max] = percentiles(h);
    format!("p50 {p50} p90 {p90} p99 {p99} p99.9 {p999} p99.99 {p9999} max {max} (n={})", h.len())
}

/// The JSON object of a µs histogram.
pub fn percentiles_json(h: &Histogram<u64>) -> serde_json::Value {
    let [p50, p90, p99, p999, p9999, max] = percentiles(h);
    serde_json::json!({"count": h.len(), "mean": h.mean(), "p50": p50, "p90": p90, "p99": p99, "p99_9": p999, "p99_99": p9999, "max": max})
}

/// Quantiles at which [`cdf_json`] samples a latency histogram: dense in the tail, where a CDF
/// plot on a log axis needs the points.
pub const CDF_QUANTILES: [f64; 19] =
    [0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0];

/// The CDF of a µs histogram as `[[quantile, µs], ...]` at [`CDF_QUANTILES`] (empty when the
/// histogram is).
pub fn cdf_json(h: &Histogram<u64>) -> serde_json::Value {
    if h.is_empty() {
        return serde_json::json!([]);
    }
    let points: Vec<serde_json::Value> = CDF_QUANTILES
        .iter()
        .map(|&q| {
            let us = if q >= 1.0 { h.max() } else if q <= 0.0 { h.min() } else { h.value_at_quantile(q) };
            serde_json::json!([q, us])
        })
        .collect();
    serde_json::Value::Array(points)
}

/// The commit-log counters a FerroMQ broker reports in GET_BROKER_RUNTIME_INFO (its `ferromq*`
/// keys, summed over shards); another broker has none of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct FlushCounters {
    pub appended_messages: u64,
    pub appended_bytes: u64,
    pub log_syncs: u64,
    pub synced_bytes: u64,
    /// Commit-log writes (`ferromqCommitLogWrites`; 0 from a build without the key).
    pub log_writes: u64,
}

impl FlushCounters {
    /// What happened between `earlier` and `self`.
    pub fn since(&self, earlier: &FlushCounters) -> FlushCounters {
        FlushCounters {
            appended_messages: self.appended_messages.saturating_sub(earlier.appended_messages),
            appended_bytes: self.appended_bytes.saturating_sub(earlier.appended_bytes),
            log_syncs: self.log_syncs.saturating_sub(earlier.log_syncs),
            synced_bytes: self.synced_bytes.saturating_sub(earlier.synced_bytes),
            log_writes: self.log_writes.saturating_sub(earlier.log_writes),
        }
    }

    /// Mean bytes made durable per fdatasync (0 without syncs).
    pub fn mean_bytes_per_sync(&self) -> f64 {
        if self.log_syncs == 0 { 0.0 } else { self.synced_bytes as f64 / self.log_syncs as f64 }
    }

    /// Mean stored bytes per message (record header included; 0 without messages).
    pub fn mean_stored_bytes_per_message(&self) -> f64 {
        if self.appended_messages == 0 { 0.0 } else { self.appended_bytes as f64 / self.appended_messages as f64 }
    }
}

/// The body of GET_BROKER_RUNTIME_INFO (28), parsed: every reader below asks through this.
async fn runtime_info(client: &Client) -> Result<serde_json::Value, String> {
    let response = client
        .invoke(RemotingCommand::request(request_code::GET_BROKER_RUNTIME_INFO), REQUEST_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    if response.code != response_code::SUCCESS {
        return Err(format!("GET_BROKER_RUNTIME_INFO answered {}: {:?}", response.code, response.remark));
    }
    let body: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| format!("runtime info body: {e}"))?;
    Ok(body)
}

/// GET_BROKER_RUNTIME_INFO (28) and its FerroMQ commit-log counters (`None` from a broker that
/// does not report them).
pub async fn flush_counters(client: &Client) -> Result<Option<FlushCounters>, String> {
    let body = runtime_info(client).await?;
    let number = |key: &str| body.get("table")?.get(key)?.as_str()?.parse::<u64>().ok();
    Ok((|| {
        Some(FlushCounters {
            appended_messages: number("ferromqAppendedMessages")?,
            appended_bytes: number("ferromqAppendedBytes")?,
            log_syncs: number("ferromqCommitLogSyncs")?,
            synced_bytes: number("ferromqCommitLogSyncedBytes")?,
            log_writes: number("ferromqCommitLogWrites").unwrap_or(0),
        })
    })())
}

/// The client's I/O backend from a CLI string (`FERROMQ_IO_BACKEND` wins, as everywhere).
pub fn resolve_backend(name: &str) -> Result<IoBackend, String> {
    IoBackend::resolve(name.parse()?).map_err(|e| e.to_string())
}

/// Splits `total` items over `parts` as evenly as possible: the count of part `i`.
pub fn share(total: usize, parts: usize, i: usize) -> usize {
    let parts = parts.max(1);
    total / parts + usize::from(i < total % parts)
}

/// Raises this process's open-file limit — and so that of the servers it starts — as far as
/// allowed: both limits to `fs.nr_open` (at most 1,048,576) where the process may raise its hard
/// limit (root), else the soft limit to the hard one. Returns the soft limit in force.
pub fn raise_nofile_limit() -> u64 {
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0).min(1 << 20);
    // SAFETY: `rlimit` is plain data; getrlimit/setrlimit only read/write it.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if nr_open > lim.rlim_max {
            let wanted = libc::rlimit { rlim_cur: nr_open, rlim_max: nr_open };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) == 0 {
                return nr_open;
            }
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// Open file descriptors of process `pid` (`/proc/PID/fd`).
pub fn open_files(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// `dispatchBehindBytes` of GET_BROKER_RUNTIME_INFO (RocketMQ's key, FerroMQ's too): commit-log
/// bytes written but not yet dispatched to consume queues and index, on the shard (FerroMQ) or
/// broker answering. `None` from a broker without the key.
pub async fn dispatch_behind_bytes(client: &Client) -> Result<Option<u64>, String> {
    let body = runtime_info(client).await?;
    Ok(body.get("table").and_then(|t| t.get("dispatchBehindBytes")).and_then(serde_json::Value::as_str).and_then(|v| v.parse().ok()))
}

/// The `table` of GET_BROKER_RUNTIME_INFO (28): every key with its value as the broker sent it
/// (strings, numeric where tools parse numbers).
pub async fn runtime_table(client: &Client) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let body = runtime_info(client).await?;
    match body.get("table") {
        Some(serde_json::Value::Object(table)) => Ok(table.clone()),
        _ => Err("runtime info body without a table".into()),
    }
}

/// A numeric value of a runtime-info table (`"123"` or `123`); `None` when absent or not a
/// whole number.
pub fn table_u64(table: &serde_json::Map<String, serde_json::Value>, key: &str) -> Option<u64> {
    match table.get(key)? {
        serde_json::Value::String(s) => s.trim().parse().ok(),
        v => v.as_u64(),
    }
}

/// The largest value of each of `keys` over several connections' runtime info (a FerroMQ
/// broker answers some keys for the connection's shard only).
pub fn runtime_max(addr: SocketAddr, backend: &str, keys: &[&str]) -> Result<Vec<Option<u64>>, String> {
    let backend = resolve_backend(backend)?;
    let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let mut largest = vec![None; keys.len()];
        for _ in 0..8 {
            let client = Client::connect(addr, CONNECT_TIMEOUT).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            let table = runtime_table(&client).await?;
            client.close();
            for (i, key) in keys.iter().enumerate() {
                if let Some(v) = table_u64(&table, key) {
                    largest[i] = Some(largest[i].map_or(v, |l: u64| l.max(v)));
                }
            }
        }
        Ok(largest)
    })
}

/// Waits until the broker has flushed and dispatched everything it holds
/// (`remainHowManyDataToFlush` and `dispatchBehindBytes` 0 on every shard), so that no
/// writeback or dispatch of what came before runs inside the next measured window; returns
/// the seconds waited.
pub fn wait_settled(addr: SocketAddr, backend: &str, limit: Duration) -> Result<f64, String> {
    let started = Instant::now();
    loop {
        let v = runtime_max(addr, backend, &["remainHowManyDataToFlush", "dispatchBehindBytes"])?;
        if v.iter().all(|x| x.unwrap_or(0) == 0) {
            return Ok(started.elapsed().as_secs_f64());
        }
        if started.elapsed() >= limit {
            return Err(format!("the broker did not flush and dispatch within {limit:?}: {v:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A FerroMQ broker's replication figures in GET_BROKER_RUNTIME_INFO (issue 9): on a master,
/// its connected slave streams (summed over shards) and how far the furthest-behind shard's
/// best slave trails; on a slave, its streams from the master and how far it trails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicationStatus {
    /// `ferromqReplicationStreams`.
    pub streams: u64,
    /// `ferromqReplicationLagBytes`.
    pub lag_bytes: u64,
    /// `ferromqReplicationLagMs`: since the slave last held everything the master had written.
    pub lag_ms: u64,
}

impl ReplicationStatus {
    /// The figures of a runtime-info table; `None` from a broker without them.
    pub fn from_table(table: &serde_json::Map<String, serde_json::Value>) -> Option<ReplicationStatus> {
        Some(ReplicationStatus {
            streams: table_u64(table, "ferromqReplicationStreams")?,
            lag_bytes: table_u64(table, "ferromqReplicationLagBytes")?,
            lag_ms: table_u64(table, "ferromqReplicationLagMs")?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Shards (FerroMQ only)

/// Which queue-owner shard a (topic, queue) has in a FerroMQ broker with `shards` shards
/// (core's `shard::owner_of`, recomputed).
pub fn owner_of(topic: &str, queue_id: u32, shards: usize) -> usize {
    let shards = shards.max(1) as u64;
    let topic_hash = u64::from(java_string_hash(topic) as u32);
    (topic_hash.wrapping_mul(31).wrapping_add(u64::from(queue_id)) % shards) as usize
}

/// The shard threads (`shard-N`) of process `pid`: (N, tid), sorted by N. Threads a shard
/// spawns (compio's blocking pool) inherit its name, so one N may have several threads.
pub fn shard_threads(pid: u32) -> Result<Vec<(usize, u32)>, String> {
    let dir = format!("/proc/{pid}/task");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("cannot read {dir}: {e}"))?.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if let Some(n) = comm.trim().strip_prefix("shard-").and_then(|n| n.parse::<usize>().ok()) {
            out.push((n, tid));
        }
    }
    out.sort_unstable();
    if out.is_empty() {
        return Err(format!("process {pid} has no threads named shard-N (not a FerroMQ broker?)"));
    }
    Ok(out)
}

/// CPU time (ns) thread `tid` of `pid` has run, from `/proc/<pid>/task/<tid>/schedstat`.
fn thread_cpu_ns(pid: u32, tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// Finds the shard serving `client`'s connection: sends a burst of requests the broker answers
/// on the connection's own shard (an unsupported request code) and picks the shard thread
/// whose CPU time grew by far the most. Run it while the broker is otherwise idle.
pub async fn connection_shard(client: &Client, pid: u32, threads: &[(usize, u32)]) -> Result<usize, String> {
    const PROBE_CODE: i32 = 9_999;
    const PROBE_REQUESTS: usize = 300;
    for _attempt in 0..5 {
        wait_for_quiet_shards(pid, threads, SHARD_QUIET_WAIT).await;
        let before: Vec<u64> = threads.iter().map(|(_, tid)| thread_cpu_ns(pid, *tid)).collect();
        for _ in 0..PROBE_REQUESTS {
            client.invoke(RemotingCommand::request(PROBE_CODE), REQUEST_TIMEOUT).await.map_err(|e| e.to_string())?;
        }
        // Per shard number (a shard's helper threads share its name).
        let shard_count = threads.iter().map(|(n, _)| n + 1).max().unwrap_or(1);
        let mut deltas: Vec<(u64, usize)> = (0..shard_count).map(|n| (0, n)).collect();
        for ((n, tid), b) in threads.iter().zip(before) {
            deltas[*n].0 += thread_cpu_ns(pid, *tid).saturating_sub(b);
        }
        deltas.sort_unstable_by(|a, b| b.cmp(a));
        match deltas.as_slice() {
            [(_, only)] => return Ok(*only),
            [(top, n), (second, _), ..] if *top > 3 * *second => return Ok(*n),
            _ => {}
        }
    }
    Err("cannot tell which shard serves the connection (shard CPU times too close; is the broker busy?)".into())
}

/// How long [`connection_shard`] waits at most for the shards to go quiet before a burst.
const SHARD_QUIET_WAIT: Duration = Duration::from_secs(15);

/// Waits (at most `max`) until the shard threads together use less than a tenth of a CPU over
/// 50 ms, so that a classification burst stands out from background work — the flush and
/// dispatch that follow a load point (an ASYNC_FLUSH broker writes back gigabytes after a batch
/// point).
async fn wait_for_quiet_shards(pid: u32, threads: &[(usize, u32)], max: Duration) {
    const WINDOW: Duration = Duration::from_millis(50);
    let deadline = Instant::now() + max;
    let busy = || threads.iter().map(|(_, tid)| thread_cpu_ns(pid, *tid)).sum::<u64>();
    loop {
        let before = busy();
        compio::time::sleep(WINDOW).await;
        let used = busy().saturating_sub(before);
        if u128::from(used) * 10 < WINDOW.as_nanos() || Instant::now() >= deadline {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// rss mode

#[derive(clap::Args, Debug, Clone)]
pub struct RssArgs {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:10911")]
    pub broker: SocketAddr,
    /// PID of the broker process (its /proc/<pid>/status VmRSS is read).
    #[arg(long)]
    pub pid: u32,
    /// Idle connections to open.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// What each connection sends once: nothing, or one HEART_BEAT (a producer's).
    #[arg(long, default_value = "heartbeat", value_parser = ["none", "heartbeat"])]
    pub send: String,
    /// Milliseconds to wait before each RSS reading.
    #[arg(long, default_value_t = 1500)]
    pub settle_ms: u64,
    /// I/O backend of the client: auto, io_uring or epoll.
    #[arg(long, default_value = "auto")]
    pub io_backend: String,
    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// Target: broker RSS per idle connection, KiB.
pub const TARGET_RSS_PER_IDLE_CONN_KIB: f64 = 16.0;

/// (VmRSS, RssAnon) of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Result<(u64, u64), String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Ok((field("VmRSS:").ok_or("no VmRSS")?, field("RssAnon:").unwrap_or(0)))
}

/// A producer's HEART_BEAT (34) body (§4.5).
pub fn heartbeat_request(client_id: &str, producer_group: &str) -> RemotingCommand {
    let body = serde_json::json!({"clientID": client_id, "producerDataSet": [{"groupName": producer_group}],
        "consumerDataSet": [], "heartbeatFingerprint": 0, "withoutSub": false});
    RemotingCommand::request(request_code::HEART_BEAT).with_body(serde_json::to_vec(&body).unwrap_or_default())
}

/// `rss` mode: prints the result (and writes it as JSON with `--json`).
pub fn run_rss(args: RssArgs) -> Result<(), String> {
    measure_rss(&args).map(drop)
}

/// Opens `args.connections` idle connections to the broker and returns the JSON summary of its
/// RSS growth per connection (also printed).
pub fn measure_rss(args: &RssArgs) -> Result<serde_json::Value, String> {
    raise_nofile_limit();
    let backend = resolve_backend(&args.io_backend)?;
    let (runtime, _) = build_runtime(backend).map_err(|e| e.to_string())?;
    let settle = Duration::from_millis(args.settle_ms);
    let pid = args.pid;
    let before = rss_kib(pid)?;
    let args2 = args.clone();
    let (after, closed, failed) = runtime.block_on(async move {
        let mut clients = Vec::with_capacity(args2.connections);
        let mut failed = 0u64;
        for i in 0..args2.connections {
            match Client::connect(args2.broker, CONNECT_TIMEOUT).await {
                Ok(c) => {
                    if args2.send == "heartbeat" {
                        let id = format!("127.0.0.1@bench-rss-{}-{i}", std::process::id());
                        match c.invoke(heartbeat_request(&id, "ferromq-bench-rss"), REQUEST_TIMEOUT).await {
                            Ok(r) if r.code == 0 => {}
                            _ => failed += 1,
                        }
                    }
                    clients.push(c);
                }
                Err(_) => failed += 1,
            }
            if (i + 1) % 250 == 0 {
                eprintln!("[rss] {} connections open, VmRSS {} KiB", i + 1, rss_kib(pid).map(|r| r.0).unwrap_or(0));
            }
        }
        compio::time::sleep(settle).await;
        let after = rss_kib(pid);
        let open = clients.iter().filter(|c| !c.is_closed()).count();
        for c in &clients {
            c.close();
        }
        drop(clients);
        compio::time::sleep(settle).await;
        (after.map(|a| (a, open)), rss_kib(pid), failed)
    });
    let ((after, open), closed) = (after?, closed?);
    let k = open.max(1) as f64;
    let per_conn = (after.0 as f64 - before.0 as f64) / k;
    let per_conn_anon = (after.1 as f64 - before.1 as f64) / k;
    println!(
        "rss: {open} idle connections ({} each, {failed} failures): VmRSS {} -> {} KiB ({:+} KiB), {per_conn:.1} KiB per connection (RssAnon {per_conn_anon:.1}); after closing {} KiB; target <= {TARGET_RSS_PER_IDLE_CONN_KIB} KiB: {}",
        args.send,
        before.0,
        after.0,
        after.0 as i64 - before.0 as i64,
        closed.0,
        if per_conn <= TARGET_RSS_PER_IDLE_CONN_KIB { "met" } else { "missed" }
    );
    let summary = serde_json::json!({
        "mode": "rss", "broker": args.broker.to_string(), "pid": pid, "connections": open, "send": args.send, "failures": failed,
        "vmrss_before_kib": before.0, "vmrss_after_kib": after.0, "vmrss_after_close_kib": closed.0,
        "rssanon_before_kib": before.1, "rssanon_after_kib": after.1,
        "kib_per_connection": per_conn, "anon_kib_per_connection": per_conn_anon,
        "target_kib_per_connection": TARGET_RSS_PER_IDLE_CONN_KIB,
    });
    if let Some(path) = &args.json {
        crate::probe::write_json(path, &summary)?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_encoding_round_trips() {
        let entries: Vec<BatchEntry> = vec![
            (0, make_body(100, Some(42)), message_properties("K1").into_bytes()),
            (7, Vec::new(), Vec::new()),
            (-1, make_body(3, None), b"TAGS\x01x\x02".to_vec()),
        ];
        let encoded = encode_batch(&entries);
        assert_eq!(decode_batch(&encoded).unwrap(), entries);
        assert!(decode_batch(&encoded[..encoded.len() - 1]).is_none());
        assert_eq!(body_stamp(&entries[0].1), Some(42));
        assert_eq!(body_stamp(&entries[2].1), None);
    }

    #[test]
    fn send_requests_use_short_keys_and_batch_code() {
        let template = SendTemplate::new("g", "T", 4, 64, 1);
        let single = template.request(3, None);
        assert_eq!(single.code, request_code::SEND_MESSAGE_V2);
        assert_eq!((single.ext("b"), single.ext("c"), single.ext("e")), (Some("T"), Some(DEFAULT_TOPIC), Some("3")));
        assert_eq!(single.body.len(), 64);
        assert_eq!(template.request_to("U", 1, None).ext("b"), Some("U"));
        assert_eq!(template.request(1, None).body, template.request(2, None).body, "unstamped bodies are shared");
        assert_eq!(body_stamp(&template.request(0, Some(5)).body), Some(5));
        let batch = SendTemplate::new("g", "T", 4, 64, 5).request(0, Some(9));
        assert_eq!(batch.code, request_code::SEND_BATCH_MESSAGE);
        assert_eq!(batch.ext("m"), Some("true"));
        let entries = decode_batch(&batch.body).unwrap();
        assert_eq!(entries.len(), 5);
        assert!(entries.iter().all(|(_, b, p)| b.len() == 64 && body_stamp(b) == Some(9) && p.starts_with(b"UNIQ_KEY\x01")));
    }

    #[test]
    fn replication_status_reads_numeric_strings_and_needs_every_key() {
        let table = |v: serde_json::Value| v.as_object().unwrap().clone();
        let full = table(serde_json::json!({
            "ferromqReplicationStreams": "2", "ferromqReplicationLagBytes": "4096", "ferromqReplicationLagMs": 17, "brokerVersion": "V5_3_3",
        }));
        assert_eq!(ReplicationStatus::from_table(&full), Some(ReplicationStatus { streams: 2, lag_bytes: 4096, lag_ms: 17 }));
        assert_eq!(table_u64(&full, "brokerVersion"), None);
        assert_eq!(table_u64(&full, "absent"), None);
        let partial = table(serde_json::json!({"ferromqReplicationStreams": "1", "ferromqReplicationLagBytes": "0"}));
        assert_eq!(ReplicationStatus::from_table(&partial), None, "a broker without replication figures");
    }

    #[test]
    fn owner_matches_the_broker_formula() {
        // Same reference value as core's shard tests: one shard owns everything.
        assert_eq!(owner_of("TopicTest", 3, 1), 0);
        let owners: std::collections::BTreeSet<usize> = (0..16).map(|q| owner_of("TopicTest", q, 4)).collect();
        assert_eq!(owners.len(), 4);
        // With 2 shards, consecutive queues alternate.
        assert_ne!(owner_of("BenchTopic", 0, 2), owner_of("BenchTopic", 1, 2));
    }
}
