//! Security end to end (issue 12): ACL with signed requests from `rocketmq-client-rust`'s ACL
//! hook and from FerroMQ's own client. One binary for all of it: each test starts its own
//! processes on free ports.

// The helpers the messaging-semantics tests share (tests/e2e/semantics); not every one is used here.
#[allow(dead_code)]
#[path = "../semantics/common.rs"]
mod common;

mod acl;
mod namesrv;
mod tls;
