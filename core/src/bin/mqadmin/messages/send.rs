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

/// `sendMessage`.
#[allow(clippy::too_many_arguments)]
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
    // Java's producer starts at a random queue and goes round the others on failure.
    let start = (ferromq_store::store::now_ms() as usize) % targets.len();
    let producer_group = ferromq_store::store::now_ms().to_string();
    let mut failure = None;
    for attempt in 0..SEND_ATTEMPTS.min(targets.len().max(1)) {
        let (broker, queue) = &targets[(start + attempt) % targets.len()];
        let addr = addr_of(&route, broker)?;
        let uniq_key = unique_id(&addr);
        let mut properties = String::new();
        for (name, value) in [("TAGS", tags), ("KEYS", keys), ("WAIT", Some("true")), ("UNIQ_KEY", Some(uniq_key.as_str()))] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                properties.push_str(&format!("{name}\u{1}{value}\u{2}"));
            }
        }
        let request = RemotingCommand::request(request_code::SEND_MESSAGE_V2)
            .with_ext("a", &producer_group)
            .with_ext("b", topic)
            .with_ext("c", AUTO_CREATE_TOPIC)
            .with_ext("d", DEFAULT_TOPIC_QUEUE_NUMS)
            .with_ext("e", queue)
            .with_ext("f", 0)
            .with_ext("g", ferromq_store::store::now_ms())
            .with_ext("h", 0)
            .with_ext("i", properties)
            .with_ext("j", 0)
            .with_ext("k", false)
            .with_ext("m", false)
            .with_body(body.as_bytes().to_vec());
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
        let queue_id = response.ext("queueId").unwrap_or("Unknown");
        println!("{:<32}  {:<4}  {:<20}    #MsgId", "#Broker Name", "#QID", "#Send Result");
        println!("{broker:<32}  {queue_id:<4}  {status:<20}    {uniq_key}");
        return Ok(());
    }
    Err(failure.unwrap_or_else(|| AdminError::Other(format!("sending to topic {topic} failed"))))
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
