//! Consumers, producers, messages and offsets: the subcommands, their flags as the Java tool
//! names them (`tools/command/{consumer,connection,message,offset}`), and which module runs
//! each.

mod consumers;
mod format;
mod message;
mod offsets;
mod query;
mod send;

use crate::common::{Admin, AdminError, AdminResult, NameServer};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Query consumer's progress, speed.
    #[command(name = "consumerProgress")]
    ConsumerProgress {
        #[command(flatten)]
        ns: NameServer,
        /// consumer group name
        #[arg(short = 'g', long = "groupName")]
        group: Option<String>,
        /// topic name
        #[arg(short = 't', long = "topicName")]
        topic: Option<String>,
        /// Show Client IP per Queue
        #[arg(short = 's', long = "showClientIP")]
        show_client_ip: Option<String>,
        /// Cluster name or lmq parent topic, lmq is used to find the route.
        #[arg(short = 'c', long = "cluster")]
        cluster: Option<String>,
    },
    /// Query consumer's socket connection, client version and subscription.
    #[command(name = "consumerConnection")]
    ConsumerConnection {
        #[command(flatten)]
        ns: NameServer,
        /// consumer group name
        #[arg(short = 'g', long = "consumerGroup")]
        group: String,
        /// broker address
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: Option<String>,
    },
    /// Query producer's socket connection and client version.
    #[command(name = "producerConnection")]
    ProducerConnection {
        #[command(flatten)]
        ns: NameServer,
        /// producer group name
        #[arg(short = 'g', long = "producerGroup")]
        group: String,
        /// topic name
        #[arg(short = 't', long = "topic")]
        topic: String,
    },
    /// Query consumer's internal data structure.
    #[command(name = "consumerStatus")]
    ConsumerStatus {
        #[command(flatten)]
        ns: NameServer,
        /// consumer group name
        #[arg(short = 'g', long = "consumerGroup")]
        group: String,
        /// The consumer's client id
        #[arg(short = 'i', long = "clientId")]
        client_id: Option<String>,
        /// broker address
        #[arg(short = 'b', long = "brokerAddr")]
        broker_addr: Option<String>,
        /// Run jstack command in the consumer progress
        #[arg(short = 's', long = "jstack")]
        jstack: bool,
    },
    /// Query Message by Id.
    #[command(name = "queryMsgById")]
    QueryMsgById {
        #[command(flatten)]
        ns: NameServer,
        /// topic name
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Message Id (several: comma-separated)
        #[arg(short = 'i', long = "msgId")]
        msg_id: String,
        /// resend message
        #[arg(short = 's', long = "sendMessage")]
        send_message: Option<String>,
        /// unit name
        #[arg(short = 'u', long = "unitName")]
        unit_name: Option<String>,
        /// print message body by the specified format
        #[arg(short = 'f', long = "bodyFormat")]
        body_format: Option<String>,
        /// Cluster name or lmq parent topic, lmq is used to find the route.
        #[arg(short = 'c', long = "cluster")]
        cluster: Option<String>,
    },
    /// Query Message by Key.
    #[command(name = "queryMsgByKey")]
    QueryMsgByKey {
        #[command(flatten)]
        ns: NameServer,
        /// Topic name
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Message Key
        #[arg(short = 'k', long = "msgKey")]
        key: String,
        /// Begin timestamp(ms). default:0, eg:1676730526212
        #[arg(short = 'b', long = "beginTimestamp", default_value_t = 0)]
        begin_ms: i64,
        /// End timestamp(ms). default:Long.MAX_VALUE, eg:1676730526212
        #[arg(short = 'e', long = "endTimestamp", default_value_t = i64::MAX)]
        end_ms: i64,
        /// The maximum number of messages returned by the query, default:64
        #[arg(short = 'm', long = "maxNum", default_value_t = 64)]
        max_num: i32,
        /// Cluster name or lmq parent topic, lmq is used to find the route.
        #[arg(short = 'c', long = "cluster")]
        cluster: Option<String>,
    },
    /// Query Message by Unique key.
    #[command(name = "queryMsgByUniqueKey")]
    QueryMsgByUniqueKey {
        #[command(flatten)]
        ns: NameServer,
        /// Message Id
        #[arg(short = 'i', long = "msgId")]
        msg_id: String,
        /// The topic of msg
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Print all message, the limit is 32
        #[arg(short = 'a', long = "showAll")]
        show_all: bool,
        /// Cluster name or lmq parent topic, lmq is used to find the route.
        #[arg(short = 'c', long = "cluster")]
        cluster: Option<String>,
    },
    /// Query Message by offset.
    #[command(name = "queryMsgByOffset")]
    QueryMsgByOffset {
        #[command(flatten)]
        ns: NameServer,
        /// topic name
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Broker Name
        #[arg(short = 'b', long = "brokerName")]
        broker_name: String,
        /// Queue Id
        #[arg(short = 'i', long = "queueId")]
        queue_id: u32,
        /// Queue Offset
        #[arg(short = 'o', long = "offset")]
        offset: i64,
        /// print message body by the specified format
        #[arg(short = 'f', long = "bodyFormat")]
        body_format: Option<String>,
    },
    /// Print Message Detail.
    #[command(name = "printMsg")]
    PrintMsg {
        #[command(flatten)]
        ns: NameServer,
        /// topic name
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// CharsetName(eg: UTF-8,GBK)
        #[arg(short = 'c', long = "charsetName", default_value = "UTF-8")]
        charset: String,
        /// Subscribe Expression(eg: TagA || TagB)
        #[arg(short = 's', long = "subExpression", default_value = "*")]
        sub_expression: String,
        /// Begin timestamp[currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS]
        #[arg(short = 'b', long = "beginTimestamp")]
        begin: Option<String>,
        /// End timestamp[currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS]
        #[arg(short = 'e', long = "endTimestamp")]
        end: Option<String>,
        /// print body
        #[arg(short = 'd', long = "printBody")]
        print_body: Option<String>,
        /// Lmq parent topic, lmq is used to find the route.
        #[arg(short = 'l', long = "lmqParentTopic")]
        lmq_parent_topic: Option<String>,
    },
    /// Reset consumer offset by timestamp(without client restart).
    #[command(name = "resetOffsetByTime")]
    ResetOffsetByTime {
        #[command(flatten)]
        ns: NameServer,
        /// set the consumer group
        #[arg(short = 'g', long = "group")]
        group: String,
        /// set the topic
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// set the timestamp[now|currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS] (-1: the end)
        #[arg(short = 's', long = "timestamp", allow_negative_numbers = true)]
        timestamp: String,
        /// set the force rollback by timestamp switch[true|false]. Deprecated.
        #[arg(short = 'f', long = "force")]
        force: Option<String>,
        /// broker addr
        #[arg(short = 'b', long = "broker")]
        broker_addr: Option<String>,
        /// queue id
        #[arg(short = 'q', long = "queue")]
        queue_id: Option<i32>,
        /// Expect queue offset, not support old version broker
        #[arg(short = 'o', long = "offset")]
        offset: Option<i64>,
        /// Cluster name or lmq parent topic, lmq is used to find the route.
        #[arg(short = 'c', long = "cluster")]
        cluster: Option<String>,
    },
    /// Clone offset from other group.
    #[command(name = "cloneGroupOffset")]
    CloneGroupOffset {
        #[command(flatten)]
        ns: NameServer,
        /// set source consumer group
        #[arg(short = 's', long = "srcGroup")]
        src: String,
        /// set destination consumer group
        #[arg(short = 'd', long = "destGroup")]
        dest: String,
        /// set the topic
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// the group or the topic is offline
        #[arg(short = 'o', long = "offline")]
        offline: Option<String>,
    },
    /// Send a message.
    #[command(name = "sendMessage")]
    SendMessage {
        #[command(flatten)]
        ns: NameServer,
        /// Topic name
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// UTF-8 string format of the message body
        #[arg(short = 'p', long = "body")]
        body: String,
        /// Message keys
        #[arg(short = 'k', long = "key")]
        keys: Option<String>,
        /// Message tags
        #[arg(short = 'c', long = "tags")]
        tags: Option<String>,
        /// Send message to target broker
        #[arg(short = 'b', long = "broker")]
        broker_name: Option<String>,
        /// Send message to target queue
        #[arg(short = 'i', long = "qid")]
        queue_id: Option<i32>,
        /// Message Trace Enable, Default: false (FerroMQ's tool sends no trace)
        #[arg(short = 'm', long = "msgTraceEnable")]
        msg_trace_enable: Option<String>,
    },
    /// Consume message.
    #[command(name = "consumeMessage")]
    ConsumeMessage {
        #[command(flatten)]
        ns: NameServer,
        /// Topic name
        #[arg(short = 't', long = "topic")]
        topic: String,
        /// Broker name
        #[arg(short = 'b', long = "brokerName")]
        broker_name: Option<String>,
        /// Queue Id
        #[arg(short = 'i', long = "queueId")]
        queue_id: Option<u32>,
        /// Queue offset
        #[arg(short = 'o', long = "offset")]
        offset: Option<i64>,
        /// Consumer group name
        #[arg(short = 'g', long = "consumerGroup")]
        group: Option<String>,
        /// Begin timestamp[currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS]
        #[arg(short = 's', long = "beginTimestamp")]
        begin: Option<String>,
        /// End timestamp[currentTimeMillis|yyyy-MM-dd#HH:mm:ss:SSS]
        #[arg(short = 'e', long = "endTimestamp")]
        end: Option<String>,
        /// Number of message to be consumed
        #[arg(short = 'c', long = "MessageNumber", default_value_t = 128)]
        count: i64,
    },
}

