//! `semantics` mode: what issue 15's messaging semantics cost, measured on a broker started
//! here, recorded beside the machine's probes, not asserted.
//!
//! One `mqbroker` from `--bin-dir` (default: this executable's folder) with its embedded name
//! server and `enablePropertyFilter=true`, on a store in a scratch folder removed afterwards.
//! Every measured window is one connection with K requests outstanding (`--in-flight`, one
//! point per value), opened before the window starts; the broker has flushed and dispatched
//! everything it holds before each window ([`broker::wait_settled`]); the broker's CPU (all
//! threads, its process CPU clock: the embedded name server included) and this process's are
//! taken over the window ([`crate::cpu`]).
//!
//! 1. **Retry and dead letters.** `--messages` originals are stored, then for each K and
//!    each variant one CONSUMER_SEND_MSG_BACK (36, PROTOCOL.md §9.2) per original, by its
//!    commit-log offset, with the header a Java consumer sends (`maxReconsumeTimes` 16):
//!    - `dlq`: `delayLevel` −1, straight to `%DLQ%<group>`;
//!    - `retry`: `delayLevel` `--retry-delay-level` (0: the broker picks 3 + reconsumeTimes,
//!      level 3 = 10 s by default); the originals' reconsumeTimes 0 < 16, so each is parked in
//!      `SCHEDULE_TOPIC_XXXX` and delivered to `%RETRY%<group>` when due.
//!
//!    Each (variant, K) has a group of its own. Checked: the DLQ, or the schedule queue, took
//!    every message; after the delay, `%RETRY%<group>` holds every one (pulled and counted).
//!    The wait for that delivery is a follow-up window of its own (broker CPU per delivered
//!    message); retries delivered while the send-back window still ran are noted.
//! 2. **Transactions** (§10): for each K, `--messages` half messages (sysFlag 4 = prepared,
//!    `TRAN_MSG=true`, `PGROUP`) sent K outstanding, then END_TRANSACTION (37) commit for each,
//!    two-way, K outstanding (the broker's `transactionTimeOut` raised to
//!    [`TRANSACTION_TIMEOUT_MS`], as the commits come seconds after their half messages); then
//!    the same with one-way commits as Java clients send them,
//!    timed until the last committed message is visible in its topic (GET_MAX_OFFSET polled
//!    every [`VISIBLE_POLL`]). Checked: no message visible before its commit; exactly every
//!    one after (pulled and counted). Then the broker's check-back pass (every
//!    `transactionCheckInterval`, 30 s by default) is waited for — group `CID_RMQ_SYS_TRANS`'s
//!    offset on the half queue reaches its end — as a follow-up window, so that it does not run
//!    inside the filter windows; checked: it re-appended no half message (every commit counted
//!    as resolved).
//! 3. **Filters** (§2.2, SQL92 and tags): `--filter-messages` messages over `--queues` queues,
//!    tags `t0` … `t4` in turn, properties `a` = 0 … 9 and `b` ∈ {x, y, z, w}; every queue read
//!    from 0 to its end by catch-up pulls (one `--pull-batch` pull in flight per queue, the
//!    suite's consume) with (a) TAG `t0`, (b) SQL92 `a > 5 AND b IN ('x','y')` — each matches
//!    one message in five — and (c) no filter (`*`); `--filter-rounds` rounds, the order
//!    rotated. Records examined (every queue entry) per second, broker CPU per examined record,
//!    and SQL92 ÷ TAG paired per round. Checked: each matched exactly what the generator
//!    expects, and pulled without an offset going back.
//! 4. **Timer delivery lateness** (5.x `TIMER_DELIVER_MS`): for each `--timer-pending` N, N
//!    messages with due times spread evenly over `--timer-spread-secs`, starting
//!    `--timer-lead-secs` after the phase starts (so that all N are pending at once when the
//!    sends finish within the lead), sent `max(--in-flight)` outstanding (a point: parking rate
//!    and broker CPU per parked message); the broker's RSS before and with all N pending; then
//!    a follow-up window until all N are visible in their topic (broker CPU per delivered
//!    message). Every delivered record is pulled: lateness = its store timestamp − its
//!    `TIMER_OUT_MS` (the due time the broker stamped), p50 / p99 / max. Checked: all N
//!    delivered, none before its due time.
//!
//! `report.md`, `results.json`, `raw/` (each filter read's consume summary) and `logs/` (the
//! broker's log) go to the results folder.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use ferromq_net::RemotingCommand;
use ferromq_net::backend::build_runtime;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_store::record::{Properties, decode_offset_msg_id};
use serde::Serialize;

use crate::broker::{self, Counts, SendTemplate};
use crate::consume::{self, ConsumeArgs, ConsumerArgs, ConsumerSet};
use crate::cpu::{CpuReport, CpuWindow};
use crate::probe::{self, ProbeReport, ProbeSizes, ScratchDir};
use crate::produce;
use crate::replication::ratio;
use crate::report::{Spread, opt, spread};
use crate::suite::{self, BROKER_READY, LogProblems, Server};

/// Topic of the originals the send-backs name.
const ORIGIN_TOPIC: &str = "SemOrigin";
/// Topic of the filter stream.
const FILTER_TOPIC: &str = "SemFilter";
/// Producer group of every send (and of the half messages: their `PGROUP`).
const PRODUCER_GROUP: &str = "semantics-producer";
/// Consumer group of every pull (verification and filter reads; inline subscriptions).
const READER_GROUP: &str = "semantics-reader";
/// `maxReconsumeTimes` of the send-backs (the Java consumer's default, 16).
const MAX_RECONSUME_TIMES: i32 = 16;
/// Queues of `%RETRY%<group>` and `%DLQ%<group>` (the group's `retryQueueNums` default, and
/// the DLQ's fixed 1).
const RETRY_DLQ_QUEUES: Range<u32> = 0..1;
/// `SCHEDULE_TOPIC_XXXX`: delayed messages wait there, queue = level − 1 (§9.3).
const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// The half queue (§10.1) and the check-back's progress group.
const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
const CHECKER_GROUP: &str = "CID_RMQ_SYS_TRANS";
/// sysFlag of a half message: TRANSACTION_PREPARED_TYPE.
const SYS_FLAG_PREPARED: i32 = 4;
/// `commitOrRollback` of a commit.
const COMMIT: i32 = 8;
/// The filter stream: tag `t<i mod 5>`, `a` = i mod 10, `b` = [`B_VALUES`][(i / 10) mod 4].
const TAGS: u64 = 5;
const B_VALUES: [&str; 4] = ["x", "y", "z", "w"];
/// The TAG subscription and the SQL92 selector of similar selectivity (both 1 in 5).
const TAG_FILTER: &str = "t0";
const SQL_FILTER: &str = "a > 5 AND b IN ('x','y')";
/// How often a wait for stored or delivered messages reads the queues' max offsets.
const VISIBLE_POLL: Duration = Duration::from_millis(20);
/// `transactionTimeOut` of the broker (default 6,000 ms): a point commits its half messages
/// only after sending all of them, seconds later than a producer would, and the check-back
/// must not take them for abandoned meanwhile (copies, CHECK_TRANSACTION_STATE to nobody).
/// The pass itself still runs every `transactionCheckInterval`, and stops at the first
/// unresolved half message as it does with the default.
const TRANSACTION_TIMEOUT_MS: u64 = 600_000;
/// How long the broker may take to flush and dispatch before a window.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(clap::Args, Debug, Clone)]
pub struct SemanticsArgs {
    /// Results folder (created). Default: results/semantics-<UTC time> under the current directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Folder holding `mqbroker`. Default: the folder of this executable.
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Base folder for the store and the probe files. Default: the system temp folder.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The broker's flush mode.
    #[arg(long, default_value = "async", value_parser = ["sync", "async"])]
    pub flush: String,
    /// I/O backend of the broker and of the load generator.
    #[arg(long, default_value = "io_uring", value_parser = ["io_uring", "epoll"])]
    pub backend: String,
    /// Shards of the broker (default: the broker's own default).
    #[arg(long)]
    pub shards: Option<u16>,
    /// Send-backs per send-back point, half messages and commits per transaction point
    /// (default 20,000; 200 with --tiny).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Requests outstanding on the one connection of each send-back, half-send and commit
    /// point: one point per value.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub in_flight: Vec<usize>,
    /// Message body size, bytes (originals, half messages, the filter stream).
    #[arg(long, default_value_t = 1024)]
    pub message_bytes: usize,
    /// Queues of the originals', the transactions' and the filter stream's topics.
    #[arg(long, default_value_t = 8)]
    pub queues: u32,
    /// delayLevel of the retry send-backs; 0: the broker picks 3 + reconsumeTimes (level 3,
    /// 10 s with the default messageDelayLevel).
    #[arg(long, default_value_t = 0)]
    pub retry_delay_level: i32,
    /// Messages of the filter stream (default 200,000; 4,000 with --tiny).
    #[arg(long)]
    pub filter_messages: Option<u64>,
    /// Rounds of the three filter reads, the order rotated (default 3; 1 with --tiny).
    #[arg(long)]
    pub filter_rounds: Option<usize>,
    /// maxMsgNums of the filter reads' pulls.
    #[arg(long, default_value_t = 32)]
    pub pull_batch: u32,
    /// Longest wait for retried messages to be delivered, for committed ones to be visible
    /// and for the transaction check-back pass (which runs every transactionCheckInterval),
    /// seconds.
    #[arg(long, default_value_t = 120)]
    pub wait_secs: u64,
    /// Extra broker settings, KEY=VALUE (passed as `mqbroker --set`).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub broker_settings: Vec<String>,
    /// Timer messages pending at once, one timer point per value (default 10,000 and
    /// 100,000; 300 with --tiny).
    #[arg(long, value_delimiter = ',')]
    pub timer_pending: Vec<u64>,
    /// Seconds from the start of a timer point to the first due time (the sends must finish
    /// within it for all to be pending at once). Default 8; 2 with --tiny.
    #[arg(long)]
    pub timer_lead_secs: Option<u64>,
    /// Seconds over which a timer point's due times are spread. Default 10; 1 with --tiny.
    #[arg(long)]
    pub timer_spread_secs: Option<u64>,
    /// Tiny probes and, unless given, tiny counts: a quick check that everything runs (the
    /// figures mean nothing then).
    #[arg(long)]
    pub tiny: bool,
}

