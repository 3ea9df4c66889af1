//! Messaging semantics end to end, in one test binary: each test starts a real `mqbroker`
//! process (embedded name server, its own loopback ports and store) and drives it through the
//! third-party `rocketmq-client-rust` 1.0.0, and where no client API exists over the raw remoting
//! protocol. The tests share nothing but [`common`]'s helpers and run in parallel.
//!
//! - [`delay_retry`]: delay levels (SCHEDULE_TOPIC_XXXX), consumer retries through `%RETRY%`
//!   with level 3 + reconsumeTimes, the dead-letter queue `%DLQ%`, delayed messages across a
//!   SIGKILL (PROTOCOL.md §9).
//! - [`orderly`]: an orderly consumer (MessageListenerOrderly) suspends a failing queue and
//!   retries locally, keeping order, then its client resends the message past maxReconsumeTimes
//!   to `%RETRY%`, which the broker dead-letters to `%DLQ%` (§2.1 step 4; issue 15).
//! - [`transactions`]: half messages, END_TRANSACTION commit and rollback, the check-back of
//!   unknown ones (to another producer of the group when the first is gone), the discard after
//!   `transactionCheckMax`, no lost commit and no revived rollback across a SIGKILL (§10).
//! - [`filters`]: SQL92 selectors (`enablePropertyFilter`), invalid selectors and a broker
//!   without the filter refusing them, message trace records in RMQ_SYS_TRACE_TOPIC.
//! - [`operator`]: what mqadmin does to consumer groups: reset offsets by time (live and
//!   offline groups), clone and delete group offsets, consumer running info.
//! - [`replication`]: a `2m-2s-sync` cluster (one name server, four brokers) losing a master
//!   with its store: every message it acknowledged is consumed from its slave (issue 9).
//! - [`timer`]: 5.x timer messages (`TIMER_DELAY_MS` / `TIMER_DELAY_SEC` / `TIMER_DELIVER_MS`)
//!   delivered at their own time, a delay over `timerMaxDelaySec` refused, pending ones
//!   surviving a SIGKILL (§9.3).
//! - [`request_reply`]: request-reply (SEND_REPLY_MESSAGE, PUSH_REPLY_MESSAGE_TO_CLIENT) and a
//!   request nobody answers timing out.
//!
//! Every wait has a deadline; a timeout fails with what was seen and the broker's log.

mod common;
mod delay_retry;
mod filters;
mod operator;
mod orderly;
mod replication;
mod request_reply;
mod timer;
mod transactions;