impl Command {
    /// The Java name of the subcommand, for error lines.
    pub fn name(&self) -> &'static str {
        match self {
            Command::ConsumerProgress { .. } => "consumerProgress",
            Command::ConsumerConnection { .. } => "consumerConnection",
            Command::ProducerConnection { .. } => "producerConnection",
            Command::ConsumerStatus { .. } => "consumerStatus",
            Command::QueryMsgById { .. } => "queryMsgById",
            Command::QueryMsgByKey { .. } => "queryMsgByKey",
            Command::QueryMsgByUniqueKey { .. } => "queryMsgByUniqueKey",
            Command::QueryMsgByOffset { .. } => "queryMsgByOffset",
            Command::PrintMsg { .. } => "printMsg",
            Command::ResetOffsetByTime { .. } => "resetOffsetByTime",
            Command::CloneGroupOffset { .. } => "cloneGroupOffset",
            Command::SendMessage { .. } => "sendMessage",
            Command::ConsumeMessage { .. } => "consumeMessage",
        }
    }

    pub async fn run(self) -> AdminResult<()> {
        match self {
            Command::ConsumerProgress { ns, group, topic, show_client_ip, cluster: _ } => {
                let admin = Admin::new(&ns);
                let show_client_ip = show_client_ip.as_deref().is_some_and(offsets::java_bool);
                match group {
                    Some(group) => consumers::consumer_progress_of(&admin, group.trim(), topic.as_deref().map(str::trim), show_client_ip).await,
                    None => consumers::consumer_progress_all(&admin).await,
                }
            }
            Command::ConsumerConnection { ns, group, broker_addr } => {
                consumers::consumer_connection(&Admin::new(&ns), group.trim(), broker_addr.as_deref().map(str::trim)).await
            }
            Command::ProducerConnection { ns, group, topic } => consumers::producer_connection(&Admin::new(&ns), group.trim(), topic.trim()).await,
            Command::ConsumerStatus { ns, group, client_id, broker_addr, jstack } => {
                let admin = Admin::new(&ns);
                consumers::consumer_status(&admin, group.trim(), client_id.as_deref().map(str::trim), broker_addr.as_deref().map(str::trim), jstack).await
            }
            Command::QueryMsgById { ns, topic, msg_id, send_message, unit_name: _, body_format, cluster: _ } => {
                let admin = Admin::new(&ns);
                match send_message {
                    // Java resends only when -s parses as true, and then does nothing else.
                    Some(resend) if offsets::java_bool(&resend) => query::resend_by_id(&admin, topic.trim(), &msg_id).await,
                    Some(_) => Ok(()),
                    None => query::query_msg_by_id(&admin, topic.trim(), &msg_id, body_format.as_deref().map(str::trim)).await,
                }
            }
            Command::QueryMsgByKey { ns, topic, key, begin_ms, end_ms, max_num, cluster: _ } => {
                query::query_msg_by_key(&Admin::new(&ns), topic.trim(), key.trim(), max_num, begin_ms, end_ms).await
            }
            Command::QueryMsgByUniqueKey { ns, msg_id, topic, show_all, cluster: _ } => {
                query::query_msg_by_unique_key(&Admin::new(&ns), topic.trim(), msg_id.trim(), show_all).await
            }
            Command::QueryMsgByOffset { ns, topic, broker_name, queue_id, offset, body_format } => {
                let admin = Admin::new(&ns);
                query::query_msg_by_offset(&admin, topic.trim(), broker_name.trim(), queue_id, offset, body_format.as_deref().map(str::trim)).await
            }
            Command::PrintMsg { ns, topic, charset, sub_expression, begin, end, print_body, lmq_parent_topic } => {
                if lmq_parent_topic.is_some() {
                    return Err(AdminError::Usage("-l (light message queues) is not supported: FerroMQ has no LMQ".to_owned()));
                }
                let print_body = print_body.as_deref().is_none_or(offsets::java_bool);
                let admin = Admin::new(&ns);
                query::print_msg(&admin, topic.trim(), charset.trim(), sub_expression.trim(), begin.as_deref(), end.as_deref(), print_body).await
            }
            Command::ResetOffsetByTime { ns, group, topic, timestamp, force, broker_addr, queue_id, offset, cluster: _ } => {
                let force = force.as_deref().is_none_or(offsets::java_bool);
                let admin = Admin::new(&ns);
                let broker_addr = broker_addr.as_deref().map(str::trim);
                offsets::reset_offset_by_time(&admin, group.trim(), topic.trim(), timestamp.trim(), force, broker_addr, queue_id, offset).await
            }
            Command::CloneGroupOffset { ns, src, dest, topic, offline } => {
                let offline = offline.as_deref().is_some_and(offsets::java_bool);
                offsets::clone_group_offset(&Admin::new(&ns), src.trim(), dest.trim(), topic.trim(), offline).await
            }
            Command::SendMessage { ns, topic, body, keys, tags, broker_name, queue_id, msg_trace_enable: _ } => {
                let admin = Admin::new(&ns);
                let (keys, tags, broker) = (keys.as_deref().map(str::trim), tags.as_deref().map(str::trim), broker_name.as_deref().map(str::trim));
                send::send_message(&admin, topic.trim(), body.trim(), keys, tags, broker, queue_id).await
            }
            Command::ConsumeMessage { ns, topic, broker_name, queue_id, offset, group, begin, end, count } => {
                let args = query::Consume {
                    topic: topic.trim(),
                    broker_name: broker_name.as_deref().map(str::trim),
                    queue_id,
                    offset,
                    group: group.as_deref().map(str::trim),
                    begin: begin.as_deref(),
                    end: end.as_deref(),
                    count,
                };
                query::consume_message(&Admin::new(&ns), args).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::Command;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[test]
    fn flags_are_javas_and_do_not_clash() {
        // clap's own checks: no flag letter or name used twice in a subcommand.
        Cli::command().debug_assert();
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("mqadmin").chain(args.iter().copied())).map(|cli| cli.command);
        // A reset to the end: -1 is the timestamp, not a flag.
        match parse(&["resetOffsetByTime", "-g", "g", "-t", "t", "-s", "-1"]) {
            Ok(Command::ResetOffsetByTime { timestamp, .. }) => assert_eq!(timestamp, "-1"),
            other => panic!("{other:?}"),
        }
        match parse(&["queryMsgByKey", "-t", "t", "-k", "k"]) {
            Ok(Command::QueryMsgByKey { begin_ms, end_ms, max_num, .. }) => assert_eq!((begin_ms, end_ms, max_num), (0, i64::MAX, 64)),
            other => panic!("{other:?}"),
        }
        match parse(&["consumeMessage", "-t", "t", "-b", "broker-a", "-i", "1", "-o", "5", "-c", "3", "-n", "127.0.0.1:9876"]) {
            Ok(Command::ConsumeMessage { broker_name, queue_id, offset, count, ns, .. }) => {
                assert_eq!((broker_name.as_deref(), queue_id, offset, count), (Some("broker-a"), Some(1), Some(5), 3));
                assert_eq!(ns.namesrv_addr.as_deref(), Some("127.0.0.1:9876"));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(&["queryMsgByOffset", "-t", "t", "-b", "b", "-i", "x", "-o", "0"]).is_err(), "a queue id is a number");
        assert!(parse(&["consumerConnection"]).is_err(), "-g is required");
    }
}