/// The counts a run uses (the defaults, or `--tiny`'s, unless given).
#[derive(Debug, Clone, Copy, Serialize)]
struct Sizes {
    messages: u64,
    filter_messages: u64,
    filter_rounds: usize,
}

impl Sizes {
    fn of(args: &SemanticsArgs) -> Sizes {
        let (messages, filter_messages, filter_rounds) = if args.tiny { (200, 4_000, 1) } else { (20_000, 200_000, 3) };
        Sizes {
            messages: args.messages.unwrap_or(messages),
            filter_messages: args.filter_messages.unwrap_or(filter_messages),
            filter_rounds: args.filter_rounds.unwrap_or(filter_rounds),
        }
    }
}

/// A count the run checked: what should be there, what was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub what: String,
    pub expected: u64,
    pub found: u64,
}

impl Check {
    pub fn ok(&self) -> bool {
        self.found == self.expected
    }
}

/// Work the broker does after a window, because of it (retried messages delivered when due,
/// the transaction check-back pass), measured as a window of its own: from the end of the
/// point until it is seen done. Its CPU includes the broker idling while it waits.
#[derive(Debug, Clone, Serialize)]
pub struct FollowUp {
    pub what: String,
    /// From the end of the point's window until seen done.
    pub wait_s: f64,
    /// Over the wait; `messages` = those it handled.
    pub cpu: CpuReport,
}

/// One measured window of requests on one connection.
#[derive(Debug, Clone, Serialize)]
pub struct OpPoint {
    /// `store` (setup sends), `send-back`, `half` or `commit`.
    pub step: String,
    /// store: `originals` / `filter stream`; send-back: `retry` / `dlq`; half, commit:
    /// `two-way` / `one-way`.
    pub variant: String,
    /// Requests outstanding; `None` for one-way requests (as many as the socket takes).
    pub in_flight: Option<usize>,
    pub requests: u64,
    /// Answered SUCCESS (one-way: found stored at the end of the window).
    pub ok: u64,
    /// Non-SUCCESS answers and client errors, by name.
    pub failures: Counts,
    pub window_s: f64,
    /// `ok ÷ window_s`.
    pub per_s: f64,
    /// Round trips (µs) of the SUCCESS answers; none for one-way requests.
    pub latency_us: Option<serde_json::Value>,
    /// Broker and generator CPU over the window, per `ok` request.
    pub cpu: CpuReport,
    pub checks: Vec<Check>,
    pub follow_up: Option<FollowUp>,
    pub notes: Vec<String>,
}

impl OpPoint {
    pub fn broker_us(&self) -> Option<f64> {
        self.cpu.broker_us_per_message
    }

    fn name(&self) -> String {
        match self.in_flight {
            Some(k) => format!("{} {} ({k} in flight)", self.step, self.variant),
            None => format!("{} {}", self.step, self.variant),
        }
    }

    fn p(&self, key: &str) -> Option<f64> {
        self.latency_us.as_ref()?.get(key)?.as_f64()
    }
}

/// One catch-up read of the whole filter stream with one subscription.
#[derive(Debug, Clone, Serialize)]
pub struct FilterRun {
    pub round: usize,
    /// `tag`, `sql92` or `none`.
    pub variant: String,
    pub subscription: String,
    pub expression_type: String,
    /// Queue entries read through (every entry of every queue).
    pub examined: u64,
    /// Records the pulls returned, and what the generator expects to match.
    pub matched: u64,
    pub expected_matched: u64,
    pub duration_s: f64,
    pub examined_per_s: f64,
    pub pulls: u64,
    /// Broker CPU µs per examined record, and per returned record (`cpu`'s own figure).
    pub broker_us_per_examined: Option<f64>,
    pub generator_us_per_examined: Option<f64>,
    pub cpu: Option<CpuReport>,
    pub codes: serde_json::Value,
    /// Offsets that went back; must be 0.
    pub gaps: u64,
    pub errors: Vec<String>,
}

/// The filter reads' ratios, paired per round.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FilterFigures {
    pub rounds: Vec<usize>,
    /// SQL92 ÷ TAG of the broker's CPU per examined record, per round.
    pub sql_vs_tag_cpu: Vec<f64>,
    /// SQL92 ÷ no filter, TAG ÷ no filter of the same.
    pub sql_vs_none_cpu: Vec<f64>,
    pub tag_vs_none_cpu: Vec<f64>,
    /// SQL92 ÷ TAG of records examined per second.
    pub sql_vs_tag_rate: Vec<f64>,
}

/// Pairs the three reads of each round.
pub fn filter_figures(runs: &[FilterRun]) -> FilterFigures {
    let mut f = FilterFigures::default();
    let mut rounds: Vec<usize> = runs.iter().map(|r| r.round).collect();
    rounds.dedup();
    for round in rounds {
        let find = |variant: &str| runs.iter().find(|r| r.round == round && r.variant == variant);
        let (Some(tag), Some(sql), Some(none)) = (find("tag"), find("sql92"), find("none")) else { continue };
        let cpu = |r: &FilterRun| r.broker_us_per_examined.unwrap_or(f64::NAN);
        f.rounds.push(round);
        f.sql_vs_tag_cpu.push(ratio(cpu(sql), cpu(tag)).unwrap_or(f64::NAN));
        f.sql_vs_none_cpu.push(ratio(cpu(sql), cpu(none)).unwrap_or(f64::NAN));
        f.tag_vs_none_cpu.push(ratio(cpu(tag), cpu(none)).unwrap_or(f64::NAN));
        f.sql_vs_tag_rate.push(ratio(sql.examined_per_s, tag.examined_per_s).unwrap_or(f64::NAN));
    }
    f
}

/// What a semantics run measured (`results.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SemanticsResults {
    pub command: String,
    pub started: String,
    pub finished: String,
    pub settings: serde_json::Value,
    /// The I/O backend the broker logged at start.
    pub backend_logged: Option<String>,
    pub disk_used_pct: (Option<f64>, Option<f64>),
    pub load_avg: (Option<[f64; 3]>, Option<[f64; 3]>),
    pub probes: ProbeReport,
    /// The setup sends (originals, filter stream), measured like the points.
    pub stores: Vec<OpPoint>,
    pub send_backs: Vec<OpPoint>,
    pub transactions: Vec<OpPoint>,
    /// The check-back pass after the transaction points.
    pub check_back: Option<FollowUp>,
    pub filters: Vec<FilterRun>,
    pub filter_figures: FilterFigures,
    /// Timer delivery lateness (5.x timer properties), one per `--timer-pending` value.
    pub timer: Vec<TimerPoint>,
    /// Every failed step, failed check and error, in words (empty: none).
    pub failures: Vec<String>,
    pub log_problems: Vec<LogProblems>,
}

