//! White-address patterns (Java `RemoteAddressStrategyFactory`), as `plain_acl.yml` writes them
//! in `globalWhiteRemoteAddresses` and an account's `whiteRemoteAddress`:
//!
//! | pattern | matches |
//! |---|---|
//! | empty | nothing |
//! | `*`, `*.*.*.*`, `*:*:*:*:*:*:*:*` | every address |
//! | `192.168.0.1`, `::1` | that address |
//! | `192.168.0.1,192.168.0.2` | each listed address |
//! | `192.168.0.{1,2}` | `192.168.0.1` and `192.168.0.2` |
//! | `192.168.*`, `192.168.1.*`, `192.168.1-5.*`, `192.168.0.1-9` | a range in one octet, `*` after it |
//!
//! IPv6 ranges and `{…}` lists (Java accepts some) are refused when the file is read, naming
//! the pattern, rather than matching nothing or everything by mistake.

use std::net::IpAddr;

/// One parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrPattern {
    /// Empty: matches no address.
    Nothing,
    /// `*`: matches every address.
    Any,
    /// One address or a list of them.
    Set(Vec<IpAddr>),
    /// IPv4 addresses whose first `prefix.len()` octets are `prefix` and whose next octet lies
    /// in `low..=high` (the octets after it are free).
    Range { prefix: Vec<u8>, low: u8, high: u8 },
}

impl AddrPattern {
    pub fn parse(pattern: &str) -> Result<AddrPattern, String> {
        let pattern = pattern.trim();
        let why = |why: &str| format!("white address `{pattern}`: {why}");
        let bad = |reason: &str| Err(why(reason));
        if pattern.is_empty() {
            return Ok(AddrPattern::Nothing);
        }
        if matches!(pattern, "*" | "*.*.*.*" | "*:*:*:*:*:*:*:*") {
            return Ok(AddrPattern::Any);
        }
        if pattern.contains(':') && (pattern.contains('*') || pattern.contains('-') || pattern.contains('{')) {
            return bad("IPv6 ranges and {…} lists are not supported; list the addresses");
        }
        if let Some(open) = pattern.find('{') {
            let Some(inner) = pattern.strip_suffix('}').and_then(|p| p.get(open + 1..)) else {
                return bad("a {…} list must end the pattern");
            };
            let head = pattern.get(..open).unwrap_or_default();
            if head.split('.').count() != 4 || !head.ends_with('.') {
                return bad("a {…} list must be the last of four octets");
            }
            let mut set = Vec::new();
            for last in inner.split(',') {
                set.push(parse_ip(&format!("{head}{}", last.trim())).ok_or_else(|| why("not an IP address"))?);
            }
            return Ok(AddrPattern::Set(set));
        }
        if pattern.contains(',') {
            let mut set = Vec::new();
            for one in pattern.split(',') {
                set.push(parse_ip(one.trim()).ok_or_else(|| why("not an IP address"))?);
            }
            return Ok(AddrPattern::Set(set));
        }
        if pattern.contains('*') || pattern.contains('-') {
            return parse_range(pattern).ok_or_else(|| why("expected e.g. 192.168.*, 192.168.1.*, 192.168.1-5.* or 192.168.1.1-9"));
        }
        match parse_ip(pattern) {
            Some(ip) => Ok(AddrPattern::Set(vec![ip])),
            None => bad("not an IP address"),
        }
    }

    pub fn matches(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        match self {
            AddrPattern::Nothing => false,
            AddrPattern::Any => true,
            AddrPattern::Set(set) => set.contains(&peer),
            AddrPattern::Range { prefix, low, high } => {
                let IpAddr::V4(v4) = peer else { return false };
                let octets = v4.octets();
                octets.starts_with(prefix) && octets.get(prefix.len()).is_some_and(|o| (*low..=*high).contains(o))
            }
        }
    }
}

fn parse_ip(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>().ok().map(canonical)
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `a.*`, `a.b.*`, `a.b.c.*`, `a.b.x-y.*`, `a.b.c.x-y`, …: numbers, then one `*` or `x-y`
/// octet, then only `*`s.
fn parse_range(pattern: &str) -> Option<AddrPattern> {
    let octets: Vec<&str> = pattern.split('.').map(str::trim).collect();
    if octets.len() < 2 || octets.len() > 4 {
        return None;
    }
    let at = octets.iter().position(|o| *o == "*" || o.contains('-'))?;
    if at == 0 || octets.get(at + 1..)?.iter().any(|o| *o != "*") {
        return None;
    }
    // Fewer than four octets only when the pattern ends in `*` (Java's `192.168.*`).
    if octets.len() < 4 && octets.last() != Some(&"*") {
        return None;
    }
    let prefix = octets.get(..at)?.iter().map(|o| o.parse::<u8>().ok()).collect::<Option<Vec<u8>>>()?;
    let range = octets.get(at)?;
    let (low, high) = if *range == "*" {
        (0, 255)
    } else {
        let (low, high) = range.split_once('-')?;
        (low.parse::<u8>().ok()?, high.parse::<u8>().ok()?)
    };
    (low <= high).then_some(AddrPattern::Range { prefix, low, high })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn java_patterns_match_what_java_matches() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("", &[], &["127.0.0.1"]),
            ("*", &["127.0.0.1", "::1"], &[]),
            ("*.*.*.*", &["10.0.0.1"], &[]),
            ("192.168.0.1", &["192.168.0.1", "::ffff:192.168.0.1"], &["192.168.0.2"]),
            ("192.168.0.1,10.0.0.7", &["10.0.0.7"], &["10.0.0.8"]),
            ("192.168.0.{1,2}", &["192.168.0.2"], &["192.168.0.3"]),
            ("192.168.*", &["192.168.9.9"], &["192.169.0.1"]),
            ("192.168.1.*", &["192.168.1.200"], &["192.168.2.1"]),
            ("192.168.1-5.*", &["192.168.5.1"], &["192.168.6.1"]),
            ("10.10.103.1-9", &["10.10.103.9"], &["10.10.103.10"]),
            ("::1", &["::1"], &["127.0.0.1"]),
        ];
        for (pattern, hits, misses) in cases {
            let parsed = AddrPattern::parse(pattern).unwrap();
            for hit in *hits {
                assert!(parsed.matches(ip(hit)), "{pattern} should match {hit}");
            }
            for miss in *misses {
                assert!(!parsed.matches(ip(miss)), "{pattern} should not match {miss}");
            }
        }
    }

    #[test]
    fn malformed_and_unsupported_patterns_are_refused_by_name() {
        for bad in ["192.168.0.300", "host.example", "192.168.*.1", "*.168.0.1", "192.168.5-1.*", "2001:db8::*", "192.168.0.{1,x}", "192.168"] {
            let err = AddrPattern::parse(bad).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}
