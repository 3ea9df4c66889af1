//! A shard's replication task (PROTOCOL.md §7, `repl/`). On a master: serve every slave
//! connection the HA acceptor hands this shard, each on a task of its own, updating the
//! shard's [`SlaveAcks`](ferromq_repl::acks::SlaveAcks) that SYNC_MASTER sends wait on. On a
//! slave: follow the master's shard of the same index into this shard's replica store.
//! Dropping the returned task ends every stream it runs.

use std::rc::Rc;
use std::time::Duration;

use compio::runtime::JoinHandle;
use ferromq_repl::acceptor::Handoff;
use ferromq_repl::master::{self, MasterConfig};
use ferromq_repl::slave::{self, SlaveConfig};
use tracing::{info, warn};

use super::ctx::ShardCtx;
use crate::config::BrokerRole;

/// Cold segment reads one shard's slave streams may have in the blocking pool at once.
const MAX_COLD_READS_PER_SHARD: usize = 4;
/// How long a slave waits before connecting to its master again after a failure.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Starts the shard's replication task, if its role has one.
pub fn spawn(ctx: &Rc<ShardCtx>, ha_inbox: Option<async_channel::Receiver<Handoff>>) -> Option<JoinHandle<()>> {
    let config = ctx.control.config();
    match (config.broker.role, ha_inbox) {
        (BrokerRole::Slave, _) => {
            let cfg = SlaveConfig {
                shard: u16::from(ctx.id.0),
                shard_count: ctx.router.shard_count(),
                heartbeat: Duration::from_millis(config.ha.send_heartbeat_interval_ms),
                housekeeping: Duration::from_millis(config.ha.housekeeping_interval_ms),
                reconnect: RECONNECT_AFTER,
                connect_timeout: CONNECT_TIMEOUT,
            };
            let control = ctx.control.clone();
            let task = slave::follow(ctx.store.clone(), cfg, move || control.ha_master_addr(), ctx.follower.clone());
            Some(compio::runtime::spawn(task))
        }
        (_, Some(inbox)) => {
            let cfg = MasterConfig {
                transfer_batch_bytes: config.ha.transfer_batch_bytes,
                heartbeat: Duration::from_millis(config.ha.send_heartbeat_interval_ms),
                housekeeping: Duration::from_millis(config.ha.housekeeping_interval_ms),
                max_cold_reads: MAX_COLD_READS_PER_SHARD,
                max_gap_bytes: config.ha.max_gap_not_in_sync_bytes,
            };
            Some(compio::runtime::spawn(serve_slaves(ctx.clone(), inbox, cfg)))
        }
        (_, None) => None,
    }
}

/// Serves each slave connection handed to this shard until the task is dropped.
async fn serve_slaves(ctx: Rc<ShardCtx>, inbox: async_channel::Receiver<Handoff>, cfg: MasterConfig) {
    // Owned here: dropping this task drops (cancels) every stream.
    let mut streams: Vec<JoinHandle<()>> = Vec::new();
    while let Ok((stream, hello)) = inbox.recv().await {
        streams.retain(|s| !s.is_finished());
        let stream = match compio::net::TcpStream::from_std(stream) {
            Ok(s) => s,
            Err(e) => {
                warn!(shard = ctx.id.0, "cannot take a slave connection: {e}");
                continue;
            }
        };
        let (store, acks, shard) = (ctx.store.clone(), ctx.slave_acks.clone(), ctx.id.0);
        streams.push(compio::runtime::spawn(async move {
            let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
            match master::serve_slave(stream, hello, store, acks, cfg).await {
                Ok(()) => info!(shard, %peer, "slave stream ended"),
                // A slave that stops closes its stream: not a fault.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => info!(shard, %peer, "slave stream ended: the slave closed it"),
                Err(e) => warn!(shard, %peer, "slave stream ended: {e}"),
            }
        }));
    }
}
