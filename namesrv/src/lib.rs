//! `ferromq-namesrv`: a RocketMQ-compatible name server (PROTOCOL.md §2.6, §4.2–4.4, §8).
//!
//! - [`route`]: the route registry (topics → queue data, broker groups, clusters, liveness)
//!   and the JSON bodies clients read, in both the fastjson and the standard flavour.
//! - [`register_body`]: REGISTER_BROKER bodies (JSON and zlib-compressed) and their CRC.
//! - [`kv`]: the persisted KV config (`kvConfig.json`), e.g. order-topic settings.
//! - [`service`]: one handler per request code over those tables.
//! - [`config`]: settings, by their Java names, from code or `namesrv.properties`.
//!
//! Who may change the routes (beyond Java): [`service::ChangeGuard`] checks the change codes
//! (registrations, liveness, permissions, topics, KV, configuration) against `plain_acl.yml`
//! (`aclEnable`) or an address allow-list (`changeWhiteRemoteAddresses`) before their handler.
//!
//! [`start`] runs a name server on a thread of its own (one compio runtime), which is how both
//! `mqnamesrv` and the broker's embedded name server use it. Boundary: this crate does not
//! depend on the store; routes are rebuilt from broker registrations after a restart.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)
)]

pub mod config;
pub mod error;
/// The fastjson helpers live in `net`, shared with the broker.
pub use ferromq_net::fastjson;
pub mod kv;
pub mod register_body;
pub mod route;
pub mod service;

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ferromq_net::backend::{ActiveBackend, IoBackend, build_runtime};
use ferromq_net::metrics::http::{Exporter, ExporterLimits, Render};
use ferromq_net::metrics::{Exposition, Labels, RpcLatency};
use tracing::{error, info};

pub use config::NamesrvConfig;
pub use service::NamesrvService;

/// A running name server. Dropping it stops the server and waits for its thread.
pub struct NamesrvHandle {
    local_addr: SocketAddr,
    backend: ActiveBackend,
    stop: async_channel::Sender<()>,
    thread: Option<JoinHandle<()>>,
    /// The Prometheus endpoint (`metricsExporterType=PROM`).
    metrics: Option<Exporter>,
}

impl NamesrvHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The I/O backend the name server runs on.
    pub fn backend(&self) -> ActiveBackend {
        self.backend
    }

    /// Stops accepting, closes the server and waits for its thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    /// Blocks until the server thread ends (it ends only after `shutdown` or a fatal error).
    pub fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// The metrics endpoint's address, when it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(Exporter::local_addr)
    }

    fn stop_and_join(&mut self) {
        drop(self.metrics.take());
        self.stop.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for NamesrvHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Starts a name server on its own thread. Returns once it is listening, or with the error
/// that prevented it (address in use, unreadable KV file, unavailable forced backend).
pub fn start(mut config: NamesrvConfig) -> io::Result<NamesrvHandle> {
    config.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    // Changes made with UPDATE_NAMESRV_CONFIG before a restart win over the configuration.
    if config.apply_saved_runtime().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))? {
        tracing::warn!(file = %config.runtime_file().display(), "configuration keys set by updateNamesrvConfig override the configured values");
    }
    let backend = IoBackend::resolve(config.io_backend).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let tls = config.tls.acceptor().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    if let Some(tls) = &tls {
        info!(mode = %tls.mode, "TLS on the listener (tls.server.mode; copy path, no kernel TLS)");
    }
    config.limits.conn.record_rpc_latency = config.metrics.enabled;
    // A scrape asks the server thread for its RPC latencies through this channel.
    let (scrapes, scrape_requests) = async_channel::bounded::<std::sync::mpsc::SyncSender<RpcLatency>>(SCRAPE_QUEUE_DEPTH);
    let metrics_settings = config.metrics.clone();
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<io::Result<(SocketAddr, ActiveBackend)>>(1);
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let thread = std::thread::Builder::new()
        .name("namesrv".into())
        .spawn(move || {
            let (runtime, active) = match build_runtime(backend) {
                Ok(pair) => pair,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                let service = match NamesrvService::new(config.clone()) {
                    Ok(service) => Rc::new(service),
                    Err(e) => {
                        let _ = ready_tx.send(Err(io::Error::other(e)));
                        return;
                    }
                };
                let listener = match ferromq_net::server::bind(config.listen) {
                    Ok(listener) => listener,
                    Err(e) => {
                        let _ = ready_tx.send(Err(io::Error::new(e.kind(), format!("cannot listen on {}: {e}", config.listen))));
                        return;
                    }
                };
                let local = listener.local_addr().unwrap_or(config.listen);
                let _ = ready_tx.send(Ok((local, active)));
                let scanner = compio::runtime::spawn(scan_not_active_brokers(service.clone(), config.scan_interval));
                let metrics = compio::runtime::spawn(answer_scrapes(scrape_requests));
                let shutdown = async move {
                    let _ = stopped.recv().await;
                };
                if let Err(e) = ferromq_net::server::serve_with_tls(listener, service, config.limits, tls, shutdown).await {
                    error!("name server stopped: {e}");
                }
                drop(scanner);
                drop(metrics);
            });
        })?;
    match ready_rx.recv() {
        Ok(Ok((local_addr, backend))) => {
            let mut handle = NamesrvHandle { local_addr, backend, stop, thread: Some(thread), metrics: None };
            if metrics_settings.enabled {
                // On an error the handle is dropped, which stops the server.
                let exporter = start_metrics(&metrics_settings, local_addr, scrapes)?;
                info!(addr = %exporter.local_addr(), "metrics endpoint (Prometheus, metricsExporterType=PROM) listening on http://{}/metrics", exporter.local_addr());
                handle.metrics = Some(exporter);
            }
            info!(target: ferromq_net::logging::BOOT_TARGET, %local_addr, %backend, "The Name Server boot success. serializeType=JSON");
            Ok(handle)
        }
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(io::Error::other("name server thread ended during start-up"))
        }
    }
}

