//! The broker's one configuration schema (DESIGN.md, "Configuration"; PROTOCOL.md §11).
//!
//! [`BrokerConfig`] is owned by the control plane and handed (cloned) to the shards at start.
//! It is read from either of two formats that describe the same fields:
//!
//! * **RocketMQ `broker.properties`** (`mqbroker -c conf/2m-2s-async/broker-a.properties`):
//!   the Java keys as they are (`brokerClusterName`, `flushDiskType`, …), so existing files
//!   move over unchanged. FerroMQ's own settings have camelCase keys of their own (`shards`,
//!   `io.backend`, `maxFrameBytes`, …).
//! * **TOML**, the native format: one `[section]` per nested struct (`[broker]`, `[namesrv]`,
//!   `[topics]`, `[consumer]`, `[transaction]`, `[store]`, `[retention]`, `[flush]`, `[ha]`,
//!   `[io]`, `[limits]`), keys named after the fields, with units in the names
//!   (`sync_flush_timeout_ms`, `segment_size_bytes`). The profiles in `tuning/` are examples.
//!
//! Both formats go through one table of keys ([`KEYS`]): each entry names the Java key, the
//! TOML section and key, and one parser that checks the value's type and bounds. Files, the
//! CLI's overrides ([`BrokerConfig::apply_override`]) and [`BrokerConfig::validate`] all use
//! that parser, so a bound is written once.
//!
//! Rules:
//! * Unknown keys are logged (`warn`, naming the key) and returned to the caller, never fatal:
//!   Java files carry many keys FerroMQ does not need.
//! * A key the broker accepts does something. Every [`KEYS`] entry is read by broker code, or
//!   listed with its reason: [`KEYS_WITHOUT_EFFECT`], or — logged at `warn` as "not applied
//!   yet" when set to anything but its default — [`AWAITING_WIRING`] / [`AWAITING_FEATURE`].
//!   The test `every_key_is_read_or_listed` checks this against the sources.
//! * Java keys outside the schema that cannot change what a client or operator observes
//!   (thread-pool sizes, Netty tuning, mmap internals) are logged at `info` as having no effect,
//!   each with its reason ([`NO_EFFECT_KEYS`]). Java keys that ask for something FerroMQ does
//!   not do (`aclEnable=true`, `inSyncReplicas=2`, …) are accepted only with the value that
//!   matches what FerroMQ does ([`FIXED_VALUE_KEYS`]), so a broker never starts without
//!   something its file asks for.
//! * A known key with a value that cannot be used is an error naming the key, the value and
//!   what was expected. FerroMQ is stricter than Java here: Java silently skips a number it
//!   cannot parse and reads any boolean other than `true` as `false`.
//! * Values are trimmed (Java trims strings but not numbers, so `listenPort=10911 ` is silently
//!   ignored by Java and accepted by FerroMQ). Java's enum values (`flushDiskType`,
//!   `brokerRole`) must be spelled as Java spells them, in upper case (`SYNC_FLUSH`): Java's
//!   `valueOf` refuses `sync_flush`, and so does FerroMQ, naming the key and the value.
//! * Loading does not check relations between keys; call [`BrokerConfig::validate`] once the
//!   file, [`BrokerConfig::apply_override`] and [`BrokerConfig::resolve_namesrv_addr`] have
//!   been applied.
//!
//! Store layout: FerroMQ runs one commit log per shard (DESIGN.md, "Threads and ownership").
//! Shard `n` keeps its whole store (commit log, consume queues, index, checkpoint) under
//! `<storePathRootDir>/shard-<n>/`, its commit log in `<storePathRootDir>/shard-<n>/commitlog`;
//! see [`BrokerConfig::store_config`]. `storePathCommitLog` is therefore accepted only with its
//! Java default, `<storePathRootDir>/commitlog` (as in the shipped example files).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ferromq_net::backend::IoBackend;
use ferromq_net::codec::WireLimits;
use ferromq_net::conn::ConnLimits;
use ferromq_net::server::ServerLimits;
use ferromq_net::tls::{ClientAuth, ClientTlsFiles, ServerTlsFiles, TlsAcceptor, TlsConnector, TlsMode};
use ferromq_store::{FlushMode, ShardId, StoreConfig};

/// Java's default main remoting port.
pub const DEFAULT_LISTEN_PORT: u16 = 10911;
/// Where the embedded name server listens when no name server is configured (and so the
/// address every RocketMQ client tries by default).
pub const DEFAULT_EMBEDDED_NAMESRV_PORT: u16 = 9876;
/// The page size `flushCommitLogLeastPages` counts in (Java's `OS_PAGE_SIZE`).
pub const OS_PAGE_BYTES: u64 = 4096;
/// Bytes of a frame kept for the length words and the header (topic, properties, extFields)
/// on top of the largest message body: `maxMessageSize + FRAME_HEADROOM_BYTES` must fit in
/// `max_frame_bytes`, so that a maximal message is refused with MESSAGE_ILLEGAL rather than by
/// closing its connection.
pub const FRAME_HEADROOM_BYTES: usize = 64 * 1024;
/// Bounds Java applies to `registerNameServerPeriod` (it clamps; so does FerroMQ).
pub const REGISTER_PERIOD_MIN_MS: u64 = 10_000;
/// See [`REGISTER_PERIOD_MIN_MS`].
pub const REGISTER_PERIOD_MAX_MS: u64 = 60_000;
/// Bytes of one consume-queue entry (`mappedFileSizeConsumeQueue` is rounded up to a multiple).
pub const CQ_UNIT_BYTES: u64 = 20;
/// Java's default `msgTraceTopicName`.
pub const DEFAULT_TRACE_TOPIC_NAME: &str = "RMQ_SYS_TRACE_TOPIC";

/// Java's default `messageDelayLevel` (§9.3).
pub const DEFAULT_MESSAGE_DELAY_LEVEL: &str = "1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h";
/// Java's `brokerName` when the host name cannot be read.
pub const DEFAULT_BROKER_NAME: &str = "DEFAULT_BROKER";
/// Largest `maxOpenConsumeQueueFiles` (and automatic value): 2^24 descriptors.
pub const MAX_OPEN_CQ_FILES: usize = 1 << 24;
/// Fewest consume-queue descriptors a shard keeps open, whatever the limit says: a pull and
/// the dispatcher each need one at a time, and a few more spare reopening on every entry.
pub const MIN_OPEN_CQ_FILES_PER_SHARD: usize = 16;

/// How many times `maxPendingFlushBytes` of the log may wait for dispatch to consume queues
/// before sends get SYSTEM_BUSY (the dispatcher holds those records in memory), and the least
/// it may be: 256 MiB with the defaults.
pub const DISPATCH_BEHIND_PER_PENDING: u64 = 4;
pub const MIN_DISPATCH_BEHIND_BYTES: u64 = 64 << 20;

/// Most shards a broker can run: the shard id is 8 bits of a client-visible physical offset.
pub const MAX_SHARDS: u32 = ferromq_store::types::MAX_SHARDS;

// ------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------

/// Why a configuration cannot be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The properties file is malformed (bad escape, bad continuation).
    #[error("{origin}: {source}")]
    Properties { origin: String, source: java_properties::PropertiesError },
    /// The TOML file is malformed.
    #[error("{origin}: invalid TOML: {source}")]
    Toml { origin: String, source: toml::de::Error },
    /// A known key with a value that cannot be used.
    #[error("invalid value for {key}: {value:?} (expected {expected})")]
    Invalid { key: String, value: String, expected: String },
    /// A key given to [`BrokerConfig::apply_override`] that FerroMQ does not know.
    #[error("unknown configuration key {key:?}")]
    UnknownKey { key: String },
    /// Values that are fine one by one but not together.
    #[error("inconsistent configuration: {0}")]
    Conflict(String),
}

fn invalid(key: &str, value: &str, expected: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), value: value.to_owned(), expected: expected.into() }
}

// ------------------------------------------------------------------------------------------
// Enumerations
// ------------------------------------------------------------------------------------------

/// `flushDiskType`: when an append is acknowledged to the producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlushDiskType {
    /// `ASYNC_FLUSH` (default): acknowledged once written to the file (page cache); the log is
    /// fdatasync'ed every `flushIntervalCommitLog` while anything is dirty (and, with
    /// `flushCommitLogTimed=false`, as soon as `flushCommitLogLeastPages` are dirty).
    /// A machine crash (not a process crash) can lose the last interval's acknowledged writes.
    #[default]
    AsyncFlush,
    /// `SYNC_FLUSH`: acknowledged once an fdatasync covering the message completed (group
    /// commit: one write + fdatasync in flight per shard's log, every waiting producer released
    /// together). Durable across power loss; latency and throughput track the disk's fdatasync.
    SyncFlush,
}

impl FlushDiskType {
    /// The Java spelling.
    pub fn as_java_str(self) -> &'static str {
        match self {
            FlushDiskType::AsyncFlush => "ASYNC_FLUSH",
            FlushDiskType::SyncFlush => "SYNC_FLUSH",
        }
    }
}

/// The Java spellings only, in upper case (surrounding blanks allowed): Java's
/// `FlushDiskType.valueOf` refuses `sync_flush`, so a file FerroMQ accepts also starts a Java
/// broker.
impl FromStr for FlushDiskType {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "ASYNC_FLUSH" => Ok(FlushDiskType::AsyncFlush),
            "SYNC_FLUSH" => Ok(FlushDiskType::SyncFlush),
            _ => Err("ASYNC_FLUSH or SYNC_FLUSH, in upper case as Java spells them".to_owned()),
        }
    }
}

impl fmt::Display for FlushDiskType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_java_str())
    }
}

impl From<FlushDiskType> for FlushMode {
    fn from(kind: FlushDiskType) -> FlushMode {
        match kind {
            FlushDiskType::AsyncFlush => FlushMode::Async,
            FlushDiskType::SyncFlush => FlushMode::Sync,
        }
    }
}

/// `brokerRole` (§7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BrokerRole {
    /// `ASYNC_MASTER` (default): a send is acknowledged without waiting for a slave.
    #[default]
    AsyncMaster,
    /// `SYNC_MASTER`: a send that waits (WAIT ≠ false) is acknowledged once a slave reported
    /// it stored (FLUSH_SLAVE_TIMEOUT after `slaveTimeout`; SLAVE_NOT_AVAILABLE at once without
    /// an in-sync slave, as Java 4.x does).
    SyncMaster,
    /// `SLAVE`: copies a master's metadata (topics, groups, offsets; `control/slave_sync.rs`)
    /// and — once `repl/` exists — its commit log; serves reads, refuses writes (§7.5).
    Slave,
}

impl BrokerRole {
    /// The Java spelling.
    pub fn as_java_str(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }

    /// Whether this role accepts writes.
    pub fn is_master(self) -> bool {
        !matches!(self, BrokerRole::Slave)
    }
}

/// The Java spellings only, in upper case (surrounding blanks allowed), as Java's
/// `BrokerRole.valueOf`.
impl FromStr for BrokerRole {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "ASYNC_MASTER" => Ok(BrokerRole::AsyncMaster),
            "SYNC_MASTER" => Ok(BrokerRole::SyncMaster),
            "SLAVE" => Ok(BrokerRole::Slave),
            _ => Err("ASYNC_MASTER, SYNC_MASTER or SLAVE, in upper case as Java spells them".to_owned()),
        }
    }
}

impl fmt::Display for BrokerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_java_str())
    }
}

// ------------------------------------------------------------------------------------------
// The schema
// ------------------------------------------------------------------------------------------

/// The whole broker configuration. Sections are the TOML tables of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// `[broker]`: identity, role and network addresses.
    pub broker: BrokerSection,
    /// `[namesrv]`: name servers and registration.
    pub namesrv: NamesrvSection,
    /// `[topics]`: topic and subscription-group creation.
    pub topics: TopicsSection,
    /// `[consumer]`: pull holding, client channels, consumer offsets.
    pub consumer: ConsumerSection,
    /// `[transaction]`: transactional messages (§10).
    pub transaction: TransactionSection,
    /// `[timer]`: 5.x timer messages (arbitrary delays, §9.3).
    pub timer: TimerSection,
    /// `[store]`: directories, file sizes, message and pull limits, index.
    pub store: StoreSection,
    /// `[retention]`: when commit-log segments are deleted.
    pub retention: RetentionSection,
    /// `[flush]`: durability (flush type, intervals, group-commit batching).
    pub flush: FlushSection,
    /// `[ha]`: master–slave replication (§7).
    pub ha: HaSection,
    /// `[io]`: I/O backend and shard count.
    pub io: IoSection,
    /// `[limits]`: bounds on frames, connections, queues and in-flight work.
    pub limits: LimitsSection,
    /// `[metrics]`: the Prometheus endpoint (RocketMQ 5's `metrics*` keys).
    pub metrics: MetricsSection,
    /// `[acl]`: RocketMQ 4.x plain ACL (signed requests, `plain_acl.yml`).
    pub acl: AclSection,
    /// `[tls]`: TLS on the listeners and on the broker's own connections (RocketMQ's `tls.*`).
    pub tls: TlsSection,
}

/// `[broker]`: identity, role and addresses (§11.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSection {
    /// `brokerClusterName` / `cluster_name`. Cluster this broker group belongs to. Default
    /// `DefaultCluster`; must not be empty. Clients and `mqadmin` address clusters by it.
    pub cluster_name: String,
    /// `brokerName` / `name`. Name of the broker group (a master and its slaves share it).
    /// Default: the host name (as Java), `DEFAULT_BROKER` if it cannot be read; an empty value
    /// in a file means that default. Set it explicitly in production: a host rename would
    /// otherwise make the broker a new, empty group in every route.
    pub name: String,
    /// `brokerId` / `id`. 0 for a master, 1 and above for a slave. Default 0; bounds
    /// 0..=9223372036854775807 (a Java long); [`BrokerConfig::validate`] requires 0 for
    /// master roles (Java forces it silently) and ≥ 1 for `SLAVE` (as Java does).
    pub id: u64,
    /// `brokerRole` / `role`. `ASYNC_MASTER` (default), `SYNC_MASTER` or `SLAVE`. Trade-off:
    /// SYNC_MASTER adds a slave round trip to each send for surviving the loss of the master's
    /// disk.
    pub role: BrokerRole,
    /// `brokerPermission` / `permission`. Broker-wide permission mask sent with registration:
    /// 4 read, 2 write, 1 inherit, 8 priority. Default 6 (read + write); bounds 0..=15.
    /// Set 4 to drain a broker (clients stop sending to it, consumers still read it).
    pub permission: u32,
    /// `listenPort` / `listen_port`. Main remoting port. Default 10911; bounds 1..=65535. The
    /// HA port defaults to this + 1, the fast port is this − 2.
    pub listen_port: u16,
    /// `fastListenPortEnable` / `fast_listen_port_enable` (FerroMQ). Whether the broker also
    /// serves the whole protocol on Java's "VIP channel", `listenPort − 2` (PROTOCOL.md §0),
    /// which Java clients up to 4.4.0 use for sends by default
    /// (`sendMessageWithVIPChannel=true`). Default true, as Java (which has no switch: it
    /// always opens it). Turn it off only where every client is 4.5.1 or later, or sets
    /// `sendMessageWithVIPChannel=false`; older clients then fail to send.
    pub fast_listen_port_enable: bool,
    /// `bindAddress` / `bind_address`. Local address the listeners bind. Default `0.0.0.0`
    /// (all interfaces); any IPv4 or IPv6 address.
    pub bind_address: IpAddr,
    /// `brokerIP1` / `ip1`. Address advertised to the name server and written as STOREHOST
    /// into every record (§5.1). Default (`None`, empty in files): see
    /// [`BrokerConfig::advertised_ip`] — 127.0.0.1 with the embedded name server, else the
    /// first non-loopback IPv4 of the host. Set it on multi-homed hosts: the guess can pick
    /// an interface clients cannot reach.
    pub ip1: Option<IpAddr>,
    /// `brokerIP2` / `ip2`. Address advertised for HA (`haServerAddr`,
    /// [`BrokerConfig::ha_server_addr`]). Default (`None`, empty in files): the advertised
    /// `brokerIP1`.
    pub ip2: Option<IpAddr>,
    /// `regionId` / `region_id`. Sent as `MSG_REGION` in send responses and stored as the
    /// `MSG_REGION` property of each message, for clients' message traces. Default
    /// `DefaultRegion`; informational.
    pub region_id: String,
    /// `traceOn` / `trace_on`. Sent as `TRACE_ON` in send responses and stored as the
    /// `TRACE_ON` property of each message; clients skip message tracing when false. Default
    /// true.
    pub trace_on: bool,
    /// `configBlackList` / `config_black_list`. Keys UPDATE_BROKER_CONFIG may never change,
    /// `;`-separated; `brokerConfigPath`, `rocketmqHome` and `configBlackList` always are (as in
    /// Java's `AdminBrokerProcessor`). Default `configBlackList;brokerConfigPath`. FerroMQ
    /// changes only a few keys at runtime (`control::runtime_config::RUNTIME_KEYS`); listing one
    /// of those here forbids changing it remotely.
    pub config_black_list: String,
}

/// `[namesrv]`: name servers and registration (§8.1, §11.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamesrvSection {
    /// `namesrvAddr` / `addr`. Name servers, `host:port` entries separated by `;` in files.
    /// Default: none (empty). When none is configured, the `NAMESRV_ADDR` environment variable
    /// is consulted ([`BrokerConfig::resolve_namesrv_addr`]); when it is still empty the broker
    /// runs an embedded name server on `127.0.0.1:<embedded_port>` and registers there.
    pub addr: Vec<String>,
    /// `registerNameServerPeriod` / `register_period_ms`. Milliseconds between full
    /// registrations with every name server. Default 30 000; clamped to 10 000..=60 000 as
    /// Java does. The name server drops a broker after 120 s without one, so lower periods
    /// only speed up route refresh after a missed registration, at the cost of more traffic.
    pub register_period_ms: u64,
    /// `registerBrokerTimeoutMills` / `register_timeout_ms`. Milliseconds one registration call
    /// waits for a name server's answer ([`BrokerConfig::register_timeout`]). Default 24 000
    /// (4.x used 6000); bounds 100..=300 000.
    pub register_timeout_ms: u64,
    /// `forceRegister` / `force_register`. Register the full topic table each period even if
    /// unchanged. False: ask each name server QUERY_DATA_VERSION first (which also refreshes
    /// the broker's liveness there) and register only where its copy is stale. Default true.
    /// Rounds after a topic change always register in full.
    pub force_register: bool,
    /// `compressedRegister` / `compressed_register`. zlib-compress REGISTER_BROKER bodies.
    /// Default false. Turn on beyond ~100 000 topics, where an uncompressed body exceeds the
    /// name server's 16 MiB frame.
    pub compressed_register: bool,
    /// `embeddedNamesrvPort` / `embedded_port` (FerroMQ). Port of the embedded name server on
    /// 127.0.0.1, used only when no name server is configured. Default 9876 (what clients try
    /// by default); bounds 1..=65535; must differ from the broker's own ports.
    pub embedded_port: u16,
}

/// `[topics]`: topic and subscription-group creation (§11.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicsSection {
    /// `autoCreateTopicEnable` / `auto_create_topic_enable`. Keep `TBW102` (perm 7) so
    /// producers create topics by sending to them. Default true (as Java). Trade-off: handy
    /// in development; in production a typo creates a topic, so many turn it off and create
    /// topics with `mqadmin updateTopic`.
    pub auto_create_topic_enable: bool,
    /// `defaultTopicQueueNums` / `default_topic_queue_nums`. Queue count of `TBW102`, the
    /// upper bound for auto-created topics (producers ask for min(this, their own, 4 by
    /// default)). Default 8; bounds 1..=1024. More queues: more consumer parallelism, more
    /// consume-queue files.
    pub default_topic_queue_nums: u32,
    /// `autoCreateSubscriptionGroup` / `auto_create_subscription_group`. Create consumer groups
    /// on first use. Default true.
    pub auto_create_subscription_group: bool,
    /// `clusterTopicEnable` / `cluster_topic_enable`. Register a topic named after the cluster.
    /// Default true.
    pub cluster_topic_enable: bool,
    /// `brokerTopicEnable` / `broker_topic_enable`. Register a topic named after the broker.
    /// Default true.
    pub broker_topic_enable: bool,
    /// `maxAutoCreatedTopics` / `max_auto_created_topics`. Topics the broker creates on its own
    /// (a send through `TBW102` or the request's `defaultTopic`, the `%RETRY%` topic of a group
    /// a heartbeat or send-back creates) are refused once the topic table holds this many
    /// topics besides the broker's own system topics — whoever created them, loaded from
    /// `topics.json` included. Topics an admin creates (UPDATE_AND_CREATE_TOPIC) are never
    /// refused, and neither are the retry and DLQ topics of a group that already exists
    /// (bounded by the group count). A refused send is answered TOPIC_NOT_EXIST (17) naming this
    /// key. Default 20 000; bounds 0..=10 000 000. Bounds `topics.json` (~160 bytes a topic)
    /// and the registration body against clients that send to endless new names.
    pub max_auto_created_topics: usize,
    /// `maxAutoCreatedSubscriptionGroups` / `max_auto_created_subscription_groups`. With
    /// `autoCreateSubscriptionGroup`, a group is created on first use (heartbeat, send-back)
    /// only while the group table holds fewer than this many groups besides the ones the
    /// broker pre-creates — whoever created them, loaded from `subscriptionGroup.json`
    /// included. Beyond it the group is not created (WARN, at most one line per 10 s) and its
    /// pulls and send-backs get SUBSCRIPTION_GROUP_NOT_EXIST (26), as with auto-creation off;
    /// UPDATE_AND_CREATE_SUBSCRIPTIONGROUP is never refused. Default 10 000; bounds
    /// 0..=10 000 000. Each group costs ~350 bytes of `subscriptionGroup.json` plus its retry
    /// topic.
    pub max_auto_created_subscription_groups: usize,
    /// `traceTopicEnable` / `trace_topic_enable`. Create the message-trace topic
    /// (`trace_topic_name`, 1 queue) at start and register it, for clients with message trace
    /// on. Default false (as Java); with auto-create on, the first trace send creates it anyway.
    pub trace_topic_enable: bool,
    /// `msgTraceTopicName` / `trace_topic_name`. The message-trace topic. Default
    /// `RMQ_SYS_TRACE_TOPIC`; a valid topic name.
    pub trace_topic_name: String,
}

/// `[consumer]`: pull holding, client channels and consumer offsets (§2.2, §11.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSection {
    /// `longPollingEnable` / `long_polling_enable`. Hold a pull that finds nothing until a
    /// message arrives or the client's `suspendTimeoutMillis` passes. Default true. Off: pulls
    /// are held `short_polling_time_ms` and then answered empty (more requests, more latency).
    pub long_polling_enable: bool,
    /// `shortPollingTimeMills` / `short_polling_time_ms`. Milliseconds an empty pull is held
    /// when long polling is off. Default 1000; bounds 1..=60 000.
    pub short_polling_time_ms: u64,
    /// `notifyConsumerIdsChangedEnable` / `notify_consumer_ids_changed_enable`. Push code 40
    /// to a group's consumers when its membership changes, so they rebalance at once (else
    /// within their 20 s rebalance period). Default true.
    pub notify_consumer_ids_changed_enable: bool,
    /// `slaveReadEnable` / `slave_read_enable`. Let pull answers steer consumers to a slave
    /// (§7.6): on, a pull answer suggests the group's `whichBrokerWhenConsumeSlowly` (by
    /// default broker 1) when the consumer reads further behind the log head than
    /// `accessMessageInMemoryMaxRatio` of memory, else the group's `brokerId` (by default 0);
    /// off, always 0 (the master). A slave answers 0 whenever its master is online, whatever
    /// this says. Default false.
    pub slave_read_enable: bool,
    /// `accessMessageInMemoryMaxRatio` / `access_message_in_memory_max_ratio_pct`. With
    /// `slaveReadEnable`, a consumer reading more than this share (%) of the machine's memory
    /// behind the log head is suggested its group's `whichBrokerWhenConsumeSlowly` (its data is
    /// likely no longer in the page cache, so a slave serves it without evicting the master's
    /// hot data). Each shard has a log of its own: the share is divided by the shard count.
    /// Default 40; bounds 0..=100.
    pub access_message_in_memory_max_ratio_pct: u32,
    /// `channelExpiredTimeout` / `channel_expired_timeout_ms`. Milliseconds without a
    /// heartbeat after which a client's producer and consumer registrations are dropped.
    /// Default 120 000; bounds 1000..=3 600 000. Clients heartbeat every 30 s; lower values
    /// drop slow clients sooner and risk needless rebalances.
    pub channel_expired_timeout_ms: u64,
    /// `flushConsumerOffsetInterval` / `flush_consumer_offset_interval_ms`. Milliseconds
    /// between persists of committed consumer offsets (`consumerOffset.json`). Default 5000;
    /// bounds 100..=3 600 000. A crash re-delivers up to this much consumption.
    pub flush_consumer_offset_interval_ms: u64,
    /// `enablePropertyFilter` / `enable_property_filter`. Serve SQL92 subscriptions
    /// (`selector.rs`): each candidate record's properties are read on pull. Default false (as
    /// Java): SQL92 subscriptions are refused with SYSTEM_ERROR. TAG subscriptions are matched
    /// in the consume queue either way.
    pub enable_property_filter: bool,
}

/// `[transaction]`: transactional messages (§10): half messages, END_TRANSACTION and the
/// check-back task (`shard/transaction.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionSection {
    /// `rejectTransactionMessage` / `reject_transaction_message`. Refuse half messages
    /// (`TRAN_MSG=true`) with NO_PERMISSION. Default false.
    pub reject_transaction_message: bool,
    /// `transactionTimeOut` / `timeout_ms`. Milliseconds after which an unresolved half
    /// message is first checked back with its producer. Default 6000; bounds 1..=86 400 000.
    pub timeout_ms: u64,
    /// `transactionCheckMax` / `check_max`. Check-backs before a half message is discarded.
    /// Default 15; bounds 1..=1000.
    pub check_max: u32,
    /// `transactionCheckInterval` / `check_interval_ms`. Milliseconds between check passes.
    /// Default 30 000 (5.x; 4.x used 60 000); bounds 1000..=86 400 000.
    pub check_interval_ms: u64,
}