/// What every step needs: the broker, the run's settings, where to write.
struct Bench<'a> {
    args: &'a SemanticsArgs,
    sizes: Sizes,
    addr: SocketAddr,
    pid: u32,
    out: PathBuf,
    template: SendTemplate,
}

/// A half message's answer: what END_TRANSACTION names.
#[derive(Debug, Clone)]
struct Half {
    commit_log_offset: i64,
    queue_offset: String,
    transaction_id: String,
}

/// Encoded properties (§5.4) of one message: UNIQ_KEY, WAIT, TAGS, then `extra`.
fn properties(uniq: &str, tag: &str, extra: &[(&str, &str)]) -> String {
    let mut p = Properties::new();
    p.insert("UNIQ_KEY", uniq);
    p.insert("WAIT", "true");
    p.insert("TAGS", tag);
    for (k, v) in extra {
        p.insert(k, v);
    }
    String::from_utf8_lossy(&p.encode()).into_owned()
}

/// The filter stream's `i`-th message: (tag, a, b).
fn filter_fields(i: u64) -> (String, String, &'static str) {
    (format!("t{}", i % TAGS), (i % 10).to_string(), B_VALUES[((i / 10) % B_VALUES.len() as u64) as usize])
}

/// Whether the filter stream's `i`-th message matches [`TAG_FILTER`] and [`SQL_FILTER`]
/// (evaluated here, to check the broker's answers).
fn filter_matches(i: u64) -> (bool, bool) {
    let (tag, a, b) = filter_fields(i);
    let a: u64 = a.parse().unwrap_or(0);
    (tag == TAG_FILTER, a > 5 && (b == "x" || b == "y"))
}

/// The CONSUMER_SEND_MSG_BACK (36) a Java consumer sends for a failed message (§2.2).
fn send_back_request(offset: i64, group: &str, delay_level: i32, origin_id: &str) -> RemotingCommand {
    RemotingCommand::request(request_code::CONSUMER_SEND_MSG_BACK)
        .with_ext("offset", offset)
        .with_ext("group", group)
        .with_ext("delayLevel", delay_level)
        .with_ext("originMsgId", origin_id)
        .with_ext("originTopic", ORIGIN_TOPIC)
        .with_ext("unitMode", false)
        .with_ext("maxReconsumeTimes", MAX_RECONSUME_TIMES)
}

/// The END_TRANSACTION (37) commit of `half` (§2.4).
fn commit_request(half: &Half, topic: &str) -> RemotingCommand {
    RemotingCommand::request(request_code::END_TRANSACTION)
        .with_ext("producerGroup", PRODUCER_GROUP)
        .with_ext("tranStateTableOffset", &half.queue_offset)
        .with_ext("commitLogOffset", half.commit_log_offset)
        .with_ext("commitOrRollback", COMMIT)
        .with_ext("fromTransactionCheck", false)
        .with_ext("msgId", &half.transaction_id)
        .with_ext("transactionId", &half.transaction_id)
        .with_ext("topic", topic)
}

/// The commit-log offset a send answer's `msgId` (offsetMsgId, §5.6) names.
fn stored_offset(response: &RemotingCommand) -> Option<i64> {
    Some(decode_offset_msg_id(response.ext("msgId")?)?.1.0)
}

/// The sum of `topic`'s max offsets over `queues` (a queue that does not exist counts 0).
async fn visible(client: &Client, topic: &str, queues: Range<u32>) -> u64 {
    let mut sum = 0;
    for q in queues {
        sum += broker::max_offset(client, topic, q).await.unwrap_or(0);
    }
    sum
}

/// Polls until `queues` of `topic` hold `expected` messages more than `base` (or `limit`
/// passes); returns how many more they hold.
async fn wait_visible(client: &Client, topic: &str, queues: Range<u32>, base: u64, expected: u64, limit: Duration) -> u64 {
    let started = Instant::now();
    loop {
        let found = visible(client, topic, queues.clone()).await.saturating_sub(base);
        if found >= expected || started.elapsed() >= limit {
            return found;
        }
        compio::time::sleep(VISIBLE_POLL).await;
    }
}

