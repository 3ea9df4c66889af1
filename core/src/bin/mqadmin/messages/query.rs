//! queryMsgById, queryMsgByKey, queryMsgByUniqueKey, queryMsgByOffset, printMsg and
//! consumeMessage: finding messages by id, key or position and printing them as the Java tool
//! does.

use super::format::{parse_timestamp, queue_text};
use super::send;
use super::message::{
    Detail, Message, PullStatus, TOOLS_CONSUMER_GROUP, addr_of, body_in_charset, by_id, max_offset, min_offset, print_detail, pull, query,
    readable_queues, search_offset,
};
use crate::common::{Admin, AdminError, AdminResult};

/// What one pull asks for at most (Java's tools pull 32 at a time).
const PULL_BATCH: i64 = 32;

/// `queryMsgById`: each id of the comma-separated list, viewed by offset id (or looked up as a
/// unique key), printed in detail.
pub async fn query_msg_by_id(admin: &Admin, topic: &str, ids: &str, charset: Option<&str>) -> AdminResult<()> {
    for id in ids.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        let message = by_id(admin, topic, id).await?;
        print_detail(admin, &message, charset, Detail::ById).await?;
    }
    Ok(())
}

/// `queryMsgById -s true`: each message found sent again to its topic (same body, flag and
/// properties, its UNIQ_KEY included) from the producer group `ReSendMsgById`, as Java's tool
/// does; the send result printed after the id, with no newline (as Java).
pub async fn resend_by_id(admin: &Admin, topic: &str, ids: &str) -> AdminResult<()> {
    for id in ids.split(',').map(str::trim).filter(|id| !id.is_empty()) {
        let message = match by_id(admin, topic, id).await {
            Ok(message) => message,
            Err(_) => {
                print!("no message. msgId={id}");
                continue;
            }
        };
        print!("prepare resend msg. originalMsgId={id}");
        let outgoing = send::Outgoing { topic: &message.topic, body: &message.body, flag: message.flag, properties: message.properties.clone() };
        let sent = send::send(admin, outgoing, None, None, "ReSendMsgById").await?;
        print!("{sent}");
    }
    Ok(())
}

/// `queryMsgByKey`: the messages whose KEYS hold the key, one line each.
pub async fn query_msg_by_key(admin: &Admin, topic: &str, key: &str, max_num: i32, begin_ms: i64, end_ms: i64) -> AdminResult<()> {
    let found = query(admin, topic, key, max_num, begin_ms, end_ms, false).await?;
    println!("{:<50} {:>4} {:>40}", "#Message ID", "#QID", "#Offset");
    for m in found {
        println!("{:<50} {:>4} {:>40}", m.msg_id(), m.queue_id, m.queue_offset);
    }
    Ok(())
}

/// `queryMsgByUniqueKey`: the oldest message with that id (all of them, at most 32, with
/// `-a`), printed in detail.
pub async fn query_msg_by_unique_key(admin: &Admin, topic: &str, id: &str, show_all: bool) -> AdminResult<()> {
    let mut found = query(admin, topic, id, 32, 0, i64::MAX, true).await?;
    found.sort_by_key(|m| m.store_timestamp_ms);
    let shown = if show_all { found.len() } else { 1 };
    for (index, message) in found.iter().take(shown).enumerate() {
        print_detail(admin, message, None, Detail::ByUniqueKey { index }).await?;
    }
    Ok(())
}

/// `queryMsgByOffset`: the message at a queue offset, printed in detail (nothing when the
/// offset holds none, as Java).
pub async fn query_msg_by_offset(admin: &Admin, topic: &str, broker_name: &str, queue_id: u32, offset: i64, charset: Option<&str>) -> AdminResult<()> {
    let route = admin.route(topic).await?;
    let addr = addr_of(&route, broker_name)?;
    let pulled = pull(admin, &addr, TOOLS_CONSUMER_GROUP, topic, broker_name, queue_id, offset, 1, "*").await?;
    match pulled.messages.first().filter(|_| pulled.status == PullStatus::Found) {
        Some(message) => print_detail(admin, message, charset, Detail::ById).await?,
        // Java prints nothing and succeeds; say why on stderr, which scripts do not parse.
        None => eprintln!("{}: no message at offset {offset} ({})", queue_text(topic, broker_name, queue_id), pulled.status.name()),
    }
    Ok(())
}