/// `[timer]`: 5.x timer messages (`TIMER_DELIVER_MS`, `TIMER_DELAY_SEC`, `TIMER_DELAY_MS`),
/// held in `rmq_sys_wheel_timer` and delivered by the timer index (`ferromq_store::timer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerSection {
    /// `timerWheelEnable` / `wheel_enable`. Serve timer messages. Default true; off, a send
    /// carrying a timer property (and no delay level) is refused with SYSTEM_ERROR.
    pub wheel_enable: bool,
    /// `timerMaxDelaySec` / `max_delay_secs`. Longest delay a timer message may ask for, in
    /// seconds; longer ones are refused with MESSAGE_ILLEGAL. Default 259 200 (3 days); bounds
    /// 1..=31 536 000.
    pub max_delay_secs: u64,
    /// `timerPrecisionMs` / `precision_ms`. Width of a timer-wheel slot in ms. Each message is
    /// still delivered at its own due time (Java rounds it down to the slot); the width bounds
    /// the lateness of a slot holding more than `max_loaded_entries` messages and sizes the
    /// wheel (2 h / width slots of 32 bytes). Default 100 (Java: 1000); bounds 10..=10 000.
    pub precision_ms: u64,
    /// `timerMaxLoadedEntries` / `max_loaded_entries` (FerroMQ). Most timer entries held in
    /// memory waiting for their due time (24 bytes each); a fuller slot is loaded in parts.
    /// Default 65 536; bounds 16..=10 000 000.
    pub max_loaded_entries: usize,
}

/// `[store]`: directories, file sizes, message and pull limits, index (§6, §11.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreSection {
    /// `storePathRootDir` / `root_dir`. Root of the store; shard `n` lives in
    /// `<root_dir>/shard-<n>/`. Default `$HOME/store` (as Java); an empty value in a file
    /// means that default.
    pub root_dir: PathBuf,
    /// `storePathCommitLog` / `commit_log_dir`. Java's commit-log directory. Default (`None`,
    /// empty in files): `<root_dir>/commitlog`. FerroMQ keeps one commit log per shard under
    /// `<root_dir>/shard-<n>/commitlog`, so only the default (or the same path written out, as
    /// the shipped example files do) is accepted by [`BrokerConfig::validate`].
    pub commit_log_dir: Option<PathBuf>,
    /// `mappedFileSizeCommitLog` / `segment_size_bytes`. Bytes per commit-log segment.
    /// Default 1 GiB (1073741824); bounds 4096..=17179869184 (16 GiB), and a segment must hold
    /// the largest message. Retention deletes whole segments: smaller ones free space in finer
    /// steps and roll more often.
    pub segment_size_bytes: u64,
    /// `mappedFileSizeConsumeQueue` / `cq_file_size_bytes`. Bytes per consume-queue file,
    /// rounded up to a multiple of 20 (one entry) as Java does. Default 6 000 000 (300 000
    /// entries); bounds 20..=2147483647.
    pub cq_file_size_bytes: u64,
    /// `maxMessageSize` / `max_message_size_bytes`. Largest message body, or total body of a
    /// batch, in bytes; larger sends get MESSAGE_ILLEGAL. Default 4 MiB (4194304); bounds
    /// 1..=1073741824, and at most `max_frame_bytes - 64 KiB` (header headroom).
    pub max_message_size_bytes: usize,
    /// `messageDelayLevel` / `message_delay_level`. Delay levels 1, 2, … as space-separated
    /// durations with unit `s`, `m`, `h` or `d` (§9.3). Default
    /// `1s 5s 10s 30s 1m 2m 3m 4m 5m 6m 7m 8m 9m 10m 20m 30m 1h 2h`; at least one level.
    /// Levels above the count are clamped to the last one, as Java does.
    pub message_delay_level: String,
    /// `messageIndexEnable` / `index_enable`. Build the key / unique-id index (QUERY_MESSAGE,
    /// `mqadmin queryMsgByKey`). Default true. Off saves a write per key per message.
    pub index_enable: bool,
    /// `maxHashSlotNum` / `index_hash_slots`. Hash slots per index file. Default 5 000 000;
    /// bounds 1..=100 000 000. Each slot is 4 bytes of the file.
    pub index_hash_slots: u32,
    /// `maxIndexNum` / `index_max_entries`. Entries per index file. Default 20 000 000; bounds
    /// 2..=400 000 000. Each entry is 20 bytes of the file.
    pub index_max_entries: u32,
    /// `defaultQueryMaxNum` / `default_query_max_num`. Most messages a lookup by message id
    /// returns: QUERY_MESSAGE with `_UNIQUE_KEY_QUERY=true` uses it in place of the client's
    /// `maxNum` ([`BrokerConfig::unique_key_query_max_num`]); `query_max_messages` still
    /// applies. Default 32; bounds 1..=100 000.
    pub default_query_max_num: u32,
    /// `maxMsgsNumBatch` / `query_max_messages`. Most records one QUERY_MESSAGE returns,
    /// whatever its `maxNum` (Java's cap in `IndexService.queryOffset`). Default 64; bounds
    /// 1..=1024 (each record is read whole into the response).
    pub query_max_messages: u32,
    /// `maxTransferBytesOnMessageInMemory` / `max_transfer_bytes`. Most body bytes one pull
    /// returns (a first message larger than this is still returned alone). Default 262 144;
    /// bounds 1..=1073741824. Larger batches: fewer round trips, larger responses.
    pub max_transfer_bytes: u32,
    /// `maxTransferCountOnMessageInMemory` / `max_transfer_count`. Most messages one pull
    /// returns. Default 32; bounds 1..=65535.
    pub max_transfer_count: u32,
    /// `checkCRCOnRecover` / `check_crc_on_recover`. Re-check every record's body CRC during
    /// recovery after a crash. Default true. Off: faster recovery, corruption found later.
    pub check_crc_on_recover: bool,
    /// `maxOpenConsumeQueueFiles` / `max_open_cq_files` (FerroMQ's own). Consume-queue files
    /// the broker keeps open at most, split evenly over the shards; beyond it the least
    /// recently used is closed and opened again on its next use. Default 0 = half the
    /// process's open-file limit (RLIMIT_NOFILE, after the raise at start), the other half
    /// left to connections and commit-log, index and metadata files; bounds 0..=16 777 216.
    /// A Java broker keeps every file mapped, and with it open: 10,000 topics × 8 queues need
    /// 80,000 descriptors there.
    pub max_open_cq_files: usize,
}

/// `[retention]`: when commit-log segments are deleted (§11.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionSection {
    /// `deleteWhen` / `delete_when`. Hours of the day (local time, `0`..`23`, `;`-separated)
    /// at which expired segments are deleted. Default `04`. Pick quiet hours: deletion costs
    /// I/O.
    pub delete_when: String,
    /// `fileReservedTime` / `file_reserved_time_hours`. Hours a segment is kept after its last
    /// write. Default 72 (the shipped example files use 48); bounds 1..=87 600.
    pub file_reserved_time_hours: u64,
    /// `diskMaxUsedSpaceRatio` / `disk_max_used_space_ratio_pct`. Disk usage (%) above which
    /// expired segments are deleted at any hour. Default 75; clamped to 10..=95 as Java does.
    pub disk_max_used_space_ratio_pct: u32,
    /// `diskSpaceCleanForciblyRatio` / `disk_space_clean_forcibly_ratio_pct`. Disk usage (%)
    /// above which the oldest segments are deleted even if not expired (when
    /// `clean_file_forcibly_enable`). Default 85; bounds 1..=99; at most the warning level.
    pub disk_space_clean_forcibly_ratio_pct: u32,
    /// `diskSpaceWarningLevelRatio` / `disk_space_warning_level_ratio_pct`. Disk usage (%)
    /// above which sends are refused. Default 90; bounds 1..=99.
    pub disk_space_warning_level_ratio_pct: u32,
    /// `cleanFileForciblyEnable` / `clean_file_forcibly_enable`. Allow deleting unexpired
    /// segments when the disk is nearly full. Default true. Off: the broker refuses writes
    /// instead of losing unconsumed messages.
    pub clean_file_forcibly_enable: bool,
    /// `deleteFileBatchMax` / `delete_file_batch_max`. Most segments deleted per pass. Default
    /// 10; bounds 1..=10 000. Bounds the I/O burst of one pass.
    pub delete_file_batch_max: usize,
}

/// `[flush]`: durability and group-commit batching (§7.1, §11.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlushSection {
    /// `flushDiskType` / `disk_type`. `ASYNC_FLUSH` (default) or `SYNC_FLUSH`; see
    /// [`FlushDiskType`] and `tuning/README.md`.
    pub disk_type: FlushDiskType,
    /// `flushIntervalCommitLog` / `interval_ms`. ASYNC_FLUSH: milliseconds between fdatasyncs
    /// while bytes are dirty. Default 500; bounds 1..=60 000. Longer: fewer syncs, more
    /// acknowledged data at risk on power loss. Unused by SYNC_FLUSH (no timer).
    pub interval_ms: u64,
    /// `flushCommitLogTimed` / `timed`. ASYNC_FLUSH: true (default, as in the Java broker
    /// since 4.9.1) syncs on the timer only, every `interval_ms` while anything is dirty; false
    /// also syncs as soon as `least_pages` are dirty (Java's flush thread woken by every put).
    /// Under load, untimed means an fdatasync every few appends: 11-37 % of the broker's CPU
    /// per send at 40k sends/s on epoll (bench/RESULTS.md, 2026-12-07). Unused by SYNC_FLUSH.
    pub timed: bool,
    /// `flushCommitLogLeastPages` / `least_pages`. ASYNC_FLUSH with `timed = false`: sync as
    /// soon as this many 4 KiB pages are dirty. Default 4 (16 KiB); bounds 0..=262 144 (1 GiB);
    /// 0 syncs after every write. Timed flushing does not read it: Java's would skip a tick
    /// with fewer pages dirty (until `flushCommitLogThoroughInterval`), FerroMQ syncs whatever
    /// is dirty at each tick. Unused by SYNC_FLUSH.
    pub least_pages: u64,
    /// `syncFlushTimeout` / `sync_flush_timeout_ms`. SYNC_FLUSH: milliseconds a producer waits
    /// for the fdatasync covering its message before FLUSH_DISK_TIMEOUT (the message is still
    /// written and will be synced). Default 5000; bounds 1..=600 000.
    pub sync_flush_timeout_ms: u64,
    /// `flushIntervalConsumeQueue` / `consume_queue_interval_ms`. Milliseconds between syncs
    /// of consume queues and the index, and checkpoint rewrites. Default 1000; bounds
    /// 1..=600 000. Longer: less I/O, longer replay of the log after a crash.
    pub consume_queue_interval_ms: u64,
    /// `flushConsumeQueueLeastPages` / `consume_queue_least_pages`. A consume queue's entries
    /// are written to its file once this many 4 KiB pages of them (204.8 entries a page) are
    /// unwritten, and a periodic checkpoint syncs only queues with at least that many
    /// unsynced; the others stay in memory until a thorough checkpoint, and a crash rebuilds
    /// them from the commit log. Default 2 (409 entries); bounds 0..=1024; 0 writes and syncs
    /// every queue at every checkpoint. Wide deployments (thousands of queues, each with few
    /// messages a second) save a file write and an fdatasync per queue per checkpoint.
    pub consume_queue_least_pages: u64,
    /// `flushConsumeQueueThoroughInterval` / `consume_queue_thorough_interval_ms`. At least
    /// this often a checkpoint syncs every consume queue, whatever its count; it bounds the
    /// log replayed after a crash. Default 60000; bounds 1..=3600000.
    pub consume_queue_thorough_interval_ms: u64,
    /// `maxFlushBatchBytes` / `max_batch_bytes` (FerroMQ). Largest single write of the commit
    /// log; a larger backlog is written in several batches. Default 4 MiB; bounds
    /// 1024..=1073741824. Larger batches: fewer syncs under load, longer waits per batch.
    pub max_batch_bytes: usize,
    /// `maxPendingFlushBytes` / `max_pending_bytes` (FerroMQ). Appended bytes not yet written,
    /// per shard; beyond it sends get SYSTEM_BUSY (backpressure). Default 64 MiB; bounds
    /// 4096..=17179869184; at least `max_batch_bytes`. Memory per shard, bounded.
    pub max_pending_bytes: usize,
}

/// `[ha]`: master–slave replication (§7; `repl/`): a master's HA port, a slave's master
/// ([`crate::control::ControlHandle::ha_master_addr`]) and metadata sync, the stream's pacing
/// and SYNC_MASTER's wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaSection {
    /// `haListenPort` / `listen_port`. Master's HA port. Default (`None`, 0 in TOML, empty in
    /// properties): `listenPort + 1`. Bounds 1..=65535.
    pub listen_port: Option<u16>,
    /// `haMasterAddress` / `master_address`. Static `host:port` of the master's HA port for a
    /// slave. Default none: learned from the name server's registration answer.
    pub master_address: Option<String>,
    /// `slaveSyncIntervalMillis` / `sync_interval_ms` (FerroMQ). A slave: milliseconds between
    /// pulls of its master's topics, groups, consumer offsets and delay offsets (§7.5; Java
    /// fixes 10 s). Default 10 000; bounds 100..=3 600 000. Shorter: a slave sees new topics and
    /// offsets sooner, for four small requests to the master per period.
    pub sync_interval_ms: u64,
    /// `slaveTimeout` / `slave_timeout_ms`. SYNC_MASTER: milliseconds a send waits for a slave
    /// before FLUSH_SLAVE_TIMEOUT. Default 3000; bounds 1..=600 000.
    pub slave_timeout_ms: u64,
    /// `haSendHeartbeatInterval` / `send_heartbeat_interval_ms`. Milliseconds between a slave's
    /// offset reports when idle. Default 5000; bounds 100..=600 000.
    pub send_heartbeat_interval_ms: u64,
    /// `haHousekeepingInterval` / `housekeeping_interval_ms`. Milliseconds of silence after
    /// which an HA connection is closed. Default 20 000; bounds 1000..=3 600 000.
    pub housekeeping_interval_ms: u64,
    /// `haTransferBatchSize` / `transfer_batch_bytes`. Most log bytes per replication frame.
    /// Default 32 768; bounds 1024..=67108864.
    pub transfer_batch_bytes: u32,
    /// `haMaxGapNotInSync` (4.9: `haSlaveFallbehindMax`, also read) / `max_gap_not_in_sync_bytes`.
    /// A slave further behind than this is not counted as in sync (SYNC_MASTER answers
    /// SLAVE_NOT_AVAILABLE). Default 268 435 456
    /// (256 MiB); bounds 1..=1099511627776.
    pub max_gap_not_in_sync_bytes: u64,
}

/// `[io]`: I/O backend and shards (DESIGN.md, "I/O foundation", "Threads and ownership").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoSection {
    /// `io.backend` / `backend`. `auto` (default: io_uring if the kernel allows it, else
    /// epoll), `io_uring` (fail at start if unavailable) or `epoll`. The `FERROMQ_IO_BACKEND`
    /// environment variable overrides it.
    pub backend: IoBackend,
    /// `shards` / `shards`. Shard threads, each pinned to a core with its own commit log.
    /// Default 0 = one per CPU ([`BrokerConfig::effective_shards`]); bounds 0..=256. Fewer
    /// shards leave cores to other processes; queues are spread over shards, so a topic with
    /// fewer queues than shards cannot use them all.
    pub shards: u32,
}

/// `[limits]`: every bound on frames, connections, queues and in-flight work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsSection {
    /// `maxFrameBytes` / `max_frame_bytes`. Largest frame accepted, checked before the reader
    /// allocates for it; a larger one closes its connection. Default 16 MiB (16777216, Java's
    /// limit); bounds 4096..=1073741824; at least `maxMessageSize + 64 KiB`.
    pub max_frame_bytes: usize,
    /// `maxHeaderBytes` / `max_header_bytes`. Largest frame header. Default 4 MiB; bounds
    /// 1024..=`max_frame_bytes`.
    pub max_header_bytes: usize,
    /// `maxConnections` / `max_connections`. Open client connections per listener (each shard
    /// has one on `listenPort` and one on the fast port). Default 10 000; bounds 1..=1 000 000. Connections beyond it are closed at
    /// accept.
    pub max_connections: usize,
    /// `maxInFlightRequestsPerConnection` / `max_in_flight_requests_per_connection`. Requests
    /// of one connection served at once (held pulls included); beyond it SYSTEM_BUSY.
    /// Default 1024; bounds 1..=1 000 000.
    pub max_in_flight_requests_per_connection: usize,
    /// `writeQueueFrames` / `write_queue_frames`. Encoded frames queued for one connection's
    /// writer; a full queue makes responders wait (backpressure on slow readers). Default 64
    /// (the writer sends up to 64 frames per writev); bounds 1..=1 000 000. Memory: the
    /// queue's slots are allocated up front, ~72 bytes each, for every connection — 1024 made
    /// an idle connection cost ~74 KiB.
    pub write_queue_frames: usize,
    /// `writeQueueBytes` / `write_queue_bytes`. Bytes of encoded frames queued for one
    /// connection's writer beyond which the connection serves no further request until the
    /// writer drains (file bodies count their head only). With the in-flight limit it bounds
    /// what a client that sends and never reads can make the broker hold: this plus the
    /// responses of its in-flight requests. Default 4 MiB; bounds 4096..=1 GiB.
    pub write_queue_bytes: usize,
    /// `serverChannelMaxIdleTimeSeconds` / `idle_connection_timeout_secs`. A connection with
    /// neither reads nor writes for this long and no request in flight is closed, as Java's
    /// IdleStateHandler does (clients heartbeat every 30 s). 0 = never. Default 120; bounds
    /// 0..=86 400.
    pub idle_connection_timeout_secs: u64,
    /// `maxHeldPullsPerShard` / `max_held_pulls_per_shard`. Long-polling pulls one shard holds
    /// at once; beyond it a pull that finds nothing is answered at once (PULL_NOT_FOUND).
    /// Default 65 536; bounds 1..=10 000 000. Memory: one small entry per held pull.
    pub max_held_pulls_per_shard: usize,
    /// `crossShardQueueDepth` / `cross_shard_queue_depth`. Requests queued from one shard to
    /// another (a send for a queue owned elsewhere); beyond it SYSTEM_BUSY. Default 4096;
    /// bounds 1..=1 000 000.
    pub cross_shard_queue_depth: usize,
    /// `crossShardMaxRunningJobs` / `cross_shard_max_running_jobs`. Jobs from other shards one
    /// shard runs at once; further jobs wait in the mailbox (`crossShardQueueDepth`). A held
    /// pull gives its slot back while it waits (it counts against `maxHeldPullsPerShard`).
    /// Default 1024; bounds 1..=1 000 000.
    pub cross_shard_max_running_jobs: usize,
    /// `controlQueueDepth` / `control_queue_depth`. Commands queued for the control thread
    /// (topic creation, heartbeats, offset commits, locks …); a full queue makes the request
    /// wait. Default 16384; bounds 1..=1 000 000.
    pub control_queue_depth: usize,
    /// `maxPendingOffsetCommitsPerShard` / `max_pending_offset_commits_per_shard`. Distinct
    /// (group, topic, queue) offset commits one shard coalesces before handing them to the
    /// control thread; beyond it a commit waits. Default 65536; bounds 1..=10 000 000.
    pub max_pending_offset_commits_per_shard: usize,
    /// `shardEventQueueDepth` / `shard_event_queue_depth`. Notifications (NOTIFY_CONSUMER_IDS_CHANGED)
    /// queued from the control thread to one shard; beyond it a notification is dropped and
    /// logged (consumers rebalance on their own every 20 s). Default 4096; bounds 1..=1 000 000.
    pub shard_event_queue_depth: usize,
}

/// `metricsExporterType`: RocketMQ 5's `MetricsExporterType`, the values FerroMQ implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsExporterType {
    /// No metrics are recorded or served (Java's default).
    Disable,
    /// A Prometheus endpoint on `metricsPromExporterHost:metricsPromExporterPort`.
    Prom,
}

impl FromStr for MetricsExporterType {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        // Java's `MetricsExporterType.valueOf`: exact, upper-case names.
        match text {
            "DISABLE" => Ok(MetricsExporterType::Disable),
            "PROM" => Ok(MetricsExporterType::Prom),
            "OTLP_GRPC" | "LOG" => Err(format!("{text} is not implemented by FerroMQ; DISABLE or PROM")),
            _ => Err("DISABLE or PROM".to_owned()),
        }
    }
}

impl fmt::Display for MetricsExporterType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MetricsExporterType::Disable => "DISABLE",
            MetricsExporterType::Prom => "PROM",
        })
    }
}

/// Labels every broker series carries already; `metricsLabel` may not set them again.
pub const METRICS_COMMON_LABELS: &[&str] = &["cluster", "node_type", "node_id"];

/// `[metrics]`: the Prometheus endpoint (README, "Metrics"; `crate::metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSection {
    /// `metricsExporterType` / `exporter_type`. `DISABLE` (default) or `PROM`; Java's
    /// `OTLP_GRPC` and `LOG` are refused at start. Off, nothing is recorded: requests pay no
    /// metrics cost.
    pub exporter_type: MetricsExporterType,
    /// `metricsPromExporterHost` / `prom_exporter_host`. Address the endpoint listens on.
    /// Default none (empty): `brokerIP1` as advertised, as Java.
    pub prom_exporter_host: Option<IpAddr>,
    /// `metricsPromExporterPort` / `prom_exporter_port`. Port of the endpoint. Default 5557
    /// (Java's); 0 = any free port (logged at start).
    pub prom_exporter_port: u16,
    /// `metricsLabel` / `label`. Extra labels on every series, `name:value` pairs separated by
    /// commas (Java's format). Default none.
    pub label: String,
    /// `metricsOtelCardinalityLimit` / `otel_cardinality_limit`. Label sets one shard keeps per
    /// metric (per topic, per group and topic, …); observations of new label sets beyond it are
    /// counted in `ferromq_metrics_dropped_observations_total` instead. Default 50 000 (Java's);
    /// bounds 1..=10 000 000.
    pub otel_cardinality_limit: usize,
}

/// `[acl]`: RocketMQ 4.x plain ACL (README, "Security"; `ferromq_net::acl`, `crate::acl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclSection {
    /// `aclEnable` / `enable`. Every request must pass `plain_acl.yml`'s rules before its
    /// handler runs. Default false (Java's).
    pub enable: bool,
    /// `rocketmq.acl.plain.file` / `plain_file` (Java's system property of that name). The
    /// rules file, re-read when it changes. Required with `aclEnable=true`; default none.
    pub plain_file: String,
    /// `accessKey` / `access_key`. The account this broker signs its own requests with
    /// (registration with name servers that check it, a slave's calls to its master).
    /// Default none: unsigned.
    pub access_key: String,
    /// `secretKey` / `secret_key`. The secret of `accessKey`.
    pub secret_key: String,
    /// `maxAutoCreatedTopicsPerAccount` / `max_auto_created_topics_per_account`. With ACL on,
    /// topics the broker auto-creates for one account's sends since it started; beyond it,
    /// TOPIC_NOT_EXIST (an admin can still create them). `maxAutoCreatedTopics` bounds all
    /// accounts together. Default 1000; bounds 0..=1 000 000.
    pub max_auto_created_topics_per_account: usize,
    /// `maxAutoCreatedSubscriptionGroupsPerAccount` / `max_auto_created_subscription_groups_per_account`.
    /// The same for subscription groups (heartbeats, send-backs); beyond it
    /// SUBSCRIPTION_GROUP_NOT_EXIST. Default 1000; bounds 0..=1 000 000.
    pub max_auto_created_subscription_groups_per_account: usize,
}

/// `[tls]`: RocketMQ's `tls.*` keys (README, "TLS"; `ferromq_net::tls`). Paths are PEM files
/// read at start; a file that cannot be read or parsed stops the start naming it. Every key
/// but `server_mode` and `enable` must stay unset while its side is off
/// ([`BrokerConfig::validate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSection {
    /// `tls.server.mode` (also `tlsMode`) / `server_mode`. `disabled` (FerroMQ's default; Java's
    /// is `permissive`), `permissive` (TLS and plain clients on the same ports, told apart by
    /// the first byte) or `enforcing` (plain clients are closed). Applies to the main and the
    /// fast port; the HA port stays plain, as Java's.
    pub server_mode: TlsMode,
    /// `tls.server.certPath` / `server_cert_path`. The certificate chain, PEM; required unless
    /// the mode is disabled.
    pub server_cert_path: String,
    /// `tls.server.keyPath` / `server_key_path`. Its private key, unencrypted PEM (PKCS#8,
    /// PKCS#1 or SEC1); `tls.server.keyPassword` is refused.
    pub server_key_path: String,
    /// `tls.server.need.client.auth` / `server_need_client_auth`. `none` (default), `optional`
    /// or `require`: client certificates verified against `server_trust_cert_path`.
    pub server_need_client_auth: ClientAuth,
    /// `tls.server.authClient` / `server_auth_client`. Verify client certificates against
    /// `server_trust_cert_path`; required (true) when `server_need_client_auth` is not `none`:
    /// Java's default, false, accepts any client certificate, which FerroMQ does not do.
    pub server_auth_client: bool,
    /// `tls.server.trustCertPath` / `server_trust_cert_path`. CA certificates, PEM, for client
    /// certificates; required when `server_need_client_auth` is not `none`.
    pub server_trust_cert_path: String,
    /// `tlsKernelOffload` / `kernel_offload` (FerroMQ). After the handshake, move a connection's
    /// encryption into the kernel (kTLS) where the kernel takes its cipher, so pulls keep
    /// `sendfile`; otherwise, and with false, rustls encrypts in user space and file bodies are
    /// copied. Default true. A peer's TLS 1.3 key update closes a kernel TLS connection
    /// (`ferromq_net::ktls`).
    pub kernel_offload: bool,
    /// `tls.enable` (also `useTLS`) / `enable`. Whether the broker's own connections (to the
    /// name servers, a slave's to its master) use TLS. Default false.
    pub enable: bool,
    /// `tls.client.authServer` / `client_auth_server`. Verify the server's certificate against
    /// `client_trust_cert_path` (for the server's IP address). Default false, as Java: any
    /// certificate is accepted.
    pub client_auth_server: bool,
    /// `tls.client.trustCertPath` / `client_trust_cert_path`. CA certificates, PEM; required
    /// when `client_auth_server`.
    pub client_trust_cert_path: String,
    /// `tls.client.certPath` / `client_cert_path`. Certificate presented to servers that ask for
    /// one, PEM; with `client_key_path`.
    pub client_cert_path: String,
    /// `tls.client.keyPath` / `client_key_path`. Its private key, unencrypted PEM.
    pub client_key_path: String,
}

