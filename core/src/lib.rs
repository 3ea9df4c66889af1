//! The FerroMQ broker (`mqbroker`): pinned shards, request processors, name-server
//! registration and configuration. Boundary: only this crate wires `net`, `store`, `repl` and
//! `namesrv` together.
//!
//! Not built yet (issue "Broker: thread-per-core shards…"): this crate has no code and no
//! binary so far.
