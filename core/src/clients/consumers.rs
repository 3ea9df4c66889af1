//! `ConsumerManager`: consumer group → its live clients (by client id, each with its
//! connections) and the group's subscriptions, as registered by HEART_BEAT and removed by
//! UNREGISTER_CLIENT, connection close or heartbeat expiry (PROTOCOL.md §2.1, §8.1). Answers
//! GET_CONSUMER_LIST_BY_GROUP (de-duplicated client ids, Appendix Q), tells the broker whom to
//! send NOTIFY_CONSUMER_IDS_CHANGED (§2.5), and writes the ConsumerConnection body of
//! GET_CONSUMER_CONNECTION_LIST (§4.7).
//!
//! Ownership: one per broker, in the control plane behind the shared mutex.
//!
//! Membership is by client id, not by connection: a client that heartbeats on several
//! connections with one `clientID` is one consumer, so the id list never repeats and a rebalance
//! never hands the same client two shares. A client leaves its group when its last connection
//! closes or expires, or when it unregisters.

use std::collections::BTreeMap;

use super::heartbeat::{
    ConsumeFromWhere, ConsumeType, ConsumerData, MessageModel, SubscriptionData,
};
use super::table::{ChannelId, ClientInfo, ClientTable, ExpiryReport};
use crate::meta::json::{write_key, write_str};

/// Java `channelExpiredTimeout`: a connection without a heartbeat for longer is dropped.
pub const DEFAULT_CHANNEL_EXPIRED_TIMEOUT_MS: i64 = 120_000;

/// What a registration changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegisterOutcome {
    /// A client id joined the group.
    pub ids_changed: bool,
    /// The set of subscribed topics changed (Java `updateSubscription`'s result).
    pub subscriptions_changed: bool,
    /// An existing topic's expression changed (applied; Java does not notify for this).
    pub filter_changed: bool,
}

impl RegisterOutcome {
    /// Whether Java would send NOTIFY_CONSUMER_IDS_CHANGED (if the group's
    /// `notifyConsumerIdsChangedEnable`).
    pub fn should_notify(&self) -> bool {
        self.ids_changed || self.subscriptions_changed
    }
}

/// How a group consumes, as its latest heartbeat said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumeMode {
    pub consume_type: ConsumeType,
    pub message_model: MessageModel,
    pub consume_from_where: ConsumeFromWhere,
}

impl ConsumeMode {
    /// The mode of a parsed `consumerDataSet` element.
    pub fn of(data: &ConsumerData) -> Self {
        ConsumeMode {
            consume_type: data.consume_type,
            message_model: data.message_model,
            consume_from_where: data.consume_from_where,
        }
    }
}

/// One consumer group's live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupInfo {
    group: String,
    clients: ClientTable,
    subscriptions: BTreeMap<String, SubscriptionData>,
    mode: ConsumeMode,
}