// ------------------------------------------------------------------------------------------
// Defaults and profiles
// ------------------------------------------------------------------------------------------

impl Default for BrokerConfig {
    /// PROTOCOL.md §11 defaults; `brokerName` is the host name, `storePathRootDir` `$HOME/store`.
    fn default() -> BrokerConfig {
        BrokerConfig {
            broker: BrokerSection {
                cluster_name: "DefaultCluster".to_owned(),
                name: default_broker_name(),
                id: 0,
                role: BrokerRole::AsyncMaster,
                permission: 6,
                listen_port: DEFAULT_LISTEN_PORT,
                fast_listen_port_enable: true,
                bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                ip1: None,
                ip2: None,
                region_id: "DefaultRegion".to_owned(),
                trace_on: true,
                config_black_list: "configBlackList;brokerConfigPath".to_owned(),
            },
            namesrv: NamesrvSection {
                addr: Vec::new(),
                register_period_ms: 30_000,
                register_timeout_ms: 24_000,
                force_register: true,
                compressed_register: false,
                embedded_port: DEFAULT_EMBEDDED_NAMESRV_PORT,
            },
            topics: TopicsSection {
                auto_create_topic_enable: true,
                default_topic_queue_nums: 8,
                auto_create_subscription_group: true,
                cluster_topic_enable: true,
                broker_topic_enable: true,
                max_auto_created_topics: 20_000,
                max_auto_created_subscription_groups: 10_000,
                trace_topic_enable: false,
                trace_topic_name: DEFAULT_TRACE_TOPIC_NAME.to_owned(),
            },
            consumer: ConsumerSection {
                long_polling_enable: true,
                short_polling_time_ms: 1000,
                notify_consumer_ids_changed_enable: true,
                slave_read_enable: false,
                access_message_in_memory_max_ratio_pct: 40,
                channel_expired_timeout_ms: 120_000,
                flush_consumer_offset_interval_ms: 5000,
                enable_property_filter: false,
            },
            transaction: TransactionSection {
                reject_transaction_message: false,
                timeout_ms: 6000,
                check_max: 15,
                check_interval_ms: 30_000,
            },
            timer: TimerSection { wheel_enable: true, max_delay_secs: 259_200, precision_ms: 100, max_loaded_entries: 65_536 },
            store: StoreSection {
                root_dir: default_store_root(),
                commit_log_dir: None,
                segment_size_bytes: 1 << 30,
                cq_file_size_bytes: 300_000 * CQ_UNIT_BYTES,
                max_message_size_bytes: 4 << 20,
                message_delay_level: DEFAULT_MESSAGE_DELAY_LEVEL.to_owned(),
                index_enable: true,
                index_hash_slots: 5_000_000,
                index_max_entries: 20_000_000,
                default_query_max_num: 32,
                query_max_messages: 64,
                max_transfer_bytes: 262_144,
                max_transfer_count: 32,
                check_crc_on_recover: true,
                max_open_cq_files: 0,
            },
            retention: RetentionSection {
                delete_when: "04".to_owned(),
                file_reserved_time_hours: 72,
                disk_max_used_space_ratio_pct: 75,
                disk_space_clean_forcibly_ratio_pct: 85,
                disk_space_warning_level_ratio_pct: 90,
                clean_file_forcibly_enable: true,
                delete_file_batch_max: 10,
            },
            flush: FlushSection {
                disk_type: FlushDiskType::AsyncFlush,
                interval_ms: 500,
                timed: true,
                least_pages: 4,
                sync_flush_timeout_ms: 5000,
                consume_queue_interval_ms: 1000,
                consume_queue_least_pages: 2,
                consume_queue_thorough_interval_ms: 60_000,
                max_batch_bytes: 4 << 20,
                max_pending_bytes: 64 << 20,
            },
            ha: HaSection {
                listen_port: None,
                master_address: None,
                sync_interval_ms: 10_000,
                slave_timeout_ms: 3000,
                send_heartbeat_interval_ms: 5000,
                housekeeping_interval_ms: 20_000,
                transfer_batch_bytes: 32_768,
                max_gap_not_in_sync_bytes: 256 << 20,
            },
            io: IoSection { backend: IoBackend::Auto, shards: 0 },
            limits: LimitsSection {
                max_frame_bytes: 16 << 20,
                max_header_bytes: 4 << 20,
                max_connections: 10_000,
                max_in_flight_requests_per_connection: 1024,
                write_queue_frames: 64,
                write_queue_bytes: 4 << 20,
                idle_connection_timeout_secs: 120,
                max_held_pulls_per_shard: 65_536,
                cross_shard_queue_depth: 4096,
                cross_shard_max_running_jobs: 1024,
                control_queue_depth: 16_384,
                max_pending_offset_commits_per_shard: 65_536,
                shard_event_queue_depth: 4096,
            },
            metrics: MetricsSection {
                exporter_type: MetricsExporterType::Disable,
                prom_exporter_host: None,
                prom_exporter_port: 5557,
                label: String::new(),
                otel_cardinality_limit: 50_000,
            },
            acl: AclSection {
                enable: false,
                plain_file: String::new(),
                access_key: String::new(),
                secret_key: String::new(),
                max_auto_created_topics_per_account: 1000,
                max_auto_created_subscription_groups_per_account: 1000,
            },
            tls: TlsSection {
                server_mode: TlsMode::Disabled,
                server_cert_path: String::new(),
                server_key_path: String::new(),
                server_need_client_auth: ClientAuth::None,
                server_auth_client: false,
                server_trust_cert_path: String::new(),
                kernel_offload: true,
                enable: false,
                client_auth_server: false,
                client_trust_cert_path: String::new(),
                client_cert_path: String::new(),
                client_key_path: String::new(),
            },
        }
    }
}

impl BrokerConfig {
    /// A profile for tests: store under `root`, every limit tiny so tests hit segment and
    /// consume-queue rolls, flush batching, pull batch limits and backpressure quickly; two
    /// shards so cross-shard hand-off is exercised; SYNC_FLUSH with a 5 ms interval (as the
    /// store's own `StoreConfig::test_min`). Same values as `tuning/test_min.toml`. Tests set
    /// `broker.listen_port` and `namesrv.embedded_port` to free ports themselves.
    pub fn test_min(root: impl Into<PathBuf>) -> BrokerConfig {
        let base = BrokerConfig::default();
        BrokerConfig {
            broker: BrokerSection { name: "test-broker".to_owned(), ..base.broker },
            namesrv: NamesrvSection { register_period_ms: REGISTER_PERIOD_MIN_MS, register_timeout_ms: 1000, ..base.namesrv },
            topics: TopicsSection { default_topic_queue_nums: 4, ..base.topics },
            consumer: ConsumerSection { short_polling_time_ms: 50, flush_consumer_offset_interval_ms: 100, ..base.consumer },
            transaction: TransactionSection { timeout_ms: 100, check_max: 2, check_interval_ms: 1000, ..base.transaction },
            timer: base.timer,
            store: StoreSection {
                root_dir: root.into(),
                segment_size_bytes: 4096,
                cq_file_size_bytes: 8 * CQ_UNIT_BYTES,
                max_message_size_bytes: 1024,
                message_delay_level: "1s 2s 3s".to_owned(),
                index_hash_slots: 16,
                index_max_entries: 32,
                default_query_max_num: 4,
                max_transfer_bytes: 4096,
                max_transfer_count: 4,
                // 16 per shard, the least: tests with more queues close and reopen their files.
                max_open_cq_files: 32,
                ..base.store
            },
            // Test stores live on the machine's shared disk, whose usage is not the test's:
            // thresholds near 100 % keep a nearly full CI disk from refusing or deleting their
            // writes (the flusher reads the usage as it writes). Disk-full tests set their own.
            retention: RetentionSection {
                file_reserved_time_hours: 1,
                delete_file_batch_max: 2,
                disk_max_used_space_ratio_pct: 95,
                disk_space_clean_forcibly_ratio_pct: 98,
                disk_space_warning_level_ratio_pct: 99,
                ..base.retention
            },
            flush: FlushSection {
                disk_type: FlushDiskType::SyncFlush,
                interval_ms: 5,
                timed: true,
                least_pages: 1,
                sync_flush_timeout_ms: 1000,
                consume_queue_interval_ms: 20,
                consume_queue_least_pages: 2,
                consume_queue_thorough_interval_ms: 60_000,
                max_batch_bytes: 2048,
                max_pending_bytes: 16 * 1024,
            },
            ha: HaSection {
                slave_timeout_ms: 500,
                send_heartbeat_interval_ms: 100,
                housekeeping_interval_ms: 2000,
                transfer_batch_bytes: 1024,
                max_gap_not_in_sync_bytes: 64 * 1024,
                ..base.ha
            },
            io: IoSection { shards: 2, ..base.io },
            limits: LimitsSection {
                max_frame_bytes: 128 * 1024,
                max_header_bytes: 32 * 1024,
                max_connections: 64,
                max_in_flight_requests_per_connection: 8,
                write_queue_frames: 4,
                write_queue_bytes: 4096,
                idle_connection_timeout_secs: 120,
                max_held_pulls_per_shard: 8,
                cross_shard_queue_depth: 4,
                cross_shard_max_running_jobs: 2,
                control_queue_depth: 4,
                max_pending_offset_commits_per_shard: 4,
                shard_event_queue_depth: 4,
            },
            metrics: MetricsSection { otel_cardinality_limit: 4, ..base.metrics },
            acl: base.acl,
            tls: base.tls,
        }
    }
}

fn default_store_root() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from).join("store")
}

/// The host name (`gethostname`), or `DEFAULT_BROKER` as Java when it cannot be read.
fn default_broker_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is a writable buffer of the length passed; gethostname writes at most that
    // many bytes and does not keep the pointer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast::<libc::c_char>(), buf.len()) };
    if rc != 0 {
        return DEFAULT_BROKER_NAME.to_owned();
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(buf.get(..len).unwrap_or_default()) {
        Ok(name) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => DEFAULT_BROKER_NAME.to_owned(),
    }
}

/// The host's IPv4 address as Java's `RemotingUtil.getLocalAddress` picks it: addresses of
/// interfaces that are up and not loopback; the first that is neither `192.168.*` nor
/// link-local (`169.254.*`), else the last candidate. `None` when the host has none (or
/// `getifaddrs` fails).
pub fn detect_local_ipv4() -> Option<Ipv4Addr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `head` is a valid out-pointer; on success it receives a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut candidates = Vec::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, valid until freeifaddrs.
        let ifa = unsafe { &*cursor };
        cursor = ifa.ifa_next;
        let up = ifa.ifa_flags & (libc::IFF_UP as libc::c_uint) != 0;
        let loopback = ifa.ifa_flags & (libc::IFF_LOOPBACK as libc::c_uint) != 0;
        if ifa.ifa_addr.is_null() || !up || loopback {
            continue;
        }
        // SAFETY: `ifa_addr` is non-null and points to a sockaddr owned by the list.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        if i32::from(family) != libc::AF_INET {
            continue;
        }
        // SAFETY: the family is AF_INET, so the address is a `sockaddr_in`.
        let sin = unsafe { &*ifa.ifa_addr.cast::<libc::sockaddr_in>() };
        let ip = Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
        if !ip.is_loopback() && !ip.is_unspecified() {
            candidates.push(ip);
        }
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once; no reference into
    // the list outlives this point (addresses were copied out).
    unsafe { libc::freeifaddrs(head) };
    let preferred = candidates
        .iter()
        .find(|ip| {
            let [a, b, _, _] = ip.octets();
            !ip.is_link_local() && (a, b) != (192, 168)
        })
        .copied();
    preferred.or_else(|| candidates.last().copied())
}

// ------------------------------------------------------------------------------------------
// Derived values and mappings
// ------------------------------------------------------------------------------------------

impl BrokerConfig {
    /// Whether the broker runs its own name server (no name server configured).
    pub fn uses_embedded_namesrv(&self) -> bool {
        self.namesrv.addr.is_empty()
    }

    /// Fills `namesrv.addr` from the `NAMESRV_ADDR` environment variable when neither the file
    /// nor an override configured a name server (Java's order: `-n`, file, environment).
    /// Entries are checked by [`BrokerConfig::validate`].
    pub fn resolve_namesrv_addr(&mut self) {
        self.resolve_namesrv_addr_from(std::env::var("NAMESRV_ADDR").ok());
    }

    fn resolve_namesrv_addr_from(&mut self, env: Option<String>) {
        if !self.namesrv.addr.is_empty() {
            return;
        }
        if let Some(text) = env {
            self.namesrv.addr = split_namesrv_list(&text);
            if !self.namesrv.addr.is_empty() {
                tracing::info!(namesrv_addr = %text, "name servers taken from NAMESRV_ADDR");
            }
        }
    }

    /// The address advertised to the name server and written as STOREHOST: `brokerIP1` when
    /// set; otherwise 127.0.0.1 when the broker runs the embedded name server (everything is
    /// local then), else the host's first non-loopback IPv4 ([`detect_local_ipv4`]), else
    /// 127.0.0.1.
    pub fn advertised_ip(&self, embedded_namesrv: bool) -> IpAddr {
        match self.broker.ip1 {
            Some(ip) => ip,
            None if embedded_namesrv => IpAddr::V4(Ipv4Addr::LOCALHOST),
            None => IpAddr::V4(detect_local_ipv4().unwrap_or(Ipv4Addr::LOCALHOST)),
        }
    }

    /// The address advertised for HA (`brokerIP2`, else [`BrokerConfig::advertised_ip`]).
    pub fn advertised_ha_ip(&self, embedded_namesrv: bool) -> IpAddr {
        self.broker.ip2.unwrap_or_else(|| self.advertised_ip(embedded_namesrv))
    }

    /// The HA port: `haListenPort`, else `listenPort + 1` (saturating; `validate` rejects
    /// 65535 + 1).
    pub fn ha_listen_port(&self) -> u16 {
        self.ha.listen_port.unwrap_or_else(|| self.broker.listen_port.saturating_add(1))
    }

    /// Java's fast ("VIP") port, `listenPort − 2`, when the broker opens it
    /// (`fastListenPortEnable`); `None` when it is off or `listenPort` is 0 (an ephemeral
    /// port, where there is nothing to derive it from: in-process tests only, the file keys
    /// refuse 0).
    pub fn fast_listen_port(&self) -> Option<u16> {
        if !self.broker.fast_listen_port_enable || self.broker.listen_port == 0 {
            return None;
        }
        self.broker.listen_port.checked_sub(2)
    }

    /// `haServerAddr` of REGISTER_BROKER, as Java's `getHAServerAddr`: the HA address
    /// ([`BrokerConfig::advertised_ha_ip`], `brokerIP2`) and [`BrokerConfig::ha_listen_port`].
    /// Call it once [`BrokerConfig::resolve_namesrv_addr`] has run: whether the embedded name
    /// server runs decides the guessed address.
    pub fn ha_server_addr(&self) -> SocketAddr {
        SocketAddr::new(self.advertised_ha_ip(self.uses_embedded_namesrv()), self.ha_listen_port())
    }

    /// How long one call of a registration round (REGISTER_BROKER, QUERY_DATA_VERSION) waits
    /// for a name server's answer (`registerBrokerTimeoutMills`).
    pub fn register_timeout(&self) -> Duration {
        Duration::from_millis(self.namesrv.register_timeout_ms)
    }

    /// `maxNum` of a QUERY_MESSAGE flagged `_UNIQUE_KEY_QUERY=true` (a lookup by message id):
    /// Java replaces the client's `maxNum` with `defaultQueryMaxNum`, and the index's batch cap
    /// (`maxMsgsNumBatch`, [`BrokerConfig::query_max_messages`]) still applies on top.
    pub fn unique_key_query_max_num(&self) -> usize {
        usize::try_from(self.store.default_query_max_num).unwrap_or(usize::MAX)
    }

    /// Most records one QUERY_MESSAGE returns (`maxMsgsNumBatch`).
    pub fn query_max_messages(&self) -> usize {
        usize::try_from(self.store.query_max_messages).unwrap_or(usize::MAX)
    }

    /// Java's commit-log directory (`storePathCommitLog`, default `<root>/commitlog`).
    pub fn commit_log_dir(&self) -> PathBuf {
        self.store.commit_log_dir.clone().unwrap_or_else(|| self.store.root_dir.join("commitlog"))
    }

    /// Consume-queue descriptors the broker keeps open: `maxOpenConsumeQueueFiles`, or when 0
    /// half the process's soft RLIMIT_NOFILE (read now: the binaries raise it to the hard
    /// limit before they read their configuration).
    pub fn effective_max_open_cq_files(&self) -> usize {
        if self.store.max_open_cq_files > 0 {
            return self.store.max_open_cq_files;
        }
        // Linux's usual soft limit, should the call fail.
        let soft = ferromq_net::server::open_file_limit().map_or(1024, |limit| limit.rlim_cur);
        usize::try_from(soft / 2).unwrap_or(usize::MAX).min(MAX_OPEN_CQ_FILES)
    }

    /// One shard's share of [`BrokerConfig::effective_max_open_cq_files`], at least
    /// [`MIN_OPEN_CQ_FILES_PER_SHARD`].
    pub fn max_open_cq_files_per_shard(&self) -> usize {
        (self.effective_max_open_cq_files() / self.effective_shards() as usize).max(MIN_OPEN_CQ_FILES_PER_SHARD)
    }

    /// Shards to run: `shards`, or one per CPU when 0, at most [`MAX_SHARDS`].
    pub fn effective_shards(&self) -> u32 {
        let wanted = if self.io.shards == 0 {
            std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(MAX_SHARDS))
        } else {
            self.io.shards
        };
        wanted.clamp(1, MAX_SHARDS)
    }

    /// Directory of shard `shard`'s store: `<storePathRootDir>/shard-<n>`. Every shard has its
    /// own commit log (`…/shard-<n>/commitlog`), consume queues, index and checkpoint, so the
    /// shard count must not change over an existing store: queue ownership would move.
    pub fn shard_dir(&self, shard: ShardId) -> PathBuf {
        self.store.root_dir.join(format!("shard-{}", shard.0))
    }

    /// Consume-queue entries per file: `mappedFileSizeConsumeQueue / 20`, rounded up.
    pub fn cq_entries_per_file(&self) -> u64 {
        self.store.cq_file_size_bytes.div_ceil(CQ_UNIT_BYTES).max(1)
    }

    /// The delay of each delay level (index 0 = level 1), in milliseconds.
    pub fn delay_levels_ms(&self) -> Result<Vec<u64>, ConfigError> {
        parse_delay_levels(&self.store.message_delay_level)
            .map_err(|expected| invalid("messageDelayLevel", &self.store.message_delay_level, expected))
    }

    /// The store configuration of one shard: `root_dir` = [`BrokerConfig::shard_dir`], every
    /// size, interval and limit from `[store]`, `[retention]` and `[flush]`.
    pub fn store_config(&self, shard: ShardId) -> StoreConfig {
        let mut cfg = StoreConfig::new(self.shard_dir(shard));
        cfg.shard = shard;
        cfg.segment_size_bytes = self.store.segment_size_bytes;
        cfg.cq_entries_per_file = self.cq_entries_per_file();
        cfg.flush_mode = self.flush.disk_type.into();
        cfg.flush_interval_ms = self.flush.interval_ms;
        cfg.flush_timed = self.flush.timed;
        cfg.flush_least_bytes = self.flush.least_pages.saturating_mul(OS_PAGE_BYTES);
        cfg.sync_flush_timeout_ms = self.flush.sync_flush_timeout_ms;
        cfg.max_message_size_bytes = self.store.max_message_size_bytes;
        cfg.max_flush_batch_bytes = self.flush.max_batch_bytes;
        cfg.max_pending_bytes = self.flush.max_pending_bytes;
        cfg.max_dispatch_behind_bytes = (self.flush.max_pending_bytes as u64).saturating_mul(DISPATCH_BEHIND_PER_PENDING).max(MIN_DISPATCH_BEHIND_BYTES);
        cfg.checkpoint_interval_ms = self.flush.consume_queue_interval_ms;
        cfg.cq_flush_least_entries = self.flush.consume_queue_least_pages.saturating_mul(OS_PAGE_BYTES) / ferromq_store::consume_queue::CQ_ENTRY_LEN as u64;
        cfg.cq_thorough_interval_ms = self.flush.consume_queue_thorough_interval_ms;
        cfg.check_crc_on_recover = self.store.check_crc_on_recover;
        cfg.index_enable = self.store.index_enable;
        cfg.index_hash_slots = self.store.index_hash_slots;
        cfg.index_max_entries = self.store.index_max_entries;
        cfg.delete_when = self.retention.delete_when.clone();
        cfg.file_reserved_time_hours = self.retention.file_reserved_time_hours;
        cfg.disk_max_used_space_ratio_pct = self.retention.disk_max_used_space_ratio_pct;
        cfg.disk_space_clean_forcibly_ratio_pct = self.retention.disk_space_clean_forcibly_ratio_pct;
        cfg.disk_space_warning_level_ratio_pct = self.retention.disk_space_warning_level_ratio_pct;
        cfg.clean_file_forcibly_enable = self.retention.clean_file_forcibly_enable;
        cfg.delete_file_batch_max = self.retention.delete_file_batch_max;
        cfg.max_transfer_bytes = self.store.max_transfer_bytes;
        cfg.max_transfer_count = self.store.max_transfer_count;
        cfg.max_open_cq_files = self.max_open_cq_files_per_shard();
        // A slave's log is its master's, byte for byte: it takes no local appends.
        cfg.replica = self.broker.role == BrokerRole::Slave;
        cfg
    }

    /// What this broker signs its own requests with (`accessKey`/`secretKey`), if anything.
    pub fn acl_credentials(&self) -> Option<ferromq_net::acl::Credentials> {
        (!self.acl.access_key.is_empty()).then(|| ferromq_net::acl::Credentials::new(&self.acl.access_key, &self.acl.secret_key))
    }

    /// Whether the broker records and serves metrics (`metricsExporterType=PROM`).
    pub fn metrics_enabled(&self) -> bool {
        self.metrics.exporter_type == MetricsExporterType::Prom
    }

    /// The endpoint's address: `metricsPromExporterHost` (default `brokerIP1` as advertised,
    /// as Java) and `metricsPromExporterPort`.
    pub fn metrics_addr(&self, embedded_namesrv: bool) -> SocketAddr {
        let ip = self.metrics.prom_exporter_host.unwrap_or_else(|| self.advertised_ip(embedded_namesrv));
        SocketAddr::new(ip, self.metrics.prom_exporter_port)
    }

    /// `metricsLabel` as (name, value) pairs (checked by [`BrokerConfig::validate`]).
    pub fn metrics_labels(&self) -> Result<Vec<(String, String)>, String> {
        ferromq_net::metrics::parse_metrics_label(&self.metrics.label, METRICS_COMMON_LABELS)
    }

    pub fn wire_limits(&self) -> WireLimits {
        WireLimits { max_frame_bytes: self.limits.max_frame_bytes, max_header_bytes: self.limits.max_header_bytes }
    }

    /// Limits of one listener and its connections; fields without a broker key keep
    /// `ferromq-net`'s defaults.
    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            conn: ConnLimits {
                wire: self.wire_limits(),
                max_in_flight_requests: self.limits.max_in_flight_requests_per_connection,
                write_queue_frames: self.limits.write_queue_frames,
                write_queue_bytes: self.limits.write_queue_bytes,
                idle_timeout: (self.limits.idle_connection_timeout_secs > 0)
                    .then(|| std::time::Duration::from_secs(self.limits.idle_connection_timeout_secs)),
                record_rpc_latency: self.metrics_enabled(),
                ..ConnLimits::default()
            },
            max_connections: self.limits.max_connections,
        }
    }
}

// ------------------------------------------------------------------------------------------
// Validation
// ------------------------------------------------------------------------------------------

impl BrokerConfig {
    /// Checks every field against the bounds of its key (the same parser as for files) and the
    /// relations between fields. Call it after loading and applying overrides.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut scratch = self.clone();
        for key in KEYS {
            let value = (key.get)(self);
            (key.set)(&mut scratch, &value).map_err(|expected| invalid(key.java, &value, expected))?;
        }
        if self.acl.enable && self.acl.plain_file.is_empty() {
            return Err(invalid("aclEnable", "true", "rocketmq.acl.plain.file (plain_file) naming the plain_acl.yml to enforce"));
        }
        if self.acl.access_key.is_empty() != self.acl.secret_key.is_empty() {
            return Err(invalid("accessKey", &self.acl.access_key, "accessKey and secretKey set together, or neither"));
        }
        let b = &self.broker;
        if b.cluster_name.trim().is_empty() {
            return Err(invalid("brokerClusterName", &b.cluster_name, "a non-empty cluster name"));
        }
        if b.name.trim().is_empty() {
            return Err(invalid("brokerName", &b.name, "a non-empty broker name"));
        }
        match b.role {
            BrokerRole::AsyncMaster | BrokerRole::SyncMaster if b.id != 0 => {
                return Err(invalid(
                    "brokerId",
                    &b.id.to_string(),
                    format!("0 for a {} (brokerRole); slaves use 1 and above (Java would silently force 0)", b.role),
                ));
            }
            BrokerRole::Slave if b.id == 0 => {
                return Err(invalid("brokerId", "0", "1 or above for a SLAVE (brokerRole); 0 is the master's id"));
            }
            _ => {}
        }
        let ha_port = u32::from(self.ha.listen_port.unwrap_or(0));
        let ha_port = if ha_port == 0 { u32::from(b.listen_port) + 1 } else { ha_port };
        if ha_port > u32::from(u16::MAX) {
            return Err(ConfigError::Conflict(format!(
                "listenPort {} leaves no port for HA (listenPort + 1); set haListenPort",
                b.listen_port
            )));
        }
        if ha_port == u32::from(b.listen_port) {
            return Err(ConfigError::Conflict(format!("haListenPort and listenPort are both {}", b.listen_port)));
        }
        let fast_port = b.fast_listen_port_enable.then(|| u32::from(b.listen_port)).filter(|p| *p != 0).map(|p| p.checked_sub(2));
        match fast_port {
            Some(None | Some(0)) => {
                return Err(ConfigError::Conflict(format!(
                    "listenPort {} leaves no fast port (listenPort - 2, fastListenPortEnable=true); use a listenPort above 2",
                    b.listen_port
                )));
            }
            Some(Some(fast)) if fast == ha_port && self.broker.role.is_master() => {
                return Err(ConfigError::Conflict(format!(
                    "haListenPort {ha_port} is the fast port (listenPort - 2); choose another haListenPort or set fastListenPortEnable=false"
                )));
            }
            _ => {}
        }
        if self.uses_embedded_namesrv() {
            let ns = u32::from(self.namesrv.embedded_port);
            if ns == u32::from(b.listen_port) || ns == ha_port || fast_port == Some(Some(ns)) {
                return Err(ConfigError::Conflict(format!(
                    "embeddedNamesrvPort {ns} (used because no namesrvAddr is configured) collides with listenPort, haListenPort or the fast port (listenPort - 2)"
                )));
            }
        }
        if let Some(dir) = &self.store.commit_log_dir
            && dir != &self.store.root_dir.join("commitlog")
        {
            return Err(invalid(
                "storePathCommitLog",
                &dir.to_string_lossy(),
                format!(
                    "{} (storePathRootDir/commitlog) or empty: FerroMQ keeps one commit log per shard, in \
                     storePathRootDir/shard-<n>/commitlog, and cannot place it elsewhere yet",
                    self.store.root_dir.join("commitlog").display()
                ),
            ));
        }
        let limits = &self.limits;
        if limits.max_header_bytes > limits.max_frame_bytes {
            return Err(ConfigError::Conflict(format!(
                "maxHeaderBytes {} exceeds maxFrameBytes {}",
                limits.max_header_bytes, limits.max_frame_bytes
            )));
        }
        if self.store.max_message_size_bytes.saturating_add(FRAME_HEADROOM_BYTES) > limits.max_frame_bytes {
            return Err(ConfigError::Conflict(format!(
                "maxMessageSize {} plus {} bytes of header headroom exceeds maxFrameBytes {}: a maximal message \
                 could not be sent; raise maxFrameBytes or lower maxMessageSize",
                self.store.max_message_size_bytes, FRAME_HEADROOM_BYTES, limits.max_frame_bytes
            )));
        }
        let r = &self.retention;
        if r.disk_space_clean_forcibly_ratio_pct > r.disk_space_warning_level_ratio_pct {
            return Err(ConfigError::Conflict(format!(
                "diskSpaceCleanForciblyRatio {}% exceeds diskSpaceWarningLevelRatio {}%: writes would be refused \
                 before forcible cleaning starts",
                r.disk_space_clean_forcibly_ratio_pct, r.disk_space_warning_level_ratio_pct
            )));
        }
        if self.flush.max_pending_bytes < self.flush.max_batch_bytes {
            return Err(ConfigError::Conflict(format!(
                "maxPendingFlushBytes {} is below maxFlushBatchBytes {}",
                self.flush.max_pending_bytes, self.flush.max_batch_bytes
            )));
        }
        self.validate_tls()?;
        self.store_config(ShardId(0))
            .validate()
            .map_err(|e| ConfigError::Conflict(format!("store settings (mappedFileSizeCommitLog, maxMessageSize, …): {e}")))?;
        Ok(())
    }
}

