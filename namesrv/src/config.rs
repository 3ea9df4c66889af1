//! Name-server configuration (PROTOCOL.md §11.4): Java key names, Java defaults, readable
//! from a RocketMQ `namesrv.properties` file or set in code (tests, the embedded name server).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferromq_net::acl::addr::AddrPattern;
use ferromq_net::backend::IoBackend;
use ferromq_net::server::ServerLimits;
use ferromq_net::tls::{ClientAuth, ServerTlsFiles, TlsAcceptor, TlsMode};

/// Default listen address: all interfaces, port 9876, as the Java name server.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9876";
/// A broker not heard from for this long is dropped (§8.1).
pub const DEFAULT_BROKER_EXPIRY: Duration = Duration::from_secs(120);
/// How often the live table is scanned for expired brokers (4.x: 10 s).
pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(10);
/// `metricsPromExporterPort`'s default: the Java broker's (Java's name server has no metrics).
/// A broker on the same host with metrics on needs another port.
pub const DEFAULT_METRICS_PORT: u16 = 5557;
/// Labels every name-server series carries; `metricsLabel` may not set them again.
pub const METRICS_COMMON_LABELS: &[&str] = &["node_type", "node_id"];

/// The Prometheus endpoint: the broker's `metrics*` keys, which Java's name server does not
/// have (it exports no metrics); FerroMQ's serves `rocketmq_rpc_latency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSettings {
    /// `metricsExporterType`: `PROM` serves the endpoint; `DISABLE` (default) records nothing.
    pub enabled: bool,
    /// `metricsPromExporterHost`: default (empty) the name server's listen address.
    pub host: Option<IpAddr>,
    /// `metricsPromExporterPort`: default 5557; 0 = any free port (logged).
    pub port: u16,
    /// `metricsLabel`: extra labels on every series.
    pub labels: Vec<(String, String)>,
}

impl Default for MetricsSettings {
    fn default() -> MetricsSettings {
        MetricsSettings { enabled: false, host: None, port: DEFAULT_METRICS_PORT, labels: Vec::new() }
    }
}

/// Who may change the name server's state (README, "Security"): the change codes (brokers'
/// registrations and liveness, write permissions, topics, the KV config, the configuration;
/// `service.rs`, `is_change_code`). Everything else (routes, cluster info, lists) stays open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeAccess {
    /// `aclEnable` (Java's broker key; Java's name server has no ACL): a change must pass
    /// `plain_acl.yml` as an admin account's signed request or from a white-listed address.
    pub acl_enable: bool,
    /// `rocketmq.acl.plain.file`: the `plain_acl.yml`, re-read when it changes. Required with
    /// `aclEnable=true`; default none.
    pub acl_plain_file: PathBuf,
    /// `changeWhiteRemoteAddresses` as written: comma-separated white-address patterns
    /// (`plain_acl.yml`'s syntax). With ACL off, only peers matching one may change anything;
    /// default empty = every peer may (Java's behaviour).
    pub change_white_addrs: String,
    /// The patterns of `change_white_addrs`.
    pub change_white: Vec<AddrPattern>,
}

/// Splits `changeWhiteRemoteAddresses` at the commas between patterns (not those inside a
/// `{…}` list) and parses each; a pattern that does not parse is the error.
pub fn parse_white_addrs(text: &str) -> Result<Vec<AddrPattern>, String> {
    let mut patterns = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    let mut pieces = Vec::new();
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                pieces.push(text.get(start..i).unwrap_or_default());
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(text.get(start..).unwrap_or_default());
    for piece in pieces.into_iter().map(str::trim) {
        if piece.is_empty() {
            continue;
        }
        patterns.push(AddrPattern::parse(piece)?);
    }
    Ok(patterns)
}

