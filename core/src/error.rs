//! The broker's one error type. Every handler failure is a [`BrokerError`]: the RocketMQ
//! response code a client acts on (PROTOCOL.md §3.1) plus a remark an operator can act on.
//! Errors of the layers below (store, header, cross-shard routing, control plane) become a
//! `BrokerError` through one `From` impl each, so one failure maps to one code on every path.

use ferromq_net::RemotingCommand;
use ferromq_net::codes::response_code as code;
use ferromq_store::StoreError;

use crate::header::HeaderError;

/// A request's failure: response code and remark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{remark} (code {code})")]
pub struct BrokerError {
    pub code: i32,
    pub remark: String,
}

/// What handlers return.
pub type BrokerResult<T> = Result<T, BrokerError>;

impl BrokerError {
    pub fn new(code: i32, remark: impl Into<String>) -> BrokerError {
        BrokerError { code, remark: remark.into() }
    }

    /// 1 SYSTEM_ERROR: the request cannot be served as sent.
    pub fn system(remark: impl Into<String>) -> BrokerError {
        BrokerError::new(code::SYSTEM_ERROR, remark)
    }

    /// 2 SYSTEM_BUSY with the Java broker's flow-control remark (clients back off and retry).
    pub fn busy(why: impl std::fmt::Display) -> BrokerError {
        BrokerError::new(code::SYSTEM_BUSY, format!("[REJECTREQUEST]system busy, start flow control for a while ({why})"))
    }

    /// 13 MESSAGE_ILLEGAL.
    pub fn illegal(remark: impl Into<String>) -> BrokerError {
        BrokerError::new(code::MESSAGE_ILLEGAL, remark)
    }

    /// 14 SERVICE_NOT_AVAILABLE.
    pub fn unavailable(remark: impl Into<String>) -> BrokerError {
        BrokerError::new(code::SERVICE_NOT_AVAILABLE, remark)
    }

    /// 16 NO_PERMISSION.
    pub fn no_permission(remark: impl Into<String>) -> BrokerError {
        BrokerError::new(code::NO_PERMISSION, remark)
    }

    /// 17 TOPIC_NOT_EXIST with the Java broker's remark.
    pub fn topic_not_exist(topic: &str) -> BrokerError {
        BrokerError::new(code::TOPIC_NOT_EXIST, format!("topic[{topic}] not exist, apply first please!"))
    }

    /// 22 QUERY_NOT_FOUND.
    pub fn query_not_found(remark: impl Into<String>) -> BrokerError {
        BrokerError::new(code::QUERY_NOT_FOUND, remark)
    }

    /// The error response to `request`.
    pub fn response_to(&self, request: &RemotingCommand) -> RemotingCommand {
        request.error_response(self.code, self.remark.clone())
    }
}

/// The one mapping of store failures onto response codes, for every path (send, pull, admin).
impl From<StoreError> for BrokerError {
    fn from(error: StoreError) -> BrokerError {
        let status = match &error {
            // Too many bytes wait for a flush: back-pressure, the client retries.
            StoreError::Busy { .. } => code::SYSTEM_BUSY,
            // The dispatcher trails the writes by its limit: back-pressure too.
            StoreError::DispatchBehind { .. } => code::SYSTEM_BUSY,
            // A deletion of the topic is being made durable (milliseconds): retry.
            StoreError::TopicDeleting(_) => code::SYSTEM_BUSY,
            StoreError::InvalidMessage(_) => code::MESSAGE_ILLEGAL,
            // The log cannot take writes now (full disk, failed flush, stopping): Java answers
            // SERVICE_NOT_AVAILABLE and producers try another broker.
            StoreError::DiskFull { .. } | StoreError::ShutDown | StoreError::LogFailed(_) | StoreError::Stalled(_) | StoreError::StalledQueued(_) => {
                code::SERVICE_NOT_AVAILABLE
            }
            // A slave takes no sends (4.x: its store refuses, 14; §7.5).
            StoreError::Replica => code::SERVICE_NOT_AVAILABLE,
            StoreError::ReplicaMismatch(_) => code::SYSTEM_ERROR,
            StoreError::NotFound(_) => code::SYSTEM_ERROR,
            // Bytes the start-up check found missing or damaged: this request fails, the
            // connection and every other queue are served (the store logged file and offset).
            StoreError::Damaged { .. } | StoreError::LostRecord { .. } => code::SYSTEM_ERROR,
            StoreError::Io { .. } | StoreError::Corruption { .. } | StoreError::CorruptFile { .. } | StoreError::Config(_) => code::SYSTEM_ERROR,
        };
        BrokerError::new(status, error.to_string())
    }
}

impl From<HeaderError> for BrokerError {
    fn from(error: HeaderError) -> BrokerError {
        BrokerError::system(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_one_code_each() {
        let busy = StoreError::Busy { pending_bytes: 10, limit_bytes: 5 };
        assert_eq!(BrokerError::from(busy).code, code::SYSTEM_BUSY);
        assert_eq!(BrokerError::from(StoreError::ShutDown).code, code::SERVICE_NOT_AVAILABLE);
        assert_eq!(BrokerError::from(StoreError::DiskFull { usage_pct: 90 }).code, code::SERVICE_NOT_AVAILABLE);
        assert_eq!(BrokerError::from(StoreError::LogFailed("x".into())).code, code::SERVICE_NOT_AVAILABLE);
        assert_eq!(BrokerError::from(StoreError::Stalled("x".into())).code, code::SERVICE_NOT_AVAILABLE);
        assert_eq!(BrokerError::from(StoreError::StalledQueued("x".into())).code, code::SERVICE_NOT_AVAILABLE);
        let corrupt = StoreError::Corruption { offset: 1, reason: "bad crc".into() };
        let mapped = BrokerError::from(corrupt);
        assert_eq!(mapped.code, code::SYSTEM_ERROR);
        assert!(mapped.remark.contains("bad crc"), "{}", mapped.remark);
    }

    #[test]
    fn responses_carry_code_remark_and_opaque() {
        let mut request = RemotingCommand::request(10);
        request.opaque = 42;
        let response = BrokerError::topic_not_exist("T").response_to(&request);
        assert_eq!(response.code, code::TOPIC_NOT_EXIST);
        assert_eq!(response.opaque, 42);
        assert_eq!(response.remark.as_deref(), Some("topic[T] not exist, apply first please!"));
    }
}