impl BrokerConfig {
    /// The `[tls]` relations: a side's keys only while that side is on (never accepted and
    /// ignored); a server needs its certificate and key, client authentication a CA. The files
    /// themselves are read at start ([`BrokerConfig::tls_acceptor`], [`BrokerConfig::tls_connector`]).
    fn validate_tls(&self) -> Result<(), ConfigError> {
        let t = &self.tls;
        let conflict = |text: String| Err(ConfigError::Conflict(text));
        let server_keys = [
            ("tls.server.certPath", !t.server_cert_path.is_empty()),
            ("tls.server.keyPath", !t.server_key_path.is_empty()),
            ("tls.server.need.client.auth", t.server_need_client_auth != ClientAuth::None),
            ("tls.server.authClient", t.server_auth_client),
            ("tls.server.trustCertPath", !t.server_trust_cert_path.is_empty()),
            ("tlsKernelOffload", !t.kernel_offload),
        ];
        if t.server_mode == TlsMode::Disabled {
            if let Some((key, _)) = server_keys.iter().find(|(_, set)| *set) {
                return conflict(format!(
                    "{key} is set but tls.server.mode is disabled (FerroMQ's default): set tls.server.mode=permissive or \
                     enforcing, or remove {key}"
                ));
            }
        } else if t.server_cert_path.is_empty() || t.server_key_path.is_empty() {
            return conflict(format!("tls.server.mode={} needs tls.server.certPath and tls.server.keyPath", t.server_mode));
        } else if t.server_need_client_auth != ClientAuth::None && !t.server_auth_client {
            return conflict(format!(
                "tls.server.need.client.auth={} with tls.server.authClient=false asks to accept client certificates \
                 unverified (Java's default), which FerroMQ does not do: set tls.server.authClient=true",
                t.server_need_client_auth
            ));
        } else if t.server_need_client_auth != ClientAuth::None && t.server_trust_cert_path.is_empty() {
            return conflict(format!(
                "tls.server.need.client.auth={} needs tls.server.trustCertPath (the CA client certificates are verified against)",
                t.server_need_client_auth
            ));
        }
        let client_keys = [
            ("tls.client.authServer", t.client_auth_server),
            ("tls.client.trustCertPath", !t.client_trust_cert_path.is_empty()),
            ("tls.client.certPath", !t.client_cert_path.is_empty()),
            ("tls.client.keyPath", !t.client_key_path.is_empty()),
        ];
        if !t.enable {
            if let Some((key, _)) = client_keys.iter().find(|(_, set)| *set) {
                return conflict(format!("{key} is set but tls.enable is false: set tls.enable=true, or remove {key}"));
            }
        } else if t.client_auth_server && t.client_trust_cert_path.is_empty() {
            return conflict("tls.client.authServer=true needs tls.client.trustCertPath".to_owned());
        } else if t.client_cert_path.is_empty() != t.client_key_path.is_empty() {
            return conflict("tls.client.certPath and tls.client.keyPath go together".to_owned());
        }
        Ok(())
    }

    /// The listeners' TLS (`tls.server.*`), its PEM files read now: `None` when
    /// `tls.server.mode` is disabled. An error names the key and file at fault.
    pub fn tls_acceptor(&self) -> Result<Option<TlsAcceptor>, ConfigError> {
        let files = ServerTlsFiles {
            cert_path: PathBuf::from(&self.tls.server_cert_path),
            key_path: PathBuf::from(&self.tls.server_key_path),
            // validate_tls: a client-auth mode always comes with authClient=true.
            client_auth: if self.tls.server_auth_client { self.tls.server_need_client_auth } else { ClientAuth::None },
            trust_cert_path: Some(PathBuf::from(&self.tls.server_trust_cert_path)).filter(|p| !p.as_os_str().is_empty()),
        };
        let acceptor = TlsAcceptor::from_files(self.tls.server_mode, &files).map_err(|e| ConfigError::Conflict(format!("TLS: {e}")))?;
        Ok(acceptor.map(|a| a.with_kernel_offload(self.tls.kernel_offload)))
    }

    /// The broker's own connections' TLS (`tls.enable`, `tls.client.*`), its PEM files read now:
    /// `None` when `tls.enable` is false. An error names the key and file at fault.
    pub fn tls_connector(&self) -> Result<Option<TlsConnector>, ConfigError> {
        if !self.tls.enable {
            return Ok(None);
        }
        let path = |p: &String| Some(PathBuf::from(p)).filter(|p| !p.as_os_str().is_empty());
        let files = ClientTlsFiles {
            auth_server: self.tls.client_auth_server,
            trust_cert_path: path(&self.tls.client_trust_cert_path),
            cert_path: path(&self.tls.client_cert_path),
            key_path: path(&self.tls.client_key_path),
        };
        TlsConnector::from_files(&files).map(Some).map_err(|e| ConfigError::Conflict(format!("TLS: {e}")))
    }
}

// ------------------------------------------------------------------------------------------
// Loading
// ------------------------------------------------------------------------------------------

impl BrokerConfig {
    /// Reads `path` over the defaults: `.toml` as the native schema, anything else (normally
    /// `.properties`) as a RocketMQ properties file. Returns the configuration and the unknown
    /// keys (already logged at `warn`). Does not [`validate`](BrokerConfig::validate).
    pub fn load(path: impl AsRef<Path>) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let origin = path.display().to_string();
        let is_toml = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let mut config = BrokerConfig::default();
        let unknown =
            if is_toml { config.apply_toml_str(&text, &origin)? } else { config.apply_properties_str(&text, &origin)? };
        Ok((config, unknown))
    }

    /// Parses a RocketMQ properties text over the defaults.
    pub fn from_properties_str(text: &str) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut config = BrokerConfig::default();
        let unknown = config.apply_properties_str(text, "<properties>")?;
        Ok((config, unknown))
    }

    /// Parses a TOML text over the defaults.
    pub fn from_toml_str(text: &str) -> Result<(BrokerConfig, Vec<String>), ConfigError> {
        let mut config = BrokerConfig::default();
        let unknown = config.apply_toml_str(text, "<toml>")?;
        Ok((config, unknown))
    }

    /// Applies every key of a properties text over `self`; returns the unknown keys.
    pub fn apply_properties_str(&mut self, text: &str, origin: &str) -> Result<Vec<String>, ConfigError> {
        let map = java_properties::read(text.as_bytes())
            .map_err(|source| ConfigError::Properties { origin: origin.to_owned(), source })?;
        let mut entries: Vec<(String, String)> = map.into_iter().collect();
        entries.sort();
        let mut unknown = Vec::new();
        for (key, value) in entries {
            if !self.apply_java_key(&key, value.trim())? {
                tracing::warn!(key = %key, origin, "unknown configuration key {key:?} ignored");
                unknown.push(key);
            }
        }
        Ok(unknown)
    }

    /// Applies every key of a TOML text over `self`; returns the unknown keys as
    /// `section.key` (or `section` for an unknown or non-table top-level entry).
    pub fn apply_toml_str(&mut self, text: &str, origin: &str) -> Result<Vec<String>, ConfigError> {
        let table: toml::Table =
            toml::from_str(text).map_err(|source| ConfigError::Toml { origin: origin.to_owned(), source })?;
        let mut unknown = Vec::new();
        for (section, body) in &table {
            let Some(entries) = body.as_table().filter(|_| SECTIONS.contains(&section.as_str())) else {
                tracing::warn!(key = %section, origin, "unknown configuration section {section:?} ignored");
                unknown.push(section.clone());
                continue;
            };
            for (name, value) in entries {
                let dotted = format!("{section}.{name}");
                let Some(key) = KEYS.iter().find(|k| k.section == section && k.name == name) else {
                    tracing::warn!(key = %dotted, origin, "unknown configuration key {dotted:?} ignored");
                    unknown.push(dotted);
                    continue;
                };
                let text = toml_scalar(key.kind, value).ok_or_else(|| invalid(&dotted, &value.to_string(), key.kind.toml_expected()))?;
                (key.set)(self, &text).map_err(|expected| invalid(&dotted, &text, expected))?;
                warn_if_not_applied(self, key);
            }
        }
        Ok(unknown)
    }

    /// Sets one key from the command line (`-n 10.0.0.1:9876` is `namesrvAddr`): a Java
    /// properties key (`namesrvAddr`, `listenPort`, FerroMQ's `shards`, …) or a TOML
    /// `section.key` (`store.segment_size_bytes`). Unlike in files, an unknown key is an error.
    pub fn apply_override(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let value = value.trim();
        if self.apply_java_key(key, value)? {
            return Ok(());
        }
        if let Some((section, name)) = key.split_once('.')
            && let Some(entry) = KEYS.iter().find(|k| k.section == section && k.name == name)
        {
            (entry.set)(self, value).map_err(|expected| invalid(key, value, expected))?;
            warn_if_not_applied(self, entry);
            return Ok(());
        }
        Err(ConfigError::UnknownKey { key: key.to_owned() })
    }

    /// Applies one Java key. `Ok(false)`: the key is unknown (the caller decides).
    fn apply_java_key(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        let canonical = JAVA_ALIASES.iter().find(|(alias, _)| *alias == key).map_or(key, |(_, canonical)| *canonical);
        if let Some(entry) = KEYS.iter().find(|k| k.java == canonical) {
            (entry.set)(self, value).map_err(|expected| invalid(key, value, expected))?;
            warn_if_not_applied(self, entry);
            return Ok(true);
        }
        if let Some((_, required, why)) = FIXED_VALUE_KEYS.iter().find(|(k, _, _)| *k == key) {
            let matches = required.matches(value).map_err(|expected| invalid(key, value, expected))?;
            if !matches {
                return Err(invalid(key, value, format!("{required}: {why}")));
            }
            tracing::info!(key, "configuration key {key:?} has no effect in FerroMQ ({why})");
            return Ok(true);
        }
        if let Some((_, why)) = NO_EFFECT_KEYS.iter().find(|(k, _)| *k == key) {
            tracing::info!(key, "configuration key {key:?} has no effect in FerroMQ ({why})");
            return Ok(true);
        }
        if let Some(why) = not_applied_yet(key) {
            tracing::warn!(key, "configuration key {key:?} is accepted but not applied yet: {why}");
            return Ok(true);
        }
        Ok(false)
    }
}

/// Second Java spellings of [`KEYS`] entries (alias, key): `tlsMode` is FerroMQ's short name of
/// `tls.server.mode`; `useTLS` is the client-config name Java's broker reads for `tls.enable`;
/// `haSlaveFallbehindMax` is the 4.9 name of `haMaxGapNotInSync` (the same test in
/// `HAService.isSlaveOK`, renamed in 5.0).
pub const JAVA_ALIASES: &[(&str, &str)] =
    &[("tlsMode", "tls.server.mode"), ("useTLS", "tls.enable"), ("haSlaveFallbehindMax", "haMaxGapNotInSync")];

/// Logs, at `warn`, that `key` was set to a value that is not applied yet ([`AWAITING_WIRING`],
/// [`AWAITING_FEATURE`]), so that the operator who chose it is not misled. Its default is not
/// reported: `tuning/default.toml` writes every key out, and nobody chose that value.
fn warn_if_not_applied(config: &BrokerConfig, key: &Key) {
    if let Some(why) = not_applied_yet(key.java)
        && (key.get)(config) != (key.get)(&BrokerConfig::default())
    {
        tracing::warn!(key = key.java, "configuration key {:?} is accepted but not applied yet: {why}", key.java);
    }
}

fn toml_scalar(kind: Kind, value: &toml::Value) -> Option<String> {
    match (kind, value) {
        (Kind::Bool, toml::Value::Boolean(b)) => Some(b.to_string()),
        (Kind::Int, toml::Value::Integer(i)) => Some(i.to_string()),
        (Kind::Str, toml::Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

// ------------------------------------------------------------------------------------------
// Writing
// ------------------------------------------------------------------------------------------

impl BrokerConfig {
    /// The effective configuration as Java properties text, one `key=value` line per key
    /// (GET_BROKER_CONFIG's body, `mqadmin getBrokerConfig`). Derived values are written
    /// resolved: `brokerIP1` as advertised, `haListenPort` and `storePathCommitLog` computed.
    /// Like Java's `MixAll.properties2String`, values are not escaped except `\` and line
    /// breaks.
    pub fn to_properties_text(&self) -> String {
        let mut out = String::new();
        for key in KEYS {
            let value = (key.effective)(self);
            out.push_str(key.java);
            out.push('=');
            for ch in value.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    _ => out.push(ch),
                }
            }
            out.push('\n');
        }
        out
    }

    /// The configuration as TOML in the native schema, every key present with a one-line
    /// comment; derived values stay unresolved (`ip1 = ""`, `ha.listen_port = 0`) so that
    /// reading the text back gives an equal configuration.
    pub fn to_toml_text(&self) -> String {
        let mut out = String::new();
        for section in SECTIONS {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("[{section}]\n"));
            for key in KEYS.iter().filter(|k| k.section == *section) {
                let raw = (key.get)(self);
                let rendered = match key.kind {
                    Kind::Str => toml::Value::String(raw).to_string(),
                    Kind::Int | Kind::Bool => raw,
                };
                out.push_str(&format!("# {} ({})\n{} = {}\n", key.doc, key.java, key.name, rendered));
            }
        }
        out
    }
}

// ------------------------------------------------------------------------------------------
// The key table
// ------------------------------------------------------------------------------------------

/// TOML sections, in the order [`BrokerConfig::to_toml_text`] writes them.
pub const SECTIONS: &[&str] =
    &["broker", "namesrv", "topics", "consumer", "transaction", "timer", "store", "retention", "flush", "ha", "io", "limits", "metrics", "acl", "tls"];

/// The TOML type of a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Str,
}

impl Kind {
    fn toml_expected(self) -> &'static str {
        match self {
            Kind::Bool => "a TOML boolean (true or false)",
            Kind::Int => "a TOML integer",
            Kind::Str => "a TOML string",
        }
    }
}

/// One configuration key, in both formats.
pub struct Key {
    /// The properties key (Java's name, or FerroMQ's camelCase name for its own settings).
    pub java: &'static str,
    /// TOML section.
    pub section: &'static str,
    /// TOML key within the section.
    pub name: &'static str,
    /// TOML value type.
    pub kind: Kind,
    /// One line: unit, default, bounds.
    pub doc: &'static str,
    /// The [`BrokerConfig`] field the key sets, as a path (`"broker.listen_port"`). Always
    /// `section.name`: the TOML schema is named after the fields. The test
    /// `every_key_is_read_or_listed` looks for reads of this path in the broker's sources.
    pub field: &'static str,
    /// The stored value as text (derived defaults unresolved: empty / 0).
    get: fn(&BrokerConfig) -> String,
    /// The effective value as text (derived defaults resolved).
    effective: fn(&BrokerConfig) -> String,
    /// Parses and stores a value; `Err` says what was expected.
    set: fn(&mut BrokerConfig, &str) -> Result<(), String>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({} = {}.{})", self.java, self.section, self.name)
    }
}

impl Key {
    /// The key's stored value in `config`, as text (UPDATE_BROKER_CONFIG's runtime file).
    pub fn value(&self, config: &BrokerConfig) -> String {
        (self.get)(config)
    }
}

macro_rules! num_key {
    ($java:literal, $section:literal, $name:literal, $doc:literal, $($field:ident).+, $min:expr, $max:expr, $unit:literal) => {
        Key {
            java: $java,
            section: $section,
            name: $name,
            kind: Kind::Int,
            doc: $doc,
            field: stringify!($($field).+),
            get: |c| c.$($field).+.to_string(),
            effective: |c| c.$($field).+.to_string(),
            set: |c, v| {
                c.$($field).+ = parse_num(v, $min, $max, $unit)?;
                Ok(())
            },
        }
    };
}

macro_rules! bool_key {
    ($java:literal, $section:literal, $name:literal, $doc:literal, $($field:ident).+) => {
        Key {
            java: $java,
            section: $section,
            name: $name,
            kind: Kind::Bool,
            doc: $doc,
            field: stringify!($($field).+),
            get: |c| c.$($field).+.to_string(),
            effective: |c| c.$($field).+.to_string(),
            set: |c, v| {
                c.$($field).+ = parse_bool(v)?;
                Ok(())
            },
        }
    };
}

/// A string key whose value is checked (and normalised) by `$check: fn(&str) -> Result<String, String>`.
macro_rules! text_key {
    ($java:literal, $section:literal, $name:literal, $doc:literal, $($field:ident).+, $check:expr) => {
        Key {
            java: $java,
            section: $section,
            name: $name,
            kind: Kind::Str,
            doc: $doc,
            field: stringify!($($field).+),
            get: |c| c.$($field).+.to_string(),
            effective: |c| c.$($field).+.to_string(),
            set: |c, v| {
                c.$($field).+ = $check(v)?;
                Ok(())
            },
        }
    };
}

