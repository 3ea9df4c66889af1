//! `mqadmin` against a live broker (with its embedded name server): every subcommand of
//! issue #11, checked by the values it prints, not only by its exit status.
//!
//! Each test starts its own broker on free ports, so tests run in parallel; a test covers a
//! family of subcommands over one broker to keep the number of brokers small; `acl` runs the
//! ACL subcommands and signing against a broker with `aclEnable=true`.

mod acl;
mod messages;
mod metadata;
