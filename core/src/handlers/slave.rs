//! What a slave refuses (PROTOCOL.md §7.5), in one place: [`refusal`] is asked before any
//! handler runs on a slave, so no handler below stores a message or changes a table there.
//!
//! - sends (10, 310, 320, and replies 324/325): 14 SERVICE_NOT_AVAILABLE naming the role, as a
//!   4.x slave's store refuses them (clients then send to another broker);
//! - END_TRANSACTION (37): 11 SLAVE_NOT_AVAILABLE, as Java's `EndTransactionProcessor`;
//! - CONSUMER_SEND_MSG_BACK (36): 1 SYSTEM_ERROR (the client then sends the message back
//!   through its internal producer, to the master);
//! - admin changes of topics, groups and group offsets (17, 215, 200, 207, 222, 314): 1
//!   SYSTEM_ERROR with Java 5.x's remark (`validateSlave`): a slave's tables are its
//!   master's copy, and a change here would be undone by the next sync.
//!
//! Everything else — pulls, offset queries and commits, heartbeats, queries, stats — is served.

use ferromq_net::codes::{request_code as rc, response_code as code};

use crate::control::ControlHandle;
use crate::error::BrokerError;

/// Java 5.x's remark for an admin change sent to a slave (`AdminBrokerProcessor.validateSlave`).
pub const ADMIN_ON_SLAVE: &str = "Can't modify topic or subscription group from slave broker, please execute it from master broker.";

/// Why `request_code` is refused here, if this broker is a slave and the code writes.
pub fn refusal(control: &ControlHandle, request_code: i32) -> Option<BrokerError> {
    if !control.is_slave() {
        return None;
    }
    let broker = &control.identity().broker_name;
    match request_code {
        rc::SEND_MESSAGE | rc::SEND_MESSAGE_V2 | rc::SEND_BATCH_MESSAGE | rc::SEND_REPLY_MESSAGE | rc::SEND_REPLY_MESSAGE_V2 => {
            Some(BrokerError::unavailable(format!("the broker[{broker}] is a slave (brokerRole=SLAVE): it stores no sends; send to its master")))
        }
        rc::END_TRANSACTION => {
            Some(BrokerError::new(code::SLAVE_NOT_AVAILABLE, format!("the broker[{broker}] is a slave (brokerRole=SLAVE): end transactions on its master")))
        }
        rc::CONSUMER_SEND_MSG_BACK => {
            Some(BrokerError::system(format!("the broker[{broker}] is a slave (brokerRole=SLAVE): it stores no retries; send the message back to its master")))
        }
        rc::UPDATE_AND_CREATE_TOPIC
        | rc::DELETE_TOPIC_IN_BROKER
        | rc::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP
        | rc::DELETE_SUBSCRIPTIONGROUP
        | rc::INVOKE_BROKER_TO_RESET_OFFSET
        | rc::CLONE_GROUP_OFFSET => Some(BrokerError::system(ADMIN_ON_SLAVE)),
        _ => None,
    }
}