/// Every key FerroMQ uses, in both formats.
pub static KEYS: &[Key] = &[
    // [broker]
    text_key!("brokerClusterName", "broker", "cluster_name", "cluster name; default DefaultCluster; non-empty",
        broker.cluster_name, non_empty),
    Key {
        java: "brokerName",
        section: "broker",
        name: "name",
        kind: Kind::Str,
        doc: "broker group name; default (empty): the host name",
        field: "broker.name",
        get: |c| c.broker.name.clone(),
        effective: |c| c.broker.name.clone(),
        set: |c, v| {
            c.broker.name = if v.is_empty() { default_broker_name() } else { v.to_owned() };
            Ok(())
        },
    },
    num_key!("brokerId", "broker", "id", "0 = master, >= 1 = slave; default 0", broker.id, 0u64, i64::MAX as u64, "an id"),
    text_key!("brokerRole", "broker", "role", "ASYNC_MASTER | SYNC_MASTER | SLAVE; default ASYNC_MASTER",
        broker.role, |v: &str| v.parse::<BrokerRole>()),
    num_key!("brokerPermission", "broker", "permission", "permission mask 4 read | 2 write | 1 inherit | 8 priority; default 6; 0..=15",
        broker.permission, 0u32, 15u32, "a permission mask"),
    num_key!("listenPort", "broker", "listen_port", "main remoting port; default 10911; 1..=65535",
        broker.listen_port, 1u16, u16::MAX, "a TCP port"),
    bool_key!("fastListenPortEnable", "broker", "fast_listen_port_enable",
        "also serve the protocol on Java's fast (VIP) port, listenPort - 2, for clients <= 4.4.0; default true",
        broker.fast_listen_port_enable),
    text_key!("bindAddress", "broker", "bind_address", "local address the listeners bind; default 0.0.0.0",
        broker.bind_address, parse_ip),
    Key {
        java: "brokerIP1",
        section: "broker",
        name: "ip1",
        kind: Kind::Str,
        doc: "advertised address (routes, STOREHOST); default (empty): 127.0.0.1 with the embedded name server, else the first non-loopback IPv4",
        field: "broker.ip1",
        get: |c| c.broker.ip1.map(|ip| ip.to_string()).unwrap_or_default(),
        effective: |c| c.advertised_ip(c.uses_embedded_namesrv()).to_string(),
        set: |c, v| {
            c.broker.ip1 = parse_optional_ip(v)?;
            Ok(())
        },
    },
    Key {
        java: "brokerIP2",
        section: "broker",
        name: "ip2",
        kind: Kind::Str,
        doc: "advertised HA address; default (empty): the advertised brokerIP1",
        field: "broker.ip2",
        get: |c| c.broker.ip2.map(|ip| ip.to_string()).unwrap_or_default(),
        effective: |c| c.advertised_ha_ip(c.uses_embedded_namesrv()).to_string(),
        set: |c, v| {
            c.broker.ip2 = parse_optional_ip(v)?;
            Ok(())
        },
    },
    text_key!("regionId", "broker", "region_id", "MSG_REGION of send responses and stored messages; default DefaultRegion",
        broker.region_id, non_empty),
    bool_key!("traceOn", "broker", "trace_on", "TRACE_ON of send responses and stored messages; default true", broker.trace_on),
    text_key!("configBlackList", "broker", "config_black_list", "keys UPDATE_BROKER_CONFIG may never change, ;-separated; default configBlackList;brokerConfigPath",
        broker.config_black_list, any_text),
    // [namesrv]
    Key {
        java: "namesrvAddr",
        section: "namesrv",
        name: "addr",
        kind: Kind::Str,
        doc: "name servers host:port;host:port; default (empty): NAMESRV_ADDR, else the embedded name server",
        field: "namesrv.addr",
        get: |c| c.namesrv.addr.join(";"),
        effective: |c| c.namesrv.addr.join(";"),
        set: |c, v| {
            c.namesrv.addr = parse_namesrv_list(v)?;
            Ok(())
        },
    },
    Key {
        java: "registerNameServerPeriod",
        section: "namesrv",
        name: "register_period_ms",
        kind: Kind::Int,
        doc: "ms between registrations; default 30000; clamped to 10000..=60000",
        field: "namesrv.register_period_ms",
        get: |c| c.namesrv.register_period_ms.to_string(),
        effective: |c| c.namesrv.register_period_ms.to_string(),
        set: |c, v| {
            let wanted: u64 = parse_num(v, 0, u64::MAX, "milliseconds")?;
            let clamped = wanted.clamp(REGISTER_PERIOD_MIN_MS, REGISTER_PERIOD_MAX_MS);
            if clamped != wanted {
                tracing::info!(wanted, clamped, "registerNameServerPeriod clamped to 10000..=60000 ms, as Java does");
            }
            c.namesrv.register_period_ms = clamped;
            Ok(())
        },
    },
    num_key!("registerBrokerTimeoutMills", "namesrv", "register_timeout_ms", "ms a registration waits for an answer; default 24000; 100..=300000",
        namesrv.register_timeout_ms, 100u64, 300_000u64, "milliseconds"),
    bool_key!("forceRegister", "namesrv", "force_register", "register the full topic table every period; default true",
        namesrv.force_register),
    bool_key!("compressedRegister", "namesrv", "compressed_register", "zlib-compress registrations; default false",
        namesrv.compressed_register),
    num_key!("embeddedNamesrvPort", "namesrv", "embedded_port", "port of the embedded name server on 127.0.0.1 (no namesrvAddr); default 9876; 1..=65535",
        namesrv.embedded_port, 1u16, u16::MAX, "a TCP port"),
    // [topics]
    bool_key!("autoCreateTopicEnable", "topics", "auto_create_topic_enable", "producers create topics by sending (TBW102); default true",
        topics.auto_create_topic_enable),
    num_key!("defaultTopicQueueNums", "topics", "default_topic_queue_nums", "queues of TBW102 / auto-created topics; default 8; 1..=1024",
        topics.default_topic_queue_nums, 1u32, 1024u32, "a queue count"),
    bool_key!("autoCreateSubscriptionGroup", "topics", "auto_create_subscription_group", "create consumer groups on first use; default true",
        topics.auto_create_subscription_group),
    bool_key!("clusterTopicEnable", "topics", "cluster_topic_enable", "register a topic named after the cluster; default true",
        topics.cluster_topic_enable),
    bool_key!("brokerTopicEnable", "topics", "broker_topic_enable", "register a topic named after the broker; default true",
        topics.broker_topic_enable),
    num_key!("maxAutoCreatedTopics", "topics", "max_auto_created_topics", "topics besides system topics beyond which sends and new groups create none; default 20000; 0..=10000000",
        topics.max_auto_created_topics, 0usize, 10_000_000usize, "a topic count"),
    num_key!("maxAutoCreatedSubscriptionGroups", "topics", "max_auto_created_subscription_groups", "groups besides pre-created ones beyond which heartbeats create none; default 10000; 0..=10000000",
        topics.max_auto_created_subscription_groups, 0usize, 10_000_000usize, "a group count"),
    bool_key!("traceTopicEnable", "topics", "trace_topic_enable", "create the message-trace topic at start; default false",
        topics.trace_topic_enable),
    text_key!("msgTraceTopicName", "topics", "trace_topic_name", "the message-trace topic; default RMQ_SYS_TRACE_TOPIC",
        topics.trace_topic_name, non_empty),
    // [consumer]
    bool_key!("longPollingEnable", "consumer", "long_polling_enable", "hold empty pulls until a message arrives; default true",
        consumer.long_polling_enable),
    bool_key!("enablePropertyFilter", "consumer", "enable_property_filter", "serve SQL92 subscriptions; default false",
        consumer.enable_property_filter),
    num_key!("shortPollingTimeMills", "consumer", "short_polling_time_ms", "ms an empty pull is held without long polling; default 1000; 1..=60000",
        consumer.short_polling_time_ms, 1u64, 60_000u64, "milliseconds"),
    bool_key!("notifyConsumerIdsChangedEnable", "consumer", "notify_consumer_ids_changed_enable", "push code 40 on group changes; default true",
        consumer.notify_consumer_ids_changed_enable),
    bool_key!("slaveReadEnable", "consumer", "slave_read_enable", "steer consumers to a slave when reading from disk; default false",
        consumer.slave_read_enable),
    num_key!("accessMessageInMemoryMaxRatio", "consumer", "access_message_in_memory_max_ratio_pct",
        "slaveReadEnable: % of memory behind the log head beyond which a pull is steered to the group's whichBrokerWhenConsumeSlowly; default 40; 0..=100",
        consumer.access_message_in_memory_max_ratio_pct, 0u32, 100u32, "a percentage"),
    num_key!("channelExpiredTimeout", "consumer", "channel_expired_timeout_ms", "ms without heartbeat before a client is dropped; default 120000; 1000..=3600000",
        consumer.channel_expired_timeout_ms, 1000u64, 3_600_000u64, "milliseconds"),
    num_key!("flushConsumerOffsetInterval", "consumer", "flush_consumer_offset_interval_ms", "ms between consumer-offset persists; default 5000; 100..=3600000",
        consumer.flush_consumer_offset_interval_ms, 100u64, 3_600_000u64, "milliseconds"),
    // [transaction]
    bool_key!("rejectTransactionMessage", "transaction", "reject_transaction_message", "refuse half messages; default false",
        transaction.reject_transaction_message),
    num_key!("transactionTimeOut", "transaction", "timeout_ms", "ms before an unresolved half message is checked; default 6000; 1..=86400000",
        transaction.timeout_ms, 1u64, 86_400_000u64, "milliseconds"),
    num_key!("transactionCheckMax", "transaction", "check_max", "check-backs before discarding; default 15; 1..=1000",
        transaction.check_max, 1u32, 1000u32, "a count"),
    num_key!("transactionCheckInterval", "transaction", "check_interval_ms", "ms between check passes; default 30000; 1000..=86400000",
        transaction.check_interval_ms, 1000u64, 86_400_000u64, "milliseconds"),
    // [timer]
    bool_key!("timerWheelEnable", "timer", "wheel_enable", "serve timer messages (TIMER_* properties); default true", timer.wheel_enable),
    num_key!("timerMaxDelaySec", "timer", "max_delay_secs", "longest timer delay in seconds; default 259200; 1..=31536000",
        timer.max_delay_secs, 1u64, 31_536_000u64, "seconds"),
    num_key!("timerPrecisionMs", "timer", "precision_ms", "timer-wheel slot width in ms; default 100; 10..=10000",
        timer.precision_ms, 10u64, 10_000u64, "milliseconds"),
    num_key!("timerMaxLoadedEntries", "timer", "max_loaded_entries", "timer entries held in memory; default 65536; 16..=10000000",
        timer.max_loaded_entries, 16usize, 10_000_000usize, "an entry count"),
    // [store]
    Key {
        java: "storePathRootDir",
        section: "store",
        name: "root_dir",
        kind: Kind::Str,
        doc: "store root; shard n uses <root_dir>/shard-<n>; default (empty): $HOME/store",
        field: "store.root_dir",
        get: |c| c.store.root_dir.to_string_lossy().into_owned(),
        effective: |c| c.store.root_dir.to_string_lossy().into_owned(),
        set: |c, v| {
            c.store.root_dir = if v.is_empty() { default_store_root() } else { PathBuf::from(v) };
            Ok(())
        },
    },
    Key {
        java: "storePathCommitLog",
        section: "store",
        name: "commit_log_dir",
        kind: Kind::Str,
        doc: "Java's commit-log dir; only the default (empty or <root_dir>/commitlog) is accepted: FerroMQ uses <root_dir>/shard-<n>/commitlog",
        field: "store.commit_log_dir",
        get: |c| c.store.commit_log_dir.as_ref().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default(),
        effective: |c| c.commit_log_dir().to_string_lossy().into_owned(),
        set: |c, v| {
            c.store.commit_log_dir = if v.is_empty() { None } else { Some(PathBuf::from(v)) };
            Ok(())
        },
    },
    num_key!("mappedFileSizeCommitLog", "store", "segment_size_bytes", "bytes per commit-log segment; default 1073741824; 4096..=17179869184",
        store.segment_size_bytes, 4096u64, 16u64 << 30, "bytes"),
    num_key!("mappedFileSizeConsumeQueue", "store", "cq_file_size_bytes", "bytes per consume-queue file (rounded up to 20); default 6000000; 20..=2147483647",
        store.cq_file_size_bytes, CQ_UNIT_BYTES, i32::MAX as u64, "bytes"),
    num_key!("maxMessageSize", "store", "max_message_size_bytes", "largest body / batch body; default 4194304; 1..=1073741824 and <= max_frame_bytes - 65536",
        store.max_message_size_bytes, 1usize, 1usize << 30, "bytes"),
    text_key!("messageDelayLevel", "store", "message_delay_level", "delay levels, space-separated durations (s, m, h, d)",
        store.message_delay_level, |v: &str| parse_delay_levels(v).map(|_| v.to_owned())),
    bool_key!("messageIndexEnable", "store", "index_enable", "build the key / unique-id index; default true", store.index_enable),
    num_key!("maxHashSlotNum", "store", "index_hash_slots", "hash slots per index file; default 5000000; 1..=100000000",
        store.index_hash_slots, 1u32, 100_000_000u32, "a slot count"),
    num_key!("maxIndexNum", "store", "index_max_entries", "entries per index file; default 20000000; 2..=400000000",
        store.index_max_entries, 2u32, 400_000_000u32, "an entry count"),
    num_key!("defaultQueryMaxNum", "store", "default_query_max_num", "maxNum of QUERY_MESSAGE lookups by message id; default 32; 1..=100000",
        store.default_query_max_num, 1u32, 100_000u32, "a count"),
    num_key!("maxMsgsNumBatch", "store", "query_max_messages", "most records one QUERY_MESSAGE returns; default 64; 1..=1024",
        store.query_max_messages, 1u32, 1024u32, "a count"),
    num_key!("maxTransferBytesOnMessageInMemory", "store", "max_transfer_bytes", "most body bytes per pull; default 262144; 1..=1073741824",
        store.max_transfer_bytes, 1u32, 1u32 << 30, "bytes"),
    num_key!("maxTransferCountOnMessageInMemory", "store", "max_transfer_count", "most messages per pull; default 32; 1..=65535",
        store.max_transfer_count, 1u32, 65_535u32, "a count"),
    bool_key!("checkCRCOnRecover", "store", "check_crc_on_recover", "re-check body CRCs in recovery; default true",
        store.check_crc_on_recover),
    Key {
        java: "maxOpenConsumeQueueFiles",
        section: "store",
        name: "max_open_cq_files",
        kind: Kind::Int,
        doc: "consume-queue files kept open, split over the shards; default 0 = half the open-file limit; 0..=16777216",
        field: "store.max_open_cq_files",
        get: |c| c.store.max_open_cq_files.to_string(),
        effective: |c| c.effective_max_open_cq_files().to_string(),
        set: |c, v| {
            c.store.max_open_cq_files = parse_num(v, 0usize, MAX_OPEN_CQ_FILES, "a file count")?;
            Ok(())
        },
    },
    // [retention]
    text_key!("deleteWhen", "retention", "delete_when", "hours (0..=23, ;-separated) when expired segments are deleted; default 04",
        retention.delete_when, parse_delete_when),
    num_key!("fileReservedTime", "retention", "file_reserved_time_hours", "hours a segment is kept; default 72; 1..=87600",
        retention.file_reserved_time_hours, 1u64, 87_600u64, "hours"),
    Key {
        java: "diskMaxUsedSpaceRatio",
        section: "retention",
        name: "disk_max_used_space_ratio_pct",
        kind: Kind::Int,
        doc: "disk usage % above which expired segments go at any hour; default 75; clamped to 10..=95",
        field: "retention.disk_max_used_space_ratio_pct",
        get: |c| c.retention.disk_max_used_space_ratio_pct.to_string(),
        effective: |c| c.retention.disk_max_used_space_ratio_pct.to_string(),
        set: |c, v| {
            let wanted: u32 = parse_num(v, 0, u32::MAX, "a percentage")?;
            let clamped = wanted.clamp(10, 95);
            if clamped != wanted {
                tracing::info!(wanted, clamped, "diskMaxUsedSpaceRatio clamped to 10..=95 %, as Java does");
            }
            c.retention.disk_max_used_space_ratio_pct = clamped;
            Ok(())
        },
    },
    num_key!("diskSpaceCleanForciblyRatio", "retention", "disk_space_clean_forcibly_ratio_pct", "disk usage % above which unexpired segments go; default 85; 1..=99",
        retention.disk_space_clean_forcibly_ratio_pct, 1u32, 99u32, "a percentage"),
    num_key!("diskSpaceWarningLevelRatio", "retention", "disk_space_warning_level_ratio_pct", "disk usage % above which sends are refused; default 90; 1..=99",
        retention.disk_space_warning_level_ratio_pct, 1u32, 99u32, "a percentage"),
    bool_key!("cleanFileForciblyEnable", "retention", "clean_file_forcibly_enable", "delete unexpired segments when the disk is nearly full; default true",
        retention.clean_file_forcibly_enable),
    num_key!("deleteFileBatchMax", "retention", "delete_file_batch_max", "most segments deleted per pass; default 10; 1..=10000",
        retention.delete_file_batch_max, 1usize, 10_000usize, "a count"),
    // [flush]
    text_key!("flushDiskType", "flush", "disk_type", "ASYNC_FLUSH | SYNC_FLUSH; default ASYNC_FLUSH",
        flush.disk_type, |v: &str| v.parse::<FlushDiskType>()),
    num_key!("flushIntervalCommitLog", "flush", "interval_ms", "ASYNC_FLUSH: ms between syncs while dirty; default 500; 1..=60000",
        flush.interval_ms, 1u64, 60_000u64, "milliseconds"),
    bool_key!("flushCommitLogTimed", "flush", "timed", "ASYNC_FLUSH: sync on the timer only (every interval_ms while dirty); false: also once least_pages are dirty; default true",
        flush.timed),
    num_key!("flushCommitLogLeastPages", "flush", "least_pages", "ASYNC_FLUSH, timed = false: sync once this many 4 KiB pages are dirty; default 4; 0..=262144",
        flush.least_pages, 0u64, 262_144u64, "pages of 4 KiB"),
    num_key!("syncFlushTimeout", "flush", "sync_flush_timeout_ms", "SYNC_FLUSH: ms before FLUSH_DISK_TIMEOUT; default 5000; 1..=600000",
        flush.sync_flush_timeout_ms, 1u64, 600_000u64, "milliseconds"),
    num_key!("flushIntervalConsumeQueue", "flush", "consume_queue_interval_ms", "ms between consume-queue/index syncs and checkpoints; default 1000; 1..=600000",
        flush.consume_queue_interval_ms, 1u64, 600_000u64, "milliseconds"),
    num_key!("flushConsumeQueueLeastPages", "flush", "consume_queue_least_pages", "consume-queue pages (4 KiB) unwritten before a queue's file is written, unsynced before a periodic checkpoint syncs it; default 2; 0..=1024",
        flush.consume_queue_least_pages, 0u64, 1024u64, "pages of 4 KiB"),
    num_key!("flushConsumeQueueThoroughInterval", "flush", "consume_queue_thorough_interval_ms", "ms between checkpoints that sync every consume queue; default 60000; 1..=3600000",
        flush.consume_queue_thorough_interval_ms, 1u64, 3_600_000u64, "milliseconds"),
    num_key!("maxFlushBatchBytes", "flush", "max_batch_bytes", "largest single commit-log write; default 4194304; 1024..=1073741824",
        flush.max_batch_bytes, 1024usize, 1usize << 30, "bytes"),
    num_key!("maxPendingFlushBytes", "flush", "max_pending_bytes", "unwritten bytes per shard before SYSTEM_BUSY; default 67108864; 4096..=17179869184",
        flush.max_pending_bytes, 4096usize, 16usize << 30, "bytes"),
    // [ha]
    Key {
        java: "haListenPort",
        section: "ha",
        name: "listen_port",
        kind: Kind::Int,
        doc: "master HA port; default 0 / empty: listenPort + 1",
        field: "ha.listen_port",
        get: |c| c.ha.listen_port.map_or(0, u32::from).to_string(),
        effective: |c| c.ha_listen_port().to_string(),
        set: |c, v| {
            c.ha.listen_port = if v.is_empty() || v == "0" { None } else { Some(parse_num(v, 1u16, u16::MAX, "a TCP port")?) };
            Ok(())
        },
    },
    Key {
        java: "haMasterAddress",
        section: "ha",
        name: "master_address",
        kind: Kind::Str,
        doc: "slave: static host:port of the master's HA port; default (empty): learned from the name server",
        field: "ha.master_address",
        get: |c| c.ha.master_address.clone().unwrap_or_default(),
        effective: |c| c.ha.master_address.clone().unwrap_or_default(),
        set: |c, v| {
            c.ha.master_address = if v.is_empty() { None } else { Some(parse_host_port(v)?) };
            Ok(())
        },
    },
    num_key!("slaveSyncIntervalMillis", "ha", "sync_interval_ms", "slave: ms between metadata syncs from the master; default 10000; 100..=3600000",
        ha.sync_interval_ms, 100u64, 3_600_000u64, "milliseconds"),
    num_key!("slaveTimeout", "ha", "slave_timeout_ms", "SYNC_MASTER: ms before FLUSH_SLAVE_TIMEOUT; default 3000; 1..=600000",
        ha.slave_timeout_ms, 1u64, 600_000u64, "milliseconds"),
    num_key!("haSendHeartbeatInterval", "ha", "send_heartbeat_interval_ms", "ms between idle slave reports; default 5000; 100..=600000",
        ha.send_heartbeat_interval_ms, 100u64, 600_000u64, "milliseconds"),
    num_key!("haHousekeepingInterval", "ha", "housekeeping_interval_ms", "ms of silence before an HA connection closes; default 20000; 1000..=3600000",
        ha.housekeeping_interval_ms, 1000u64, 3_600_000u64, "milliseconds"),
    num_key!("haTransferBatchSize", "ha", "transfer_batch_bytes", "log bytes per replication frame; default 32768; 1024..=67108864",
        ha.transfer_batch_bytes, 1024u32, 64u32 << 20, "bytes"),
    num_key!("haMaxGapNotInSync", "ha", "max_gap_not_in_sync_bytes", "lag beyond which a slave is not in sync (4.9: haSlaveFallbehindMax); default 268435456; 1..=1099511627776",
        ha.max_gap_not_in_sync_bytes, 1u64, 1u64 << 40, "bytes"),
    // [io]
    text_key!("io.backend", "io", "backend", "auto | io_uring | epoll; default auto; FERROMQ_IO_BACKEND overrides",
        io.backend, |v: &str| v.parse::<IoBackend>().map_err(|_| "auto, io_uring or epoll".to_owned())),
    num_key!("shards", "io", "shards", "shard threads, 0 = one per CPU; default 0; 0..=256",
        io.shards, 0u32, MAX_SHARDS, "a shard count"),
    // [limits]
    num_key!("maxFrameBytes", "limits", "max_frame_bytes", "largest accepted frame; default 16777216; 4096..=1073741824",
        limits.max_frame_bytes, 4096usize, 1usize << 30, "bytes"),
    num_key!("maxHeaderBytes", "limits", "max_header_bytes", "largest accepted frame header; default 4194304; 1024..=max_frame_bytes",
        limits.max_header_bytes, 1024usize, 1usize << 30, "bytes"),
    num_key!("maxConnections", "limits", "max_connections", "open connections per listener; default 10000; 1..=1000000",
        limits.max_connections, 1usize, 1_000_000usize, "a connection count"),
    num_key!("maxInFlightRequestsPerConnection", "limits", "max_in_flight_requests_per_connection", "requests served at once per connection; default 1024; 1..=1000000",
        limits.max_in_flight_requests_per_connection, 1usize, 1_000_000usize, "a request count"),
    num_key!("writeQueueFrames", "limits", "write_queue_frames", "frames queued per connection writer; default 64; 1..=1000000",
        limits.write_queue_frames, 1usize, 1_000_000usize, "a frame count"),
    num_key!("writeQueueBytes", "limits", "write_queue_bytes", "bytes queued per connection writer before the connection stops serving requests; default 4194304; 4096..=1073741824",
        limits.write_queue_bytes, 4096usize, 1usize << 30, "a byte count"),
    num_key!("serverChannelMaxIdleTimeSeconds", "limits", "idle_connection_timeout_secs", "seconds a connection with no traffic and no request in flight stays open; 0 = never; default 120; 0..=86400",
        limits.idle_connection_timeout_secs, 0u64, 86_400u64, "seconds"),
    num_key!("maxHeldPullsPerShard", "limits", "max_held_pulls_per_shard", "long-polling pulls held per shard; default 65536; 1..=10000000",
        limits.max_held_pulls_per_shard, 1usize, 10_000_000usize, "a pull count"),
    num_key!("crossShardQueueDepth", "limits", "cross_shard_queue_depth", "requests queued from one shard to another; default 4096; 1..=1000000",
        limits.cross_shard_queue_depth, 1usize, 1_000_000usize, "a request count"),
    num_key!("crossShardMaxRunningJobs", "limits", "cross_shard_max_running_jobs", "jobs from other shards run at once per shard; default 1024; 1..=1000000",
        limits.cross_shard_max_running_jobs, 1usize, 1_000_000usize, "a job count"),
    num_key!("controlQueueDepth", "limits", "control_queue_depth", "commands queued for the control thread; default 16384; 1..=1000000",
        limits.control_queue_depth, 1usize, 1_000_000usize, "a command count"),
    num_key!("maxPendingOffsetCommitsPerShard", "limits", "max_pending_offset_commits_per_shard", "offset commits one shard coalesces; default 65536; 1..=10000000",
        limits.max_pending_offset_commits_per_shard, 1usize, 10_000_000usize, "a commit count"),
    num_key!("shardEventQueueDepth", "limits", "shard_event_queue_depth", "notifications queued to one shard; default 4096; 1..=1000000",
        limits.shard_event_queue_depth, 1usize, 1_000_000usize, "an event count"),
    // [metrics]
    text_key!("metricsExporterType", "metrics", "exporter_type", "DISABLE | PROM; default DISABLE; OTLP_GRPC and LOG are refused",
        metrics.exporter_type, |v: &str| v.parse::<MetricsExporterType>()),
    Key {
        java: "metricsPromExporterHost",
        section: "metrics",
        name: "prom_exporter_host",
        kind: Kind::Str,
        doc: "address of the Prometheus endpoint; default (empty): brokerIP1 as advertised",
        field: "metrics.prom_exporter_host",
        get: |c| c.metrics.prom_exporter_host.map(|ip| ip.to_string()).unwrap_or_default(),
        effective: |c| c.metrics_addr(c.uses_embedded_namesrv()).ip().to_string(),
        set: |c, v| {
            c.metrics.prom_exporter_host = parse_optional_ip(v)?;
            Ok(())
        },
    },
    num_key!("metricsPromExporterPort", "metrics", "prom_exporter_port", "port of the Prometheus endpoint, 0 = any free one; default 5557; 0..=65535",
        metrics.prom_exporter_port, 0u16, u16::MAX, "a port"),
    Key {
        java: "metricsLabel",
        section: "metrics",
        name: "label",
        kind: Kind::Str,
        doc: "extra labels on every series, name:value pairs separated by commas; default none",
        field: "metrics.label",
        get: |c| c.metrics.label.clone(),
        effective: |c| c.metrics.label.clone(),
        set: |c, v| {
            ferromq_net::metrics::parse_metrics_label(v, METRICS_COMMON_LABELS)?;
            c.metrics.label = v.to_owned();
            Ok(())
        },
    },
    // [acl]
    bool_key!("aclEnable", "acl", "enable", "check every request against plain_acl.yml; default false",
        acl.enable),
    text_key!("rocketmq.acl.plain.file", "acl", "plain_file", "the plain_acl.yml file, re-read when it changes; required with aclEnable=true",
        acl.plain_file, |v: &str| Ok::<_, String>(v.trim().to_owned())),
    text_key!("accessKey", "acl", "access_key", "account this broker signs its own requests with; default none",
        acl.access_key, |v: &str| Ok::<_, String>(v.trim().to_owned())),
    Key {
        java: "secretKey",
        section: "acl",
        name: "secret_key",
        kind: Kind::Str,
        doc: "secret of accessKey",
        field: "acl.secret_key",
        get: |c| c.acl.secret_key.clone(),
        // Never shown back (GET_BROKER_CONFIG, the start-up log).
        effective: |c| if c.acl.secret_key.is_empty() { String::new() } else { "******".to_owned() },
        set: |c, v| {
            c.acl.secret_key = v.trim().to_owned();
            Ok(())
        },
    },
    num_key!("maxAutoCreatedTopicsPerAccount", "acl", "max_auto_created_topics_per_account", "with ACL on, topics auto-created for one account since start; default 1000; 0..=1000000",
        acl.max_auto_created_topics_per_account, 0usize, 1_000_000usize, "a topic count"),
    num_key!("maxAutoCreatedSubscriptionGroupsPerAccount", "acl", "max_auto_created_subscription_groups_per_account", "with ACL on, groups auto-created for one account since start; default 1000; 0..=1000000",
        acl.max_auto_created_subscription_groups_per_account, 0usize, 1_000_000usize, "a group count"),
    num_key!("metricsOtelCardinalityLimit", "metrics", "otel_cardinality_limit", "label sets one shard keeps per metric; default 50000; 1..=10000000",
        metrics.otel_cardinality_limit, 1usize, 10_000_000usize, "a label-set count"),
    // [tls]
    text_key!("tls.server.mode", "tls", "server_mode", "disabled | permissive | enforcing (also tlsMode); default disabled (Java: permissive)",
        tls.server_mode, |v: &str| v.parse::<TlsMode>()),
    text_key!("tls.server.certPath", "tls", "server_cert_path", "server certificate chain, PEM; default none; required when tls.server.mode is not disabled",
        tls.server_cert_path, any_text),
    text_key!("tls.server.keyPath", "tls", "server_key_path", "server private key, unencrypted PEM; default none; required with server_cert_path",
        tls.server_key_path, any_text),
    text_key!("tls.server.need.client.auth", "tls", "server_need_client_auth", "none | optional | require; default none",
        tls.server_need_client_auth, |v: &str| v.parse::<ClientAuth>()),
    bool_key!("tls.server.authClient", "tls", "server_auth_client", "verify client certificates against server_trust_cert_path; default false; must be true with client auth",
        tls.server_auth_client),
    text_key!("tls.server.trustCertPath", "tls", "server_trust_cert_path", "CA certificates for client certificates, PEM; default none",
        tls.server_trust_cert_path, any_text),
    bool_key!("tlsKernelOffload", "tls", "kernel_offload", "(FerroMQ) move TLS connections into the kernel (kTLS) where it takes the cipher, keeping sendfile; default true",
        tls.kernel_offload),
    bool_key!("tls.enable", "tls", "enable", "TLS on the broker's connections to name servers and its master (also useTLS); default false",
        tls.enable),
    bool_key!("tls.client.authServer", "tls", "client_auth_server", "verify servers' certificates against client_trust_cert_path; default false (as Java)",
        tls.client_auth_server),
    text_key!("tls.client.trustCertPath", "tls", "client_trust_cert_path", "CA certificates servers are verified against, PEM; default none",
        tls.client_trust_cert_path, any_text),
    text_key!("tls.client.certPath", "tls", "client_cert_path", "client certificate for servers that ask for one, PEM; default none",
        tls.client_cert_path, any_text),
    text_key!("tls.client.keyPath", "tls", "client_key_path", "its private key, unencrypted PEM; default none",
        tls.client_key_path, any_text),
];

// ------------------------------------------------------------------------------------------
// Keys without a reader: every schema key and every accepted Java key is in exactly one place
// ------------------------------------------------------------------------------------------
//
// A key the broker accepts must do something (issue #14). Each key of [`KEYS`] is read by broker
// code — the test `every_key_is_read_or_listed` scans the sources for it — or is listed below
// with the reason it is not. Java keys outside [`KEYS`] are either refused unless they hold
// FerroMQ's fixed value ([`FIXED_VALUE_KEYS`]) or accepted because they cannot change what a
// client or operator observes ([`NO_EFFECT_KEYS`]).

/// [`KEYS`] entries that need no reader, with the reason.
pub const KEYS_WITHOUT_EFFECT: &[(&str, &str)] = &[(
    "storePathCommitLog",
    "validate() accepts only <storePathRootDir>/commitlog, the value that matches FerroMQ's fixed layout \
     (one log per shard under storePathRootDir/shard-<n>/); any other value stops the start",
)];

/// TEMPORARY: keys whose effect is still to be wired into the broker (key, where it takes
/// effect). Setting one to anything but its default logs a warning that it is not applied
/// yet. Delete an entry in the commit that wires it: the test fails while an entry here is
/// read by broker code, and `tuning/default.toml` must drop the key's "Not applied yet" note
/// at the same time.
pub const AWAITING_WIRING: &[(&str, &str)] = &[
];


/// Keys read only by a subsystem FerroMQ has not built yet (key, the subsystem, and what
/// happens meanwhile). Setting one (a schema key: to anything but
/// its default) logs a warning that it is not applied yet. Entries may be [`KEYS`] entries or
/// Java keys outside the schema.
pub const AWAITING_FEATURE: &[(&str, &str)] = &[];