#[derive(Debug, Clone)]
pub struct NamesrvConfig {
    pub listen: SocketAddr,
    /// `kvConfigPath`: the only persistent name-server state.
    pub kv_config_path: PathBuf,
    /// `orderMessageEnable`: put `orderTopicConf` into routes.
    pub order_message_enable: bool,
    /// `returnOrderTopicConfigToBroker`: REGISTER_BROKER answers with the order-topic KV table.
    pub return_order_topic_config_to_broker: bool,
    /// `enableAllTopicList`: allow GET_ALL_TOPIC_LIST_FROM_NAMESERVER (206).
    pub enable_all_topic_list: bool,
    /// `enableTopicList`: allow GET_TOPICS_BY_CLUSTER and the unit topic lists.
    pub enable_topic_list: bool,
    /// `scanNotActiveBrokerInterval` (ms in the properties file).
    pub scan_interval: Duration,
    /// Expiry of a broker that sent no registration (`brokerChannelExpiredTime`, ms); a
    /// registration's `heartbeatTimeoutMillis` overrides it for that broker.
    pub broker_expiry: Duration,
    /// Largest compressed-registration body once inflated; bounds memory on bad input.
    pub max_inflated_register_body_bytes: usize,
    pub io_backend: IoBackend,
    pub limits: ServerLimits,
    pub metrics: MetricsSettings,
    /// `aclEnable`, `rocketmq.acl.plain.file`, `changeWhiteRemoteAddresses`.
    pub change_access: ChangeAccess,
    pub tls: TlsSettings,
    /// `configBlackList`: keys UPDATE_NAMESRV_CONFIG may never change, `;`-separated;
    /// [`ALWAYS_BLACK_LISTED`] always are (as in Java's `DefaultRequestProcessor`). Listing a
    /// runtime key forbids changing it remotely.
    pub config_black_list: String,
}

/// Keys UPDATE_NAMESRV_CONFIG never changes whatever `configBlackList` says.
pub const ALWAYS_BLACK_LISTED: &[&str] = &["configBlackList", "configStorePath", "kvConfigPath", "rocketmqHome"];

/// The listener's TLS: Java's `tls.server.*` keys (README, "TLS"). Paths empty: unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// `tls.server.mode` (also `tlsMode`): disabled (FerroMQ's default; Java's is permissive),
    /// permissive or enforcing.
    pub mode: TlsMode,
    /// `tls.server.certPath`: the certificate chain, PEM.
    pub cert_path: String,
    /// `tls.server.keyPath`: its private key, unencrypted PEM.
    pub key_path: String,
    /// `tls.server.need.client.auth`: none, optional or require.
    pub need_client_auth: ClientAuth,
    /// `tls.server.authClient`: verify client certificates against `trust_cert_path`; must be
    /// true with a client-auth mode (Java's default, false, accepts them unverified).
    pub auth_client: bool,
    /// `tls.server.trustCertPath`: CA certificates client certificates are verified against.
    pub trust_cert_path: String,
    /// `tlsKernelOffload` (FerroMQ, as the broker's): move TLS connections into the kernel (kTLS)
    /// where it takes their cipher. Default true.
    pub kernel_offload: bool,
}

impl Default for TlsSettings {
    fn default() -> TlsSettings {
        TlsSettings {
            mode: TlsMode::Disabled,
            cert_path: String::new(),
            key_path: String::new(),
            need_client_auth: ClientAuth::None,
            auth_client: false,
            trust_cert_path: String::new(),
            kernel_offload: true,
        }
    }
}

impl TlsSettings {
    /// Reads the PEM files: `None` when disabled. Keys set while the mode is disabled, a mode
    /// without certificate or key, and unreadable files are errors naming the key (and file).
    pub fn acceptor(&self) -> Result<Option<TlsAcceptor>, String> {
        let set = [
            ("tls.server.certPath", !self.cert_path.is_empty()),
            ("tls.server.keyPath", !self.key_path.is_empty()),
            ("tls.server.need.client.auth", self.need_client_auth != ClientAuth::None),
            ("tls.server.authClient", self.auth_client),
            ("tls.server.trustCertPath", !self.trust_cert_path.is_empty()),
            ("tlsKernelOffload", !self.kernel_offload),
        ];
        if self.mode == TlsMode::Disabled {
            return match set.iter().find(|(_, set)| *set) {
                Some((key, _)) => Err(format!(
                    "{key} is set but tls.server.mode is disabled (FerroMQ's default): set tls.server.mode=permissive or \
                     enforcing, or remove {key}"
                )),
                None => Ok(None),
            };
        }
        if self.cert_path.is_empty() || self.key_path.is_empty() {
            return Err(format!("tls.server.mode={} needs tls.server.certPath and tls.server.keyPath", self.mode));
        }
        if self.need_client_auth != ClientAuth::None && !self.auth_client {
            return Err(format!(
                "tls.server.need.client.auth={} with tls.server.authClient=false asks to accept client certificates unverified \
                 (Java's default), which FerroMQ does not do: set tls.server.authClient=true",
                self.need_client_auth
            ));
        }
        let files = ServerTlsFiles {
            cert_path: PathBuf::from(&self.cert_path),
            key_path: PathBuf::from(&self.key_path),
            client_auth: self.need_client_auth,
            trust_cert_path: Some(PathBuf::from(&self.trust_cert_path)).filter(|p| !p.as_os_str().is_empty()),
        };
        let acceptor = TlsAcceptor::from_files(self.mode, &files).map_err(|e| format!("TLS: {e}"))?;
        Ok(acceptor.map(|a| a.with_kernel_offload(self.kernel_offload)))
    }
}

