//! The client table both managers share: connection identities ([`ChannelId`]), what a
//! client's heartbeats recorded ([`ClientInfo`]), clientId → connections ([`ClientTable`]).
//! A leaf of `clients/`: it imports none of its siblings.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fmt;

/// An opaque connection identity: the shard that owns the connection and a per-shard
/// connection number. Ordered (shard, connection) so tables iterate deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId {
    pub shard: u16,
    pub connection: u64,
}

impl ChannelId {
    pub const fn new(shard: u16, connection: u64) -> Self {
        ChannelId { shard, connection }
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.shard, self.connection)
    }
}

/// One connection of a client, as recorded from its heartbeats: what the broker needs to notify
/// it and to list it (Connection JSON of §4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub channel: ChannelId,
    /// The `clientID` of the heartbeat (`ip@instance`), the consumer id of §2.2.
    pub client_id: String,
    /// The peer address `ip:port` (`clientAddr` in connection lists).
    pub client_addr: String,
    /// The request header's `language` as a name (`JAVA`, `RUST`, ...). The handler converts a
    /// numeric language (Appendix Q) to its name.
    pub language: String,
    /// The request header's `version`.
    pub version: i32,
    /// When the last heartbeat arrived on this connection (ms since the epoch).
    pub last_update_ms: i64,
}

impl ClientInfo {
    /// Connection JSON (§4.7): `{"clientAddr":..,"clientId":..,"language":..,"version":..}`.
    pub fn write_connection_json(&self, out: &mut Vec<u8>) {
        use crate::meta::json::{write_key, write_num, write_str};
        out.push(b'{');
        write_key(out, "clientAddr");
        write_str(out, &self.client_addr);
        out.push(b',');
        write_key(out, "clientId");
        write_str(out, &self.client_id);
        out.push(b',');
        write_key(out, "language");
        write_str(out, &self.language);
        out.push(b',');
        write_key(out, "version");
        write_num(out, self.version);
        out.push(b'}');
    }
}

/// Most connections tracked per client id. Some clients open a new connection for many
/// requests and keep them (Appendix Q); beyond this the least recently heard one is forgotten
/// (it keeps working; it is just not listed or used for notifications).
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 32;

/// What a scan for silent connections removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Groups whose set of client ids changed (send NOTIFY_CONSUMER_IDS_CHANGED to the rest).
    pub changed_groups: Vec<String>,
    /// Connections that timed out in at least one group; Java closes them.
    pub expired_channels: Vec<ChannelId>,
}

/// clientId → that client's connections, shared by consumer and producer groups. A client is a
/// member as long as one of its connections is. The connection list of each client is ordered
/// by last heartbeat (most recent last) and never empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClientTable {
    clients: std::collections::BTreeMap<String, Vec<ClientInfo>>,
}

impl ClientTable {
    /// Records a heartbeat on `info.channel`. Returns true if the client id is new.
    pub(crate) fn upsert(&mut self, info: ClientInfo) -> bool {
        match self.clients.get_mut(&info.client_id) {
            None => {
                self.clients.insert(info.client_id.clone(), vec![info]);
                true
            }
            Some(conns) => {
                conns.retain(|c| c.channel != info.channel);
                if conns.len() >= MAX_CONNECTIONS_PER_CLIENT {
                    conns.remove(0);
                }
                conns.push(info);
                false
            }
        }
    }

    /// Removes the client with all its connections.
    pub(crate) fn remove_client(&mut self, client_id: &str) -> bool {
        self.clients.remove(client_id).is_some()
    }

    /// Removes the connection wherever it appears. Returns true if a client id disappeared.
    pub(crate) fn remove_channel(&mut self, channel: ChannelId) -> bool {
        let mut client_gone = false;
        self.clients.retain(|_, conns| {
            conns.retain(|c| c.channel != channel);
            client_gone |= conns.is_empty();
            !conns.is_empty()
        });
        client_gone
    }

