//! Master-to-slave replication, one stream per shard (DESIGN.md, "Replication").
//!
//! Not built yet: no issue for it is open. This crate exists so that the workspace layout is
//! the fixed one; it exports nothing and nothing depends on it.