impl Default for NamesrvConfig {
    fn default() -> NamesrvConfig {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        NamesrvConfig {
            listen: DEFAULT_LISTEN.parse().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 9876))),
            kv_config_path: home.join("namesrv").join("kvConfig.json"),
            order_message_enable: false,
            return_order_topic_config_to_broker: true,
            enable_all_topic_list: true,
            enable_topic_list: true,
            scan_interval: DEFAULT_SCAN_INTERVAL,
            broker_expiry: DEFAULT_BROKER_EXPIRY,
            max_inflated_register_body_bytes: 64 * 1024 * 1024,
            io_backend: IoBackend::Auto,
            limits: ServerLimits::default(),
            metrics: MetricsSettings::default(),
            change_access: ChangeAccess::default(),
            tls: TlsSettings::default(),
            config_black_list: "configBlackList;configStorePath;kvConfigPath".to_owned(),
        }
    }
}

/// A configuration key with a value that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: java_properties::PropertiesError },
    #[error("invalid value for {key}: {value:?} ({reason})")]
    Invalid { key: String, value: String, reason: String },
}

impl NamesrvConfig {
    /// Checks the keys that depend on each other; the name server refuses to start otherwise,
    /// naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let access = &self.change_access;
        let invalid = |key: &str, value: &str, reason: &str| ConfigError::Invalid { key: key.to_owned(), value: value.to_owned(), reason: reason.to_owned() };
        if access.acl_enable && access.acl_plain_file.as_os_str().is_empty() {
            return Err(invalid("aclEnable", "true", "needs rocketmq.acl.plain.file naming the plain_acl.yml to enforce"));
        }
        if access.acl_enable && !access.change_white.is_empty() {
            return Err(invalid(
                "changeWhiteRemoteAddresses",
                &access.change_white_addrs,
                "applies only with aclEnable=false; with ACL on, list the addresses in plain_acl.yml's globalWhiteRemoteAddresses",
            ));
        }
        Ok(())
    }

    /// Applies a `namesrv.properties` file over `self`. Unknown keys are warned about, not
    /// fatal (Java name-server files carry keys FerroMQ does not need); invalid values are.
    pub fn apply_properties_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let file = std::fs::File::open(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let map = java_properties::read(std::io::BufReader::new(file))
            .map_err(|source| ConfigError::Parse { path: path.to_owned(), source })?;
        let mut keys: Vec<_> = map.into_iter().collect();
        keys.sort();
        for (key, value) in keys {
            self.apply(&key, value.trim())?;
        }
        Ok(())
    }

    /// Sets one key, by its Java name.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match self.apply_key(key, value)? {
            KeyUse::Applied => {}
            KeyUse::NoEffect => tracing::info!(key, "namesrv.properties key has no effect in FerroMQ"),
            KeyUse::Unknown => tracing::warn!(key, "unknown namesrv.properties key ignored"),
        }
        Ok(())
    }

    fn apply_key(&mut self, key: &str, value: &str) -> Result<KeyUse, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid { key: key.to_owned(), value: value.to_owned(), reason: reason.to_owned() };
        let boolean = || match value {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid("expected true or false")),
        };
        let millis = || value.parse::<u64>().map(Duration::from_millis).map_err(|_| invalid("expected milliseconds, a whole number >= 0"));
        match key {
            "listenPort" => {
                let port = value.parse::<u16>().map_err(|_| invalid("expected a port number"))?;
                self.listen.set_port(port);
            }
            "bindAddress" | "listenAddress" => {
                let ip = value.parse().map_err(|_| invalid("expected an IP address"))?;
                self.listen.set_ip(ip);
            }
            "kvConfigPath" => self.kv_config_path = PathBuf::from(value),
            "configBlackList" => self.config_black_list = value.to_owned(),
            "orderMessageEnable" => self.order_message_enable = boolean()?,
            "returnOrderTopicConfigToBroker" => self.return_order_topic_config_to_broker = boolean()?,
            "enableAllTopicList" => self.enable_all_topic_list = boolean()?,
            "enableTopicList" => self.enable_topic_list = boolean()?,
            "scanNotActiveBrokerInterval" => self.scan_interval = millis()?.max(Duration::from_millis(10)),
            "brokerChannelExpiredTime" => self.broker_expiry = millis()?,
            "io.backend" => self.io_backend = value.parse().map_err(|e: String| invalid(&e))?,
            "maxFrameBytes" => {
                self.limits.conn.wire.max_frame_bytes = value.parse().map_err(|_| invalid("expected bytes"))?;
            }
            "serverChannelMaxIdleTimeSeconds" => {
                let seconds: u64 = value.parse().map_err(|_| invalid("expected seconds (0 = never)"))?;
                self.limits.conn.idle_timeout = (seconds > 0).then(|| Duration::from_secs(seconds));
            }
            "metricsExporterType" => {
                self.metrics.enabled = match value {
                    "DISABLE" => false,
                    "PROM" => true,
                    "OTLP_GRPC" | "LOG" => return Err(invalid(&format!("{value} is not implemented by FerroMQ; DISABLE or PROM"))),
                    _ => return Err(invalid("DISABLE or PROM")),
                };
            }
            "metricsPromExporterHost" => {
                self.metrics.host = if value.is_empty() { None } else { Some(value.parse().map_err(|_| invalid("expected an IP address, or empty"))?) };
            }
            "metricsPromExporterPort" => self.metrics.port = value.parse().map_err(|_| invalid("expected a port number (0 = any free one)"))?,
            "aclEnable" => self.change_access.acl_enable = boolean()?,
            "rocketmq.acl.plain.file" => self.change_access.acl_plain_file = PathBuf::from(value),
            "changeWhiteRemoteAddresses" => {
                self.change_access.change_white = parse_white_addrs(value).map_err(|e| invalid(&e))?;
                self.change_access.change_white_addrs = value.to_owned();
            }
            "tls.server.mode" | "tlsMode" => self.tls.mode = value.parse().map_err(|e: String| invalid(&e))?,
            "tls.server.certPath" => self.tls.cert_path = value.to_owned(),
            "tls.server.keyPath" => self.tls.key_path = value.to_owned(),
            "tls.server.need.client.auth" => self.tls.need_client_auth = value.parse().map_err(|e: String| invalid(&e))?,
            "tls.server.trustCertPath" => self.tls.trust_cert_path = value.to_owned(),
            "tls.server.authClient" => self.tls.auth_client = boolean()?,
            "tlsKernelOffload" => self.tls.kernel_offload = boolean()?,
            // Refused unless they hold the value that matches what FerroMQ does.
            "tls.server.keyPassword" | "tls.client.keyPassword" if !value.is_empty() => {
                return Err(invalid("encrypted private keys are not supported: use an unencrypted PEM key"));
            }
            "tls.test.mode.enable" if value != "false" => {
                return Err(invalid("FerroMQ generates no self-signed test certificate: set tls.server.certPath and tls.server.keyPath"));
            }
            "tls.config.file" if !value.is_empty() => {
                return Err(invalid("no separate TLS file is read: put the tls.* keys in namesrv.properties"));
            }
            // The name server opens no connections: its client keys can only hold their defaults.
            "tls.enable" | "useTLS" | "tls.client.authServer" if value != "false" => {
                return Err(invalid("the name server opens no connections (client TLS is the broker's); only false is accepted"));
            }
            "tls.client.trustCertPath" | "tls.client.certPath" | "tls.client.keyPath" if !value.is_empty() => {
                return Err(invalid("the name server opens no connections (client TLS is the broker's); only empty is accepted"));
            }
            "tls.server.keyPassword" | "tls.client.keyPassword" | "tls.test.mode.enable" | "tls.config.file" | "tls.enable"
            | "useTLS" | "tls.client.authServer" | "tls.client.trustCertPath" | "tls.client.certPath" | "tls.client.keyPath" => {
                return Ok(KeyUse::NoEffect);
            }
            "metricsLabel" => self.metrics.labels = ferromq_net::metrics::parse_metrics_label(value, METRICS_COMMON_LABELS).map_err(|e| invalid(&e))?,
            // The broker's other metrics keys ask for exporters FerroMQ does not have; their
            // defaults are accepted (a file copied from a broker), anything else refused.
            "metricsInDelta" | "metricsGrpcExporterTarget" | "metricsGrpcExporterHeader" | "metricGrpcExporterTimeOutInMills"
            | "metricGrpcExporterIntervalInMills" | "metricLoggingExporterIntervalInMills" | "metricsOtelCardinalityLimit" => {
                let default = match key {
                    "metricsInDelta" => "false",
                    "metricGrpcExporterTimeOutInMills" => "3000",
                    "metricGrpcExporterIntervalInMills" => "60000",
                    "metricLoggingExporterIntervalInMills" => "10000",
                    "metricsOtelCardinalityLimit" => "50000",
                    _ => "",
                };
                if value != default {
                    return Err(invalid(&format!("not implemented by FerroMQ's name server (OTLP and logging exporters, delta temporality, a cardinality limit); only {default:?} is accepted")));
                }
                return Ok(KeyUse::NoEffect);
            }
            // Java's cluster-test mode answers an unknown route from another environment's
            // name servers: not implemented, so only its default is accepted.
            "clusterTest" => {
                if boolean()? {
                    return Err(invalid("cluster-test mode (routes looked up in the productEnvName environment) is not implemented; only false is accepted"));
                }
                return Ok(KeyUse::NoEffect);
            }
            "rocketmqHome" | "productEnvName" | "serverWorkerThreads" | "serverCallbackExecutorThreads"
            | "serverSelectorThreads" | "serverOnewaySemaphoreValue" | "serverAsyncSemaphoreValue"
            | "serverSocketSndBufSize" | "serverSocketRcvBufSize" | "serverSocketBacklog"
            | "writeBufferHighWaterMark" | "writeBufferLowWaterMark"
            | "serverPooledByteBufAllocatorEnable" | "useEpollNativeSelector" | "defaultThreadPoolNums"
            | "clientRequestThreadPoolNums" | "configStorePath" => return Ok(KeyUse::NoEffect),
            _ => return Ok(KeyUse::Unknown),
        }
        Ok(KeyUse::Applied)
    }
}

