//! A slave's metadata sync (PROTOCOL.md §7.5): a named task of the control thread that copies
//! the master's topics, subscription groups, consumer offsets and delay offsets.
//!
//! Every `slaveSyncIntervalMillis` (10 s, Java's fixed period), and at once when registration
//! learns a new master address, it asks the master's remoting address (`masterAddr` of the
//! registration answer, [`ControlHandle::master_addr`]) for GET_ALL_TOPIC_CONFIG (21),
//! GET_ALL_SUBSCRIPTIONGROUP_CONFIG (201), GET_ALL_CONSUMER_OFFSET (43) and
//! GET_ALL_DELAY_OFFSET (45), over one kept connection, and applies the four answers as one
//! batch of the control plane ([`ControlPlane::apply_master_metadata`]): the view is published
//! and the files are written by the control plane's own persistence path, as for any change.
//!
//! Beyond Java (issue 9 item 5): offsets committed to the slave while its master was
//! unreachable go back to the master on the first sync that reaches it again, with
//! UPDATE_CONSUMER_OFFSET (15), where they are larger than the master's, before the master's
//! table is copied (the rule: ARCHITECTURE.md, "A slave", offsets committed while the master
//! was down).
//!
//! Failures (master down, refused, unreadable answer) are retried at the next period and logged
//! at WARN at most every [`FAILURE_LOG_INTERVAL`]; nothing here panics. Runs on the control
//! thread only; never holds the plane's borrow across an `.await`.

use std::cell::{Cell, RefCell};
use std::net::ToSocketAddrs;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use event_listener::Event;
use ferromq_net::RemotingCommand;
use ferromq_net::client::Client;
use ferromq_net::codes::{request_code, response_code};
use ferromq_net::conn::ConnLimits;
use futures_util::FutureExt;
use tracing::{debug, info, warn};

use super::command::OffsetKey;
use super::handle::ControlHandle;
use super::plane::{ControlPlane, MasterMetadata};
use crate::meta::delay_offsets::DelayOffsets;
use crate::meta::groups::GroupWrapper;
use crate::meta::offsets::ConsumerOffsets;
use crate::meta::topics::TopicWrapper;

/// Timeout of connecting to the master and of each request (Java's slave sync uses 3 s).
pub const SYNC_CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// A failing sync is logged at most this often (the failures in between are counted).
pub const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(30);

/// The sync task's state (control thread only).
pub struct SlaveSync {
    handle: Arc<ControlHandle>,
    interval: Duration,
    limits: ConnLimits,
    /// The connection to the master, with the address it goes to.
    client: RefCell<Option<(String, Client)>>,
    /// No sync has succeeded since start, or the master could not be reached since the last
    /// one that did: the next success pushes this slave's own commits back first.
    unreachable: Cell<bool>,
    failures: RefCell<FailureLog>,
}

/// Rate-limits the WARN line of failed syncs.
#[derive(Default)]
struct FailureLog {
    last: Option<Instant>,
    suppressed: u64,
    /// Failures since the last success (for the line that says it works again).
    since_success: u64,
}

impl SlaveSync {
    pub fn new(handle: Arc<ControlHandle>) -> SlaveSync {
        let config = handle.config();
        let interval = Duration::from_millis(config.ha.sync_interval_ms.max(1));
        // The master's tables come in one frame each: accept what this broker accepts.
        let limits = ConnLimits { wire: config.wire_limits(), ..ConnLimits::default() };
        SlaveSync { handle, interval, limits, client: RefCell::new(None), unreachable: Cell::new(true), failures: RefCell::default() }
    }

    /// Runs until dropped: a round every period, or at once when `learned` fires (a new master
    /// address). Topic changes fire `register_now` (the name servers hear of them).
    pub async fn run(self, plane: Rc<RefCell<ControlPlane>>, learned: Rc<Event>, register_now: Rc<Event>) {
        loop {
            // Listen first, so an address learned during a round starts the next one at once.
            let next = learned.listen();
            self.round(&plane, &register_now).await;
            futures_util::select_biased! {
                () = next.fuse() => {},
                () = compio::time::sleep(self.interval).fuse() => {},
            }
        }
    }

    /// One sync with the master currently known, if any.
    pub async fn round(&self, plane: &Rc<RefCell<ControlPlane>>, register_now: &Event) {
        let Some(addr) = self.handle.master_addr() else {
            // No live master as far as the name servers know: it is unreachable.
            self.unreachable.set(true);
            self.drop_client();
            return;
        };
        match self.sync(plane, &addr).await {
            Ok((pushed, topics_replaced)) => {
                if topics_replaced {
                    register_now.notify(1);
                }
                self.handle.set_master_reachable(true);
                self.unreachable.set(false);
                let mut failures = self.failures.borrow_mut();
                if failures.since_success > 0 {
                    info!(master_addr = %addr, failed_rounds = failures.since_success, "metadata sync with the master works again");
                }
                *failures = FailureLog::default();
                if pushed > 0 {
                    info!(master_addr = %addr, offsets = pushed, "offsets committed on this slave while the master was unreachable were merged back into the master (larger offset per queue wins)");
                }
            }
            Err(e) => {
                self.handle.set_master_reachable(false);
                self.unreachable.set(true);
                self.drop_client();
                self.failures.borrow_mut().warn(&addr, self.interval, &e);
            }
        }
    }

    fn drop_client(&self) {
        if let Some((_, client)) = self.client.borrow_mut().take() {
            client.close();
        }
    }

