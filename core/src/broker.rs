//! The broker: wires the pieces together and stops them in order.
//!
//! Threads (ARCHITECTURE.md has the map):
//! - one thread per shard (`shard/`): the data plane — its listener and connections, its store,
//!   held pulls, jobs from other shards; pinned, one runtime each;
//! - one control thread (`control/`): topics, groups, clients, offsets, locks, registration and
//!   every metadata file;
//! - with no name server configured, an embedded name server thread on 127.0.0.1:9876.
//!
//! Start order: embedded name server → metadata loaded (control plane) → every shard opens its
//! store and reports ready → go (all shards serve) → control thread (registration). Stop order:
//! shards (stop accepting, finish requests, close the stores) → control thread (apply what is
//! queued, flush offsets, unregister) → embedded name server.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ferromq_namesrv::{NamesrvConfig, NamesrvHandle};
use ferromq_net::backend::{ActiveBackend, IoBackend};
use ferromq_store::io::faulty::ExternalFaults;
use ferromq_store::{OffsetSpace, ShardId};
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::control::{BrokerIdentity, ControlHandle, ControlPlane, ShardEvent};
use crate::handlers::BrokerService;
use crate::shard::ShardCtx;
use crate::shard::executor::ShardJob;
use crate::shard::router::Router;
use crate::shard::run::ShardSetup;

/// A running broker. [`BrokerHandle::shutdown`] stops it cleanly.
pub struct BrokerHandle {
    pub control: Arc<ControlHandle>,
    pub listen_addr: SocketAddr,
    pub backend: ActiveBackend,
    /// A master's HA port (None on a slave).
    ha_acceptor: Option<ferromq_repl::acceptor::Acceptor>,
    shards: Vec<JoinHandle<()>>,
    stop_shards: async_channel::Sender<()>,
    control_thread: Option<JoinHandle<()>>,
    namesrv: Option<NamesrvHandle>,
    /// The Prometheus endpoint (`metricsExporterType=PROM`).
    metrics: Option<ferromq_net::metrics::http::Exporter>,
}

impl BrokerHandle {
    /// Stops accepting, finishes in-flight work, closes every store, flushes the consumer
    /// offsets, unregisters from the name servers, and returns once everything has stopped.
    pub fn shutdown(mut self) {
        info!("broker shutting down");
        // Scrapes end first: they ask the shards and the control thread for figures.
        drop(self.metrics.take());
        if let Some(acceptor) = self.ha_acceptor.take() {
            acceptor.stop();
        }
        self.stop_shards.close();
        for shard in self.shards.drain(..) {
            let _ = shard.join();
        }
        self.control.close();
        if let Some(thread) = self.control_thread.take() {
            let _ = thread.join();
        }
        if let Some(namesrv) = self.namesrv.take() {
            namesrv.shutdown();
        }
        info!("broker stopped");
    }
}

/// Slave connections accepted on the HA port and not yet taken by their shard, per shard: a
/// slave connects once per shard and reconnects after a failure, so a few suffice; beyond
/// them the acceptor refuses (the slave tries again).
const HA_HANDOFF_QUEUE_DEPTH: usize = 4;

impl BrokerHandle {
    /// The address of this master's HA port (None on a slave).
    pub fn ha_addr(&self) -> Option<SocketAddr> {
        self.ha_acceptor.as_ref().map(|a| a.local_addr())
    }
}

/// The shard count is pinned by the store: a queue's data lives in its owner shard's log, so
/// changing the count would move queues away from their data. The first start records the
/// count; later starts use the recorded one (and warn if the config asks for another).
fn pin_shard_count(root: &Path, configured: u32) -> io::Result<u32> {
    let path = root.join("ferromq-shards");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let pinned: u32 = text.trim().parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{} is corrupt", path.display())))?;
            if pinned != configured {
                warn!(pinned, configured, "this store was created with {pinned} shards; using {pinned}");
            }
            Ok(pinned)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            crate::meta::write_atomic(&path, configured.to_string().as_bytes()).map_err(|e| io::Error::other(e.to_string()))?;
            Ok(configured)
        }
        Err(e) => Err(e),
    }
}