/// The keys UPDATE_NAMESRV_CONFIG applies while the name server runs: each is read by the
/// request that uses it, so a change takes effect with the next request. Every other key is
/// refused, naming it (the listen address, the KV path, the scan task's period and the
/// brokers' expiry are fixed at start).
pub const RUNTIME_KEYS: &[&str] = &["orderMessageEnable", "returnOrderTopicConfigToBroker", "enableAllTopicList", "enableTopicList"];

/// Beside the KV config file: the runtime changes, applied over the configuration at start
/// (Java rewrites its `configStorePath` file, which it never reads back).
pub const RUNTIME_CONFIG_FILE: &str = "namesrvRuntime.properties";

impl NamesrvConfig {
    /// UPDATE_NAMESRV_CONFIG: applies `changes` if every key is a [`RUNTIME_KEYS`] key with a
    /// valid value; otherwise changes nothing and says which key and why.
    pub fn apply_runtime(&mut self, changes: &[(String, String)]) -> Result<(), String> {
        if changes.is_empty() {
            return Err("no key to update: the body holds no key=value line".to_owned());
        }
        let mut changed = self.clone();
        for (key, value) in changes {
            if self.black_listed(key) {
                return Err(format!("{key:?} is in configBlackList: it cannot be changed remotely"));
            }
            if !RUNTIME_KEYS.contains(&key.as_str()) {
                let known = !matches!(NamesrvConfig::default().apply_key(key, value), Ok(KeyUse::Unknown));
                let what = if known { "cannot be changed while the name server runs: set it in namesrv.properties and restart" } else { "is not a name server configuration key" };
                return Err(format!("{key:?} {what} (keys changed at runtime: {})", RUNTIME_KEYS.join(", ")));
            }
            changed.apply_key(key, value.trim()).map_err(|e| e.to_string())?;
        }
        *self = changed;
        Ok(())
    }

