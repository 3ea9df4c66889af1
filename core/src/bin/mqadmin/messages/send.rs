//! sendMessage: one message sent as the Java producer sends it (SEND_MESSAGE_V2, a fresh
//! UNIQ_KEY, the producer group named by the time), to a queue of the topic's route or the one
//! `-b`/`-i` name.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};

use ferromq_net::RemotingCommand;
use ferromq_net::codes::{request_code, response_code};

use super::format::{date_time, parse_local_time};
use super::message::addr_of;
use crate::common::{Admin, AdminError, AdminResult, TopicRoute};

/// The topic whose route a producer uses for a topic the name server does not know yet; the
/// broker then creates the topic (Java's `TopicValidator.AUTO_CREATE_TOPIC_KEY_TOPIC`).
const AUTO_CREATE_TOPIC: &str = "TBW102";
/// Queues an auto-created topic gets (Java's `defaultTopicQueueNums`).
const DEFAULT_TOPIC_QUEUE_NUMS: i32 = 4;
/// Sends tried before giving up (Java's `retryTimesWhenSendFailed` = 2, plus the first).
const SEND_ATTEMPTS: usize = 3;
/// `PermName.PERM_WRITE`.
const PERM_WRITE: i32 = 2;

/// A writable queue: (broker name, queue id).
type Target = (String, u32);

/// The writable queues of masters in `route`, in route order.
fn writable_queues(route: &TopicRoute) -> Vec<Target> {
    route
        .queues
        .iter()
        .filter(|q| q.perm & PERM_WRITE != 0)
        .filter(|q| route.brokers.iter().any(|b| b.broker_name == q.broker_name && b.master().is_some()))
        .flat_map(|q| (0..q.write_queue_nums.max(0) as u32).map(move |id| (q.broker_name.clone(), id)))
        .collect()
}

/// What a send produced (Java's SendResult).
pub struct Sent {
    pub broker_name: String,
    pub queue_id: String,
    pub status: &'static str,
    /// The message's UNIQ_KEY.
    pub msg_id: String,
    pub offset_msg_id: String,
    pub queue_offset: String,
    pub recall_handle: Option<String>,
    pub topic: String,
}

impl std::fmt::Display for Sent {
    /// `SendResult.toString()`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SendResult [sendStatus={}, msgId={}, offsetMsgId={}, messageQueue={}, queueOffset={}, recallHandle={}]",
            self.status,
            self.msg_id,
            self.offset_msg_id,
            super::format::queue_text(&self.topic, &self.broker_name, self.queue_id.parse().unwrap_or(0)),
            self.queue_offset,
            self.recall_handle.as_deref().unwrap_or("null")
        )
    }
}

/// What to send: the topic, the body, the user flag and the properties (a UNIQ_KEY is added
/// when there is none, as Java's producer does).
pub struct Outgoing<'a> {
    pub topic: &'a str,
    pub body: &'a [u8],
    pub flag: i32,
    pub properties: Vec<(String, String)>,
}