impl ConsumerGroupInfo {
    fn new(group: &str, mode: ConsumeMode) -> Self {
        ConsumerGroupInfo {
            group: group.to_owned(),
            clients: ClientTable::default(),
            subscriptions: BTreeMap::new(),
            mode,
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }
    pub fn mode(&self) -> ConsumeMode {
        self.mode
    }
    pub fn consume_type(&self) -> ConsumeType {
        self.mode.consume_type
    }
    pub fn message_model(&self) -> MessageModel {
        self.mode.message_model
    }
    pub fn consume_from_where(&self) -> ConsumeFromWhere {
        self.mode.consume_from_where
    }

    /// Subscriptions by topic.
    pub fn subscriptions(&self) -> &BTreeMap<String, SubscriptionData> {
        &self.subscriptions
    }

    /// Client ids, sorted, unique.
    pub fn client_ids(&self) -> Vec<String> {
        self.clients.ids()
    }

    /// The most recently heard connection of `client_id`.
    pub fn client(&self, client_id: &str) -> Option<&ClientInfo> {
        self.clients.primary(client_id)
    }

    /// The most recently heard connection of each client, in client-id order.
    pub fn clients(&self) -> impl Iterator<Item = &ClientInfo> {
        self.clients.primaries()
    }

    /// Every tracked connection of every client.
    pub fn connections(&self) -> impl Iterator<Item = &ClientInfo> {
        self.clients.all_connections()
    }

    /// Java `updateSubscription`: new topics are added; a topic whose `subVersion` grew, or
    /// whose expression changed at the same `subVersion` (third-party clients send 0 for a
    /// while), is replaced; topics missing from `subs` are removed. Returns (topic set changed,
    /// an expression changed).
    fn update_subscriptions(&mut self, subs: Vec<SubscriptionData>) -> (bool, bool) {
        let mut topics_changed = false;
        let mut filter_changed = false;
        let mut seen = std::collections::BTreeSet::new();
        for sub in subs {
            seen.insert(sub.topic.clone());
            match self.subscriptions.get(&sub.topic) {
                None => {
                    topics_changed = true;
                    self.subscriptions.insert(sub.topic.clone(), sub);
                }
                Some(old) => {
                    let same = old.same_filter(&sub);
                    if sub.sub_version > old.sub_version
                        || (sub.sub_version == old.sub_version && !same)
                    {
                        filter_changed |= !same;
                        self.subscriptions.insert(sub.topic.clone(), sub);
                    }
                }
            }
        }
        let before = self.subscriptions.len();
        self.subscriptions.retain(|topic, _| seen.contains(topic));
        topics_changed |= self.subscriptions.len() != before;
        (topics_changed, filter_changed)
    }

    /// The ConsumerConnection body (§4.7), keys sorted:
    /// `{"connectionSet":[..],"consumeFromWhere":..,"consumeType":..,"messageModel":..,
    /// "subscriptionTable":{"<topic>":{SubscriptionData},..}}`. One Connection per tracked
    /// connection, like Java's channel list.
    pub fn connection_list_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.subscriptions.len() * 200);
        out.extend_from_slice(b"{\"connectionSet\":");
        self.clients.write_connection_set(&mut out);
        out.push(b',');
        write_key(&mut out, "consumeFromWhere");
        write_str(&mut out, self.mode.consume_from_where.as_str());
        out.push(b',');
        write_key(&mut out, "consumeType");
        write_str(&mut out, self.mode.consume_type.as_str());
        out.push(b',');
        write_key(&mut out, "messageModel");
        write_str(&mut out, self.mode.message_model.as_str());
        out.extend_from_slice(b",\"subscriptionTable\":{");
        for (i, (topic, sub)) in self.subscriptions.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_key(&mut out, topic);
            sub.write_json(&mut out);
        }
        out.extend_from_slice(b"}}");
        out
    }
}

/// All consumer groups with at least one live client. `Send`; plain data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerManager {
    groups: BTreeMap<String, ConsumerGroupInfo>,
}