/// Creates the store's root directory if needed and checks that it is a writable directory,
/// before anything else (the embedded name server keeps its KV file there) touches it. A
/// refusal names the key and the path: `Not a directory (os error 20)` alone does not say
/// which setting to fix.
fn prepare_store_root(root: &Path) -> io::Result<()> {
    let refuse = |e: io::Error| io::Error::new(e.kind(), format!("storePathRootDir={}: cannot be used as the store directory: {e}", root.display()));
    if root.as_os_str().is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "storePathRootDir is empty: set it to the store directory"));
    }
    std::fs::create_dir_all(root).map_err(refuse)?;
    if !root.is_dir() {
        return Err(refuse(io::Error::new(io::ErrorKind::NotADirectory, "not a directory")));
    }
    // Writable: a directory we may not write would otherwise fail later, in whichever file
    // comes first.
    let probe = root.join(".ferromq-write-probe");
    std::fs::write(&probe, b"").map_err(refuse)?;
    std::fs::remove_file(&probe).map_err(refuse)
}

/// How long the embedded name server retries a port that is still in use at start.
///
/// After a crash the dead process's listening socket can outlive it briefly: io_uring tears a
/// dead process's ring down asynchronously, and the ring's pending accept keeps the socket in
/// LISTEN until then (measured ~40 ms on Linux 6.18; ~5 ms with epoll). A restart right after
/// kill -9 (a supervisor, the kill -9 tests) then failed with "Address already in use" on the
/// name-server port, even with SO_REUSEADDR. The shard listeners use SO_REUSEPORT and are not
/// affected. A port held by another live server still fails the start, after this wait.
const EMBEDDED_NAMESRV_REBIND_PATIENCE: Duration = Duration::from_secs(3);

