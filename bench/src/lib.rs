//! `ferromq-bench` as a library: every mode of the binary, the machine's physical probes, and
//! the bodies of the criterion micro-benchmarks (shared with the tests that keep them compiling
//! and correct).
//!
//! - [`route`]: name-server route lookups over the remoting protocol.
//! - [`probe`]: fdatasync latency, sequential write bandwidth, fdatasync-bound append rate at a
//!   batch size, loopback RTT and loopback sendfile bandwidth.
//! - [`store`]: `ferromq-store` driven directly: appends/s under SYNC_FLUSH and ASYNC_FLUSH with
//!   N concurrent writers, reported as ratios to the probes measured in the same run.
//! - [`cpu`]: CPU accounting of a measured window: the broker's (all threads, by its process
//!   CPU clock) and the load generator's own, per message.
//! - [`broker`]: what the broker modes share (requests, pull decoding, counters), `rss` mode.
//! - [`produce`]: producers against any RocketMQ-compatible broker (closed or open loop).
//! - [`consume`]: pull consumers (catch-up, tail) and the `e2e` mode.
//! - [`micro`]: codec, record and consume-queue micro-benchmark bodies (`benches/micro.rs`).
//! - [`replication`]: a master and its slave started here: SYNC_MASTER ÷ ASYNC_MASTER, the
//!   CPU of both, added latency, slave lag, and an empty slave's catch-up against loopback sendfile.
//! - [`semantics`]: a broker started here: retry and dead-letter send-backs, transaction
//!   commits, SQL92 vs tag filters, each with the broker's CPU per operation (issue 15).
//! - [`suite`]: the benchmark suite (name server + broker per profile, the whole matrix) and
//!   [`report`], its Markdown + SVG report.

pub mod broker;
pub mod consume;
pub mod cpu;
#[cfg(test)]
mod fake_broker;
pub mod micro;
pub mod produce;
pub mod probe;
pub mod replication;
pub mod report;
pub mod route;
pub mod semantics;
pub mod store;
pub mod suite;
