//! `ProducerManager`: producer group → live clients (by client id, with their connections), as
//! registered by HEART_BEAT's `producerDataSet` and removed by UNREGISTER_CLIENT, connection
//! close or expiry (PROTOCOL.md §2.1). Used to find a connection for CHECK_TRANSACTION_STATE
//! (§2.4) and to answer GET_PRODUCER_CONNECTION_LIST (204, §4.7).
//!
//! Ownership: one per broker, in the control plane behind the shared mutex.

use std::collections::BTreeMap;

use super::table::{ChannelId, ClientInfo, ClientTable, ExpiryReport};

/// All producer groups with at least one live client. `Send`; plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerManager {
    groups: BTreeMap<String, ClientTable>,
}

impl ProducerManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers or refreshes `client` in `group`; `last_update_ms` is set to `now_ms`.
    /// Returns true if the client id is new in the group.
    pub fn register(&mut self, group: &str, mut client: ClientInfo, now_ms: i64) -> bool {
        client.last_update_ms = now_ms;
        self.groups
            .entry(group.to_owned())
            .or_default()
            .upsert(client)
    }

    /// UNREGISTER_CLIENT with `producerGroup`: removes the client (all its connections).
    pub fn unregister_client(&mut self, group: &str, client_id: &str) -> bool {
        let Some(table) = self.groups.get_mut(group) else {
            return false;
        };
        let removed = table.remove_client(client_id);
        if table.is_empty() {
            self.groups.remove(group);
        }
        removed
    }

    /// A connection closed. Returns the groups that lost a client, sorted.
    pub fn channel_closed(&mut self, channel: ChannelId) -> Vec<String> {
        let mut changed = Vec::new();
        self.groups.retain(|name, table| {
            if table.remove_channel(channel) {
                changed.push(name.clone());
            }
            !table.is_empty()
        });
        changed
    }

    /// Drops connections silent for more than `timeout_ms` (Java: 120 s, scanned every 10 s).
    pub fn scan_expired(&mut self, now_ms: i64, timeout_ms: i64) -> ExpiryReport {
        let mut report = ExpiryReport::default();
        self.groups.retain(|name, table| {
            if table.expire(now_ms, timeout_ms, &mut report.expired_channels) {
                report.changed_groups.push(name.clone());
            }
            !table.is_empty()
        });
        report.expired_channels.sort_unstable();
        report.expired_channels.dedup();
        report
    }

    /// Whether the connection is still tracked in any group (after an expiry scan, close only
    /// connections for which this is false: Java closes every expired channel, even one still
    /// heartbeating for another group).
    pub fn has_channel(&self, channel: ChannelId) -> bool {
        self.groups
            .values()
            .any(|g| g.all_connections().any(|c| c.channel == channel))
    }

    /// A connection of the group to send CHECK_TRANSACTION_STATE on: the most recently heard
    /// one (Java picks any active channel).
    pub fn channel_for_group(&self, group: &str) -> Option<ChannelId> {
        self.groups
            .get(group)?
            .primaries()
            .max_by_key(|c| c.last_update_ms)
            .map(|c| c.channel)
    }

    /// The most recently heard connection of `client_id` in any group (5.x `findChannel`).
    pub fn find_client(&self, client_id: &str) -> Option<&ClientInfo> {
        self.groups
            .values()
            .filter_map(|t| t.primary(client_id))
            .max_by_key(|c| c.last_update_ms)
    }

    /// Client ids of the group, sorted.
    pub fn client_ids(&self, group: &str) -> Vec<String> {
        self.groups
            .get(group)
            .map(ClientTable::ids)
            .unwrap_or_default()
    }

    /// Online producer groups, sorted.
    /// Every tracked connection of every group (a client in two groups counts twice, as in
    /// Java's `groupChannelTable`).
    pub fn connections(&self) -> impl Iterator<Item = &ClientInfo> {
        self.groups.values().flat_map(|table| table.all_connections())
    }

    pub fn group_names(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }

    /// Number of clients in the group.
    pub fn client_count(&self, group: &str) -> usize {
        self.groups.get(group).map_or(0, ClientTable::len)
    }

    /// GET_PRODUCER_CONNECTION_LIST body `{"connectionSet":[Connection..]}`; `None` for an
    /// unknown group (Java answers 1 SYSTEM_ERROR "the producer group not exist").
    pub fn connection_list_json(&self, group: &str) -> Option<Vec<u8>> {
        let table = self.groups.get(group)?;
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"{\"connectionSet\":");
        table.write_connection_set(&mut out);
        out.push(b'}');
        Some(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::clients::table::test_util::client;

    #[test]
    fn register_close_expire_and_list() {
        let mut m = ProducerManager::new();
        assert!(m.register("pg", client("p1", 0, 1), 10));
        assert!(!m.register("pg", client("p1", 0, 2), 20));
        assert!(m.register("pg", client("p2", 1, 1), 15));
        assert!(m.register("CLIENT_INNER_PRODUCER", client("p1", 0, 1), 10));
        assert_eq!(m.client_ids("pg"), vec!["p1", "p2"]);
        assert_eq!(m.channel_for_group("pg"), Some(ChannelId::new(0, 2)));
        assert_eq!(m.find_client("p1").unwrap().channel, ChannelId::new(0, 2));
        assert_eq!(m.group_names(), vec!["CLIENT_INNER_PRODUCER", "pg"]);

        let json = m.connection_list_json("pg").unwrap();
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"connectionSet":[{"clientAddr":"10.0.0.0:40001","clientId":"p1","language":"JAVA","version":479},{"clientAddr":"10.0.0.0:40002","clientId":"p1","language":"JAVA","version":479},{"clientAddr":"10.0.0.1:40001","clientId":"p2","language":"JAVA","version":479}]}"#
        );
        assert!(m.connection_list_json("nope").is_none());

        assert_eq!(
            m.channel_closed(ChannelId::new(0, 1)),
            vec!["CLIENT_INNER_PRODUCER"]
        );
        assert_eq!(m.client_count("pg"), 2);
        let r = m.scan_expired(120_016, 120_000);
        assert_eq!(r.changed_groups, vec!["pg"]);
        assert_eq!(r.expired_channels, vec![ChannelId::new(1, 1)]);
        assert!(!m.has_channel(ChannelId::new(1, 1)));
        assert!(m.has_channel(ChannelId::new(0, 2)));
        assert!(m.unregister_client("pg", "p1"));
        assert!(!m.unregister_client("pg", "p1"));
        assert!(m.group_names().is_empty());
        assert_eq!(m.channel_for_group("pg"), None);
    }
}