/// One message as `printMsg` and `consumeMessage` print it.
fn print_line(message: &Message, body: &str) {
    println!("MSGID: {} {} BODY: {body}", message.msg_id(), message.java_to_string());
}

/// `printMsg`: every message of every readable queue (from `-b` to `-e` when given), read with
/// the subscription expression.
pub async fn print_msg(admin: &Admin, topic: &str, charset: &str, sub_expression: &str, begin: Option<&str>, end: Option<&str>, print_body: bool) -> AdminResult<()> {
    // Check the charset before anything is printed.
    body_in_charset(b"", charset)?;
    let begin_ms = begin.map(|b| parse_timestamp("-b", b)).transpose()?;
    let end_ms = end.map(|e| parse_timestamp("-e", e)).transpose()?;
    let route = admin.route(topic).await?;
    for (broker, queue_id) in readable_queues(&route) {
        let addr = addr_of(&route, &broker)?;
        let mq = queue_text(topic, &broker, queue_id);
        let mut min = min_offset(admin, &addr, topic, queue_id).await?;
        let mut max = max_offset(admin, &addr, topic, queue_id).await?;
        if let Some(ms) = begin_ms {
            min = search_offset(admin, &addr, topic, queue_id, ms).await?;
        }
        if let Some(ms) = end_ms {
            max = search_offset(admin, &addr, topic, queue_id, ms).await?;
        }
        println!("minOffset={min}, maxOffset={max}, {mq}");
        let mut offset = min;
        while offset < max {
            let pulled = match pull(admin, &addr, TOOLS_CONSUMER_GROUP, topic, &broker, queue_id, offset, PULL_BATCH, sub_expression).await {
                Ok(p) => p,
                // Java prints the exception and goes on with the next queue.
                Err(e) => {
                    eprintln!("{mq}: {e}");
                    break;
                }
            };
            let stuck = pulled.next_begin_offset <= offset;
            offset = pulled.next_begin_offset;
            match pulled.status {
                PullStatus::Found => {
                    for m in &pulled.messages {
                        let body = if print_body { body_in_charset(&m.body, charset)? } else { "NOT PRINT BODY".to_owned() };
                        print_line(m, &body);
                    }
                }
                PullStatus::NoMatchedMsg => println!("{mq} no matched msg. status={}, offset={offset}", pulled.status.name()),
                PullStatus::NoNewMsg | PullStatus::OffsetIllegal => {
                    println!("{mq} print msg finished. status={}, offset={offset}", pulled.status.name());
                    break;
                }
            }
            // A broker that does not move the offset on would loop here for ever.
            if stuck {
                break;
            }
        }
        println!("--------------------------------------------------------");
    }
    Ok(())
}

/// `consumeMessage`'s arguments.
pub struct Consume<'a> {
    pub topic: &'a str,
    pub broker_name: Option<&'a str>,
    pub queue_id: Option<u32>,
    pub offset: Option<i64>,
    pub group: Option<&'a str>,
    pub begin: Option<&'a str>,
    pub end: Option<&'a str>,
    pub count: i64,
}

