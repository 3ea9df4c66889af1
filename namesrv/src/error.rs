//! The name server's one error type, shared by the route registry (`route.rs`) and the
//! register-body decoders (`register_body.rs`); a leaf both import.

/// Errors of the route registry and of decoding its request bodies. Handlers map them to
/// RocketMQ response codes (all are 1 SYSTEM_ERROR in the Java name server; `Crc32Mismatch` with
/// remark `"crc32 not match"`, `SingleTopicBeforeFullRegistration` with `"register broker
/// failed"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("malformed body: {0}")]
    MalformedBody(String),
    #[error("decompressed body larger than {limit_bytes} bytes")]
    BodyTooLarge { limit_bytes: usize },
    #[error("crc32 not match: header {expected}, body {actual}")]
    Crc32Mismatch { expected: u32, actual: u32 },
    #[error(
        "broker {broker_name} id {broker_id} ({broker_addr}) sent a single-topic registration \
         before registering its full topic table"
    )]
    SingleTopicBeforeFullRegistration {
        broker_name: String,
        broker_id: u64,
        broker_addr: String,
    },
    #[error("broker group {broker_name} is not registered")]
    UnknownBrokerGroup { broker_name: String },
}