/// Scrapes waiting for the server thread's answer; beyond it a scrape fails at once (500).
const SCRAPE_QUEUE_DEPTH: usize = 4;
/// How long a scrape waits for the server thread.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Background task "answer scrapes": copies this thread's RPC latencies for each scrape that
/// asks (one small table per request; ends when the endpoint is gone).
async fn answer_scrapes(requests: async_channel::Receiver<std::sync::mpsc::SyncSender<RpcLatency>>) {
    while let Ok(reply) = requests.recv().await {
        let _ = reply.try_send(ferromq_net::metrics::rpc_latency_snapshot());
    }
}

/// The name server's endpoint: `rocketmq_rpc_latency` (all that the request path records; Java's
/// name server exports no metrics at all), labelled `node_type="namesrv"` and `node_id` = the
/// listen address, plus `metricsLabel`'s labels.
fn start_metrics(settings: &config::MetricsSettings, listen: SocketAddr, scrapes: async_channel::Sender<std::sync::mpsc::SyncSender<RpcLatency>>) -> io::Result<Exporter> {
    let mut common: Labels = vec![(Cow::Borrowed("node_type"), Cow::Borrowed("namesrv")), (Cow::Borrowed("node_id"), Cow::Owned(listen.to_string()))];
    common.extend(settings.labels.iter().map(|(k, v)| (Cow::Owned(k.clone()), Cow::Owned(v.clone()))));
    let render: Render = Arc::new(move || {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        scrapes.try_send(reply).map_err(|e| format!("the name server cannot take another scrape now: {e}"))?;
        let rpc = answer.recv_timeout(SCRAPE_TIMEOUT).map_err(|e| format!("the name server thread did not answer: {e}"))?;
        let mut exposition = Exposition::default();
        for family in rpc.families() {
            exposition.push(family);
        }
        exposition.encode(common.clone()).map_err(|e| format!("cannot encode the metrics: {e}"))
    });
    let addr = SocketAddr::new(settings.host.unwrap_or(listen.ip()), settings.port);
    Exporter::start(addr, ExporterLimits::default(), render).map_err(|e| io::Error::new(e.kind(), format!("metricsPromExporterHost / metricsPromExporterPort: {e}")))
}

/// Background task "scan not active brokers": every `interval`, drop brokers whose last
/// registration is older than their timeout (§8.1). Budget: one pass over the live table.
async fn scan_not_active_brokers(service: Rc<NamesrvService>, interval: std::time::Duration) {
    let mut ticks = compio::time::interval(interval);
    loop {
        ticks.tick().await;
        service.scan_not_active_brokers();
    }
}