/// The value a [`FIXED_VALUE_KEYS`] entry must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed {
    Bool(bool),
    Int(i64),
    Str(&'static str),
}

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fixed::Bool(b) => write!(f, "{b}"),
            Fixed::Int(i) => write!(f, "{i}"),
            Fixed::Str("") => f.write_str("empty"),
            Fixed::Str(s) => f.write_str(s),
        }
    }
}

impl Fixed {
    /// Whether `value` (trimmed) is this value; `Err` says what a value of this kind looks like.
    fn matches(self, value: &str) -> Result<bool, String> {
        match self {
            Fixed::Bool(required) => parse_bool(value).map(|b| b == required),
            Fixed::Int(required) => {
                value.parse::<i64>().map(|i| i == required).map_err(|_| "an integer".to_owned())
            }
            Fixed::Str(required) => Ok(value == required),
        }
    }
}

/// Java keys accepted only with the value that matches what FerroMQ does (key, value, why):
/// mostly a feature left off. Any other value stops the start naming the key, so a broker never
/// starts without something its file asks for.
pub const FIXED_VALUE_KEYS: &[(&str, Fixed, &str)] = &[
    ("enableDLegerCommitLog", Fixed::Bool(false), "DLedger commit logs are not supported; FerroMQ replicates master to slave (§7)"),
    ("enableControllerMode", Fixed::Bool(false), "controller-mode HA is not supported; FerroMQ replicates master to slave (§7)"),
    ("enableSlaveActingMaster", Fixed::Bool(false), "a slave acting as master is not supported"),
    ("fetchNamesrvAddrByAddressServer", Fixed::Bool(false), "address servers are not supported; set namesrvAddr or NAMESRV_ADDR"),
    ("tls.server.keyPassword", Fixed::Str(""), "encrypted private keys are not supported: give tls.server.keyPath an unencrypted PEM key"),
    ("tls.client.keyPassword", Fixed::Str(""), "encrypted private keys are not supported: give tls.client.keyPath an unencrypted PEM key"),
    ("tls.test.mode.enable", Fixed::Bool(false), "FerroMQ generates no self-signed test certificate: set tls.server.certPath and tls.server.keyPath"),
    ("tls.config.file", Fixed::Str(""), "no separate TLS file is read: put the tls.* keys in the broker's configuration file"),
    ("messageStorePlugIn", Fixed::Str(""), "Java message-store plug-ins cannot be loaded: FerroMQ's store is its own"),
    ("readOnlyCommitLogStorePaths", Fixed::Str(""), "read-only commit-log directories (Java's multi-path store) are not served: \
     every commit log is under storePathRootDir"),
    ("inSyncReplicas", Fixed::Int(1), "FerroMQ's SYNC_MASTER follows 4.x (PROTOCOL.md §7.4): it waits for one slave's acknowledgement \
     within haMaxGapNotInSync, whatever this count; 5.x's count of in-sync replicas is not implemented"),
    ("storeReplyMessageEnable", Fixed::Bool(true), "reply messages are always stored in <cluster>_REPLY_TOPIC after they are pushed \
     to the requester (Java's default); not storing them is not implemented"),
    ("validateSystemTopicWhenUpdateTopic", Fixed::Bool(true), "updateTopic on system topics is always refused (Java's default)"),
    ("filterSupportRetry", Fixed::Bool(false), "SQL92 selectors apply to the subscribed topics only (Java's default): retry topics \
     are subscribed with *, and filtering them is not implemented"),
    ("duplicationEnable", Fixed::Bool(false), "duplication mode (dispatch from the confirmed offset, no registration at start) is not supported"),
    ("enabledAppendPropCRC", Fixed::Bool(false), "properties CRCs (__CRC32#) are not written"),
    ("filterServerNums", Fixed::Int(0), "filter servers (removed in RocketMQ 5) are not supported"),
    ("enableLmq", Fixed::Bool(false), "light message queues (%LMQ% topics) are not supported"),
    ("enableMultiDispatch", Fixed::Bool(false), "multi-dispatch (INNER_MULTI_DISPATCH to light message queues) is not supported"),
    ("disableConsumeIfConsumerReadSlowly", Fixed::Bool(false), "consumption of lagging groups is never disabled"),
    ("startAcceptSendRequestTimeStamp", Fixed::Int(0), "sends are accepted as soon as the broker serves"),
    ("litePullMessageEnable", Fixed::Bool(true), "LITE_PULL_MESSAGE (361) is always served"),
    // RocketMQ 5's metrics keys for what FerroMQ does not export: OTLP over gRPC, the logging
    // exporter and delta temporality (metricsExporterType refuses OTLP_GRPC and LOG).
    ("metricsInDelta", Fixed::Bool(false), "Prometheus series are cumulative; delta temporality applies to OTLP, which is not implemented"),
    ("metricsGrpcExporterTarget", Fixed::Str(""), "the OTLP gRPC exporter is not implemented (metricsExporterType=OTLP_GRPC is refused)"),
    ("metricsGrpcExporterHeader", Fixed::Str(""), "the OTLP gRPC exporter is not implemented (metricsExporterType=OTLP_GRPC is refused)"),
    ("metricGrpcExporterTimeOutInMills", Fixed::Int(3000), "the OTLP gRPC exporter is not implemented (metricsExporterType=OTLP_GRPC is refused)"),
    ("metricGrpcExporterIntervalInMills", Fixed::Int(60_000), "the OTLP gRPC exporter is not implemented (metricsExporterType=OTLP_GRPC is refused)"),
    ("metricLoggingExporterIntervalInMills", Fixed::Int(10_000), "the logging exporter is not implemented (metricsExporterType=LOG is refused)"),
    // 5.3's switches of single metric families: FerroMQ serves each family it has whenever
    // metricsExporterType=PROM; turning one off alone is not implemented.
    ("enableRemotingMetrics", Fixed::Bool(true), METRIC_FAMILIES),
    ("enableMessageStoreMetrics", Fixed::Bool(true), METRIC_FAMILIES),
    ("enableConnectionMetrics", Fixed::Bool(true), METRIC_FAMILIES),
    ("enableStatsMetrics", Fixed::Bool(true), METRIC_FAMILIES),
    ("enableRequestMetrics", Fixed::Bool(true), METRIC_FAMILIES),
    ("enableLagAndDlqMetrics", Fixed::Bool(true), METRIC_FAMILIES),
    ("offsetCheckInSlave", Fixed::Bool(false), "a slave never moves a consumer's offset: it answers PULL_RETRY_IMMEDIATELY at the \
     offset asked for, as Java by default"),
];

const THREAD_POOL: &str = "a Java thread pool or its queue: FerroMQ serves each request on its connection's shard thread; \
     overload is bounded by maxInFlightRequestsPerConnection, crossShardQueueDepth and maxHeldPullsPerShard (SYSTEM_BUSY)";
const QUEUE_WAIT: &str = "Java sheds requests that waited too long in a thread-pool queue; FerroMQ has no such queue and \
     answers SYSTEM_BUSY at once beyond its in-flight bounds";
const NETTY_SERVER: &str = "Netty server tuning: FerroMQ's network layer (io_uring / epoll, one listener per shard) has no \
     counterpart; its bounds are maxConnections, maxFrameBytes, maxInFlightRequestsPerConnection, writeQueueFrames and writeQueueBytes";
const SOCKET_BUFFERS: &str = "socket buffer sizes: FerroMQ keeps the kernel's autotuned sizes, as Java 5.x does with its default (0)";
const NETTY_CLIENT: &str = "tuning of Java's Netty client to the name servers: FerroMQ keeps one connection per name server";
const TRANSIENT_POOL: &str = "Java's off-heap write buffer and its commit thread: FerroMQ writes each shard's log from its own \
     batch (maxFlushBatchBytes)";
const MMAP: &str = "mmap internals (pre-touching, reference-counted unmapping): FerroMQ does not mmap its log";
const CLEAN_PACING: &str = "pacing of Java's clean-up thread: FerroMQ's retention pass is bounded by deleteFileBatchMax";
const COLD_READS: &str = "Java applies tighter pull limits to messages out of the page cache: FerroMQ does not tell them \
     apart, every pull is bounded by maxTransferBytesOnMessageInMemory / maxTransferCountOnMessageInMemory";
const SQL_FILTER: &str = "internals of Java's SQL92 filter (bloom-filter consume-queue extension): FerroMQ evaluates each \
     candidate record's properties on pull";
const STATS: &str = "Java's statistics switches: FerroMQ keeps its own counters (GET_BROKER_RUNTIME_INFO)";
const METRIC_FAMILIES: &str = "every metric family FerroMQ has is served whenever metricsExporterType=PROM; switching one off alone is not implemented";
const NO_SUCH_METRICS: &str = "FerroMQ's metrics endpoint serves no pop or transaction metrics (README, \"Metrics\")";
const COMMERCIAL: &str = "Java's commercial statistics";
const LMQ: &str = "light message queues are refused (enableLmq)";
const REPLICA_MODES: &str = "used only by enableSlaveActingMaster or enableControllerMode, both refused";
const DLEDGER: &str = "DLedger commit log setting: enableDLegerCommitLog is refused";
const CONTROLLER: &str = "controller-mode setting: enableControllerMode is refused";
const ADDRESS_SERVER: &str = "address-server setting: fetchNamesrvAddrByAddressServer is refused";

/// Java keys FerroMQ accepts with no effect, each with the reason the value cannot change what
/// a client or operator observes. A key that promises a behaviour (durability, delivery,
/// limits, security) does not belong here: it belongs in [`KEYS`], [`FIXED_VALUE_KEYS`] or,
/// temporarily, [`AWAITING_FEATURE`].
pub const NO_EFFECT_KEYS: &[(&str, &str)] = &[
    ("sendMessageThreadPoolNums", THREAD_POOL),
    ("putMessageFutureThreadPoolNums", THREAD_POOL),
    ("pullMessageThreadPoolNums", THREAD_POOL),
    ("litePullMessageThreadPoolNums", THREAD_POOL),
    ("ackMessageThreadPoolNums", THREAD_POOL),
    ("processReplyMessageThreadPoolNums", THREAD_POOL),
    ("queryMessageThreadPoolNums", THREAD_POOL),
    ("adminBrokerThreadPoolNums", THREAD_POOL),
    ("clientManageThreadPoolNums", THREAD_POOL),
    ("consumerManageThreadPoolNums", THREAD_POOL),
    ("loadBalanceProcessorThreadPoolNums", THREAD_POOL),
    ("heartbeatThreadPoolNums", THREAD_POOL),
    ("endTransactionThreadPoolNums", THREAD_POOL),
    ("recoverThreadPoolNums", THREAD_POOL),
    ("sendThreadPoolQueueCapacity", THREAD_POOL),
    ("putThreadPoolQueueCapacity", THREAD_POOL),
    ("pullThreadPoolQueueCapacity", THREAD_POOL),
    ("litePullThreadPoolQueueCapacity", THREAD_POOL),
    ("ackThreadPoolQueueCapacity", THREAD_POOL),
    ("replyThreadPoolQueueCapacity", THREAD_POOL),
    ("queryThreadPoolQueueCapacity", THREAD_POOL),
    ("clientManagerThreadPoolQueueCapacity", THREAD_POOL),
    ("consumerManagerThreadPoolQueueCapacity", THREAD_POOL),
    ("heartbeatThreadPoolQueueCapacity", THREAD_POOL),
    ("endTransactionPoolQueueCapacity", THREAD_POOL),
    ("adminBrokerThreadPoolQueueCapacity", THREAD_POOL),
    ("loadBalanceThreadPoolQueueCapacity", THREAD_POOL),
    ("brokerFastFailureEnable", QUEUE_WAIT),
    ("waitTimeMillsInSendQueue", QUEUE_WAIT),
    ("waitTimeMillsInPullQueue", QUEUE_WAIT),
    ("waitTimeMillsInLitePullQueue", QUEUE_WAIT),
    ("waitTimeMillsInHeartbeatQueue", QUEUE_WAIT),
    ("waitTimeMillsInTransactionQueue", QUEUE_WAIT),
    ("waitTimeMillsInAckQueue", QUEUE_WAIT),
    ("osPageCacheBusyTimeOutMills", "Java answers SYSTEM_BUSY when an append holds the commit-log lock this long; a FerroMQ \
         shard appends to its own log without a lock, and its backpressure is maxPendingFlushBytes"),
    ("useReentrantLockWhenPutMessage", "the kind of lock around Java's commit-log append; a FerroMQ shard appends without one"),
    // Netty server and client tuning.
    ("serverWorkerThreads", NETTY_SERVER),
    ("serverCallbackExecutorThreads", NETTY_SERVER),
    ("serverSelectorThreads", NETTY_SERVER),
    ("serverOnewaySemaphoreValue", NETTY_SERVER),
    ("serverAsyncSemaphoreValue", NETTY_SERVER),
    ("serverSocketBacklog", NETTY_SERVER),
    ("serverPooledByteBufAllocatorEnable", NETTY_SERVER),
    ("useEpollNativeSelector", NETTY_SERVER),
    ("writeBufferHighWaterMark", NETTY_SERVER),
    ("writeBufferLowWaterMark", NETTY_SERVER),
    ("serverSocketSndBufSize", SOCKET_BUFFERS),
    ("serverSocketRcvBufSize", SOCKET_BUFFERS),
    ("enableShutdownGracefully", "Netty event-loop shutdown: FerroMQ's shutdown sequence is fixed (BrokerHandle::shutdown)"),
    ("shutdownWaitTimeSeconds", "Netty event-loop shutdown: FerroMQ's shutdown sequence is fixed (BrokerHandle::shutdown)"),
    ("clientWorkerThreads", NETTY_CLIENT),
    ("clientCallbackExecutorThreads", NETTY_CLIENT),
    ("clientOnewaySemaphoreValue", NETTY_CLIENT),
    ("clientAsyncSemaphoreValue", NETTY_CLIENT),
    ("connectTimeoutMillis", "connect timeout of Java's client to the name servers: FerroMQ bounds a connect by its registration timeout"),
    ("channelNotActiveInterval", NETTY_CLIENT),
    ("clientChannelMaxIdleTimeSeconds", NETTY_CLIENT),
    ("clientSocketSndBufSize", SOCKET_BUFFERS),
    ("clientSocketRcvBufSize", SOCKET_BUFFERS),
    ("clientPooledByteBufAllocatorEnable", NETTY_CLIENT),
    ("clientCloseSocketIfTimeout", NETTY_CLIENT),
    // Java store internals with no counterpart.
    ("transientStorePoolEnable", TRANSIENT_POOL),
    ("transientStorePoolSize", TRANSIENT_POOL),
    ("fastFailIfNoBufferInStorePool", TRANSIENT_POOL),
    ("commitIntervalCommitLog", TRANSIENT_POOL),
    ("commitCommitLogLeastPages", TRANSIENT_POOL),
    ("commitCommitLogThoroughInterval", TRANSIENT_POOL),
    ("warmMapedFileEnable", MMAP),
    ("flushLeastPagesWhenWarmMapedFile", MMAP),
    ("destroyMapedFileIntervalForcibly", MMAP),
    ("redeleteHangedFileInterval", MMAP),
    ("flushCommitLogThoroughInterval", "Java's forced ASYNC_FLUSH sync at least every interval: FerroMQ already syncs every \
         flushIntervalCommitLog while anything is dirty"),
    ("flushDelayOffsetInterval", "persist period of Java's delayed-delivery progress: FerroMQ writes delayOffset.json with the consumer \
     offsets, every flushConsumerOffsetInterval and at stop"),
    ("cleanResourceInterval", CLEAN_PACING),
    ("deleteCommitLogFilesInterval", CLEAN_PACING),
    ("deleteConsumeQueueFilesInterval", CLEAN_PACING),
    ("debugLockEnable", "Java lock diagnostics"),
    ("diskFallRecorded", "Java latency diagnostics"),
    ("putMsgIndexHightWater", "backlog threshold of Java's index builder: FerroMQ indexes as it dispatches"),
    ("maxTransferBytesOnMessageInDisk", COLD_READS),
    ("maxTransferCountOnMessageInDisk", COLD_READS),
    ("transferMsgByHeap", "copy or zero-copy pull bodies: FerroMQ chooses per read (sendfile for large bodies)"),
    ("mappedFileSizeConsumeQueueExt", SQL_FILTER),
    ("enableConsumeQueueExt", SQL_FILTER),
    ("bitMapLengthConsumeQueueExt", SQL_FILTER),
    ("autoMessageVersionOnTopicLen", "FerroMQ writes V2 records exactly for topics over 127 bytes (Java's default, true); \
         only FerroMQ reads its per-shard logs"),
    // Settings without a counterpart, and modes refused above.
    ("rocketmqHome", "Java's installation directory: FerroMQ needs none"),
    ("brokerConfigPath", "where Java persists UPDATE_BROKER_CONFIG changes: FerroMQ does not change its configuration at run time"),
    ("useServerSideResetOffset", "FerroMQ does both of Java's resets at once: it commits the reset offsets on the broker and sends \
     RESET_CONSUMER_CLIENT_OFFSET to the group's online consumers"),
    ("enableCalcFilterBitMap", SQL_FILTER),
    ("expectConsumerNumUseFilter", SQL_FILTER),
    ("maxErrorRateOfBloomFilter", SQL_FILTER),
    ("filterDataCleanTimeSpan", SQL_FILTER),
    ("highSpeedMode", "read by nothing in Java either"),
    ("commercialEnable", COMMERCIAL),
    ("commercialTimerCount", COMMERCIAL),
    ("commercialTransCount", COMMERCIAL),
    ("commercialBigCount", COMMERCIAL),
    ("commercialBaseCount", COMMERCIAL),
    ("isolateLogEnable", "per-broker log files of Java's broker container"),
    ("consumerFallbehindThreshold", "lag threshold of disableConsumeIfConsumerReadSlowly (fixed at false)"),
    ("enableDetailStat", STATS),
    ("enablePopMetrics", NO_SUCH_METRICS),
    ("enableTransactionMetrics", NO_SUCH_METRICS),
    ("autoDeleteUnusedStats", STATS),
    ("enableScheduleMessageStats", STATS),
    ("enableScheduleAsyncDeliver", "internals of Java's delayed-delivery service: FerroMQ delivers each level in order on the shard \
     that owns its queue"),
    ("scheduleAsyncDeliverMaxPendingLimit", "internals of Java's delayed-delivery service (enableScheduleAsyncDeliver)"),
    ("scheduleAsyncDeliverMaxResendNum2Blocked", "internals of Java's delayed-delivery service (enableScheduleAsyncDeliver)"),
    ("messageIndexSafe", "FerroMQ's index is always recovered to the last record, as Java's true: each checkpoint names the index \
     count as of its dispatch point, and recovery replays the log beyond it into the index as into the consume queues"),
    ("flushConsumerOffsetHistoryInterval", "read by nothing in Java 4.9 either"),
    ("maxDelayTime", "read by nothing in Java 4.9 either"),
    ("maxLmqConsumeQueueNum", LMQ),
    ("totalReplicas", REPLICA_MODES),
    ("minInSyncReplicas", REPLICA_MODES),
    ("allAckInSyncStateSet", REPLICA_MODES),
    ("storePathDLedgerCommitLog", DLEDGER),
    ("enableBatchPush", DLEDGER),
    ("dLegerGroup", DLEDGER),
    ("dLegerPeers", DLEDGER),
    ("dLegerSelfId", DLEDGER),
    ("preferredLeaderId", DLEDGER),
    ("controllerAddr", CONTROLLER),
    ("fetchControllerAddrByDnsLookup", CONTROLLER),
    ("syncBrokerMetadataPeriod", CONTROLLER),
    ("checkSyncStateSetPeriod", CONTROLLER),
    ("syncControllerMetadataPeriod", CONTROLLER),
    ("rmqAddressServerDomain", ADDRESS_SERVER),
    ("rmqAddressServerSubGroup", ADDRESS_SERVER),
];

/// Why `key` is accepted but not applied yet, when it is awaiting wiring or a feature.
fn not_applied_yet(key: &str) -> Option<&'static str> {
    AWAITING_WIRING.iter().chain(AWAITING_FEATURE).find(|(k, _)| *k == key).map(|(_, why)| *why)
}

// ------------------------------------------------------------------------------------------
// Value parsers (Err = what was expected)
// ------------------------------------------------------------------------------------------

fn parse_bool(value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err("true or false".to_owned())
    }
}

fn parse_num<T>(value: &str, min: T, max: T, unit: &str) -> Result<T, String>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    let expected = || format!("{unit} as an integer from {min} to {max}");
    let parsed: T = value.parse().map_err(|_| expected())?;
    if parsed < min || parsed > max {
        return Err(expected());
    }
    Ok(parsed)
}

fn any_text(value: &str) -> Result<String, String> {
    Ok(value.to_owned())
}

fn non_empty(value: &str) -> Result<String, String> {
    if value.is_empty() { Err("a non-empty value".to_owned()) } else { Ok(value.to_owned()) }
}

fn parse_ip(value: &str) -> Result<IpAddr, String> {
    let inner = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    inner.parse().map_err(|_| "an IPv4 or IPv6 address".to_owned())
}

fn parse_optional_ip(value: &str) -> Result<Option<IpAddr>, String> {
    if value.is_empty() { Ok(None) } else { parse_ip(value).map(Some) }
}

/// `host:port` with a non-empty host and a port in 1..=65535; returned trimmed.
fn parse_host_port(value: &str) -> Result<String, String> {
    let expected = || "host:port with a port from 1 to 65535".to_owned();
    let value = value.trim();
    let (host, port) = value.rsplit_once(':').ok_or_else(expected)?;
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err(expected());
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(value.to_owned()),
        _ => Err(expected()),
    }
}

