//! Request signatures (Java `AclSigner`, `AclUtils.combineRequestContent`): HmacSHA1 keyed by
//! the UTF-8 secret over the extFields values in key order (all but `Signature`) and then the
//! body, Base64 with padding.
//!
//! Key order: extFields are kept sorted by bytes ([`ExtFields::iter`]); Java's `TreeMap` sorts
//! by UTF-16 units. The two differ only between keys with characters above U+FFFF and keys with
//! characters in U+E000..=U+FFFF, which no RocketMQ header has.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit, Mac};

use crate::codec::{ExtFields, RemotingCommand};

use super::{ACCESS_KEY, SECURITY_TOKEN, SIGNATURE};

type HmacSha1 = hmac::Hmac<sha1::Sha1>;

fn mac(fields: &ExtFields, body: &[u8], secret: &str) -> HmacSha1 {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = <HmacSha1 as KeyInit>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable_key());
    for (key, value) in fields.iter() {
        if key != SIGNATURE {
            mac.update(value.as_bytes());
        }
    }
    mac.update(body);
    mac
}

#[cold]
fn unreachable_key() -> HmacSha1 {
    // `Hmac::new_from_slice` accepts every key length; keep the crate's contract visible
    // without a panic in library code.
    <HmacSha1 as KeyInit>::new_from_slice(b"").unwrap_or_else(|_| std::process::abort())
}

/// The signature a client holding `secret` puts on a request with these fields and body.
pub fn signature(fields: &ExtFields, body: &[u8], secret: &str) -> String {
    BASE64.encode(mac(fields, body, secret).finalize().into_bytes())
}

/// Whether `claimed` (the request's `Signature`, Base64) is the signature of these fields and
/// body under `secret`. The comparison takes the same time wherever the bytes differ.
pub fn signature_matches(fields: &ExtFields, body: &[u8], secret: &str, claimed: &str) -> bool {
    let Ok(claimed) = BASE64.decode(claimed.as_bytes()) else {
        return false;
    };
    mac(fields, body, secret).verify_slice(&claimed).is_ok()
}

/// An account's keys, used to sign the requests FerroMQ itself sends (a broker registering
/// with a name server, a slave copying its master's tables, `mqadmin`).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub security_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("access_key", &self.access_key).finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Credentials {
        Credentials { access_key: access_key.into(), secret_key: secret_key.into(), security_token: None }
    }

    /// Signs `request` as Java's `AclClientRPCHook` does: `AccessKey` (and `SecurityToken`)
    /// join the fields first, then `Signature` is computed over them and added.
    pub fn sign(&self, request: &mut RemotingCommand) {
        request.ext_fields.insert(ACCESS_KEY, &self.access_key);
        if let Some(token) = &self.security_token {
            request.ext_fields.insert(SECURITY_TOKEN, token);
        }
        let signature = signature(&request.ext_fields, &request.body, &self.secret_key);
        request.ext_fields.insert(SIGNATURE, &signature);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_hmac_sha1_over_sorted_values_then_the_body() {
        let fields: ExtFields = [("b", "2"), ("a", "1"), (SIGNATURE, "ignored"), ("c", "3")].into();
        // Independently: HmacSHA1("secret", "123body"), Base64 (openssl dgst -sha1 -hmac secret -binary | base64).
        let expected = "O/k4VEz2ajLyZ6I4d9Uj/UdXoP8=";
        assert_eq!(signature(&fields, b"body", "secret"), expected);
        assert!(signature_matches(&fields, b"body", "secret", expected));
        assert!(!signature_matches(&fields, b"body", "other", expected));
        assert!(!signature_matches(&fields, b"bodY", "secret", expected));
        assert!(!signature_matches(&fields, b"body", "secret", "not base64!"));
    }

    #[test]
    fn signing_adds_the_access_key_before_computing() {
        let mut request = RemotingCommand::request(10);
        request.ext_fields.insert("topic", "A");
        request.body = bytes::Bytes::from_static(b"x");
        Credentials::new("ak", "sk").sign(&mut request);
        assert_eq!(request.ext_fields.get(ACCESS_KEY), Some("ak"));
        let claimed = request.ext_fields.get(SIGNATURE).unwrap_or_default().to_owned();
        assert!(signature_matches(&request.ext_fields, &request.body, "sk", &claimed));
        // Java's content for these fields: values of AccessKey, topic in key order, then body.
        let mut by_hand: ExtFields = [(ACCESS_KEY, "ak"), ("topic", "A")].into();
        assert_eq!(signature(&by_hand, b"x", "sk"), claimed);
        by_hand.insert("topic", "B");
        assert_ne!(signature(&by_hand, b"x", "sk"), claimed);
    }
}