    /// Removes connections silent for more than `timeout_ms`, appending them to `expired`.
    /// Returns true if a client id disappeared.
    pub(crate) fn expire(
        &mut self,
        now_ms: i64,
        timeout_ms: i64,
        expired: &mut Vec<ChannelId>,
    ) -> bool {
        let mut client_gone = false;
        self.clients.retain(|_, conns| {
            conns.retain(|c| {
                let keep = now_ms.saturating_sub(c.last_update_ms) <= timeout_ms;
                if !keep {
                    expired.push(c.channel);
                }
                keep
            });
            client_gone |= conns.is_empty();
            !conns.is_empty()
        });
        client_gone
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.clients.len()
    }

    /// Client ids, sorted and unique.
    pub(crate) fn ids(&self) -> Vec<String> {
        self.clients.keys().cloned().collect()
    }

    /// The most recently heard connection of each client, in client-id order.
    pub(crate) fn primaries(&self) -> impl Iterator<Item = &ClientInfo> {
        self.clients.values().filter_map(|conns| conns.last())
    }

    pub(crate) fn primary(&self, client_id: &str) -> Option<&ClientInfo> {
        self.clients.get(client_id)?.last()
    }

    /// Every tracked connection.
    pub(crate) fn all_connections(&self) -> impl Iterator<Item = &ClientInfo> {
        self.clients.values().flatten()
    }

    /// `[Connection,...]` with one entry per tracked connection (Java lists channels).
    pub(crate) fn write_connection_set(&self, out: &mut Vec<u8>) {
        out.push(b'[');
        for (i, c) in self.all_connections().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            c.write_connection_json(out);
        }
        out.push(b']');
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
pub(crate) mod test_util {
    use super::*;

    /// The body of a captured frame in `net/tests/golden/`: skip the 4-byte length, the 4-byte
    /// header-length word (top byte = serialize type) and the header.
    pub fn golden_body(name: &str) -> Vec<u8> {
        let in_repo = format!("{}/../net/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
        let frame = std::fs::read(&in_repo)
            .or_else(|_| std::fs::read(format!("/work/main/net/tests/golden/{name}")))
            .unwrap();
        let header_len = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]) & 0x00FF_FFFF;
        frame[8 + header_len as usize..].to_vec()
    }

    pub fn client(id: &str, shard: u16, conn: u64) -> ClientInfo {
        ClientInfo {
            channel: ChannelId::new(shard, conn),
            client_id: id.to_owned(),
            client_addr: format!("10.0.0.{shard}:{}", 40000 + conn),
            language: "JAVA".to_owned(),
            version: 479,
            last_update_ms: 0,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::test_util::client;
    use super::*;

    #[test]
    fn types_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<ChannelId>();
        assert_send::<crate::clients::consumers::ConsumerManager>();
        assert_send::<crate::clients::producers::ProducerManager>();
        assert_send::<crate::clients::heartbeat::HeartbeatData>();
        assert_send::<crate::meta::topics::TopicConfigTable>();
        assert_send::<crate::meta::groups::SubscriptionGroupTable>();
        assert_send::<crate::meta::offsets::ConsumerOffsets>();
    }

    #[test]
    fn client_table_connection_limit_and_order() {
        let mut t = ClientTable::default();
        assert!(t.upsert(client("c", 0, 0)));
        for i in 1..=(MAX_CONNECTIONS_PER_CLIENT as u64 + 5) {
            assert!(!t.upsert(client("c", 0, i)));
        }
        assert_eq!(t.all_connections().count(), MAX_CONNECTIONS_PER_CLIENT);
        assert_eq!(
            t.primary("c").unwrap().channel,
            ChannelId::new(0, MAX_CONNECTIONS_PER_CLIENT as u64 + 5)
        );
        // A heartbeat on an old connection makes it the primary again.
        assert!(!t.upsert(client("c", 0, 10)));
        assert_eq!(t.primary("c").unwrap().channel, ChannelId::new(0, 10));
        assert_eq!(t.len(), 1);
        assert_eq!(ChannelId::new(3, 9).to_string(), "3/9");
    }
}