fn split_namesrv_list(value: &str) -> Vec<String> {
    value.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn parse_namesrv_list(value: &str) -> Result<Vec<String>, String> {
    split_namesrv_list(value)
        .iter()
        .map(|entry| parse_host_port(entry).map_err(|_| "name servers as host:port entries separated by ';'".to_owned()))
        .collect()
}

fn parse_delete_when(value: &str) -> Result<String, String> {
    let expected = || "hours of the day from 0 to 23 separated by ';' (e.g. 04 or 01;13)".to_owned();
    let mut any = false;
    for hour in value.split(';') {
        match hour.trim().parse::<u8>() {
            Ok(h) if h <= 23 => any = true,
            _ => return Err(expected()),
        }
    }
    if any { Ok(value.to_owned()) } else { Err(expected()) }
}

/// Java's `messageDelayLevel` grammar: space-separated `<n><unit>`, unit `s`, `m`, `h` or `d`.
fn parse_delay_levels(value: &str) -> Result<Vec<u64>, String> {
    let expected = || "space-separated durations such as 1s 5s 1m 2h (units s, m, h, d), at least one".to_owned();
    let levels = value
        .split_whitespace()
        .map(|token| {
            let unit_ms: u64 = match token.chars().last() {
                Some('s') => 1000,
                Some('m') => 60_000,
                Some('h') => 3_600_000,
                Some('d') => 86_400_000,
                _ => return Err(expected()),
            };
            let digits = token.get(..token.len().saturating_sub(1)).ok_or_else(expected)?;
            let n: u64 = digits.parse().map_err(|_| expected())?;
            n.checked_mul(unit_ms).filter(|&ms| ms > 0).ok_or_else(expected)
        })
        .collect::<Result<Vec<u64>, String>>()?;
    if levels.is_empty() { Err(expected()) } else { Ok(levels) }
}


#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn repo_path(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
    }

    fn props(text: &str) -> BrokerConfig {
        let (config, unknown) = BrokerConfig::from_properties_str(text).unwrap();
        assert!(unknown.is_empty(), "unexpected unknown keys {unknown:?}");
        config
    }

    fn props_err(text: &str) -> String {
        BrokerConfig::from_properties_str(text).unwrap_err().to_string()
    }

    #[test]
    fn defaults_match_protocol_section_11() {
        let c = BrokerConfig::default();
        assert_eq!(c.broker.cluster_name, "DefaultCluster");
        assert!(!c.broker.name.is_empty());
        assert_eq!(c.broker.id, 0);
        assert_eq!(c.broker.role, BrokerRole::AsyncMaster);
        assert_eq!(c.broker.permission, 6);
        assert_eq!(c.broker.listen_port, 10911);
        assert_eq!(c.broker.ip1, None);
        assert!(c.namesrv.addr.is_empty());
        assert!(c.uses_embedded_namesrv());
        assert_eq!(c.namesrv.register_period_ms, 30_000);
        assert_eq!(c.ha_listen_port(), 10912);
        assert_eq!(c.store.root_dir, default_store_root());
        assert_eq!(c.commit_log_dir(), default_store_root().join("commitlog"));
        assert_eq!(c.flush.disk_type, FlushDiskType::AsyncFlush);
        assert_eq!(c.retention.delete_when, "04");
        assert_eq!(c.retention.file_reserved_time_hours, 72);
        assert!(c.topics.auto_create_topic_enable);
        assert_eq!(c.topics.default_topic_queue_nums, 8);
        assert_eq!(c.store.segment_size_bytes, 1_073_741_824);
        assert_eq!(c.store.cq_file_size_bytes, 6_000_000);
        assert_eq!(c.cq_entries_per_file(), 300_000);
        assert_eq!(c.store.max_message_size_bytes, 4_194_304);
        assert_eq!(c.flush.sync_flush_timeout_ms, 5000);
        assert_eq!(c.flush.interval_ms, 500);
        assert_eq!(c.flush.least_pages, 4);
        assert!(c.flush.timed, "Java's default since 4.9.1");
        assert_eq!(c.consumer.flush_consumer_offset_interval_ms, 5000);
        assert_eq!(c.consumer.channel_expired_timeout_ms, 120_000);
        assert!(c.consumer.long_polling_enable);
        assert_eq!(c.consumer.short_polling_time_ms, 1000);
        assert_eq!(c.io.backend, IoBackend::Auto);
        assert_eq!(c.io.shards, 0);
        assert!(c.effective_shards() >= 1);
        assert_eq!(c.limits.max_frame_bytes, 16 << 20);
        assert_eq!(c.limits.max_connections, 10_000);
        assert_eq!(c.limits.max_in_flight_requests_per_connection, 1024);
        assert_eq!(c.limits.write_queue_frames, 64);
        assert_eq!(c.store.max_transfer_bytes, 262_144);
        assert_eq!(c.store.max_transfer_count, 32);
        assert_eq!(c.retention.disk_max_used_space_ratio_pct, 75);
        assert_eq!(c.ha.slave_timeout_ms, 3000);
        assert_eq!(c.ha.transfer_batch_bytes, 32_768);
        assert_eq!(c.ha.max_gap_not_in_sync_bytes, 268_435_456);
        assert_eq!(c.delay_levels_ms().unwrap().len(), 18);
        c.validate().unwrap();
        // The store sees exactly its own defaults, except the per-shard directory and its share
        // of the open-file limit.
        let store = c.store_config(ShardId(0));
        let reference = StoreConfig { max_open_cq_files: c.max_open_cq_files_per_shard(), ..StoreConfig::new(store.root_dir.clone()) };
        assert_eq!(format!("{store:?}"), format!("{reference:?}"));
    }

    #[test]
    fn rocketmq_2m_2s_async_files_parse() {
        let dir = repo_path("tests/fixtures/2m-2s-async");
        let (master, unknown) = BrokerConfig::load(dir.join("broker-a.properties")).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(master.broker.cluster_name, "DefaultCluster");
        assert_eq!(master.broker.name, "broker-a");
        assert_eq!(master.broker.id, 0);
        assert_eq!(master.broker.role, BrokerRole::AsyncMaster);
        assert_eq!(master.flush.disk_type, FlushDiskType::AsyncFlush);
        assert_eq!(master.retention.delete_when, "04");
        assert_eq!(master.retention.file_reserved_time_hours, 48);
        master.validate().unwrap();

        let (slave, unknown) = BrokerConfig::load(dir.join("broker-a-s.properties")).unwrap();
        assert!(unknown.is_empty());
        assert_eq!(slave.broker.name, "broker-a");
        assert_eq!(slave.broker.id, 1);
        assert_eq!(slave.broker.role, BrokerRole::Slave);
        assert_eq!(slave.retention.file_reserved_time_hours, 48);
        // Everything else keeps its default.
        let expected = BrokerConfig {
            broker: BrokerSection { name: "broker-a".into(), id: 1, role: BrokerRole::Slave, ..BrokerConfig::default().broker },
            retention: RetentionSection { file_reserved_time_hours: 48, ..BrokerConfig::default().retention },
            ..BrokerConfig::default()
        };
        assert_eq!(slave, expected);
        // The slave shares ports with the master in the shipped files: fine, they run on other hosts.
        slave.validate().unwrap();
    }

    #[test]
    fn protocol_example_with_name_servers_and_paths() {
        let text = "brokerClusterName=DefaultCluster\nbrokerName=broker-a\nbrokerId=0\n\
                    namesrvAddr=10.0.0.1:9876;10.0.0.2:9876\nlistenPort=10911\nbrokerIP1=10.0.0.11\n\
                    deleteWhen=04\nfileReservedTime=48\nbrokerRole=SYNC_MASTER\nflushDiskType=ASYNC_FLUSH\n\
                    storePathRootDir=/data/rocketmq/store\nstorePathCommitLog=/data/rocketmq/store/commitlog\n\
                    autoCreateTopicEnable=false\n";
        let c = props(text);
        assert_eq!(c.namesrv.addr, vec!["10.0.0.1:9876".to_owned(), "10.0.0.2:9876".to_owned()]);
        assert_eq!(c.broker.role, BrokerRole::SyncMaster);
        assert_eq!(c.advertised_ip(false), "10.0.0.11".parse::<IpAddr>().unwrap());
        assert_eq!(c.advertised_ip(true), "10.0.0.11".parse::<IpAddr>().unwrap(), "explicit brokerIP1 wins");
        assert!(!c.topics.auto_create_topic_enable);
        c.validate().unwrap();
        let store = c.store_config(ShardId(3));
        assert_eq!(store.root_dir, PathBuf::from("/data/rocketmq/store/shard-3"));
        assert_eq!(store.shard, ShardId(3));
    }

    #[test]
    fn every_supported_key_is_read_from_properties() {
        let path = repo_path("tests/fixtures/broker-all-keys.properties");
        let text = std::fs::read_to_string(&path).unwrap();
        for key in KEYS {
            assert!(text.lines().any(|l| l.starts_with(&format!("{}=", key.java))), "{} missing from the fixture", key.java);
        }
        let (c, unknown) = BrokerConfig::load(&path).unwrap();
        assert!(unknown.is_empty(), "{unknown:?}");
        let default = BrokerConfig::default();
        for key in KEYS {
            assert_ne!((key.get)(&c), (key.get)(&default), "{} was not applied (or the fixture uses its default)", key.java);
        }
        assert_eq!(c.broker.cluster_name, "ProdCluster");
        assert_eq!(c.broker.id, 2);
        assert_eq!(c.broker.role, BrokerRole::Slave);
        assert_eq!(c.broker.bind_address, "10.0.0.21".parse::<IpAddr>().unwrap());
        assert_eq!(c.broker.ip2, Some("10.1.0.21".parse().unwrap()));
        assert_eq!(c.namesrv.addr.len(), 2);
        assert_eq!(c.namesrv.embedded_port, 19876);
        assert_eq!(c.store.root_dir, PathBuf::from("/data/rocketmq/store"));
        assert_eq!(c.store.commit_log_dir, Some(PathBuf::from("/data/rocketmq/store/commitlog")));
        assert_eq!(c.cq_entries_per_file(), 30_000);
        assert_eq!(c.delay_levels_ms().unwrap(), vec![1000, 10_000, 60_000, 3_600_000, 86_400_000]);
        assert_eq!(c.retention.delete_when, "01;13");
        assert_eq!(c.flush.disk_type, FlushDiskType::SyncFlush);
        assert_eq!(c.ha_listen_port(), 20915);
        assert_eq!(c.ha.master_address.as_deref(), Some("10.0.0.11:10912"));
        assert_eq!(c.io.backend, IoBackend::Epoll);
        assert_eq!(c.io.shards, 4);
        assert_eq!(c.effective_shards(), 4);
        assert_eq!(c.limits.cross_shard_queue_depth, 2048);
        assert_eq!(c.query_max_messages(), 128);
        c.validate().unwrap();

        let store = c.store_config(ShardId(1));
        assert_eq!(store.root_dir, PathBuf::from("/data/rocketmq/store/shard-1"));
        assert_eq!(store.segment_size_bytes, 536_870_912);
        assert_eq!(store.cq_entries_per_file, 30_000);
        assert_eq!(store.max_open_cq_files, 10_000, "40,000 split over 4 shards");
        assert_eq!(store.flush_mode, FlushMode::Sync);
        assert_eq!(store.flush_interval_ms, 200);
        assert_eq!(store.flush_least_bytes, 8 * 4096);
        assert!(!store.flush_timed);
        assert_eq!(store.sync_flush_timeout_ms, 3000);
        assert_eq!(store.max_message_size_bytes, 1_048_576);
        assert_eq!(store.max_flush_batch_bytes, 1_048_576);
        assert_eq!(store.max_pending_bytes, 33_554_432);
        assert_eq!(store.checkpoint_interval_ms, 500);
        assert_eq!((store.cq_flush_least_entries, store.cq_thorough_interval_ms), (4 * 4096 / 20, 30_000));
        assert!(!store.check_crc_on_recover && !store.index_enable && !store.clean_file_forcibly_enable);
        assert_eq!((store.index_hash_slots, store.index_max_entries), (1_000_000, 4_000_000));
        assert_eq!(store.delete_when, "01;13");
        assert_eq!(store.file_reserved_time_hours, 24);
        assert_eq!(
            (store.disk_max_used_space_ratio_pct, store.disk_space_clean_forcibly_ratio_pct, store.disk_space_warning_level_ratio_pct),
            (80, 88, 92)
        );
        assert_eq!(store.delete_file_batch_max, 5);
        assert_eq!((store.max_transfer_bytes, store.max_transfer_count), (524_288, 64));
        store.validate().unwrap();

        let limits = c.server_limits();
        assert_eq!(limits.max_connections, 5000);
        assert_eq!(limits.conn.max_in_flight_requests, 256);
        assert_eq!(limits.conn.write_queue_frames, 512);
        assert_eq!(limits.conn.wire.max_frame_bytes, 8_388_608);
        assert_eq!(limits.conn.wire.max_header_bytes, 1_048_576);
    }

    #[test]
    fn unknown_keys_are_returned_and_ignored_keys_are_not() {
        let text = "brokerName=b\nsomeFutureKey=1\nbrokerNmae=typo\nsendMessageThreadPoolNums=16\n\
                    useReentrantLockWhenPutMessage=true\ntraceTopicEnable=false\naclEnable=false\n\
                    serverWorkerThreads=8\n";
        let (c, unknown) = BrokerConfig::from_properties_str(text).unwrap();
        assert_eq!(unknown, vec!["brokerNmae".to_owned(), "someFutureKey".to_owned()]);
        assert_eq!(c.broker.name, "b");

        let (_, unknown) =
            BrokerConfig::from_toml_str("stray = 3\n[broker]\nname = \"b\"\nnmae = \"x\"\n[bogus]\nk = 1\n").unwrap();
        assert_eq!(unknown, vec!["bogus".to_owned(), "broker.nmae".to_owned(), "stray".to_owned()]);
    }

    #[test]
    fn invalid_values_are_rejected_naming_the_key() {
        // Every numeric and boolean key refuses garbage, naming itself.
        for key in KEYS {
            let bad = match key.kind {
                Kind::Int => "12abc",
                Kind::Bool => "yes",
                Kind::Str => continue,
            };
            let message = props_err(&format!("{}={bad}\n", key.java));
            assert!(message.contains(key.java) && message.contains(bad), "{}: {message}", key.java);
        }
        let cases = [
            ("listenPort", "0"),
            ("listenPort", "65536"),
            ("listenPort", "-1"),
            ("brokerId", "-1"),
            ("brokerRole", "MASTER"),
            ("flushDiskType", "FSYNC"),
            ("deleteWhen", "25"),
            ("deleteWhen", "04;"),
            ("deleteWhen", "four"),
            ("namesrvAddr", "10.0.0.1"),
            ("namesrvAddr", "10.0.0.1:9876;10.0.0.2:abc"),
            ("brokerIP1", "10.0.0"),
            ("bindAddress", "any"),
            ("io.backend", "kqueue"),
            ("messageDelayLevel", "1s 5x"),
            ("messageDelayLevel", "0s"),
            ("shards", "257"),
            ("brokerPermission", "16"),
            ("mappedFileSizeCommitLog", "0"),
            ("maxMessageSize", "0"),
            ("maxFrameBytes", "100"),
            ("defaultTopicQueueNums", "0"),
            ("haListenPort", "70000"),
            ("haMasterAddress", "10.0.0.1"),
            ("brokerClusterName", ""),
            ("aclEnable", "maybe"),
            ("enableDLegerCommitLog", "true"),
        ];
        for (key, value) in cases {
            let message = props_err(&format!("{key}={value}\n"));
            assert!(message.contains(key), "{key}={value}: {message}");
            assert!(message.contains("expected"), "{key}={value}: {message}");
        }
        // TOML: a value of the wrong type names the dotted key.
        let err = BrokerConfig::from_toml_str("[broker]\nlisten_port = \"10911\"\n").unwrap_err().to_string();
        assert!(err.contains("broker.listen_port") && err.contains("integer"), "{err}");
        let err = BrokerConfig::from_toml_str("[flush]\ndisk_type = \"fsync\"\n").unwrap_err().to_string();
        assert!(err.contains("flush.disk_type") && err.contains("ASYNC_FLUSH or SYNC_FLUSH"), "{err}");
        let err = BrokerConfig::from_toml_str("[broker\n").unwrap_err();
        assert!(matches!(err, ConfigError::Toml { .. }), "{err}");
    }

    #[test]
    fn java_aliases_set_their_keys_and_name_themselves_in_errors() {
        for (alias, key) in JAVA_ALIASES {
            assert!(KEYS.iter().any(|k| k.java == *key), "{alias} is an alias of {key}, which is not in KEYS");
            assert!(!NO_EFFECT_KEYS.iter().any(|(k, _)| k == alias), "{alias} is both an alias and without effect");
        }
        // 4.9's name of the in-sync gap (HAService.isSlaveOK) sets what 5.x's name sets.
        let old = props("haSlaveFallbehindMax=1048576\n");
        assert_eq!(old.ha.max_gap_not_in_sync_bytes, 1_048_576);
        assert_eq!(old, props("haMaxGapNotInSync=1048576\n"));
        let err = props_err("haSlaveFallbehindMax=0\n");
        assert!(err.contains("haSlaveFallbehindMax"), "{err}");
    }

    #[test]
    fn tls_keys_are_applied_refused_or_required_naming_the_key() {
        let fixture = |name: &str| repo_path("tests/fixtures/tls").join(name).display().to_string();
        // Java's spellings, the aliases, and the TOML schema give the same configuration.
        let text = format!(
            "tlsMode=permissive\ntls.server.certPath={}\ntls.server.keyPath={}\nuseTLS=true\n",
            fixture("server.pem"),
            fixture("server.key")
        );
        let c = props(&text);
        assert_eq!((c.tls.server_mode, c.tls.enable), (TlsMode::Permissive, true));
        c.validate().unwrap();
        assert_eq!(c.tls_acceptor().unwrap().unwrap().mode, TlsMode::Permissive);
        assert!(c.tls_connector().unwrap().is_some());
        let (t, _) = BrokerConfig::from_toml_str(&c.to_toml_text()).unwrap();
        assert_eq!(t, c);
        // Off by default: nothing is built.
        let d = BrokerConfig::default();
        assert!(d.tls_acceptor().unwrap().is_none() && d.tls_connector().unwrap().is_none());
        // Refused values and keys FerroMQ does not implement name the key.
        for (text, key) in [
            ("tls.server.mode=ENFORCING\n", "tls.server.mode"),
            ("tlsMode=strict\n", "tlsMode"),
            ("tls.server.need.client.auth=yes\n", "tls.server.need.client.auth"),
            ("tls.server.keyPassword=secret\n", "tls.server.keyPassword"),
            ("tls.client.keyPassword=secret\n", "tls.client.keyPassword"),
            ("tls.test.mode.enable=true\n", "tls.test.mode.enable"),
            ("tls.config.file=/etc/rocketmq/tls.properties\n", "tls.config.file"),
        ] {
            let err = props_err(text);
            assert!(err.contains(key), "{text}: {err}");
        }
        // A key of a side that is off, or a side without what it needs, stops the start.
        for (text, key) in [
            ("tls.server.certPath=/x.pem\n", "tls.server.certPath"),
            ("tls.server.need.client.auth=require\n", "tls.server.need.client.auth"),
            (
                "tls.server.mode=enforcing\ntls.server.certPath=/c\ntls.server.keyPath=/k\ntls.server.need.client.auth=require\ntls.server.trustCertPath=/ca\n",
                "tls.server.authClient",
            ),
            ("tls.client.trustCertPath=/ca.pem\n", "tls.client.trustCertPath"),
            ("tls.client.authServer=true\n", "tls.client.authServer"),
            ("tls.server.mode=enforcing\n", "tls.server.certPath"),
            ("tls.enable=true\ntls.client.authServer=true\n", "tls.client.trustCertPath"),
            ("tls.enable=true\ntls.client.certPath=/c.pem\n", "tls.client.keyPath"),
        ] {
            let err = props(text).validate().unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        // Unreadable PEM files stop the start naming key and file.
        let c = props("tls.server.mode=enforcing\ntls.server.certPath=/nonexistent/cert.pem\ntls.server.keyPath=/nonexistent/k.pem\n");
        c.validate().unwrap();
        let err = c.tls_acceptor().err().unwrap().to_string();
        assert!(err.contains("tls.server.certPath") && err.contains("/nonexistent/cert.pem"), "{err}");
        let c = props(&format!("tls.enable=true\ntls.client.authServer=true\ntls.client.trustCertPath={}\n", fixture("server.key")));
        let err = c.tls_connector().err().unwrap().to_string();
        assert!(err.contains("tls.client.trustCertPath") && err.contains("server.key"), "{err}");
    }

    #[test]
    fn values_are_trimmed() {
        let c = props("listenPort = 10921 \nflushDiskType= SYNC_FLUSH \nbrokerRole=SLAVE \nbrokerId=3\nbrokerIP1=[::1]\n");
        assert_eq!(c.broker.listen_port, 10921);
        assert_eq!(c.ha_listen_port(), 10922);
        assert_eq!(c.flush.disk_type, FlushDiskType::SyncFlush);
        assert_eq!(c.broker.role, BrokerRole::Slave);
        assert_eq!(c.broker.ip1, Some("::1".parse().unwrap()));
        let text = c.to_properties_text();
        assert!(text.contains("flushDiskType=SYNC_FLUSH\n") && text.contains("brokerRole=SLAVE\n"), "{text}");
    }

    #[test]
    fn enums_take_only_the_java_spelling_and_refusals_name_key_and_value() {
        // broker.properties, as Java's `valueOf`: exact upper case.
        for (text, key, value) in [
            ("flushDiskType=sync_flush\n", "flushDiskType", "sync_flush"),
            ("flushDiskType=Async_Flush\n", "flushDiskType", "Async_Flush"),
            ("brokerRole=slave\n", "brokerRole", "slave"),
            ("brokerRole=Sync_Master\n", "brokerRole", "Sync_Master"),
        ] {
            let err = props_err(text);
            assert!(err.contains(key) && err.contains(&format!("{value:?}")) && err.contains("upper case"), "{text}: {err}");
        }
        // TOML: the dotted key and the value.
        let err = BrokerConfig::from_toml_str("[flush]\ndisk_type = \"sync_flush\"\n").unwrap_err().to_string();
        assert!(err.contains("flush.disk_type") && err.contains("\"sync_flush\""), "{err}");
        let err = BrokerConfig::from_toml_str("[broker]\nrole = \"async_master\"\n").unwrap_err().to_string();
        assert!(err.contains("broker.role") && err.contains("\"async_master\""), "{err}");
        // --set overrides go through the same rule.
        let mut c = BrokerConfig::default();
        let err = c.apply_override("flushDiskType", "sync_flush").unwrap_err().to_string();
        assert!(err.contains("flushDiskType") && err.contains("sync_flush"), "{err}");
        assert_eq!(props("flushDiskType=SYNC_FLUSH\nbrokerRole=SYNC_MASTER\n").flush.disk_type, FlushDiskType::SyncFlush);
    }

    #[test]
    fn metrics_keys_take_rocketmq_5s_names_and_refuse_what_is_not_implemented() {
        let c = BrokerConfig::default();
        assert_eq!((c.metrics.exporter_type, c.metrics.prom_exporter_port, c.metrics_enabled()), (MetricsExporterType::Disable, 5557, false));
        assert!(!c.server_limits().conn.record_rpc_latency, "off, requests record nothing");
        let c = props("metricsExporterType=PROM\nmetricsPromExporterPort=19999\nmetricsLabel=env:prod\nbrokerIP1=10.1.2.3\n");
        assert!(c.metrics_enabled() && c.server_limits().conn.record_rpc_latency);
        assert_eq!(c.metrics_addr(false), "10.1.2.3:19999".parse().unwrap(), "the host defaults to brokerIP1, as Java");
        assert_eq!(c.metrics_labels().unwrap(), vec![("env".to_owned(), "prod".to_owned())]);
        let c = props("metricsExporterType=PROM\nmetricsPromExporterHost=0.0.0.0\n");
        assert_eq!(c.metrics_addr(false), "0.0.0.0:5557".parse().unwrap());
        // One line naming the key and the value; never accepted and ignored.
        for (text, key, value) in [
            ("metricsExporterType=OTLP_GRPC\n", "metricsExporterType", "OTLP_GRPC"),
            ("metricsExporterType=LOG\n", "metricsExporterType", "LOG"),
            ("metricsExporterType=prom\n", "metricsExporterType", "prom"),
            ("metricsInDelta=true\n", "metricsInDelta", "true"),
            ("metricsGrpcExporterTarget=collector:4317\n", "metricsGrpcExporterTarget", "collector:4317"),
            ("metricLoggingExporterIntervalInMills=5000\n", "metricLoggingExporterIntervalInMills", "5000"),
            ("metricsLabel=cluster:x\n", "metricsLabel", "cluster:x"),
            ("metricsLabel=novalue\n", "metricsLabel", "novalue"),
            ("metricsOtelCardinalityLimit=0\n", "metricsOtelCardinalityLimit", "0"),
        ] {
            let err = props_err(text);
            assert!(err.contains(key) && err.contains(value) && !err.contains('\n'), "{text}: {err}");
        }
        let err = props_err("metricsExporterType=OTLP_GRPC\n");
        assert!(err.contains("not implemented"), "{err}");
        // The defaults of the refused exporters' keys are accepted (a file copied from Java).
        props("metricsInDelta=false\nmetricsGrpcExporterTarget=\nmetricGrpcExporterIntervalInMills=60000\n");
        let err = BrokerConfig::from_toml_str("[metrics]\nexporter_type = \"OTLP_GRPC\"\n").unwrap_err().to_string();
        assert!(err.contains("metrics.exporter_type") && err.contains("OTLP_GRPC"), "{err}");
    }

    #[test]
    fn clamps_follow_java() {
        let c = props("registerNameServerPeriod=1000\ndiskMaxUsedSpaceRatio=99\n");
        assert_eq!(c.namesrv.register_period_ms, 10_000);
        assert_eq!(c.retention.disk_max_used_space_ratio_pct, 95);
        let c = props("registerNameServerPeriod=600000\ndiskMaxUsedSpaceRatio=1\n");
        assert_eq!(c.namesrv.register_period_ms, 60_000);
        assert_eq!(c.retention.disk_max_used_space_ratio_pct, 10);
    }

    #[test]
    fn validate_checks_relations() {
        let check = |text: &str, needle: &str| {
            let err = props(text).validate().unwrap_err().to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        };
        check("brokerRole=SYNC_MASTER\nbrokerId=1\n", "brokerId");
        check("brokerRole=ASYNC_MASTER\nbrokerId=2\n", "brokerId");
        check("brokerRole=SLAVE\n", "brokerId");
        check("maxMessageSize=16777216\n", "maxMessageSize");
        check("maxFrameBytes=65536\n", "maxFrameBytes");
        check("maxHeaderBytes=33554432\n", "maxHeaderBytes");
        check("storePathRootDir=/data/store\nstorePathCommitLog=/ssd/commitlog\n", "storePathCommitLog");
        check("listenPort=65535\n", "haListenPort");
        check("listenPort=9876\n", "embeddedNamesrvPort");
        check("haListenPort=10911\n", "haListenPort");
        // Java's fast port, listenPort - 2, must exist and not be the HA or name-server port.
        check("listenPort=2\nhaListenPort=100\n", "fast port");
        check("listenPort=10911\nhaListenPort=10909\n", "fast port");
        check("listenPort=9878\n", "embeddedNamesrvPort");
        for text in ["listenPort=2\nhaListenPort=100\nfastListenPortEnable=false\n", "listenPort=9878\nfastListenPortEnable=false\n"] {
            props(text).validate().unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
        assert_eq!(props("listenPort=20911\n").fast_listen_port(), Some(20909));
        assert_eq!(props("listenPort=20911\nfastListenPortEnable=false\n").fast_listen_port(), None);
        check("diskSpaceCleanForciblyRatio=95\ndiskSpaceWarningLevelRatio=90\n", "diskSpaceCleanForciblyRatio");
        check("maxFlushBatchBytes=8388608\nmaxPendingFlushBytes=4194304\n", "maxPendingFlushBytes");
        check("mappedFileSizeCommitLog=4096\n", "segment_size_bytes");
        // Fine once a name server is configured or the port moves.
        props("listenPort=9876\nnamesrvAddr=10.0.0.1:9876\n").validate().unwrap();
        props("listenPort=65535\nhaListenPort=65534\n").validate().unwrap();
        props("storePathRootDir=/data/store\nstorePathCommitLog=/data/store/commitlog\n").validate().unwrap();
        // Fields set in code are held to the same bounds as files.
        let mut c = BrokerConfig::default();
        c.store.segment_size_bytes = 0;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("mappedFileSizeCommitLog"), "{err}");
        let mut c = BrokerConfig::default();
        c.broker.name = String::new();
        assert!(c.validate().unwrap_err().to_string().contains("brokerName"));
    }

    #[test]
    fn overrides_and_namesrv_resolution() {
        let mut c = BrokerConfig::default();
        c.apply_override("namesrvAddr", "127.0.0.1:19876").unwrap();
        assert_eq!(c.namesrv.addr, vec!["127.0.0.1:19876".to_owned()]);
        c.resolve_namesrv_addr_from(Some("10.9.9.9:9876".into()));
        assert_eq!(c.namesrv.addr, vec!["127.0.0.1:19876".to_owned()], "-n and the file win over NAMESRV_ADDR");
        c.apply_override("store.segment_size_bytes", "8388608").unwrap();
        assert_eq!(c.store.segment_size_bytes, 8 << 20);
        c.apply_override("sendMessageThreadPoolNums", "4").unwrap();
        assert!(matches!(c.apply_override("noSuchKey", "1"), Err(ConfigError::UnknownKey { .. })));
        assert!(matches!(c.apply_override("store.no_such_key", "1"), Err(ConfigError::UnknownKey { .. })));
        let err = c.apply_override("store.segment_size_bytes", "big").unwrap_err().to_string();
        assert!(err.contains("store.segment_size_bytes"), "{err}");

        let mut c = BrokerConfig::default();
        c.resolve_namesrv_addr_from(Some(" 10.9.9.9:9876 ; 10.9.9.10:9876;".into()));
        assert_eq!(c.namesrv.addr, vec!["10.9.9.9:9876".to_owned(), "10.9.9.10:9876".to_owned()]);
        assert!(!c.uses_embedded_namesrv());
        let mut c = BrokerConfig::default();
        c.resolve_namesrv_addr_from(Some("garbage".into()));
        assert!(c.validate().unwrap_err().to_string().contains("namesrvAddr"));
        let mut c = BrokerConfig::default();
        c.resolve_namesrv_addr_from(None);
        assert!(c.uses_embedded_namesrv());
        // An empty value in a file means "none".
        assert!(props("namesrvAddr=\n").namesrv.addr.is_empty());
    }

    #[test]
    fn advertised_addresses() {
        let c = BrokerConfig::default();
        assert_eq!(c.advertised_ip(true), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let detected = c.advertised_ip(false);
        assert!(detected.is_ipv4());
        if let Some(ip) = detect_local_ipv4() {
            assert!(!ip.is_loopback());
            assert_eq!(detected, IpAddr::V4(ip));
        } else {
            assert_eq!(detected, IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        assert_eq!(c.advertised_ha_ip(true), IpAddr::V4(Ipv4Addr::LOCALHOST));
        let c = props("brokerIP1=10.0.0.5\n");
        assert_eq!(c.advertised_ip(true), "10.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(c.advertised_ha_ip(false), "10.0.0.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn properties_text_lists_effective_values() {
        let c = props("storePathRootDir=/srv/store\nlistenPort=10921\n");
        let text = c.to_properties_text();
        for key in KEYS {
            assert_eq!(text.lines().filter(|l| l.starts_with(&format!("{}=", key.java))).count(), 1, "{}", key.java);
        }
        assert!(text.contains("brokerClusterName=DefaultCluster\n"));
        assert!(text.contains("haListenPort=10922\n"));
        assert!(text.contains("storePathCommitLog=/srv/store/commitlog\n"));
        assert!(text.contains("brokerIP1=127.0.0.1\n"), "embedded name server: 127.0.0.1 is advertised");
        assert!(text.contains("flushDiskType=ASYNC_FLUSH\n"));
        assert!(text.contains("io.backend=auto\n"));
        // What GET_BROKER_CONFIG sends reads back (with the derived values now explicit).
        let back = props(&text);
        back.validate().unwrap();
        assert_eq!(back.ha.listen_port, Some(10922));
        assert_eq!(back.broker.ip1, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let effective = StoreSection {
            commit_log_dir: Some("/srv/store/commitlog".into()),
            max_open_cq_files: c.effective_max_open_cq_files(),
            ..c.store.clone()
        };
        assert_eq!(back.store, effective);
        assert_eq!(back.flush, c.flush);
        assert_eq!(back.limits, c.limits);
        // Backslashes survive.
        let c = props("storePathRootDir=C:\\\\store\n");
        assert_eq!(c.store.root_dir, PathBuf::from("C:\\store"));
        assert_eq!(props(&c.to_properties_text()).store.root_dir, c.store.root_dir);
    }

    #[test]
    fn toml_text_round_trips() {
        for config in [BrokerConfig::default(), BrokerConfig::test_min("/tmp/x"), {
            let (c, _) = BrokerConfig::load(repo_path("tests/fixtures/broker-all-keys.properties")).unwrap();
            c
        }] {
            let text = config.to_toml_text();
            let (back, unknown) = BrokerConfig::from_toml_str(&text).unwrap();
            assert!(unknown.is_empty(), "{unknown:?}");
            assert_eq!(back, config, "{text}");
        }
    }

    #[test]
    fn tuning_profiles_load_validate_and_round_trip() {
        let dir = repo_path("tuning");
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let (config, unknown) = BrokerConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(unknown.is_empty(), "{}: unknown keys {unknown:?}", path.display());
            config.validate().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let (back, _) = BrokerConfig::from_toml_str(&config.to_toml_text()).unwrap();
            assert_eq!(back, config, "{}", path.display());
            seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
        seen.sort();
        assert_eq!(seen, ["default.toml", "durable.toml", "low-latency.toml", "test_min.toml", "throughput.toml"]);

        // default.toml is the defaults, with every key written out.
        let text = std::fs::read_to_string(dir.join("default.toml")).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        for key in KEYS {
            assert!(
                table.get(key.section).and_then(|s| s.as_table()).is_some_and(|s| s.contains_key(key.name)),
                "default.toml lacks {}.{}",
                key.section,
                key.name
            );
        }
        let (default, _) = BrokerConfig::load(dir.join("default.toml")).unwrap();
        assert_eq!(default, BrokerConfig::default());

        // test_min.toml is BrokerConfig::test_min.
        let (min, _) = BrokerConfig::load(dir.join("test_min.toml")).unwrap();
        assert_eq!(min, BrokerConfig::test_min(min.store.root_dir.clone()));
        let (durable, _) = BrokerConfig::load(dir.join("durable.toml")).unwrap();
        assert_eq!(durable.flush.disk_type, FlushDiskType::SyncFlush);
        let (throughput, _) = BrokerConfig::load(dir.join("throughput.toml")).unwrap();
        assert_eq!(throughput.flush.disk_type, FlushDiskType::AsyncFlush);
    }

    #[test]
    fn test_min_is_tiny_and_valid() {
        let c = BrokerConfig::test_min("/tmp/ferromq-test");
        c.validate().unwrap();
        let store = c.store_config(ShardId(1));
        store.validate().unwrap();
        assert_eq!(store.root_dir, PathBuf::from("/tmp/ferromq-test/shard-1"));
        assert_eq!(store.segment_size_bytes, 4096);
        assert_eq!(store.cq_entries_per_file, 8);
        assert!(c.limits.write_queue_frames <= 4 && c.limits.cross_shard_queue_depth <= 4);
        assert_eq!(c.effective_shards(), 2);
    }

    #[test]
    fn load_picks_the_format_by_extension() {
        let dir = std::env::temp_dir().join(format!("ferromq-brokercfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.toml"), "[broker]\nlisten_port = 10931\n").unwrap();
        std::fs::write(dir.join("a.properties"), "listenPort=10941\n").unwrap();
        std::fs::write(dir.join("a.conf"), "listenPort=10951\n").unwrap();
        assert_eq!(BrokerConfig::load(dir.join("a.toml")).unwrap().0.broker.listen_port, 10931);
        assert_eq!(BrokerConfig::load(dir.join("a.properties")).unwrap().0.broker.listen_port, 10941);
        assert_eq!(BrokerConfig::load(dir.join("a.conf")).unwrap().0.broker.listen_port, 10951);
        let err = BrokerConfig::load(dir.join("missing.properties")).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // --------------------------------------------------------------------------------------
    // A key the broker accepts must do something: every KEYS entry is read by broker code, or
    // listed with its reason. The scan works on the sources with comments, string literals and
    // #[cfg(test)] items blanked out, so a key named in a doc, a log message or a test does not
    // count as read.
    // --------------------------------------------------------------------------------------

    /// Functions of config.rs whose result the broker acts on. A field read inside one counts
    /// as read once broker code calls it, directly or through another one of them. `validate`,
    /// `to_properties_text`, `to_toml_text`, `Default`, `test_min` and the KEYS closures only
    /// check, echo or produce values, so reads there never count.
    const EFFECT_ACCESSORS: &[&str] = &[
        "acl_credentials",
        "tls_acceptor",
        "tls_connector",
        "uses_embedded_namesrv",
        "advertised_ip",
        "advertised_ha_ip",
        "ha_listen_port",
        "fast_listen_port",
        "ha_server_addr",
        "register_timeout",
        "unique_key_query_max_num",
        "query_max_messages",
        "commit_log_dir",
        "effective_shards",
        "effective_max_open_cq_files",
        "max_open_cq_files_per_shard",
        "shard_dir",
        "cq_entries_per_file",
        "delay_levels_ms",
        "store_config",
        "wire_limits",
        "server_limits",
        "metrics_enabled",
        "metrics_addr",
        "metrics_labels",
    ];

    /// The accessor that hands `[store]`, `[retention]` and `[flush]` to the store: a key
    /// assigned there (`cfg.<store_field> = …;`) counts only if the store reads that field.
    const STORE_MAPPING: &str = "store_config";

    /// The code the scan looks at, each with comments, literals and test items blanked.
    struct Sources {
        /// core/src/config.rs.
        config: String,
        /// Every other file of core/src: the broker.
        broker: String,
        /// store/src without its config.rs (StoreConfig's definition, defaults and checks) and
        /// test_support.rs.
        store: String,
    }

    impl Sources {
        fn of_this_workspace() -> Sources {
            let core_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
            let config = code_only(&std::fs::read_to_string(core_src.join("config.rs")).unwrap());
            let broker = read_code(&core_src, &["config.rs"]);
            let store = read_code(&repo_path("store/src"), &["config.rs", "test_support.rs"]);
            assert!(broker.contains("fn start") && store.contains("fn open"), "the scan found no sources");
            Sources { config, broker, store }
        }
    }

    /// The code of every `.rs` file under `dir`, except the files of `dir` named in `skip`.
    fn read_code(dir: &Path, skip: &[&str]) -> String {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(dir, &mut files);
        files.sort();
        let skipped: Vec<PathBuf> = skip.iter().map(|name| dir.join(name)).collect();
        files
            .iter()
            .filter(|path| !skipped.contains(path))
            .map(|path| code_only(&std::fs::read_to_string(path).unwrap()))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn is_ident_char(c: char) -> bool {
        c.is_alphanumeric() || c == '_'
    }

    /// `src` with comments removed, string and char literals emptied and `#[cfg(test)]` items
    /// removed.
    fn code_only(src: &str) -> String {
        remove_cfg_test_items(&blank_comments_and_literals(src))
    }

    fn blank_comments_and_literals(src: &str) -> String {
        let chars: Vec<char> = src.chars().collect();
        let at = |i: usize| chars.get(i).copied();
        let mut out = String::with_capacity(src.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            let prev_is_ident = i > 0 && is_ident_char(chars[i - 1]);
            if c == '/' && at(i + 1) == Some('/') {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            } else if c == '/' && at(i + 1) == Some('*') {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && at(i + 1) == Some('*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && at(i + 1) == Some('/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            } else if c == 'r' && (!prev_is_ident || (chars[i - 1] == 'b' && (i < 2 || !is_ident_char(chars[i - 2]))))
                && (at(i + 1) == Some('"') || (at(i + 1) == Some('#') && chars[i + 1..].iter().find(|&&c| c != '#') == Some(&'"')))
            {
                // A raw string r"…" / r#"…"#: it ends at a quote followed by as many hashes.
                let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
                let mut k = i + 1 + hashes + 1;
                while k < chars.len() && !(chars[k] == '"' && (1..=hashes).all(|h| at(k + h) == Some('#'))) {
                    k += 1;
                }
                out.push_str("\"\"");
                i = k + 1 + hashes;
            } else if c == '"' {
                let mut k = i + 1;
                while k < chars.len() && chars[k] != '"' {
                    k += if chars[k] == '\\' { 2 } else { 1 };
                }
                out.push_str("\"\"");
                i = k + 1;
            } else if c == '\'' && at(i + 1) == Some('\\') {
                // An escaped char literal ('\n', '\'', '\u{..}'): skip the escaped char, then
                // find the closing quote.
                let mut k = i + 3;
                while k < chars.len() && chars[k] != '\'' {
                    k += 1;
                }
                out.push_str("' '");
                i = k + 1;
            } else if c == '\'' && at(i + 2) == Some('\'') {
                out.push_str("' '");
                i += 3;
            } else {
                // Anything else, lifetimes and labels ('a, 'outer) included.
                out.push(c);
                i += 1;
            }
        }
        out
    }

    fn remove_cfg_test_items(code: &str) -> String {
        const ATTR: &str = "#[cfg(test)]";
        let mut out = String::with_capacity(code.len());
        let mut rest = code;
        while let Some(at) = rest.find(ATTR) {
            out.push_str(&rest[..at]);
            rest = after_item(&rest[at + ATTR.len()..]);
        }
        out.push_str(rest);
        out
    }

    /// What follows the item `code` starts with (its further attributes included): the text
    /// after its closing `;` or `{…}` block.
    fn after_item(code: &str) -> &str {
        let mut depth = 0usize;
        for (i, c) in code.char_indices() {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth = depth.saturating_sub(1),
                ';' if depth == 0 => return &code[i + 1..],
                '{' if depth == 0 => return &code[i + block_len(&code[i..])..],
                _ => {}
            }
        }
        ""
    }

    /// Length of the `{…}` block `code` starts with.
    fn block_len(code: &str) -> usize {
        let mut depth = 0usize;
        for (i, c) in code.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        code.len()
    }

    /// The body of `fn name` in `code`.
    fn fn_body<'a>(code: &'a str, name: &str) -> Option<&'a str> {
        let needle = format!("fn {name}");
        code.match_indices(&needle).find_map(|(at, _)| {
            let before_ok = !code[..at].chars().next_back().is_some_and(is_ident_char);
            let after = code[at + needle.len()..].chars().next();
            if !before_ok || !after.is_some_and(|c| c == '(' || c == '<') {
                return None;
            }
            let open = at + code[at..].find('{')?;
            Some(&code[open..open + block_len(&code[open..])])
        })
    }

    /// Whether `code` reads the field path `field` (`broker.listen_port`) of some value:
    /// `<expr>.broker.listen_port` not followed by more of an identifier, a call or an
    /// assignment.
    fn reads_field(code: &str, field: &str) -> bool {
        let needle = format!(".{field}");
        code.match_indices(&needle).any(|(at, _)| {
            let rest = &code[at + needle.len()..];
            if rest.chars().next().is_some_and(is_ident_char) {
                return false;
            }
            let rest = rest.trim_start();
            let is_call = rest.starts_with('(');
            !is_call && !starts_assignment(rest)
        })
    }

    /// Whether `rest` (the text after a place expression) assigns to it: `= …`, not `== …`.
    fn starts_assignment(rest: &str) -> bool {
        rest.starts_with('=') && !rest.starts_with("==")
    }

    /// Whether `code` calls a method `name`.
    fn calls_method(code: &str, name: &str) -> bool {
        let needle = format!(".{name}");
        code.match_indices(&needle).any(|(at, _)| {
            let rest = &code[at + needle.len()..];
            let rest = rest.strip_prefix("::").map_or(rest, |generic| generic.trim_start_matches(|c| c != '('));
            rest.trim_start().starts_with('(')
        })
    }

    /// `store_config`'s body without the statements `cfg.<name> = …;` that assign a StoreConfig
    /// field the store never reads (those are returned too): a key set only there reaches
    /// nothing. Also returns how many assignments the body has, so that a rewrite of the
    /// mapping into another shape cannot silently disable this filter.
    fn store_mapping_in_effect(body: &str, store: &str) -> (String, Vec<String>, usize) {
        let mut kept = String::new();
        let mut unread = Vec::new();
        let mut assignments = 0;
        for statement in body.split(';') {
            let trimmed = statement.trim_start_matches(|c: char| c == '{' || c.is_whitespace());
            if let Some(rest) = trimmed.strip_prefix("cfg.") {
                let name: String = rest.chars().take_while(|&c| is_ident_char(c)).collect();
                if starts_assignment(rest[name.len()..].trim_start()) {
                    assignments += 1;
                    if !reads_field(store, &name) {
                        unread.push(name);
                        continue;
                    }
                }
            }
            kept.push_str(statement);
            kept.push(';');
        }
        (kept, unread, assignments)
    }

    /// What the scan found: the fields of `fields` that broker code reads, and the StoreConfig
    /// fields `store_config` sets that the store never reads.
    struct Usage {
        read: BTreeSet<String>,
        store_fields_unread: Vec<String>,
        store_assignments: usize,
    }

    fn scan_usage(sources: &Sources, fields: &[&str]) -> Usage {
        scan_usage_with(sources, fields, EFFECT_ACCESSORS)
    }

    fn scan_usage_with(sources: &Sources, fields: &[&str], accessors: &[&'static str]) -> Usage {
        let mut bodies = std::collections::BTreeMap::new();
        let mut store_fields_unread = Vec::new();
        let mut store_assignments = 0;
        for &name in accessors {
            let body = fn_body(&sources.config, name).unwrap_or_else(|| panic!("EFFECT_ACCESSORS names {name}, not a fn of config.rs"));
            let body = if name == STORE_MAPPING {
                let (kept, unread, assignments) = store_mapping_in_effect(body, &sources.store);
                store_fields_unread = unread;
                store_assignments = assignments;
                kept
            } else {
                body.to_owned()
            };
            bodies.insert(name, body);
        }
        // Accessors the broker calls, then those they call, until nothing changes.
        let mut live: BTreeSet<&str> = accessors.iter().copied().filter(|n| calls_method(&sources.broker, n)).collect();
        loop {
            let called: Vec<&str> = accessors
                .iter()
                .copied()
                .filter(|callee| !live.contains(callee) && live.iter().any(|caller| calls_method(&bodies[caller], callee)))
                .collect();
            if called.is_empty() {
                break;
            }
            live.extend(called);
        }
        let read = fields
            .iter()
            .filter(|field| reads_field(&sources.broker, field) || live.iter().any(|n| reads_field(&bodies[n], field)))
            .map(|field| (*field).to_owned())
            .collect();
        Usage { read, store_fields_unread, store_assignments }
    }

    /// Which list explains a key that broker code does not read.
    fn listed_as_unread(java: &str) -> Option<&'static str> {
        let lists: [(&'static str, &[(&str, &str)]); 3] =
            [("KEYS_WITHOUT_EFFECT", KEYS_WITHOUT_EFFECT), ("AWAITING_WIRING", AWAITING_WIRING), ("AWAITING_FEATURE", AWAITING_FEATURE)];
        lists.iter().find(|(_, list)| list.iter().any(|(k, _)| *k == java)).map(|(name, _)| *name)
    }

    #[test]
    fn every_key_is_read_or_listed() {
        let sources = Sources::of_this_workspace();
        let fields: Vec<&str> = KEYS.iter().map(|k| k.field).collect();
        let usage = scan_usage(&sources, &fields);
        assert!(usage.store_assignments >= 20, "store_config no longer assigns `cfg.<field> = …;`: update store_mapping_in_effect");
        let mut problems = Vec::new();
        for key in KEYS {
            match (usage.read.contains(key.field), listed_as_unread(key.java)) {
                (false, None) => problems.push(format!(
                    "{} ({}) is accepted but never read by broker code: read it where it takes effect (directly, or \
                     through an accessor listed in EFFECT_ACCESSORS), or list it with its reason",
                    key.java, key.field
                )),
                (true, Some(list)) => problems.push(format!(
                    "{} ({}) is read by broker code now: delete its entry from {list} (and its \"Not applied yet\" \
                     note in tuning/default.toml)",
                    key.java, key.field
                )),
                _ => {}
            }
        }
        assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
        // Known today: syncFlushTimeout reaches StoreConfig but the broker applies it itself.
        assert_eq!(usage.store_fields_unread, ["sync_flush_timeout_ms"], "StoreConfig fields set by store_config that the store never reads");
    }

    #[test]
    fn usage_scan_counts_only_effective_reads() {
        let config = code_only(
            r#"
            impl BrokerConfig {
                pub fn register_timeout(&self) -> Duration { Duration::from_millis(self.namesrv.register_timeout_ms) }
                pub fn server_limits(&self) -> ServerLimits { ServerLimits { max_connections: self.limits.max_connections } }
                pub fn store_config(&self, shard: ShardId) -> StoreConfig {
                    let mut cfg = StoreConfig::new(self.shard_dir(shard));
                    cfg.flush_interval_ms = self.flush.interval_ms;
                    cfg.sync_flush_timeout_ms = self.flush.sync_flush_timeout_ms;
                    cfg
                }
                pub fn shard_dir(&self, shard: ShardId) -> PathBuf { self.store.root_dir.join("x") }
                pub fn validate(&self) -> bool { self.broker.region_id.is_empty() }
            }
            "#,
        );
        let broker = code_only(
            r##"
            // config.broker.trace_on in a comment
            /* config.consumer.long_polling_enable in a block comment */
            const NOTE: &str = "config.topics.auto_create_topic_enable";
            const RAW: &str = r#"config.io.backend"#;
            fn start<'a>(config: &'a mut BrokerConfig) {
                let quote = '"';
                config.io.shards = 3;
                config.validate();
                let store = config.store_config(ShardId(0));
                let port = config.broker.listen_port;
            }
            #[cfg(test)]
            mod tests {
                fn t(c: &BrokerConfig) { let _ = (c.consumer.slave_read_enable, c.register_timeout(), c.server_limits()); }
            }
            "##,
        );
        let store = code_only("fn flush(config: &StoreConfig) -> u64 { config.flush_interval_ms }");
        let sources = Sources { config, broker, store };
        let fields = [
            "broker.listen_port",
            "flush.interval_ms",
            "store.root_dir",
            "flush.sync_flush_timeout_ms",
            "broker.region_id",
            "broker.trace_on",
            "consumer.long_polling_enable",
            "topics.auto_create_topic_enable",
            "io.backend",
            "io.shards",
            "consumer.slave_read_enable",
            "namesrv.register_timeout_ms",
            "limits.max_connections",
        ];
        let usage = scan_usage_with(&sources, &fields, &["register_timeout", "server_limits", "store_config", "shard_dir"]);
        // Read: directly, through a called accessor, through an accessor's accessor.
        assert_eq!(usage.read, BTreeSet::from(["broker.listen_port", "flush.interval_ms", "store.root_dir"].map(String::from)));
        // Not read: set into a StoreConfig field the store ignores, read only by validate(), in a
        // comment or literal, assigned, read or called only in a test.
        assert_eq!(usage.store_fields_unread, ["sync_flush_timeout_ms"]);
        assert_eq!(usage.store_assignments, 2);
    }

    #[test]
    fn key_fields_name_the_fields_they_set() {
        let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config.rs")).unwrap();
        for key in KEYS {
            // The TOML schema is named after the fields, so the path is also `section.name`.
            assert_eq!(key.field, format!("{}.{}", key.section, key.name), "{}", key.java);
            // A hand-written entry's field is typed by hand: its setter must assign that field.
            if let Some(at) = source.find(&format!("java: \"{}\",", key.java)) {
                let entry = &source[at..];
                let end = entry[1..].find("java: \"").map_or(entry.len(), |e| e + 1).min(entry.find("_key!(").unwrap_or(entry.len()));
                assert!(entry[..end].contains(&format!("c.{} =", key.field)), "{}: its setter does not assign c.{}", key.java, key.field);
            }
        }
    }

    #[test]
    fn every_accepted_java_key_is_in_one_place_with_a_reason() {
        let schema: BTreeSet<&str> = KEYS.iter().map(|k| k.java).collect();
        assert_eq!(schema.len(), KEYS.len(), "a Java key appears twice in KEYS");
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        let mut place = |key: &'static str, list: &str, reason: &str| {
            assert!(seen.insert(key), "{key} is listed twice (last in {list})");
            assert!(reason.trim().len() >= 10, "{key} in {list} needs a reason");
        };
        for (key, reason) in KEYS_WITHOUT_EFFECT.iter().chain(AWAITING_WIRING) {
            assert!(schema.contains(key), "{key}: KEYS_WITHOUT_EFFECT and AWAITING_WIRING list KEYS entries only");
            place(key, "KEYS_WITHOUT_EFFECT / AWAITING_WIRING", reason);
        }
        for (key, reason) in AWAITING_FEATURE {
            place(key, "AWAITING_FEATURE", reason);
        }
        for (key, _, reason) in FIXED_VALUE_KEYS {
            assert!(!schema.contains(key), "{key} is in KEYS and FIXED_VALUE_KEYS");
            place(key, "FIXED_VALUE_KEYS", reason);
        }
        for (key, reason) in NO_EFFECT_KEYS {
            assert!(!schema.contains(key), "{key} is in KEYS and NO_EFFECT_KEYS");
            place(key, "NO_EFFECT_KEYS", reason);
        }
        // Every listed key is accepted: a bare AWAITING_FEATURE key too, with a warning.
        let mut c = BrokerConfig::default();
        for key in seen {
            let value = match FIXED_VALUE_KEYS.iter().find(|(k, _, _)| *k == key) {
                Some((_, Fixed::Str(text), _)) => (*text).to_owned(),
                Some((_, fixed, _)) => fixed.to_string(),
                None => KEYS.iter().find(|k| k.java == key).map_or_else(|| "1".to_owned(), |k| (k.get)(&c)),
            };
            c.apply_override(key, &value).unwrap_or_else(|e| panic!("{key}={value}: {e}"));
        }
    }

    #[test]
    fn fixed_value_keys_refuse_other_values_naming_the_key() {
        for (key, fixed, why) in FIXED_VALUE_KEYS {
            // (another value, whether any text parses, the accepted value as written)
            let (other, any_text, accepted) = match fixed {
                Fixed::Bool(b) => ((!b).to_string(), false, fixed.to_string()),
                Fixed::Int(i) => ((i + 1).to_string(), false, fixed.to_string()),
                Fixed::Str(s) => (format!("{s}x"), true, (*s).to_owned()),
            };
            let message = props_err(&format!("{key}={other}\n"));
            assert!(message.contains(key) && message.contains(why), "{key}={other}: {message}");
            if !any_text {
                let message = props_err(&format!("{key}=x\n"));
                assert!(message.contains(key) && message.contains("expected"), "{key}=x: {message}");
            }
            props(&format!("{key}= {accepted} \n"));
        }
        let message = props_err("inSyncReplicas=2\n");
        assert!(message.contains("inSyncReplicas") && message.contains("4.x"), "{message}");
        // A value that would change what clients observe is refused, not accepted and ignored.
        for text in ["storeReplyMessageEnable=false\n", "validateSystemTopicWhenUpdateTopic=false\n", "filterSupportRetry=true\n"] {
            let key = text.split('=').next().unwrap_or_default();
            assert!(props_err(text).contains(key), "{text}");
        }
    }

    /// The comment block above each key of `tuning/default.toml`, by (section, name).
    fn default_toml_comments() -> std::collections::BTreeMap<(String, String), String> {
        let text = std::fs::read_to_string(repo_path("tuning/default.toml")).unwrap();
        let mut comments = std::collections::BTreeMap::new();
        let (mut section, mut block) = (String::new(), String::new());
        for line in text.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix('[') {
                section = rest.trim_end_matches(']').to_owned();
                block.clear();
            } else if let Some(comment) = line.strip_prefix('#') {
                block.push_str(comment);
                block.push('\n');
            } else if let Some((name, _)) = line.split_once('=') {
                comments.insert((section.clone(), name.trim().to_owned()), std::mem::take(&mut block));
            } else {
                block.clear();
            }
        }
        comments
    }

    #[test]
    fn default_toml_says_which_keys_are_not_applied_yet() {
        let comments = default_toml_comments();
        for key in KEYS {
            let comment = &comments[&(key.section.to_owned(), key.name.to_owned())];
            assert!(comment.contains(&format!("[{}", key.java)), "default.toml: the comment of {}.{} should name [{}]", key.section, key.name, key.java);
            let noted = comment.contains("Not applied yet");
            match not_applied_yet(key.java) {
                Some(_) => assert!(noted, "default.toml: {}.{} ({}) is not applied yet; its comment must say \"Not applied yet\"", key.section, key.name, key.java),
                None => assert!(!noted, "default.toml: {}.{} ({}) is applied now; drop its \"Not applied yet\" note", key.section, key.name, key.java),
            }
        }
    }

    #[test]
    fn config_is_send_sync_clone() {
        fn assert_traits<T: Clone + Send + Sync + 'static>() {}
        assert_traits::<BrokerConfig>();
        fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}
        assert_error::<ConfigError>();
    }
}
