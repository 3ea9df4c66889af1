//! The broker's persistent control-plane metadata: topic configs (`topics.rs`, `topics.json`),
//! subscription-group configs (`groups.rs`, `subscriptionGroup.json`), committed consumer
//! offsets (`offsets.rs`, `consumerOffset.json`) and delayed-delivery progress
//! (`delay_offsets.rs`, `delayOffset.json`), in the Java broker's file formats
//! (PROTOCOL.md §6.6), plus what they share: [`DataVersion`], the atomic file writer
//! ([`write_atomic`], `persist.rs`), the journal beside `topics.json` and
//! `subscriptionGroup.json` (`journal.rs`) and fastjson helpers (`json.rs`).
//!
//! Ownership: one instance of each table per broker, owned by the control thread
//! (`control/plane.rs`), which alone decides what is written: it writes the offset files
//! itself and hands journal records (or, to compact, whole bodies) of `topics.json` /
//! `subscriptionGroup.json` to its metadata-writer thread (`control/writer.rs`); every type
//! here is plain data. Nothing here does network I/O or async; file I/O happens only in the
//! explicit `load`/`persist` calls and the journal's functions (called at load and by the
//! writer).

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

pub mod delay_offsets;
pub mod groups;
pub mod journal;
pub mod json;
pub mod offsets;
pub mod persist;
pub mod topics;

pub use ferromq_net::wire::DataVersion;
pub use persist::{NameError, PersistError, PersistedTable, overlay_config_file, read_config_file, validate_name, write_atomic};
#[cfg(test)]
pub(crate) use persist::test_util;