/// Sends `message` as Java's producer does: to `queue_id` of `broker_name` when both are
/// given, else to a writable queue (of that broker) from a random start, trying the next on
/// failure, up to three sends.
pub async fn send(admin: &Admin, message: Outgoing<'_>, broker_name: Option<&str>, queue_id: Option<i32>, producer_group: &str) -> AdminResult<Sent> {
    let topic = message.topic;
    // A topic the name server does not route yet goes by TBW102's route, with as many queues
    // as the broker will create it with (Java's producer caps them the same way).
    let route = match admin.route(topic).await {
        Ok(route) => route,
        Err(AdminError::Refused { code: response_code::TOPIC_NOT_EXIST, .. }) => {
            let mut route = admin.route(AUTO_CREATE_TOPIC).await?;
            for q in &mut route.queues {
                q.read_queue_nums = q.read_queue_nums.min(DEFAULT_TOPIC_QUEUE_NUMS);
                q.write_queue_nums = q.write_queue_nums.min(DEFAULT_TOPIC_QUEUE_NUMS);
            }
            route
        }
        Err(e) => return Err(e),
    };
    let targets: Vec<Target> = match (broker_name, queue_id) {
        (Some(broker), Some(queue)) => {
            let queue = u32::try_from(queue).map_err(|_| AdminError::Usage(format!("-i {queue} is not a queue id")))?;
            vec![(broker.to_owned(), queue)]
        }
        (Some(broker), None) => writable_queues(&route).into_iter().filter(|(b, _)| b == broker).collect(),
        _ => writable_queues(&route),
    };
    if targets.is_empty() {
        return Err(AdminError::Other(format!("no writable queue of topic {topic}")));
    }
    let mut properties = message.properties;
    let msg_id = match properties.iter().rev().find(|(k, _)| k == "UNIQ_KEY") {
        Some((_, id)) => id.clone(),
        None => {
            let id = unique_id(&addr_of(&route, &targets[0].0)?);
            properties.push(("UNIQ_KEY".to_owned(), id.clone()));
            id
        }
    };
    let encoded: String = properties.iter().map(|(k, v)| format!("{k}\u{1}{v}\u{2}")).collect();
    // Java's producer starts at a random queue and goes round the others on failure.
    let start = (ferromq_store::store::now_ms() as usize) % targets.len();
    let mut failure = None;
    for attempt in 0..SEND_ATTEMPTS.min(targets.len()) {
        let (broker, queue) = &targets[(start + attempt) % targets.len()];
        let addr = addr_of(&route, broker)?;
        let request = RemotingCommand::request(request_code::SEND_MESSAGE_V2)
            .with_ext("a", producer_group)
            .with_ext("b", topic)
            .with_ext("c", AUTO_CREATE_TOPIC)
            .with_ext("d", DEFAULT_TOPIC_QUEUE_NUMS)
            .with_ext("e", queue)
            .with_ext("f", 0)
            .with_ext("g", ferromq_store::store::now_ms())
            .with_ext("h", message.flag)
            .with_ext("i", &encoded)
            .with_ext("j", 0)
            .with_ext("k", false)
            .with_ext("m", false)
            .with_body(message.body.to_vec());
        let response = match admin.invoke(&addr, request).await {
            Ok(response) => response,
            Err(e) => {
                failure = Some(e);
                continue;
            }
        };
        let status = match response.code {
            response_code::SUCCESS => "SEND_OK",
            response_code::FLUSH_DISK_TIMEOUT => "FLUSH_DISK_TIMEOUT",
            response_code::FLUSH_SLAVE_TIMEOUT => "FLUSH_SLAVE_TIMEOUT",
            response_code::SLAVE_NOT_AVAILABLE => "SLAVE_NOT_AVAILABLE",
            _ => {
                failure = crate::common::expect_success(&addr, response).err();
                continue;
            }
        };
        let ext = |key: &str| response.ext(key).map(str::to_owned);
        return Ok(Sent {
            broker_name: broker.clone(),
            queue_id: ext("queueId").unwrap_or_else(|| queue.to_string()),
            status,
            msg_id,
            offset_msg_id: ext("msgId").unwrap_or_default(),
            queue_offset: ext("queueOffset").unwrap_or_default(),
            recall_handle: ext("recallHandle"),
            topic: topic.to_owned(),
        });
    }
    Err(failure.unwrap_or_else(|| AdminError::Other(format!("sending to topic {topic} failed"))))
}

/// `sendMessage`: one message with the body, keys and tags given, from a producer group named
/// by the time (as Java's tool names it).
pub async fn send_message(
    admin: &Admin,
    topic: &str,
    body: &str,
    keys: Option<&str>,
    tags: Option<&str>,
    broker_name: Option<&str>,
    queue_id: Option<i32>,
) -> AdminResult<()> {
    if queue_id.is_some() && broker_name.is_none() {
        return Err(AdminError::Usage("Broker name must be set if the queue is chosen!".to_owned()));
    }
    let mut properties = Vec::new();
    for (name, value) in [("TAGS", tags), ("KEYS", keys), ("WAIT", Some("true"))] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            properties.push((name.to_owned(), value.to_owned()));
        }
    }
    let message = Outgoing { topic, body: body.as_bytes(), flag: 0, properties };
    let sent = send(admin, message, broker_name, queue_id, &ferromq_store::store::now_ms().to_string()).await?;
    println!("{:<32}  {:<4}  {:<20}    #MsgId", "#Broker Name", "#QID", "#Send Result");
    println!("{:<32}  {:<4}  {:<20}    {}", sent.broker_name, sent.queue_id, sent.status, sent.msg_id);
    Ok(())
}

/// A message id as Java's `MessageClientIDSetter.createUniqID` makes it: this host's IPv4
/// address (the one it reaches the broker from), the low 16 bits of the pid, 4 bytes that tell
/// this process apart (Java: the class loader's hash), the milliseconds since the start of the
/// month (local time) and a counter (one message: 0). Uppercase hex, 32 characters.
fn unique_id(broker_addr: &str) -> String {
    // Connecting a UDP socket sends nothing; it only asks the kernel for the route's source
    // address.
    let ip = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect(broker_addr).and_then(|()| s.local_addr()))
        .ok()
        .and_then(|a| match a.ip() {
            IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
            _ => None,
        })
        .unwrap_or(Ipv4Addr::LOCALHOST);
    let now_ms = ferromq_store::store::now_ms();
    let month_start_ms = parse_local_time(&format!("{}-01#00:00:00:000", &date_time(now_ms)[..7])).unwrap_or(now_ms);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let mut bytes = Vec::with_capacity(16);
    bytes.extend_from_slice(&ip.octets());
    bytes.extend_from_slice(&(std::process::id() as u16).to_be_bytes());
    bytes.extend_from_slice(&(nanos ^ std::process::id().rotate_left(16)).to_be_bytes());
    bytes.extend_from_slice(&((now_ms - month_start_ms) as i32).to_be_bytes());
    bytes.extend_from_slice(&0u16.to_be_bytes());
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_ids_have_javas_shape() {
        let id = unique_id("127.0.0.1:9876");
        assert_eq!(id.len(), 32);
        assert!(id.starts_with("7F000001"), "{id}");
        assert!(id.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    }
}