impl ConsumerManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers or refreshes `client` (the connection the heartbeat came on) in `group`
    /// (Java `registerConsumer`). The group's consume type, model and start point are
    /// overwritten by the latest heartbeat, as in Java. `subscriptions = None` keeps the stored
    /// ones (a heartbeat with `withoutSub=true`). `client.last_update_ms` is set to `now_ms`.
    pub fn register(
        &mut self,
        group: &str,
        mut client: ClientInfo,
        mode: ConsumeMode,
        subscriptions: Option<Vec<SubscriptionData>>,
        now_ms: i64,
    ) -> RegisterOutcome {
        client.last_update_ms = now_ms;
        let info = self
            .groups
            .entry(group.to_owned())
            .or_insert_with(|| ConsumerGroupInfo::new(group, mode));
        info.mode = mode;
        let ids_changed = info.clients.upsert(client);
        let (subscriptions_changed, filter_changed) = match subscriptions {
            Some(subs) => info.update_subscriptions(subs),
            None => (false, false),
        };
        RegisterOutcome {
            ids_changed,
            subscriptions_changed,
            filter_changed,
        }
    }

    /// [`Self::register`] for one `consumerDataSet` element of a parsed heartbeat.
    pub fn register_consumer_data(
        &mut self,
        data: &ConsumerData,
        client: ClientInfo,
        without_sub: bool,
        now_ms: i64,
    ) -> RegisterOutcome {
        let subs = (!without_sub).then(|| data.subscriptions.clone());
        self.register(
            &data.group_name,
            client,
            ConsumeMode::of(data),
            subs,
            now_ms,
        )
    }

    /// UNREGISTER_CLIENT: removes the client (all its connections) from the group. Returns true
    /// if it was a member (notify the rest). An emptied group is dropped.
    pub fn unregister_client(&mut self, group: &str, client_id: &str) -> bool {
        let Some(info) = self.groups.get_mut(group) else {
            return false;
        };
        let removed = info.clients.remove_client(client_id);
        if info.clients.is_empty() {
            self.groups.remove(group);
        }
        removed
    }

    /// A connection closed: it is removed everywhere. Returns the groups whose client-id set
    /// changed (a client lost its last connection), sorted; emptied groups are included and
    /// dropped.
    pub fn channel_closed(&mut self, channel: ChannelId) -> Vec<String> {
        let mut changed = Vec::new();
        self.groups.retain(|name, info| {
            if info.clients.remove_channel(channel) {
                changed.push(name.clone());
            }
            !info.clients.is_empty()
        });
        changed
    }

    /// Drops connections whose last heartbeat is older than `timeout_ms` (Java
    /// `scanNotActiveChannel`, every 10 s with [`DEFAULT_CHANNEL_EXPIRED_TIMEOUT_MS`]).
    pub fn scan_expired(&mut self, now_ms: i64, timeout_ms: i64) -> ExpiryReport {
        let mut report = ExpiryReport::default();
        self.groups.retain(|name, info| {
            if info
                .clients
                .expire(now_ms, timeout_ms, &mut report.expired_channels)
            {
                report.changed_groups.push(name.clone());
            }
            !info.clients.is_empty()
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
            .any(|g| g.connections().any(|c| c.channel == channel))
    }

    /// GET_CONSUMER_LIST_BY_GROUP: the group's client ids, sorted and de-duplicated. Empty for an
    /// unknown group (Java then answers SYSTEM_ERROR).
    pub fn consumer_ids(&self, group: &str) -> Vec<String> {
        self.groups
            .get(group)
            .map(ConsumerGroupInfo::client_ids)
            .unwrap_or_default()
    }

    /// The connection to send NOTIFY_CONSUMER_IDS_CHANGED on, one per client id (its most
    /// recently heard connection).
    pub fn channels_to_notify(&self, group: &str) -> Vec<ChannelId> {
        self.groups
            .get(group)
            .map(|g| g.clients().map(|c| c.channel).collect())
            .unwrap_or_default()
    }

    /// The group's subscription to `topic` (the pull path's filter when the pull carries none).
    pub fn subscription(&self, group: &str, topic: &str) -> Option<&SubscriptionData> {
        self.groups.get(group)?.subscriptions.get(topic)
    }

    /// Online groups subscribing `topic`, sorted (QUERY_TOPIC_CONSUME_BY_WHO, 300).
    pub fn groups_subscribing(&self, topic: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, g)| g.subscriptions.contains_key(topic))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// A client of the group (GET_CONSUMER_RUNNING_INFO / CONSUME_MESSAGE_DIRECTLY forwarding).
    pub fn find_client(&self, group: &str, client_id: &str) -> Option<&ClientInfo> {
        self.groups.get(group)?.client(client_id)
    }

    pub fn group(&self, group: &str) -> Option<&ConsumerGroupInfo> {
        self.groups.get(group)
    }

    /// Online groups, sorted by name.
    pub fn groups(&self) -> impl Iterator<Item = &ConsumerGroupInfo> {
        self.groups.values()
    }

    /// GET_CONSUMER_CONNECTION_LIST body; `None` when the group has no live client (answer 206
    /// CONSUMER_NOT_ONLINE).
    pub fn connection_list_json(&self, group: &str) -> Option<Vec<u8>> {
        self.groups
            .get(group)
            .map(ConsumerGroupInfo::connection_list_json)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::clients::heartbeat::HeartbeatData;
    use crate::clients::table::test_util::{client, golden_body};

    fn subs(list: &[(&str, &str, i64)]) -> Option<Vec<SubscriptionData>> {
        Some(
            list.iter()
                .map(|(t, s, v)| SubscriptionData::new_tag(*t, s, *v))
                .collect(),
        )
    }

    fn reg(
        m: &mut ConsumerManager,
        group: &str,
        c: ClientInfo,
        s: &[(&str, &str, i64)],
        now: i64,
    ) -> RegisterOutcome {
        m.register(
            group,
            c,
            ConsumeMode {
                consume_type: ConsumeType::ConsumePassively,
                message_model: MessageModel::Clustering,
                consume_from_where: ConsumeFromWhere::LastOffset,
            },
            subs(s),
            now,
        )
    }

    #[test]
    fn ids_are_deduplicated_across_connections() {
        let mut m = ConsumerManager::new();
        let s = [("T", "*", 1)];
        let o = reg(&mut m, "g", client("b@1", 0, 1), &s, 1000);
        assert!(o.ids_changed && o.subscriptions_changed && o.should_notify());
        // The same client id on three more connections (one on another shard).
        for (shard, conn) in [(0, 2), (1, 7), (0, 3)] {
            let o = reg(&mut m, "g", client("b@1", shard, conn), &s, 1001);
            assert_eq!(o, RegisterOutcome::default());
        }
        let o = reg(&mut m, "g", client("a@2", 1, 1), &s, 1002);
        assert!(o.ids_changed && !o.subscriptions_changed);
        assert_eq!(m.consumer_ids("g"), vec!["a@2", "b@1"]);
        // One notification target per client: its latest connection.
        assert_eq!(
            m.channels_to_notify("g"),
            vec![ChannelId::new(1, 1), ChannelId::new(0, 3)]
        );
        assert!(m.consumer_ids("nope").is_empty());
        assert!(m.channels_to_notify("nope").is_empty());
    }

    #[test]
    fn membership_changes_on_close_and_unregister() {
        let mut m = ConsumerManager::new();
        let s = [("T", "*", 1)];
        reg(&mut m, "g", client("a", 0, 1), &s, 0);
        reg(&mut m, "g", client("a", 0, 2), &s, 0);
        reg(&mut m, "g", client("b", 0, 3), &s, 0);
        reg(&mut m, "h", client("a", 0, 1), &[("U", "*", 1)], 0);
        // Closing one of a's two connections changes nothing visible, except that the other
        // connection becomes a's notification target.
        assert!(m.channel_closed(ChannelId::new(0, 2)).is_empty());
        assert_eq!(m.consumer_ids("g"), vec!["a", "b"]);
        assert_eq!(
            m.find_client("g", "a").unwrap().channel,
            ChannelId::new(0, 1)
        );
        // Closing a's last connection changes both its groups; h becomes empty and goes away.
        assert_eq!(m.channel_closed(ChannelId::new(0, 1)), vec!["g", "h"]);
        assert_eq!(m.consumer_ids("g"), vec!["b"]);
        assert!(m.group("h").is_none());
        assert!(m.channel_closed(ChannelId::new(9, 9)).is_empty());
        // Unregister.
        assert!(!m.unregister_client("g", "zzz"));
        assert!(!m.unregister_client("nope", "b"));
        assert!(m.unregister_client("g", "b"));
        assert!(m.group("g").is_none());
        assert!(m.connection_list_json("g").is_none());
    }

    #[test]
    fn expiry() {
        let mut m = ConsumerManager::new();
        let s = [("T", "*", 1)];
        reg(&mut m, "g", client("a", 0, 1), &s, 0);
        reg(&mut m, "g", client("a", 0, 2), &s, 100_000);
        reg(&mut m, "g", client("b", 0, 3), &s, 10_000);
        reg(&mut m, "h", client("b", 0, 3), &s, 10_000);
        // Exactly at the timeout nothing expires (Java: diff > timeout).
        let r = m.scan_expired(120_000, DEFAULT_CHANNEL_EXPIRED_TIMEOUT_MS);
        assert_eq!(r, ExpiryReport::default());
        // a's first connection expires (a stays via its second); b expires in g and h.
        let r = m.scan_expired(130_001, DEFAULT_CHANNEL_EXPIRED_TIMEOUT_MS);
        assert_eq!(r.changed_groups, vec!["g", "h"]);
        assert_eq!(
            r.expired_channels,
            vec![ChannelId::new(0, 1), ChannelId::new(0, 3)]
        );
        assert_eq!(m.consumer_ids("g"), vec!["a"]);
        assert!(m.group("h").is_none());
        assert!(!m.has_channel(ChannelId::new(0, 1)));
        assert!(m.has_channel(ChannelId::new(0, 2)));
        // A heartbeat refreshes.
        reg(&mut m, "g", client("a", 0, 2), &s, 200_000);
        assert!(
            m.scan_expired(300_000, DEFAULT_CHANNEL_EXPIRED_TIMEOUT_MS)
                .changed_groups
                .is_empty()
        );
        assert_eq!(
            m.scan_expired(400_000, DEFAULT_CHANNEL_EXPIRED_TIMEOUT_MS)
                .changed_groups,
            vec!["g"]
        );
        assert!(m.groups().next().is_none());
    }

    #[test]
    fn subscription_updates() {
        let mut m = ConsumerManager::new();
        reg(
            &mut m,
            "g",
            client("a", 0, 1),
            &[("T", "x", 1), ("%RETRY%g", "*", 1)],
            0,
        );
        // Same again: nothing.
        let o = reg(
            &mut m,
            "g",
            client("a", 0, 1),
            &[("T", "x", 1), ("%RETRY%g", "*", 1)],
            0,
        );
        assert_eq!(o, RegisterOutcome::default());
        // Newer version with a new expression: applied, not a topic change.
        let o = reg(
            &mut m,
            "g",
            client("a", 0, 1),
            &[("T", "y", 2), ("%RETRY%g", "*", 1)],
            0,
        );
        assert!(o.filter_changed && !o.should_notify());
        assert_eq!(m.subscription("g", "T").unwrap().sub_string, "y");
        // An older version does not overwrite (two clients with different versions).
        let o = reg(
            &mut m,
            "g",
            client("b", 0, 2),
            &[("T", "z", 1), ("%RETRY%g", "*", 1)],
            0,
        );
        assert!(o.ids_changed && !o.filter_changed);
        assert_eq!(m.subscription("g", "T").unwrap().sub_string, "y");
        // Same version 0 with a changed expression (third-party clients): applied.
        reg(&mut m, "g2", client("c", 0, 3), &[("T", "a", 0)], 0);
        let o = reg(&mut m, "g2", client("c", 0, 3), &[("T", "b", 0)], 0);
        assert!(o.filter_changed);
        assert_eq!(m.subscription("g2", "T").unwrap().sub_string, "b");
        // A topic removed and one added.
        let o = reg(
            &mut m,
            "g",
            client("a", 0, 1),
            &[("U", "*", 3), ("%RETRY%g", "*", 1)],
            0,
        );
        assert!(o.subscriptions_changed);
        assert!(m.subscription("g", "T").is_none());
        assert_eq!(m.groups_subscribing("%RETRY%g"), vec!["g"]);
        assert_eq!(m.groups_subscribing("T"), vec!["g2"]);
        // withoutSub keeps the stored subscriptions.
        let o = m.register(
            "g",
            client("a", 0, 1),
            ConsumeMode {
                consume_type: ConsumeType::ConsumeActively,
                message_model: MessageModel::Clustering,
                consume_from_where: ConsumeFromWhere::FirstOffset,
            },
            None,
            5,
        );
        assert_eq!(o, RegisterOutcome::default());
        assert!(m.subscription("g", "U").is_some());
        assert_eq!(
            m.group("g").unwrap().consume_type(),
            ConsumeType::ConsumeActively
        );
    }

    #[test]
    fn connection_list_body() {
        let mut m = ConsumerManager::new();
        let hb = HeartbeatData::parse(&golden_body("10_34_heartbeat-push-consumer.bin")).unwrap();
        let mut c = client(&hb.client_id, 2, 5);
        c.language = "RUST".into();
        c.version = 474;
        let o = m.register_consumer_data(&hb.consumers[0], c, hb.without_sub, 77);
        assert!(o.ids_changed && o.subscriptions_changed);
        let json = m.connection_list_json("golden_consumer_group").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["consumeType"], "CONSUME_PASSIVELY");
        assert_eq!(v["messageModel"], "CLUSTERING");
        assert_eq!(v["consumeFromWhere"], "CONSUME_FROM_LAST_OFFSET");
        assert_eq!(
            v["connectionSet"],
            serde_json::json!([{"clientAddr":"10.0.0.2:40005","clientId":hb.client_id,"language":"RUST","version":474}])
        );
        assert_eq!(
            v["subscriptionTable"]["TopicTest"]["codeSet"],
            serde_json::json!([2598919, 2598920])
        );
        assert_eq!(
            v["subscriptionTable"]["%RETRY%golden_consumer_group"]["subString"],
            "*"
        );
        let text = String::from_utf8(json).unwrap();
        assert!(
            text.starts_with(r#"{"connectionSet":[{"clientAddr":"10.0.0.2:40005","clientId":"#)
        );
        assert!(text.contains(r#"],"consumeFromWhere":"CONSUME_FROM_LAST_OFFSET","consumeType":"CONSUME_PASSIVELY","messageModel":"CLUSTERING","subscriptionTable":{"#));
    }
}