/// `consumeMessage`: up to `-c` messages (128) from the oldest of each queue, or from one queue
/// (`-b`, `-i`) from an offset (`-o`), between `-s` and `-e`; read without committing.
pub async fn consume_message(admin: &Admin, args: Consume<'_>) -> AdminResult<()> {
    if args.count <= 0 {
        return Err(AdminError::Usage("Please input a positive messageNumber!".to_owned()));
    }
    if args.queue_id.is_some() && args.broker_name.is_none() {
        return Err(AdminError::Usage("Please set the brokerName before queueId!".to_owned()));
    }
    if args.offset.is_some() && args.queue_id.is_none() {
        return Err(AdminError::Usage("Please set queueId before offset!".to_owned()));
    }
    let now = ferromq_store::store::now_ms();
    let begin_ms = args.begin.map(|b| parse_timestamp("-s", b)).transpose()?.unwrap_or(0);
    let end_ms = args.end.map(|e| parse_timestamp("-e", e)).transpose()?.unwrap_or(0);
    if begin_ms > now {
        return Err(AdminError::Usage("Please set the beginTimestamp before now!".to_owned()));
    }
    if end_ms > now {
        return Err(AdminError::Usage("Please set the endTimestamp before now!".to_owned()));
    }
    if args.end.is_some() && begin_ms > end_ms {
        return Err(AdminError::Usage("Please make sure that the beginTimestamp is less than or equal to the endTimestamp".to_owned()));
    }
    let group = args.group.unwrap_or(TOOLS_CONSUMER_GROUP);
    let route = admin.route(args.topic).await?;
    let range = |addr: String, queue_id: u32| async move {
        let mut min = min_offset(admin, &addr, args.topic, queue_id).await?;
        let mut max = max_offset(admin, &addr, args.topic, queue_id).await?;
        if begin_ms > 0 {
            min = search_offset(admin, &addr, args.topic, queue_id, begin_ms).await?;
        }
        if end_ms > 0 {
            max = search_offset(admin, &addr, args.topic, queue_id, end_ms).await?;
        }
        Ok::<_, AdminError>((min, max))
    };
    if let (Some(broker), Some(queue_id)) = (args.broker_name, args.queue_id) {
        let addr = addr_of(&route, broker)?;
        let (min, mut max) = range(addr.clone(), queue_id).await?;
        let from = args.offset.unwrap_or(0);
        if from > max {
            println!("{} no matched msg, offset={from}", queue_text(args.topic, broker, queue_id));
            return Ok(());
        }
        let min = min.max(from);
        if max - min > args.count {
            println!("The oldler {} message will be provided", args.count);
            max = min + args.count - 1;
        }
        return pull_range(admin, &addr, group, args.topic, broker, queue_id, min, max).await;
    }
    let mut left = args.count;
    for (broker, queue_id) in readable_queues(&route) {
        if left <= 0 {
            break;
        }
        let addr = addr_of(&route, &broker)?;
        let (min, mut max) = range(addr.clone(), queue_id).await?;
        if max - min > left {
            println!("The older {left} message of the {queue_id} queue will be provided");
            max = min + left - 1;
            left = 0;
        } else {
            // Java's arithmetic: a queue of n messages uses up n + 1.
            left -= max - min + 1;
        }
        pull_range(admin, &addr, group, args.topic, &broker, queue_id, min, max).await?;
    }
    Ok(())
}

/// Java's `pullMessageByQueue`: pulls from `min` through `max` (inclusive: at the queue's end
/// the broker answers NO_NEW_MSG, which ends the queue).
#[allow(clippy::too_many_arguments)]
async fn pull_range(admin: &Admin, addr: &str, group: &str, topic: &str, broker: &str, queue_id: u32, min: i64, max: i64) -> AdminResult<()> {
    let mq = queue_text(topic, broker, queue_id);
    let mut offset = min;
    while offset <= max {
        let pulled = match pull(admin, addr, group, topic, broker, queue_id, offset, (max - offset + 1).min(PULL_BATCH), "*").await {
            Ok(p) => p,
            Err(e) => {
                eprintln!("{mq}: {e}");
                return Ok(());
            }
        };
        let stuck = pulled.next_begin_offset <= offset;
        offset = pulled.next_begin_offset;
        match pulled.status {
            PullStatus::Found => {
                println!("Consume ok");
                for m in &pulled.messages {
                    print_line(m, &String::from_utf8_lossy(&m.body));
                }
            }
            PullStatus::NoMatchedMsg => println!("{mq} no matched msg. status={}, offset={offset}", pulled.status.name()),
            PullStatus::NoNewMsg | PullStatus::OffsetIllegal => {
                println!("{mq} print msg finished. status={}, offset={offset}", pulled.status.name());
                break;
            }
        }
        if stuck {
            break;
        }
    }
    Ok(())
}