fn start_embedded_namesrv(namesrv_config: NamesrvConfig) -> io::Result<NamesrvHandle> {
    let deadline = Instant::now() + EMBEDDED_NAMESRV_REBIND_PATIENCE;
    let mut warned = false;
    loop {
        match ferromq_namesrv::start(namesrv_config.clone()) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                if !warned {
                    warn!(addr = %namesrv_config.listen, "embedded name server port still in use (a previous process's socket?); retrying for {EMBEDDED_NAMESRV_REBIND_PATIENCE:?}");
                    warned = true;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}

/// Starts the broker: embedded name server if none is configured, the control plane, the
/// shards, the control thread. Returns when every shard serves, or with the error that stopped
/// the start.
pub fn start(mut config: BrokerConfig) -> io::Result<BrokerHandle> {
    config.resolve_namesrv_addr();
    config.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let backend = IoBackend::resolve(config.io.backend).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    prepare_store_root(&config.store.root_dir)?;
    // Changes made with UPDATE_BROKER_CONFIG while the broker ran win over the file, as Java's
    // rewritten config file would (control/runtime_config.rs).
    let config_dir = config.store.root_dir.join("config");
    let saved = crate::control::runtime_config::apply_saved(&mut config, &config_dir).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    for (key, value) in saved {
        tracing::warn!(key, value, file = %crate::control::runtime_config::runtime_file(&config_dir).display(), "configuration key set by updateBrokerConfig overrides the configured value");
    }
    config.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    // The PEM files are read now: one that cannot be read stops the start, naming it.
    let tls_acceptor = config.tls_acceptor().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    let tls_connector = config.tls_connector().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    if let Some(tls) = &tls_acceptor {
        let kernel = ferromq_net::ktls::support();
        match (tls.kernel_offload(), kernel.unavailable) {
            (false, _) => info!(mode = %tls.mode, "TLS on the listeners (tls.server.mode), in user space (tlsKernelOffload=false): file bodies copied"),
            (true, None) => info!(mode = %tls.mode, kernel_tls = %kernel.describe(), "TLS on the listeners (tls.server.mode); connections move into kernel TLS where it takes their cipher (sendfile kept)"),
            (true, Some(why)) => warn!(mode = %tls.mode, "TLS on the listeners (tls.server.mode), in user space: kernel TLS unavailable ({why}); file bodies are copied"),
        }
    }

    let embedded = config.uses_embedded_namesrv();
    // aclEnable=true: the rules every request is checked against. The embedded name server
    // enforces the same file on its change codes, so the broker's own registrations must pass.
    let acl = crate::acl::load(&config)?;
    if embedded && let Some(file) = &acl {
        crate::acl::check_embedded_namesrv_access(file, config.acl_credentials())?;
    }
    let namesrv = if embedded {
        let t = &config.tls;
        let namesrv_config = NamesrvConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), config.namesrv.embedded_port),
            kv_config_path: config.store.root_dir.join("namesrv").join("kvConfig.json"),
            io_backend: backend,
            // No name-server keys of its own: ACL follows the broker's aclEnable and file.
            change_access: ferromq_namesrv::config::ChangeAccess {
                acl_enable: config.acl.enable,
                acl_plain_file: config.acl.plain_file.clone().into(),
                ..Default::default()
            },
            // The embedded name server's listener takes the broker's server TLS.
            tls: ferromq_namesrv::config::TlsSettings {
                mode: t.server_mode,
                cert_path: t.server_cert_path.clone(),
                key_path: t.server_key_path.clone(),
                need_client_auth: t.server_need_client_auth,
                auth_client: t.server_auth_client,
                trust_cert_path: t.server_trust_cert_path.clone(),
                kernel_offload: t.kernel_offload,
            },
            ..NamesrvConfig::default()
        };
        let handle = start_embedded_namesrv(namesrv_config)?;
        info!(addr = %handle.local_addr(), "embedded name server started (no namesrvAddr configured)");
        Some(handle)
    } else {
        None
    };
    let namesrv_addrs: Vec<String> = match &namesrv {
        Some(handle) => vec![handle.local_addr().to_string()],
        None => config.namesrv.addr.clone(),
    };

    let shard_count = pin_shard_count(&config.store.root_dir, config.effective_shards())?;
    // From here on the configuration names the shards that run: `effective_shards` with
    // `shards=0` asks for the CPUs this thread may use, which on a pinned shard thread is one,
    // and the store's count wins over the configured one. Shards split per-broker budgets by it
    // (consume-queue descriptors, pull memory).
    config.io.shards = shard_count;
    // Bind every shard's listener here, so that "address in use" fails the start at once. With
    // port 0 the first bind picks the port and the other shards join it.
    let mut listen_addr = SocketAddr::new(config.broker.bind_address, config.broker.listen_port);
    let mut listeners = Vec::new();
    for _ in 0..shard_count {
        let listener = ferromq_net::server::bind_reuse_port(listen_addr)?;
        listen_addr = listener.local_addr()?;
        listeners.push(listener);
    }
    // Java's fast ("VIP") port, listenPort - 2 (PROTOCOL.md §0): the same service on a second
    // SO_REUSEPORT listener per shard, for clients up to 4.4.0, which send there by default.
    let fast_addr = config.fast_listen_port().map(|port| SocketAddr::new(config.broker.bind_address, port));
    let mut fast_listeners: Vec<Option<std::net::TcpListener>> = Vec::new();
    for _ in 0..shard_count {
        let listener = match fast_addr {
            Some(addr) => Some(ferromq_net::server::bind_reuse_port(addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("fast port (listenPort - 2): cannot listen on {addr}: {e}; free it or set fastListenPortEnable=false"),
                )
            })?),
            None => None,
        };
        fast_listeners.push(listener);
    }
    // A master's HA port (§7.2): one listener, whose thread hands each slave connection to
    // the shard its handshake names. Bound here too, so a port in use fails the start.
    let (ha_listener, ha_inboxes) = if config.broker.role.is_master() {
        let port = if config.broker.listen_port == 0 && config.ha.listen_port.unwrap_or(0) == 0 { 0 } else { config.ha_listen_port() };
        let addr = SocketAddr::new(config.broker.bind_address, port);
        let listener = std::net::TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("haListenPort: cannot listen on {addr}: {e}")))?;
        let (senders, receivers): (Vec<_>, Vec<_>) = (0..shard_count).map(|_| async_channel::bounded(HA_HANDOFF_QUEUE_DEPTH)).unzip();
        (Some((listener, senders)), receivers.into_iter().map(Some).collect())
    } else {
        (None, (0..shard_count).map(|_| None).collect::<Vec<_>>())
    };
    let store_host = SocketAddr::new(config.advertised_ip(embedded), listen_addr.port());
    let identity = BrokerIdentity {
        broker_addr: store_host.to_string(),
        store_host,
        broker_name: config.broker.name.clone(),
        cluster_name: config.broker.cluster_name.clone(),
        broker_id: config.broker.id,
    };
    let config = Arc::new(config);

    // The control plane: its state is loaded here, its thread starts once the shards serve.
    let (commands_tx, commands_rx) = async_channel::bounded(config.limits.control_queue_depth.max(1));
    // Registration with the embedded name server follows its listener (the broker's server
    // TLS): TLS unless disabled, with `tls.client.*` if set, else trusting it (same process).
    let namesrv_tls = match (embedded, config.tls.server_mode) {
        (false, _) => tls_connector.clone(),
        (true, ferromq_net::tls::TlsMode::Disabled) => None,
        (true, _) => match &tls_connector {
            Some(connector) => Some(connector.clone()),
            None => Some(
                ferromq_net::tls::TlsConnector::from_files(&ferromq_net::tls::ClientTlsFiles::default())
                    .map_err(|e| io::Error::other(e.to_string()))?,
            ),
        },
    };
    let control = Arc::new(ControlHandle::new(config.clone(), identity, commands_tx).with_tls(namesrv_tls, tls_connector).with_acl(acl));
    let mut event_senders = Vec::new();
    let mut event_receivers = Vec::new();
    for _ in 0..shard_count {
        let (tx, rx) = async_channel::bounded::<ShardEvent>(config.limits.shard_event_queue_depth.max(1));
        event_senders.push(tx);
        event_receivers.push(rx);
    }
    let plane = ControlPlane::load(control.clone(), config.store.root_dir.join("config"), event_senders)?;

    // The shards.
    let mut mailboxes = Vec::new();
    let mut inboxes = Vec::new();
    for _ in 0..shard_count {
        let (tx, rx) = async_channel::bounded::<ShardJob<ShardCtx>>(config.limits.cross_shard_queue_depth.max(1));
        mailboxes.push(tx);
        inboxes.push(rx);
    }
    let router = Router::new(mailboxes);
    // The metrics endpoint, bound here so that a port in use fails the start at once; a scrape
    // that arrives before the shards serve waits for them, within its timeout.
    let metrics = if config.metrics_enabled() {
        let exporter = crate::metrics::start(config.metrics_addr(embedded), config.clone(), control.clone(), router.clone())?;
        info!(addr = %exporter.local_addr(), "metrics endpoint (Prometheus, metricsExporterType=PROM) listening on http://{}/metrics", exporter.local_addr());
        Some(exporter)
    } else {
        None
    };
    // Client-visible commit-log offsets: one space for all shards, handed out per segment, so
    // they stay below 2^53 as long as a Java broker's would (store/DESIGN-NOTES.md).
    let offset_space = Arc::new(OffsetSpace::new());
    let faults = external_faults()?;
    let (stop_shards, shards_stopped) = async_channel::bounded::<()>(1);
    let (go_tx, go_rx) = async_channel::bounded::<()>(shard_count as usize);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<ActiveBackend>>();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut shards = Vec::new();
    let shard_inputs = listeners.into_iter().zip(fast_listeners).zip(inboxes).zip(event_receivers).zip(ha_inboxes);
    for (index, ((((listener, fast_listener), inbox), events), ha_inbox)) in shard_inputs.enumerate() {
        let setup = ShardSetup {
            id: ShardId(index as u8),
            cpu: index % cpus,
            backend,
            control: control.clone(),
            router: router.clone(),
            listener,
            fast_listener,
            offset_space: offset_space.clone(),
            faults: faults.clone(),
            tls: tls_acceptor.clone(),
            inbox,
            events,
            ha_inbox,
            ready: ready_tx.clone(),
            go: go_rx.clone(),
            stop: shards_stopped.clone(),
        };
        shards.push(crate::shard::run::spawn(setup, |ctx: Rc<ShardCtx>| Rc::new(BrokerService { ctx }))?);
    }
    drop(ready_tx);
    let mut active = None;
    let mut failure = None;
    for _ in 0..shard_count {
        match ready_rx.recv() {
            Ok(Ok(backend)) => active = Some(backend),
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(_) => failure = failure.or(Some(io::Error::other("a shard thread ended during start-up"))),
        }
    }
    if let Some(e) = failure {
        // Closing `go` unsent tells the shards that opened their stores to close them again.
        go_tx.close();
        router.close();
        for shard in shards {
            let _ = shard.join();
        }
        return Err(e);
    }
    // Every store is open: the shards may serve (and append).
    for _ in 0..shard_count {
        let _ = go_tx.try_send(());
    }
    let backend = active.unwrap_or(ActiveBackend::Epoll);
    let ha_acceptor = match ha_listener {
        Some((listener, senders)) => Some(ferromq_repl::acceptor::Acceptor::spawn(listener, senders)?),
        None => None,
    };

    let (registered_tx, registered_rx) = std::sync::mpsc::channel();
    let control_thread = crate::control::service::spawn(plane, commands_rx, backend_of(backend), namesrv_addrs, registered_tx)?;
    // Java registers with the name servers before it reports `boot success`: a client that
    // starts on that line finds the broker's routes. A round that cannot reach a name server
    // ends after `registerBrokerTimeoutMills` per server (logged); the periodic rounds retry.
    let _ = registered_rx.recv();
    info!(
        target: ferromq_net::logging::BOOT_TARGET,
        local_addr = %listen_addr,
        fast_addr = %fast_addr.map_or_else(|| "off".to_owned(), |a| a.to_string()),
        broker_addr = %control.identity().broker_addr,
        shards = shard_count,
        %backend,
        flush = config.flush.disk_type.as_java_str(),
        "The broker[{}, {}] boot success. serializeType=JSON",
        control.identity().broker_name,
        control.identity().broker_addr
    );
    Ok(BrokerHandle { control, listen_addr, backend, ha_acceptor, shards, stop_shards, control_thread: Some(control_thread), namesrv, metrics })
}