    /// Whether `configBlackList` (or [`ALWAYS_BLACK_LISTED`]) forbids changing `key` remotely.
    fn black_listed(&self, key: &str) -> bool {
        ALWAYS_BLACK_LISTED.contains(&key) || self.config_black_list.split(';').any(|listed| listed.trim() == key)
    }

    /// Where the runtime changes are kept: beside `kvConfigPath`.
    pub fn runtime_file(&self) -> PathBuf {
        self.kv_config_path.parent().map_or_else(|| PathBuf::from(RUNTIME_CONFIG_FILE), |dir| dir.join(RUNTIME_CONFIG_FILE))
    }

    /// The runtime keys' values as a properties text (the runtime file's body).
    pub fn runtime_text(&self) -> String {
        let value = |key: &str| match key {
            "orderMessageEnable" => self.order_message_enable,
            "returnOrderTopicConfigToBroker" => self.return_order_topic_config_to_broker,
            "enableAllTopicList" => self.enable_all_topic_list,
            _ => self.enable_topic_list,
        };
        let mut out = String::from("# Written by FerroMQ on UPDATE_NAMESRV_CONFIG (mqadmin updateNamesrvConfig); applied over the\n# name server's configuration at start. Delete this file to use the configured values again.\n");
        for key in RUNTIME_KEYS {
            out.push_str(&format!("{key}={}\n", value(key)));
        }
        out
    }