    async fn client(&self, addr: &str) -> Result<Client, String> {
        if let Some((to, client)) = self.client.borrow().as_ref()
            && to == addr
            && !client.is_closed()
        {
            return Ok(client.clone());
        }
        self.drop_client();
        let socket = addr
            .to_socket_addrs()
            .map_err(|e| format!("master address {addr:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("master address {addr:?} resolves to nothing"))?;
        let handler = Rc::new(ferromq_net::conn::NotSupported);
        let client = Client::connect_with_tls(socket, SYNC_CALL_TIMEOUT, handler, self.limits, self.handle.broker_tls())
            .await
            .map_err(|e| format!("cannot connect: {e}"))?
            // A master with ACL on checks its slave's calls too.
            .signed_by(self.handle.config().acl_credentials());
        *self.client.borrow_mut() = Some((addr.to_owned(), client.clone()));
        Ok(client)
    }

    /// Fetches the four tables, pushes this slave's own commits back if the master was
    /// unreachable, and applies the copy. Returns how many offsets were pushed and whether the
    /// topic table was replaced.
    async fn sync(&self, plane: &Rc<RefCell<ControlPlane>>, addr: &str) -> Result<(usize, bool), String> {
        let client = self.client(addr).await?;
        let topics = TopicWrapper::parse(&fetch(&client, request_code::GET_ALL_TOPIC_CONFIG, "GET_ALL_TOPIC_CONFIG").await?)
            .map_err(|e| format!("GET_ALL_TOPIC_CONFIG answer: {e}"))?;
        let groups = GroupWrapper::parse(&fetch(&client, request_code::GET_ALL_SUBSCRIPTIONGROUP_CONFIG, "GET_ALL_SUBSCRIPTIONGROUP_CONFIG").await?)
            .map_err(|e| format!("GET_ALL_SUBSCRIPTIONGROUP_CONFIG answer: {e}"))?;
        let (offsets, offset_warnings) = ConsumerOffsets::from_json(&fetch(&client, request_code::GET_ALL_CONSUMER_OFFSET, "GET_ALL_CONSUMER_OFFSET").await?)
            .map_err(|e| format!("GET_ALL_CONSUMER_OFFSET answer: {e}"))?;
        let (delay_offsets, delay_warnings) = DelayOffsets::from_json(&fetch(&client, request_code::GET_ALL_DELAY_OFFSET, "GET_ALL_DELAY_OFFSET").await?)
            .map_err(|e| format!("GET_ALL_DELAY_OFFSET answer: {e}"))?;
        for warning in topics.warnings.iter().chain(&groups.warnings).chain(&offset_warnings).chain(&delay_warnings) {
            debug!(master_addr = addr, "master metadata entry skipped: {warning}");
        }
        let pushed = if self.unreachable.get() { self.push_back(&client, plane, &offsets).await? } else { Vec::new() };
        let pushed_count = pushed.len();
        let (topic_count, group_count) = (topics.topics.len(), groups.groups.len());
        let metadata = MasterMetadata { topics, groups, offsets, delay_offsets, pushed };
        let outcome = {
            let mut plane = plane.borrow_mut();
            let (batch, outcome) = plane.apply_master_metadata(metadata);
            plane.finish(batch);
            outcome
        };
        if outcome.topics_replaced || outcome.groups_replaced {
            info!(master_addr = addr, topics = topic_count, groups = group_count, topics_replaced = outcome.topics_replaced, groups_replaced = outcome.groups_replaced, "metadata copied from the master");
        }
        debug!(master_addr = addr, ?outcome, "metadata sync done");
        Ok((pushed_count, outcome.topics_replaced))
    }

    /// Sends the master the offsets committed here since the last successful sync that are
    /// larger than its own (UPDATE_CONSUMER_OFFSET, two-way). Returns those it accepted; one it
    /// refuses (a topic deleted meanwhile) is logged and left out. A failed call fails the sync
    /// (the next round tries again; what was accepted is then no longer larger).
    async fn push_back(&self, client: &Client, plane: &Rc<RefCell<ControlPlane>>, master: &ConsumerOffsets) -> Result<Vec<(OffsetKey, i64)>, String> {
        let candidates = plane.borrow().offsets_to_push(master);
        let mut accepted = Vec::with_capacity(candidates.len());
        for (key, offset) in candidates {
            let request = RemotingCommand::request(request_code::UPDATE_CONSUMER_OFFSET)
                .with_ext("consumerGroup", &key.group)
                .with_ext("topic", &key.topic)
                .with_ext("queueId", key.queue_id)
                .with_ext("commitOffset", offset);
            let response = client.invoke(request, SYNC_CALL_TIMEOUT).await.map_err(|e| format!("UPDATE_CONSUMER_OFFSET: {e}"))?;
            if response.code == response_code::SUCCESS {
                accepted.push((key, offset));
            } else {
                warn!(group = key.group, topic = key.topic, queue_id = %key.queue_id, offset, code = response.code, remark = ?response.remark, "the master refused an offset committed on this slave; the master's stays");
            }
        }
        Ok(accepted)
    }
}

impl FailureLog {
    fn warn(&mut self, addr: &str, interval: Duration, error: &str) {
        self.since_success += 1;
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < FAILURE_LOG_INTERVAL) {
            self.suppressed += 1;
            return;
        }
        warn!(master_addr = addr, failed_rounds = self.since_success, suppressed_since_last = self.suppressed, "metadata sync with the master failed, retried every {interval:?}: {error}");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// One table from the master: its body, or why not.
async fn fetch(client: &Client, code: i32, name: &str) -> Result<Vec<u8>, String> {
    let response = client.invoke(RemotingCommand::request(code), SYNC_CALL_TIMEOUT).await.map_err(|e| format!("{name}: {e}"))?;
    if response.code != response_code::SUCCESS {
        return Err(format!("{name} answered {}: {}", response.code, response.remark.as_deref().unwrap_or("")));
    }
    Ok(response.body.to_vec())
}
