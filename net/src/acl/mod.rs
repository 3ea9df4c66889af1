//! RocketMQ 4.x ACL ("plain ACL"), shared by the broker and the name server.
//!
//! A client with the ACL RPC hook adds `AccessKey` (and optionally `SecurityToken`) to every
//! request's extFields, then `Signature`: HmacSHA1, Base64, keyed by its secret, over the values
//! of all extFields except `Signature` in key order, followed by the body. The server finds
//! the account, checks the signature and then the permissions the request needs
//! (`resources.rs`) against the account's (`plain.rs`), unless the peer's address is in the
//! global white list or the account's own (`addr.rs`), as Java's `PlainPermissionManager`.
//!
//! PROTOCOL.md (shared, read-only to this repository) has no ACL section: what was verified
//! against Java 4.9.8 (`AclClientRPCHook`, `AclUtils`, `PlainPermissionManager`,
//! `PlainAccessResource`) is written in these modules' docs instead.
//!
//! - [`sign`]: computing and checking signatures; [`Credentials`] signs outgoing requests.
//! - [`plain`]: `plain_acl.yml` read into [`AclRules`], and written back for the admin codes.
//! - [`addr`]: Java's white-address patterns.
//! - [`resources`]: what a request needs, and [`AclRules::authorize`].
//! - [`watch`]: the file's current rules, reloaded when it changes.

pub mod addr;
pub mod plain;
pub mod resources;
pub mod sign;
pub mod watch;

pub use plain::{Account, AclRules, Perm};
pub use resources::{Denied, Granted};
pub use sign::{Credentials, signature};
pub use watch::AclFile;

/// extFields keys of the ACL hook (Java `SessionCredentials`).
pub const ACCESS_KEY: &str = "AccessKey";
pub const SECRET_KEY: &str = "SecretKey";
pub const SIGNATURE: &str = "Signature";
pub const SECURITY_TOKEN: &str = "SecurityToken";