    /// Applies the runtime file, if there is one, over `self` at start.
    pub fn apply_saved_runtime(&mut self) -> Result<bool, ConfigError> {
        let path = self.runtime_file();
        if !path.exists() {
            return Ok(false);
        }
        let file = std::fs::File::open(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        let map = java_properties::read(std::io::BufReader::new(file)).map_err(|source| ConfigError::Parse { path: path.clone(), source })?;
        let mut changes: Vec<(String, String)> = map.into_iter().collect();
        changes.sort();
        self.apply_runtime(&changes).map_err(|reason| ConfigError::Invalid { key: path.display().to_string(), value: String::new(), reason })?;
        Ok(true)
    }
}

/// What [`NamesrvConfig::apply`] did with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyUse {
    Applied,
    /// A Java key that changes nothing here (thread pools, Netty tuning): logged at info.
    NoEffect,
    /// Not a name-server key: logged at warn.
    Unknown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_override_defaults_and_reject_bad_values() {
        let dir = std::env::temp_dir().join(format!("ferromq-nscfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("namesrv.properties");
        std::fs::write(&path, "# comment\nlistenPort=9877\norderMessageEnable = true\nscanNotActiveBrokerInterval=5000\nsomethingNew=1\n").unwrap();
        let mut config = NamesrvConfig::default();
        config.apply_properties_file(&path).unwrap();
        assert_eq!(config.listen.port(), 9877);
        assert!(config.order_message_enable);
        assert_eq!(config.scan_interval, Duration::from_secs(5));
        std::fs::write(&path, "orderMessageEnable=yes\n").unwrap();
        let err = config.apply_properties_file(&path).unwrap_err();
        assert!(err.to_string().contains("orderMessageEnable"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        // Java's Netty tuning is known and has no effect; cluster-test mode is refused.
        for key in ["writeBufferHighWaterMark", "writeBufferLowWaterMark", "serverSocketBacklog"] {
            assert!(matches!(NamesrvConfig::default().apply_key(key, "1024"), Ok(KeyUse::NoEffect)), "{key}");
        }
        NamesrvConfig::default().apply("clusterTest", "false").unwrap();
        let err = NamesrvConfig::default().apply("clusterTest", "true").unwrap_err().to_string();
        assert!(err.contains("clusterTest"), "{err}");
    }

    #[test]
    fn tls_keys_are_applied_or_refused_naming_them() {
        let fixture = |name: &str| format!("{}/../tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"));
        let mut config = NamesrvConfig::default();
        assert!(config.tls.acceptor().unwrap().is_none());
        config.apply("tlsMode", "enforcing").unwrap();
        assert!(config.tls.acceptor().unwrap_err().contains("tls.server.certPath"));
        config.apply("tls.server.certPath", &fixture("server.pem")).unwrap();
        config.apply("tls.server.keyPath", &fixture("server.key")).unwrap();
        config.apply("tls.enable", "false").unwrap();
        assert_eq!(config.tls.acceptor().unwrap().unwrap().mode, TlsMode::Enforcing);
        config.apply("tls.server.keyPath", "/nonexistent/server.key").unwrap();
        let err = config.tls.acceptor().unwrap_err();
        assert!(err.contains("tls.server.keyPath") && err.contains("/nonexistent/server.key"), "{err}");
        for (key, value) in [
            ("tls.server.mode", "on"),
            ("tls.server.need.client.auth", "always"),
            ("tls.server.keyPassword", "secret"),
            ("tls.test.mode.enable", "true"),
            ("tls.config.file", "/etc/rocketmq/tls.properties"),
            ("tls.enable", "true"),
            ("tls.client.certPath", "/c.pem"),
        ] {
            let err = NamesrvConfig::default().apply(key, value).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let mut off = NamesrvConfig::default();
        off.apply("tls.server.trustCertPath", "/ca.pem").unwrap();
        assert!(off.tls.acceptor().unwrap_err().contains("tls.server.trustCertPath"));
    }

    #[test]
    fn runtime_changes_apply_all_or_none_and_are_kept_beside_the_kv_file() {
        let dir = std::env::temp_dir().join(format!("ferromq-nsrt-{}", std::process::id()));
        let mut config = NamesrvConfig { kv_config_path: dir.join("kvConfig.json"), ..NamesrvConfig::default() };
        let change = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect::<Vec<_>>();
        config.apply_runtime(&change(&[("enableAllTopicList", "false"), ("orderMessageEnable", "true")])).unwrap();
        assert!(!config.enable_all_topic_list && config.order_message_enable);
        // A key fixed at start, an unknown key, a bad value: refused, naming the key, and the
        // valid key beside them is not applied.
        let fixed = config.apply_runtime(&change(&[("enableTopicList", "false"), ("listenPort", "1")])).unwrap_err();
        assert!(fixed.contains("\"listenPort\" cannot be changed while the name server runs"), "{fixed}");
        assert!(config.enable_topic_list);
        let unknown = config.apply_runtime(&change(&[("listenPrt", "1")])).unwrap_err();
        assert!(unknown.contains("\"listenPrt\" is not a name server configuration key"), "{unknown}");
        assert!(config.apply_runtime(&change(&[("enableTopicList", "maybe")])).unwrap_err().contains("enableTopicList"));
        assert!(config.apply_runtime(&[]).is_err());
        // configBlackList: its keys are refused remotely, naming the key, as are the ones Java
        // always lists.
        let mut listed = NamesrvConfig { kv_config_path: dir.join("kvConfig.json"), ..NamesrvConfig::default() };
        listed.apply("configBlackList", "configBlackList;orderMessageEnable").unwrap();
        let refused = listed.apply_runtime(&change(&[("orderMessageEnable", "true")])).unwrap_err();
        assert!(refused.contains("\"orderMessageEnable\" is in configBlackList"), "{refused}");
        assert!(!listed.order_message_enable);
        let always = listed.apply_runtime(&change(&[("kvConfigPath", "/elsewhere")])).unwrap_err();
        assert!(always.contains("configBlackList"), "{always}");
        listed.apply_runtime(&change(&[("enableTopicList", "false")])).unwrap();
        // Kept beside the KV file and applied at the next start.
        assert_eq!(config.runtime_file(), dir.join(RUNTIME_CONFIG_FILE));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(config.runtime_file(), config.runtime_text()).unwrap();
        let mut restarted = NamesrvConfig { kv_config_path: dir.join("kvConfig.json"), ..NamesrvConfig::default() };
        assert!(restarted.apply_saved_runtime().unwrap());
        assert!(!restarted.enable_all_topic_list && restarted.order_message_enable && restarted.enable_topic_list);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!restarted.apply_saved_runtime().unwrap(), "no file, nothing applied");
    }

    #[test]
    fn metrics_keys_are_applied_or_refused_naming_them() {
        let mut config = NamesrvConfig::default();
        assert!(!config.metrics.enabled);
        for (key, value) in [("metricsExporterType", "PROM"), ("metricsPromExporterHost", "127.0.0.1"), ("metricsPromExporterPort", "0"), ("metricsLabel", "env:test")] {
            assert_eq!(config.apply_key(key, value).unwrap(), KeyUse::Applied, "{key}");
        }
        assert_eq!(config.metrics, MetricsSettings { enabled: true, host: Some(IpAddr::from([127, 0, 0, 1])), port: 0, labels: vec![("env".to_owned(), "test".to_owned())] });
        assert_eq!(config.apply_key("metricsInDelta", "false").unwrap(), KeyUse::NoEffect);
        for (key, value) in [
            ("metricsExporterType", "OTLP_GRPC"),
            ("metricsExporterType", "LOG"),
            ("metricsExporterType", "prom"),
            ("metricsInDelta", "true"),
            ("metricsGrpcExporterTarget", "collector:4317"),
            ("metricsOtelCardinalityLimit", "10"),
            ("metricsLabel", "node_id:x"),
        ] {
            let err = config.apply_key(key, value).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(value), "{err}");
        }
    }

    #[test]
    fn access_keys_are_applied_checked_together_and_refused_naming_them() {
        let mut config = NamesrvConfig::default();
        assert_eq!(config.change_access, ChangeAccess::default());
        config.validate().unwrap();
        for (key, value) in [("aclEnable", "true"), ("rocketmq.acl.plain.file", "/etc/rocketmq/plain_acl.yml")] {
            assert_eq!(config.apply_key(key, value).unwrap(), KeyUse::Applied, "{key}");
        }
        assert!(config.change_access.acl_enable);
        assert_eq!(config.change_access.acl_plain_file, Path::new("/etc/rocketmq/plain_acl.yml"));
        config.validate().unwrap();
        // ACL on without a file, and ACL on with an allow-list, stop the start naming the key.
        let mut no_file = NamesrvConfig::default();
        no_file.apply_key("aclEnable", "true").unwrap();
        let err = no_file.validate().unwrap_err().to_string();
        assert!(err.contains("aclEnable") && err.contains("rocketmq.acl.plain.file"), "{err}");
        config.apply_key("changeWhiteRemoteAddresses", "10.0.0.*").unwrap();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("changeWhiteRemoteAddresses") && err.contains("aclEnable=false"), "{err}");

        // The allow-list: comma-separated patterns, `{…}` lists kept whole; empty = none.
        let mut open = NamesrvConfig::default();
        assert_eq!(open.apply_key("changeWhiteRemoteAddresses", "10.0.0.*, 192.168.1.{1,2},::1").unwrap(), KeyUse::Applied);
        let white = &open.change_access.change_white;
        assert_eq!(white.len(), 3);
        let allowed = |ip: &str| white.iter().any(|p| p.matches(ip.parse().unwrap()));
        assert!(allowed("10.0.0.9") && allowed("192.168.1.2") && allowed("::1"));
        assert!(!allowed("192.168.1.3") && !allowed("127.0.0.1"));
        open.validate().unwrap();
        open.apply_key("changeWhiteRemoteAddresses", "").unwrap();
        assert!(open.change_access.change_white.is_empty());
        for (key, value) in [("aclEnable", "yes"), ("changeWhiteRemoteAddresses", "10.0.0.300"), ("changeWhiteRemoteAddresses", "10.0.0.1,host.example")] {
            let err = open.apply_key(key, value).unwrap_err().to_string();
            assert!(err.contains(key) && err.contains(value), "{err}");
        }
    }

    /// `tuning/conf/namesrv.properties`, the file the deployment docs and the systemd unit
    /// start `mqnamesrv` with: every key in it is one mqnamesrv applies.
    #[test]
    fn shipped_namesrv_properties_load() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning/conf/namesrv.properties");
        let text = std::fs::read_to_string(&path).unwrap();
        let map = java_properties::read(text.as_bytes()).unwrap();
        assert!(!map.is_empty());
        let mut config = NamesrvConfig::default();
        for (key, value) in &map {
            assert_eq!(config.apply_key(key, value.trim()).unwrap(), KeyUse::Applied, "{}: {key}", path.display());
        }
        assert_eq!(config.listen.port(), 9876);
        assert_eq!(config.kv_config_path, Path::new("namesrv/kvConfig.json"));
        assert_eq!(NamesrvConfig::default().apply_key("listenPrt", "1").unwrap(), KeyUse::Unknown, "the check can fail");
    }
}