impl Bench<'_> {
    fn backend(&self) -> Result<ferromq_net::backend::IoBackend, String> {
        broker::resolve_backend(&self.args.backend)
    }

    fn wait_limit(&self) -> Duration {
        Duration::from_secs(self.args.wait_secs.max(1))
    }

    /// Runs `body` with a fresh connection to the broker on a runtime of its own.
    fn with_client<T>(&self, body: impl AsyncFnOnce(&Client) -> Result<T, String>) -> Result<T, String> {
        let (runtime, _) = build_runtime(self.backend()?).map_err(|e| e.to_string())?;
        let addr = self.addr;
        runtime.block_on(async {
            let client = Client::connect(addr, broker::CONNECT_TIMEOUT).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            let result = body(&client).await;
            client.close();
            result
        })
    }

    fn settle(&self) -> Result<(), String> {
        broker::wait_settled(self.addr, &self.args.backend, SETTLE_TIMEOUT).map(drop)
    }

    /// `n` requests, `in_flight` outstanding on one connection; the window covers them only.
    /// Each SUCCESS answer also goes to `on_success`.
    fn requests_point(
        &self,
        (step, variant): (&str, &str),
        n: u64,
        in_flight: usize,
        request: impl Fn(usize) -> RemotingCommand,
        on_success: impl Fn(usize, &RemotingCommand),
    ) -> Result<OpPoint, String> {
        self.settle()?;
        let pid = self.pid;
        self.with_client(async |client| {
            let latency = RefCell::new(broker::micros_histogram());
            let ok = Cell::new(0u64);
            let window = CpuWindow::start(Some(pid));
            let started = Instant::now();
            let failures = produce::pipeline(client, n as usize, in_flight, request, |i, response, rtt| {
                ok.set(ok.get() + 1);
                let _ = latency.borrow_mut().record(u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1));
                on_success(i, response);
            })
            .await;
            let window_s = started.elapsed().as_secs_f64();
            let cpu = window.finish(ok.get());
            let point = OpPoint {
                step: step.into(),
                variant: variant.into(),
                in_flight: Some(in_flight),
                requests: n,
                ok: ok.get(),
                failures,
                window_s,
                per_s: ok.get() as f64 / window_s.max(1e-9),
                latency_us: Some(broker::percentiles_json(&latency.borrow())),
                cpu,
                checks: Vec::new(),
                follow_up: None,
                notes: Vec::new(),
            };
            eprintln!("[semantics] {}: {:.0}/s, {}", point.name(), point.per_s, point.cpu.line());
            Ok(point)
        })
    }

    /// Every record of `topic`'s queues `0..queues`, pulled from offset 0 and counted (bodies decoded and
    /// CRC-checked by the consumer).
    fn pull_count(&self, topic: &str, queues: u32) -> Result<u64, String> {
        let set = ConsumerSet::start(&self.reader(topic, queues, "*", "TAG"), true)?;
        let counters = set.counters.clone();
        counters.measuring.store(true, std::sync::atomic::Ordering::SeqCst);
        set.go();
        let deadline = Instant::now() + self.wait_limit();
        while !set.finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let timed_out = !set.finished();
        let result = set.stop_and_join()?;
        if timed_out || !result.errors.is_empty() {
            return Err(format!("reading {topic} back: {}", if timed_out { "timed out".to_owned() } else { result.errors.join("; ") }));
        }
        Ok(counters.messages.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// A catch-up reader of `topic` with an inline subscription.
    fn reader(&self, topic: &str, queues: u32, subscription: &str, expression_type: &str) -> ConsumerArgs {
        ConsumerArgs {
            broker: self.addr,
            topic: topic.into(),
            queues,
            consumer_connections: 1,
            pull_batch: self.args.pull_batch,
            suspend_ms: 0,
            consumer_group: READER_GROUP.into(),
            subscription: subscription.into(),
            expression_type: expression_type.into(),
            consumer_io_backend: self.args.backend.clone(),
            consumer_tls: false,
        }
    }

    /// Sends `n` messages to `topic` (created first with `--queues` queues), queue
    /// `i mod queues`, properties and sysFlag from `message(i)`, `in_flight` outstanding; each
    /// SUCCESS answer also goes to `on_success`.
    fn send(
        &self,
        (step, variant): (&str, &str),
        topic: &str,
        n: u64,
        in_flight: usize,
        message: impl Fn(usize) -> (String, i32),
        on_success: impl Fn(usize, &RemotingCommand),
    ) -> Result<OpPoint, String> {
        self.with_client(async |client| broker::create_topic(client, topic, self.args.queues).await)?;
        let queues = self.args.queues as usize;
        let request = |i| {
            let (properties, sys_flag) = message(i);
            self.template.request_with(topic, (i % queues) as u32, properties, sys_flag)
        };
        self.requests_point((step, variant), n, in_flight, request, on_success)
    }

    fn queues(&self) -> Range<u32> {
        0..self.args.queues
    }

    fn max_in_flight(&self) -> usize {
        self.args.in_flight.iter().copied().max().unwrap_or(1)
    }
}

/// Fails a point's checks into `failures`.
fn note_checks(point: &OpPoint, failures: &mut Vec<String>) {
    for c in point.checks.iter().filter(|c| !c.ok()) {
        failures.push(format!("{}: {}: expected {}, found {}", point.name(), c.what, c.expected, c.found));
    }
    if !point.failures.is_empty() {
        failures.push(format!("{}: failed requests {:?}", point.name(), point.failures));
    }
}

/// The retry and dead-letter points.
fn run_send_backs(b: &Bench, results: &mut SemanticsResults) -> Result<(), String> {
    let n = b.sizes.messages;
    eprintln!("[semantics] send-backs: storing {n} originals");
    // (commit-log offset, UNIQ_KEY) of every original stored.
    let originals = RefCell::new(Vec::with_capacity(n as usize));
    let store = b.send(
        ("store", "originals"),
        ORIGIN_TOPIC,
        n,
        b.max_in_flight(),
        |_| (properties(&broker::uniq_key(), broker::BENCH_TAG, &[]), 0),
        |_, r| {
            if let (Some(offset), Some(uniq)) = (stored_offset(r), r.ext("transactionId")) {
                originals.borrow_mut().push((offset, uniq.to_owned()));
            }
        },
    )?;
    results.stores.push(store);
    let originals = originals.into_inner();
    if originals.len() as u64 != n {
        return Err(format!("only {} of {n} originals were stored", originals.len()));
    }
    let level = if b.args.retry_delay_level == 0 { 3 } else { b.args.retry_delay_level };
    let schedule_queue = u32::try_from(level - 1).map_err(|_| format!("--retry-delay-level {} is not a delay level", b.args.retry_delay_level))?;
    let count = originals.len() as u64;
    for &k in &b.args.in_flight {
        for variant in ["dlq", "retry"] {
            let group = format!("semantics-{variant}-k{k}");
            let (delay_level, target) = match variant {
                "dlq" => (-1, format!("%DLQ%{group}")),
                _ => (b.args.retry_delay_level, format!("%RETRY%{group}")),
            };
            let parked_before = b.with_client(async |c| broker::max_offset(c, SCHEDULE_TOPIC, schedule_queue).await)?;
            let mut point = b.requests_point(
                ("send-back", variant),
                count,
                k,
                |i| send_back_request(originals[i].0, &group, delay_level, &originals[i].1),
                |_, _| {},
            )?;
            let limit = b.wait_limit();
            if variant == "dlq" {
                let found = b.with_client(async |c| Ok(wait_visible(c, &target, RETRY_DLQ_QUEUES, 0, count, limit).await))?;
                point.checks.push(Check { what: format!("stored in {target}"), expected: count, found });
            } else {
                let (in_window, parked) = b.with_client(async |c| {
                    let in_window = visible(c, &target, RETRY_DLQ_QUEUES).await;
                    Ok((in_window, wait_visible(c, SCHEDULE_TOPIC, schedule_queue..schedule_queue + 1, parked_before, count, limit).await))
                })?;
                point.checks.push(Check { what: format!("parked in {SCHEDULE_TOPIC} queue {schedule_queue}"), expected: count, found: parked });
                if in_window > 0 {
                    point.notes.push(format!(
                        "{in_window} of {count} were delivered to {target} while the window ran (the point outlasted the delay): their delivery's CPU is in this point's"
                    ));
                }
                let window = CpuWindow::start(Some(b.pid));
                let started = Instant::now();
                let delivered = b.with_client(async |c| Ok(wait_visible(c, &target, RETRY_DLQ_QUEUES, 0, count, limit).await))?;
                point.follow_up = Some(FollowUp {
                    what: format!("delivery to {target} when due (delay level {level})"),
                    wait_s: started.elapsed().as_secs_f64(),
                    cpu: window.finish(delivered.saturating_sub(in_window)),
                });
                point.checks.push(Check { what: format!("delivered to {target}"), expected: count, found: delivered });
            }
            point.checks.push(Check { what: format!("pulled from {target}"), expected: count, found: b.pull_count(&target, RETRY_DLQ_QUEUES.end)? });
            note_checks(&point, &mut results.failures);
            results.send_backs.push(point);
        }
    }
    Ok(())
}

/// `n` half messages to `topic`, K outstanding (`variant`: the commits that follow); returns
/// what their commits name.
fn send_halves(b: &Bench, topic: &str, n: u64, k: usize, variant: &str, results: &mut SemanticsResults) -> Result<Vec<Half>, String> {
    let halves = RefCell::new(vec![None; n as usize]);
    let half_message = |_| (properties(&broker::uniq_key(), broker::BENCH_TAG, &[("TRAN_MSG", "true"), ("PGROUP", PRODUCER_GROUP)]), SYS_FLAG_PREPARED);
    let mut point = noting_passes(b, || {
        b.send(("half", variant), topic, n, k, half_message, |i, r| {
            let half = (|| {
                Some(Half {
                    commit_log_offset: stored_offset(r)?,
                    queue_offset: r.ext("queueOffset")?.to_owned(),
                    transaction_id: r.ext("transactionId")?.to_owned(),
                })
            })();
            halves.borrow_mut()[i] = half;
        })
    })?;
    // A half message is invisible in its topic until committed.
    b.settle()?;
    let early = b.with_client(async |c| Ok(visible(c, topic, b.queues()).await))?;
    point.checks.push(Check { what: format!("visible in {topic} before any commit"), expected: 0, found: early });
    let halves: Vec<Half> = halves.into_inner().into_iter().flatten().collect();
    point.checks.push(Check { what: "answers naming the half message (msgId, queueOffset, transactionId)".into(), expected: n, found: halves.len() as u64 });
    note_checks(&point, &mut results.failures);
    results.transactions.push(point);
    Ok(halves)
}

/// Runs a transaction point, noting whether a check-back pass moved on inside it (its work is
/// then in the point's CPU).
fn noting_passes(b: &Bench, point: impl FnOnce() -> Result<OpPoint, String>) -> Result<OpPoint, String> {
    let before = b.with_client(async |c| checker_progress(c).await)?;
    let mut point = point()?;
    let after = b.with_client(async |c| checker_progress(c).await)?;
    if after != before {
        point.notes.push(format!("a check-back pass ran inside the window (its progress on the half queue moved {before} → {after}): its CPU is in this point's"));
    }
    Ok(point)
}

/// Checks that `topic` holds exactly `count` messages (waited for, then pulled and counted).
fn check_committed(b: &Bench, point: &mut OpPoint, topic: &str, count: u64) -> Result<(), String> {
    let found = b.with_client(async |c| Ok(wait_visible(c, topic, b.queues(), 0, count, b.wait_limit()).await))?;
    point.checks.push(Check { what: format!("visible in {topic}"), expected: count, found });
    point.checks.push(Check { what: format!("pulled from {topic}"), expected: count, found: b.pull_count(topic, b.args.queues)? });
    Ok(())
}

/// The transaction points: per K, half messages then two-way commits; then one-way commits;
/// then the check-back pass.
fn run_transactions(b: &Bench, results: &mut SemanticsResults) -> Result<(), String> {
    let n = b.sizes.messages;
    for &k in &b.args.in_flight {
        let topic = format!("SemTx-k{k}");
        eprintln!("[semantics] transactions: {n} half messages, then two-way commits, {k} in flight");
        let halves = send_halves(b, &topic, n, k, "two-way", results)?;
        let mut point = noting_passes(b, || b.requests_point(("commit", "two-way"), halves.len() as u64, k, |i| commit_request(&halves[i], &topic), |_, _| {}))?;
        check_committed(b, &mut point, &topic, halves.len() as u64)?;
        note_checks(&point, &mut results.failures);
        results.transactions.push(point);
    }
    let topic = "SemTx-oneway";
    let k = b.max_in_flight();
    eprintln!("[semantics] transactions: {n} half messages, then one-way commits");
    let halves = send_halves(b, topic, n, k, "one-way", results)?;
    let mut point = noting_passes(b, || oneway_commits(b, topic, &halves))?;
    check_committed(b, &mut point, topic, halves.len() as u64)?;
    note_checks(&point, &mut results.failures);
    results.transactions.push(point);

    eprintln!("[semantics] waiting for the transaction check-back pass");
    let sent: u64 = results.transactions.iter().filter(|p| p.step == "half").map(|p| p.ok).sum();
    let (follow_up, half_end) = check_back_pass(b, sent)?;
    if half_end != sent {
        results.failures.push(format!("the half queue holds {half_end} records after the check-back pass, {sent} half messages were sent: it re-appended some for a check"));
    }
    results.check_back = Some(follow_up);
    Ok(())
}

/// One-way END_TRANSACTION commits of every half, written as fast as the connection takes
/// them; the window ends when the last committed message is visible in `topic`.
fn oneway_commits(b: &Bench, topic: &str, halves: &[Half]) -> Result<OpPoint, String> {
    b.settle()?;
    let (n, pid, limit) = (halves.len() as u64, b.pid, b.wait_limit());
    b.with_client(async |client| {
        let mut failures = Counts::new();
        let window = CpuWindow::start(Some(pid));
        let started = Instant::now();
        for half in halves {
            if let Err(e) = client.invoke_oneway(commit_request(half, topic)).await {
                *failures.entry(broker::rpc_error_name(&e)).or_default() += 1;
            }
        }
        let written_s = started.elapsed().as_secs_f64();
        let found = wait_visible(client, topic, b.queues(), 0, n, limit).await;
        let window_s = started.elapsed().as_secs_f64();
        let cpu = window.finish(found);
        let point = OpPoint {
            step: "commit".into(),
            variant: "one-way".into(),
            in_flight: None,
            requests: n,
            ok: found,
            failures,
            window_s,
            per_s: found as f64 / window_s.max(1e-9),
            latency_us: None,
            cpu,
            checks: Vec::new(),
            follow_up: None,
            notes: vec![format!(
                "all {n} written in {written_s:.3} s; the window ends when the last is visible (GET_MAX_OFFSET of its {} queues every {} ms, inside the window)",
                b.args.queues,
                VISIBLE_POLL.as_millis()
            )],
        };
        eprintln!("[semantics] {}: {:.0}/s, {}", point.name(), point.per_s, point.cpu.line());
        Ok(point)
    })
}

/// Waits until the check-back task's progress on the half queue (group `CID_RMQ_SYS_TRANS`)
/// reaches the queue's end; returns that wait as a follow-up over `halves` half messages and
/// the half queue's length.
fn check_back_pass(b: &Bench, halves: u64) -> Result<(FollowUp, u64), String> {
    b.settle()?;
    let (pid, limit) = (b.pid, b.wait_limit());
    b.with_client(async |client| {
        let window = CpuWindow::start(Some(pid));
        let started = Instant::now();
        let mut first = true;
        loop {
            let end = broker::max_offset(client, HALF_TOPIC, 0).await?;
            if checker_progress(client).await? >= end {
                let already = if first { " — it had already run, inside an earlier window (see the notes)" } else { "" };
                let follow_up = FollowUp {
                    what: format!("the check-back pass over {halves} resolved half messages (transactionCheckInterval){already}"),
                    wait_s: started.elapsed().as_secs_f64(),
                    cpu: window.finish(halves),
                };
                return Ok((follow_up, end));
            }
            if started.elapsed() >= limit {
                return Err(format!("the check-back pass did not reach the half queue's end ({end}) within {limit:?} (--wait-secs)"));
            }
            first = false;
            compio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The check-back task's progress on the half queue: group `CID_RMQ_SYS_TRANS`'s offset there.
async fn checker_progress(client: &Client) -> Result<u64, String> {
    let request = RemotingCommand::request(request_code::QUERY_CONSUMER_OFFSET)
        .with_ext("consumerGroup", CHECKER_GROUP)
        .with_ext("topic", HALF_TOPIC)
        .with_ext("queueId", 0)
        .with_ext("setZeroIfNotFound", true);
    let response = client.invoke(request, broker::REQUEST_TIMEOUT).await.map_err(|e| e.to_string())?;
    if response.code != response_code::SUCCESS {
        return Err(format!("QUERY_CONSUMER_OFFSET {CHECKER_GROUP} answered {}: {:?}", response.code, response.remark));
    }
    response.ext("offset").and_then(|v| v.parse::<i64>().ok()).map(|v| v.max(0) as u64).ok_or_else(|| "QUERY_CONSUMER_OFFSET without offset".to_owned())
}

/// The filter stream, then the three reads per round.
fn run_filters(b: &Bench, results: &mut SemanticsResults) -> Result<(), String> {
    let m = b.sizes.filter_messages;
    eprintln!("[semantics] filters: storing {m} messages with tags and properties");
    let message = |i: usize| {
        let (tag, a, bv) = filter_fields(i as u64);
        (properties(&broker::uniq_key(), &tag, &[("a", &a), ("b", bv)]), 0)
    };
    let store = b.send(("store", "filter stream"), FILTER_TOPIC, m, b.max_in_flight(), message, |_, _| {})?;
    if store.ok != m {
        results.failures.push(format!("{}: {} of {m} stored", store.name(), store.ok));
    }
    results.stores.push(store);
    let (tag_expected, sql_expected) = (0..m).map(filter_matches).fold((0u64, 0u64), |(t, s), (a, b)| (t + u64::from(a), s + u64::from(b)));
    let variants = [("tag", TAG_FILTER, "TAG", tag_expected), ("sql92", SQL_FILTER, "SQL92", sql_expected), ("none", "*", "TAG", m)];
    for round in 0..b.sizes.filter_rounds {
        for i in 0..variants.len() {
            let (variant, subscription, expression_type, expected) = variants[(i + round) % variants.len()];
            b.settle()?;
            eprintln!("[semantics] filter round {} {variant}: {expression_type} {subscription:?}", round + 1);
            let summary = consume::run_consume(&ConsumeArgs {
                consumer: b.reader(FILTER_TOPIC, b.args.queues, subscription, expression_type),
                catch_up: true,
                tail: false,
                duration_secs: b.args.wait_secs as f64,
                pid: Some(b.pid),
                json: Some(b.out.join("raw").join(format!("filter-r{}-{variant}.json", round + 1))),
            })?;
            let run = filter_run(round, variant, subscription, expression_type, expected, &summary);
            if run.matched != run.expected_matched || run.examined != m || run.gaps > 0 || !run.errors.is_empty() {
                results.failures.push(format!(
                    "filter round {} {variant}: matched {} (expected {}), examined {} of {m}, {} offsets went back, errors {:?}",
                    round + 1,
                    run.matched,
                    run.expected_matched,
                    run.examined,
                    run.gaps,
                    run.errors
                ));
            }
            results.filters.push(run);
        }
    }
    results.filter_figures = filter_figures(&results.filters);
    Ok(())
}

/// A filter read from its `consume` summary.
fn filter_run(round: usize, variant: &str, subscription: &str, expression_type: &str, expected: u64, summary: &serde_json::Value) -> FilterRun {
    let u = |k: &str| summary.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let duration_s = summary.get("duration_s").and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    let examined = u("backlog");
    let cpu = CpuReport::from_summary(summary);
    let per_examined = |cpu_s: Option<f64>| cpu_s.and_then(|s| ratio(s * 1e6, examined as f64));
    FilterRun {
        round,
        variant: variant.into(),
        subscription: subscription.into(),
        expression_type: expression_type.into(),
        examined,
        matched: u("messages"),
        expected_matched: expected,
        duration_s,
        examined_per_s: ratio(examined as f64, duration_s).unwrap_or(0.0),
        pulls: u("pulls"),
        broker_us_per_examined: per_examined(cpu.as_ref().and_then(|c| c.broker_cpu_s)),
        generator_us_per_examined: per_examined(cpu.as_ref().map(|c| c.generator_cpu_s)),
        cpu,
        codes: summary.get("codes").cloned().unwrap_or(serde_json::Value::Null),
        gaps: u("gaps"),
        errors: summary
            .get("errors")
            .and_then(serde_json::Value::as_array)
            .map(|e| e.iter().map(|v| v.as_str().unwrap_or_default().to_owned()).collect())
            .unwrap_or_default(),
    }
}

/// One timer point: N messages pending at once, then delivered when due.
#[derive(Debug, Clone, Serialize)]
pub struct TimerPoint {
    pub pending: u64,
    /// The parking sends (rate, broker CPU per parked message).
    pub park: OpPoint,
    /// Seconds from the first due time the sends finished before (negative: after it, so
    /// fewer than N were pending at once).
    pub sends_done_before_first_due_s: f64,
    /// Broker RSS (total, anonymous) before the sends and with all N pending, KiB.
    pub rss_before_kib: (u64, u64),
    pub rss_pending_kib: (u64, u64),
    /// The delivery: from the end of the sends until all N were visible.
    pub delivery: FollowUp,
    pub delivered: u64,
    /// Delivered records stored before their due time (must be 0).
    pub early: u64,
    /// Lateness (store timestamp − TIMER_OUT_MS) percentiles, ms: p50, p90, p99, p99.9, max.
    pub lateness_ms: Option<[u64; 5]>,
}

/// Every record of `topic`'s queues: (store timestamp, TIMER_OUT_MS) each, pulled from offset 0.
async fn timer_records(client: &Client, topic: &str, queues: Range<u32>) -> Result<Vec<(i64, Option<i64>)>, String> {
    let mut out = Vec::new();
    for q in queues {
        let mut offset = 0u64;
        loop {
            let request = broker::pull_request(READER_GROUP, topic, q, offset, 32, 0);
            let response = client.invoke(request, broker::REQUEST_TIMEOUT).await.map_err(|e| format!("pull {topic}:{q}@{offset}: {e}"))?;
            if response.code != response_code::SUCCESS {
                break;
            }
            let records = ferromq_store::record::decode_body_strict(&response.body).map_err(|(at, e)| format!("{topic}:{q}@{offset}: byte {at}: {e}"))?;
            if records.is_empty() {
                break;
            }
            for r in &records {
                out.push((r.store_timestamp_ms, r.properties().get("TIMER_OUT_MS").and_then(|v| v.parse().ok())));
            }
            offset += records.len() as u64;
        }
    }
    Ok(out)
}

/// The timer points (module item 4).
fn run_timer(b: &Bench, results: &mut SemanticsResults) -> Result<(), String> {
    let (lead_default, spread_default, pending_default) = if b.args.tiny { (2, 1, vec![300]) } else { (8, 10, vec![10_000, 100_000]) };
    let lead = Duration::from_secs(b.args.timer_lead_secs.unwrap_or(lead_default));
    let spread_ms = b.args.timer_spread_secs.unwrap_or(spread_default).max(1) * 1000;
    let pending_sizes = if b.args.timer_pending.is_empty() { pending_default } else { b.args.timer_pending.clone() };
    for n in pending_sizes.into_iter().filter(|n| *n > 0) {
        let topic = format!("SemTimer{n}");
        eprintln!("[semantics] timer: {n} pending, due over {spread_ms} ms from {lead:?} on");
        b.settle()?;
        let rss_before_kib = broker::rss_kib(b.pid)?;
        let first_due = Instant::now() + lead;
        let first_due_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64) + lead.as_millis() as u64;
        let due_of = |i: usize| first_due_ms + (i as u64 * spread_ms) / n;
        let park = b.send(
            ("timer", &format!("park {n}")),
            &topic,
            n,
            b.max_in_flight(),
            |i| (properties(&broker::uniq_key(), broker::BENCH_TAG, &[("TIMER_DELIVER_MS", &due_of(i).to_string())]), 0),
            |_, _| {},
        )?;
        let sends_done_before_first_due_s = first_due.saturating_duration_since(Instant::now()).as_secs_f64()
            - Instant::now().saturating_duration_since(first_due).as_secs_f64();
        let rss_pending_kib = broker::rss_kib(b.pid)?;
        let window = CpuWindow::start(Some(b.pid));
        let waited = Instant::now();
        let limit = lead + Duration::from_millis(spread_ms) + b.wait_limit();
        let queues = b.queues();
        let delivered = b.with_client(async |client| Ok(wait_visible(client, &topic, queues.clone(), 0, n, limit).await))?;
        let delivery = FollowUp { what: format!("{n} timer messages delivered when due"), wait_s: waited.elapsed().as_secs_f64(), cpu: window.finish(delivered) };
        let records = b.with_client(async |client| timer_records(client, &topic, queues.clone()).await)?;
        let mut early = 0u64;
        let mut lateness = hdrhistogram::Histogram::<u64>::new(3).map_err(|e| e.to_string())?;
        for (stored, due) in &records {
            match due {
                Some(due) if stored >= due => {
                    let _ = lateness.record((stored - due) as u64);
                }
                _ => early += 1,
            }
        }
        let lateness_ms = (!lateness.is_empty()).then(|| {
            [lateness.value_at_quantile(0.5), lateness.value_at_quantile(0.9), lateness.value_at_quantile(0.99), lateness.value_at_quantile(0.999), lateness.max()]
        });
        if delivered != n || records.len() as u64 != n {
            results.failures.push(format!("timer {n}: {delivered} visible, {} pulled, {n} sent", records.len()));
        }
        if early > 0 {
            results.failures.push(format!("timer {n}: {early} delivered before their due time (or without TIMER_OUT_MS)"));
        }
        note_checks(&park, &mut results.failures);
        eprintln!(
            "[semantics] timer {n}: lateness ms p50/p90/p99/p99.9/max {lateness_ms:?}; RSS {} -> {} KiB; delivery {}",
            rss_before_kib.0,
            rss_pending_kib.0,
            delivery.cpu.line()
        );
        results.timer.push(TimerPoint {
            pending: n,
            park,
            sends_done_before_first_due_s,
            rss_before_kib,
            rss_pending_kib,
            delivery,
            delivered,
            early,
            lateness_ms,
        });
    }
    Ok(())
}

/// Starts the broker: embedded name server, `enablePropertyFilter=true`, the store in `store`.
fn start_broker(args: &SemanticsArgs, mqbroker: &Path, store: &Path, out: &Path) -> Result<(Server, SocketAddr), String> {
    let port = suite::free_port()?;
    let mut settings = vec![
        format!("storePathRootDir={}", store.display()),
        format!("listenPort={port}"),
        format!("haListenPort={}", suite::free_port()?),
        format!("embeddedNamesrvPort={}", suite::free_port()?),
        "brokerIP1=127.0.0.1".to_owned(),
        format!("flushDiskType={}", if args.flush == "sync" { "SYNC_FLUSH" } else { "ASYNC_FLUSH" }),
        "enablePropertyFilter=true".to_owned(),
        format!("transactionTimeOut={TRANSACTION_TIMEOUT_MS}"),
    ];
    if let Some(shards) = args.shards {
        settings.push(format!("shards={shards}"));
    }
    settings.extend(args.broker_settings.iter().cloned());
    let argv: Vec<String> = settings.into_iter().flat_map(|kv| ["--set".to_owned(), kv]).collect();
    let server = Server::start(mqbroker, &argv, &args.backend, BROKER_READY, &out.join("logs").join("broker.log"))?;
    Ok((server, SocketAddr::from(([127, 0, 0, 1], port))))
}

/// Runs every measurement and writes the report; returns the results folder.
pub fn run(args: SemanticsArgs) -> Result<PathBuf, String> {
    let started_at = Instant::now();
    let started = suite::utc_timestamp(SystemTime::now());
    let out = suite::results_folder(args.out.as_deref(), "semantics", &started)?;
    let bin_dir = suite::bin_dir(args.bin_dir.as_deref())?;
    let mqbroker = bin_dir.join("mqbroker");
    if !mqbroker.exists() {
        return Err(format!("{} not found: build it first (cargo build --release --bins) or pass --bin-dir", mqbroker.display()));
    }
    let sizes = Sizes::of(&args);
    if args.in_flight.is_empty() || args.in_flight.contains(&0) || sizes.messages == 0 || sizes.filter_messages == 0 || args.queues == 0 {
        return Err("--in-flight, --messages, --filter-messages and --queues need positive values".into());
    }
    eprintln!("[semantics] results folder {}", out.display());
    let store_base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let disk_at_start = suite::disk_used_pct(&store_base);
    let load_at_start = suite::load_avg();
    eprintln!("[semantics] probes");
    let probes = probe::run_probes(args.dir.as_deref(), &if args.tiny { ProbeSizes::tiny() } else { ProbeSizes::quick() })?;
    probe::print_report(&probes, args.message_bytes);

    let mut results = SemanticsResults {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        started,
        finished: String::new(),
        settings: serde_json::Value::Null,
        backend_logged: None,
        disk_used_pct: (disk_at_start, None),
        load_avg: (load_at_start, None),
        probes,
        stores: Vec::new(),
        send_backs: Vec::new(),
        transactions: Vec::new(),
        check_back: None,
        filters: Vec::new(),
        filter_figures: FilterFigures::default(),
        timer: Vec::new(),
        failures: Vec::new(),
        log_problems: Vec::new(),
    };
    let scratch = ScratchDir::create(args.dir.as_deref(), "semantics")?;
    let (server, addr) = start_broker(&args, &mqbroker, &scratch.path().join("store"), &out)?;
    results.backend_logged = server.backend_logged().map(str::to_owned);
    let bench = Bench {
        args: &args,
        sizes,
        addr,
        pid: server.pid(),
        out: out.clone(),
        template: SendTemplate::new(PRODUCER_GROUP, ORIGIN_TOPIC, args.queues, args.message_bytes, 1),
    };
    type Phase = fn(&Bench, &mut SemanticsResults) -> Result<(), String>;
    let phases: [(&str, Phase); 4] =
        [("send-backs", run_send_backs), ("transactions", run_transactions), ("filters", run_filters), ("timer", run_timer)];
    for (name, phase) in phases {
        if let Err(e) = phase(&bench, &mut results) {
            results.failures.push(format!("{name}: {e}"));
        }
    }
    if let Err(e) = server.stop() {
        results.failures.push(format!("stopping the broker: {e}"));
    }
    drop(scratch);
    results.settings = serde_json::json!({
        "flush": args.flush, "backend": args.backend, "shards": args.shards, "in_flight": args.in_flight,
        "messages": sizes.messages, "message_bytes": args.message_bytes, "queues": args.queues,
        "retry_delay_level": args.retry_delay_level, "max_reconsume_times": MAX_RECONSUME_TIMES,
        "filter_messages": sizes.filter_messages, "filter_rounds": sizes.filter_rounds, "pull_batch": args.pull_batch,
        "tag_filter": TAG_FILTER, "sql_filter": SQL_FILTER, "wait_secs": args.wait_secs,
        "broker_settings": args.broker_settings, "tiny": args.tiny, "bin_dir": bin_dir,
        "cpu_source": "broker: its process CPU clock (clock_getcpuclockid), all threads incl. exited, embedded name server included; generator: CLOCK_PROCESS_CPUTIME_ID",
        "elapsed_s": started_at.elapsed().as_secs_f64(),
    });
    results.finished = suite::utc_timestamp(SystemTime::now());
    results.disk_used_pct.1 = suite::disk_used_pct(&store_base);
    results.load_avg.1 = suite::load_avg();
    results.log_problems = suite::scan_logs(&out.join("logs"));
    let json = serde_json::to_value(&results).map_err(|e| e.to_string())?;
    probe::write_json(&out.join("results.json"), &json)?;
    let report = markdown(&results);
    std::fs::write(out.join("report.md"), &report).map_err(|e| format!("cannot write {}: {e}", out.join("report.md").display()))?;
    eprintln!("[semantics] done in {:.0} s", started_at.elapsed().as_secs_f64());
    if !results.failures.is_empty() {
        eprintln!("[semantics] {} failures (report.md, \"Failures\"): {}", results.failures.len(), results.failures.join("; "));
    }
    println!("{report}");
    println!("{}", out.join("report.md").display());
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Report

/// `p50 / p99` µs of a point, or `—`.
fn latency(p: &OpPoint) -> String {
    match (p.p("p50"), p.p("p99")) {
        (Some(p50), Some(p99)) => format!("{p50:.0} / {p99:.0}"),
        _ => "—".to_owned(),
    }
}

/// `found / expected` of every check, `ok` or `**MISMATCH**`.
fn checks(p: &OpPoint) -> String {
    if p.checks.is_empty() {
        return "—".to_owned();
    }
    p.checks
        .iter()
        .map(|c| format!("{}: {} of {}{}", c.what, c.found, c.expected, if c.ok() { "" } else { " **MISMATCH**" }))
        .collect::<Vec<_>>()
        .join("; ")
}

fn point_rows(points: &[OpPoint], line: &mut impl FnMut(String)) {
    line("| step | variant | in flight | requests | per s | p50 / p99 µs | broker µs per op | generator µs per op | broker CPUs | others' CPUs | failed | checked |".into());
    line("|---|---|---|---|---|---|---|---|---|---|---|---|".into());
    for p in points {
        line(format!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {} | {} |",
            p.step,
            p.variant,
            p.in_flight.map_or("one-way".to_owned(), |k| k.to_string()),
            p.requests,
            p.per_s,
            latency(p),
            opt(p.broker_us(), 2),
            opt(p.cpu.generator_us_per_message, 2),
            opt(p.cpu.broker_cpus(), 2),
            opt(p.cpu.other_cpus(), 2),
            p.failures.values().sum::<u64>(),
            checks(p),
        ));
    }
}

fn follow_up_line(f: &FollowUp) -> String {
    format!(
        "{}: done {:.2} s after the window; broker CPU over the wait {} s = {} µs per message ({} messages; idle time included)",
        f.what,
        f.wait_s,
        opt(f.cpu.broker_cpu_s, 3),
        opt(f.cpu.broker_us_per_message, 2),
        f.cpu.messages
    )
}

/// `report.md`.
pub fn markdown(r: &SemanticsResults) -> String {
    let mut md = String::new();
    let mut line = |s: String| {
        md.push_str(&s);
        md.push('\n');
    };
    let s = &r.settings;
    let setting = |k: &str| s.get(k).map(|v| v.to_string().trim_matches('"').to_owned()).unwrap_or_default();
    line("# FerroMQ messaging-semantics benchmark (issue 15; recorded, not asserted)".into());
    line(String::new());
    line(format!("```\n{}\n```", r.command));
    line(String::new());
    line(format!(
        "{} → {}; flush {}, backend {}, shards {}, {} B messages, {} queues, {} requests per point at {} in flight; disk used {} → {} %; load average {} → {}.",
        r.started,
        r.finished,
        setting("flush"),
        setting("backend"),
        s.get("shards").filter(|v| !v.is_null()).map_or("(broker default)".to_owned(), |v| v.to_string()),
        setting("message_bytes"),
        setting("queues"),
        setting("messages"),
        setting("in_flight"),
        opt(r.disk_used_pct.0, 1),
        opt(r.disk_used_pct.1, 1),
        r.load_avg.0.map_or("—".into(), |l| format!("{:.2}", l[0])),
        r.load_avg.1.map_or("—".into(), |l| format!("{:.2}", l[0])),
    ));
    line(String::new());
    line("Broker CPU: its process CPU clock over the window (all threads; the embedded name server included) ÷ requests answered SUCCESS (one-way: messages found stored). Others' CPUs: busy CPUs of the machine that were neither the broker's nor the generator's.".into());
    line(String::new());
    for l in probe::markdown_section(&r.probes, setting("message_bytes").parse().unwrap_or(1024)) {
        line(l);
    }

    line("## Retry and dead-letter send-backs (CONSUMER_SEND_MSG_BACK)".into());
    line(String::new());
    line(format!(
        "One send-back per stored original, by its commit-log offset, `maxReconsumeTimes` {MAX_RECONSUME_TIMES}: `dlq` with delayLevel −1 (straight to `%DLQ%<group>`), `retry` with delayLevel {} (parked in {SCHEDULE_TOPIC}, delivered to `%RETRY%<group>` when due). A group per point.",
        setting("retry_delay_level")
    ));
    line(String::new());
    point_rows(&r.send_backs, &mut line);
    line(String::new());
    for p in &r.send_backs {
        if let Some(f) = &p.follow_up {
            line(format!("- {} {} in flight: {}", p.variant, p.in_flight.unwrap_or(0), follow_up_line(f)));
        }
        for note in &p.notes {
            line(format!("- {} {} in flight: {note}", p.variant, p.in_flight.unwrap_or(0)));
        }
    }
    line(String::new());

    line("## Transactions (half message, then END_TRANSACTION commit)".into());
    line(String::new());
    line("Half messages: SEND_MESSAGE_V2 with sysFlag 4 (prepared), `TRAN_MSG=true`, `PGROUP`. Commits: END_TRANSACTION with commitOrRollback 8 naming each half message's commit-log and queue offsets; two-way with K outstanding, and one-way as Java producers send them (no answer: the window ends when the last committed message is visible).".into());
    line(String::new());
    point_rows(&r.transactions, &mut line);
    line(String::new());
    for p in &r.transactions {
        for note in &p.notes {
            line(format!("- {} {}: {note}", p.step, p.variant));
        }
    }
    if let Some(f) = &r.check_back {
        line(format!("- {}", follow_up_line(f)));
    }
    line(String::new());

    line("## SQL92 vs tag filter: cost per examined record".into());
    line(String::new());
    line(format!(
        "The stream: {} messages over {} queues, tags t0…t4 in turn, properties `a` = i mod 10 and `b` ∈ x, y, z, w; each read from offset 0 to the end of every queue by catch-up pulls (maxMsgNums {}, one pull in flight per queue, one connection), the order rotated per round. TAG `{TAG_FILTER}` and SQL92 `{SQL_FILTER}` each match one in five; examined = every queue entry the pulls went through.",
        setting("filter_messages"),
        setting("queues"),
        setting("pull_batch")
    ));
    line(String::new());
    line("| filter | examined records/s | broker µs per examined record | broker µs per returned record | generator µs per examined | matched (expected) | pulls | rounds |".into());
    line("|---|---|---|---|---|---|---|---|".into());
    for (variant, label) in [("tag", format!("TAG `{TAG_FILTER}`")), ("sql92", format!("SQL92 `{SQL_FILTER}`")), ("none", "none (`*`)".to_owned())] {
        let runs: Vec<&FilterRun> = r.filters.iter().filter(|f| f.variant == variant).collect();
        if runs.is_empty() {
            continue;
        }
        let col = |g: &dyn Fn(&FilterRun) -> Option<f64>, d: usize| spread(&runs.iter().filter_map(|f| g(f)).collect::<Vec<_>>(), d);
        line(format!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} |",
            col(&|f| Some(f.examined_per_s), 0),
            col(&|f| f.broker_us_per_examined, 3),
            col(&|f| f.cpu.as_ref()?.broker_us_per_message, 3),
            col(&|f| f.generator_us_per_examined, 3),
            runs.iter().map(|f| format!("{} ({})", f.matched, f.expected_matched)).collect::<Vec<_>>().join(", "),
            col(&|f| Some(f.pulls as f64), 0),
            runs.len()
        ));
    }
    line(String::new());
    let f = &r.filter_figures;
    let median = |v: &[f64]| Spread::of(v.to_vec()).map_or("—".to_owned(), |s| format!("{:.2}", s.median));
    let per_round = |v: &[f64]| v.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(", ");
    line("| ratio (paired per round) | median | per round |".into());
    line("|---|---|---|".into());
    line(format!("| **SQL92 ÷ TAG, broker CPU per examined record** | **{}** | {} |", median(&f.sql_vs_tag_cpu), per_round(&f.sql_vs_tag_cpu)));
    line(format!("| SQL92 ÷ no filter, the same | {} | {} |", median(&f.sql_vs_none_cpu), per_round(&f.sql_vs_none_cpu)));
    line(format!("| TAG ÷ no filter, the same | {} | {} |", median(&f.tag_vs_none_cpu), per_round(&f.tag_vs_none_cpu)));
    line(format!("| SQL92 ÷ TAG, records examined per second | {} | {} |", median(&f.sql_vs_tag_rate), per_round(&f.sql_vs_tag_rate)));
    line(String::new());

    line("## Timer delivery lateness".into());
    line(String::new());
    if r.timer.is_empty() {
        line("Not measured in this run.".into());
    } else {
        line("Lateness = the delivered record's store timestamp − its `TIMER_OUT_MS` (whole ms of the broker's clock). \
              RSS before the sends and with every message pending. Broker CPU per parked message over the sends, per delivered \
              message over the delivery wait (which includes waiting for the due times)."
            .into());
        line(String::new());
        line("| pending | parked/s | broker µs per parked | sends done before first due (s) | RSS before → pending (KiB) | delivered | early | lateness ms p50 / p90 / p99 / p99.9 / max | broker µs per delivered |".into());
        line("|---|---|---|---|---|---|---|---|---|".into());
        for t in &r.timer {
            let lateness = t.lateness_ms.map_or("—".to_owned(), |l| format!("{} / {} / {} / {} / {}", l[0], l[1], l[2], l[3], l[4]));
            line(format!(
                "| {} | {:.0} | {} | {:.1} | {} → {} | {} | {} | {lateness} | {} |",
                t.pending,
                t.park.per_s,
                opt(t.park.broker_us(), 1),
                t.sends_done_before_first_due_s,
                t.rss_before_kib.0,
                t.rss_pending_kib.0,
                t.delivered,
                t.early,
                opt(t.delivery.cpu.broker_us_per_message, 1),
            ));
        }
    }
    line(String::new());

    line("## Setup sends".into());
    line(String::new());
    point_rows(&r.stores, &mut line);
    line(String::new());

    line("## Failures".into());
    line(String::new());
    if r.failures.is_empty() {
        line("None: every request was answered SUCCESS and every count checked matched.".into());
    }
    for failure in &r.failures {
        line(format!("- {failure}"));
    }
    line(String::new());
    for l in suite::log_problems_markdown("ERROR and WARN lines in the broker's log", &r.log_problems) {
        line(l);
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_stream_matches_one_in_five_with_either_filter() {
        let n = 4_000u64;
        let (tag, sql) = (0..n).map(filter_matches).fold((0, 0), |(t, s), (a, b)| (t + u64::from(a), s + u64::from(b)));
        assert_eq!((tag, sql), (n / 5, n / 5));
        // The two filters pick different messages: neither is a stand-in for the other.
        assert!((0..n).map(filter_matches).any(|(t, s)| t != s));
        assert_eq!(filter_fields(0), ("t0".to_owned(), "0".to_owned(), "x"));
        assert_eq!(filter_fields(17), ("t2".to_owned(), "7".to_owned(), "y"));
        assert_eq!(filter_matches(16), (false, true));
    }

    #[test]
    fn properties_are_encoded_as_a_java_producer_sends_them() {
        let p = properties("K", "t1", &[("a", "7"), ("PGROUP", "g")]);
        assert_eq!(p, "UNIQ_KEY\u{1}K\u{2}WAIT\u{1}true\u{2}TAGS\u{1}t1\u{2}a\u{1}7\u{2}PGROUP\u{1}g\u{2}");
    }

    #[test]
    fn requests_carry_the_headers_the_broker_reads() {
        let back = send_back_request(4096, "g", -1, "ID");
        assert_eq!(back.code, request_code::CONSUMER_SEND_MSG_BACK);
        assert_eq!((back.ext("offset"), back.ext("group"), back.ext("delayLevel"), back.ext("maxReconsumeTimes")), (Some("4096"), Some("g"), Some("-1"), Some("16")));
        let half = Half { commit_log_offset: 77, queue_offset: "3".into(), transaction_id: "T".into() };
        let end = commit_request(&half, "Tx");
        assert_eq!(end.code, request_code::END_TRANSACTION);
        assert_eq!(
            (end.ext("producerGroup"), end.ext("tranStateTableOffset"), end.ext("commitLogOffset"), end.ext("commitOrRollback"), end.ext("msgId")),
            (Some(PRODUCER_GROUP), Some("3"), Some("77"), Some("8"), Some("T"))
        );
        let sent = SendTemplate::new(PRODUCER_GROUP, "Tx", 4, 16, 1).request_with("Tx", 2, properties("U", "t", &[("TRAN_MSG", "true")]), SYS_FLAG_PREPARED);
        assert_eq!((sent.ext("b"), sent.ext("e"), sent.ext("f"), sent.body.len()), (Some("Tx"), Some("2"), Some("4"), 16));
        assert!(sent.ext("i").unwrap().contains("TRAN_MSG\u{1}true"));
    }

    fn run(round: usize, variant: &str, us: f64, rate: f64) -> FilterRun {
        FilterRun {
            round,
            variant: variant.into(),
            subscription: String::new(),
            expression_type: String::new(),
            examined: 100,
            matched: 20,
            expected_matched: 20,
            duration_s: 1.0,
            examined_per_s: rate,
            pulls: 4,
            broker_us_per_examined: Some(us),
            generator_us_per_examined: None,
            cpu: None,
            codes: serde_json::Value::Null,
            gaps: 0,
            errors: Vec::new(),
        }
    }

    #[test]
    fn filter_ratios_pair_each_round() {
        let runs = vec![
            run(0, "tag", 0.5, 400.0),
            run(0, "sql92", 2.0, 100.0),
            run(0, "none", 0.25, 800.0),
            // Round 2 lacks its TAG read: no ratio for it.
            run(1, "sql92", 3.0, 90.0),
            run(1, "none", 0.3, 700.0),
        ];
        let f = filter_figures(&runs);
        assert_eq!(f.rounds, [0]);
        assert_eq!((f.sql_vs_tag_cpu[0], f.sql_vs_none_cpu[0], f.tag_vs_none_cpu[0], f.sql_vs_tag_rate[0]), (4.0, 8.0, 2.0, 0.25));
    }
}