fn backend_of(active: ActiveBackend) -> IoBackend {
    match active {
        ActiveBackend::IoUring => IoBackend::IoUring,
        ActiveBackend::Epoll => IoBackend::Epoll,
    }
}

/// The environment variable that turns on fault injection for tests: it names a control file
/// (`open=EMFILE`, `write=ENOSPC`, `sync=EIO`, one per line; empty or missing = no faults)
/// that every shard's storage obeys from then on. Never set in production; logged when set.
pub const FAULT_INJECTION_ENV: &str = "FERROMQ_FAULT_INJECTION_FILE";

fn external_faults() -> io::Result<Option<Arc<ExternalFaults>>> {
    let Some(path) = std::env::var_os(FAULT_INJECTION_ENV) else { return Ok(None) };
    tracing::warn!(file = %std::path::Path::new(&path).display(), "{FAULT_INJECTION_ENV} is set: storage faults are injected from this file (tests only)");
    ExternalFaults::watch_file(path.into()).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_root_that_is_not_a_directory_is_refused_naming_the_key_and_path() {
        let dir = std::env::temp_dir().join(format!("ferromq-store-root-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("a-file");
        std::fs::write(&file, b"x").unwrap();
        for root in [file.clone(), file.join("store")] {
            let err = prepare_store_root(&root).unwrap_err().to_string();
            assert!(err.contains(&format!("storePathRootDir={}", root.display())), "{err}");
        }
        let fresh = dir.join("new").join("store");
        prepare_store_root(&fresh).unwrap();
        assert!(fresh.is_dir());
        assert_eq!(std::fs::read_dir(&fresh).unwrap().count(), 0, "the probe is removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
