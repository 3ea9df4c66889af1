//! Kernel TLS (kTLS) on accepted connections: after rustls has done the handshake, the record
//! layer moves into the kernel (`setsockopt(TCP_ULP, "tls")`, then `TLS_TX` and `TLS_RX` with
//! the session's keys and sequence numbers), and the connection is served as a plain one: the
//! kernel encrypts what the writer writes, file bodies go out with `sendfile` again (no copy into
//! memory), and the reader reads plaintext.
//!
//! When it is used: the listener's `tlsKernelOffload` is on (the default), this kernel takes the
//! negotiated protocol and cipher in both directions ([`support`], probed once per process on a
//! loopback socket pair), and rustls holds nothing undelivered after the handshake (the handshake
//! reads whole records only, so it never reads past its last one). Otherwise the connection stays
//! on rustls in user space ([`crate::tls`]), as it does where the `tls` module is missing (this
//! is what `tcp_available_ulp` in `/proc/sys/net/ipv4` lists).
//!
//! After the switch, records that are not application data reach the reader as `EIO` from a
//! plain read; [`take_control_record`] then reads that one record with its type:
//! - close_notify is the end of the stream; any other alert closes the connection, logged;
//! - a TLS 1.3 KeyUpdate from the peer closes the connection, logged: rustls cannot hand the new
//!   keys over through this API and older kernels cannot take them (the peer reconnects). rustls
//!   clients refresh their keys every 2^24 records with AES-GCM; Java's every 2^37 bytes.
//!
//! The server's own keys are never refreshed on a kernel connection (nor are they by OpenSSL,
//! which nginx offloads the same way); rustls in user space would refresh them after 2^24
//! records with AES-GCM.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;

use rustls::{CipherSuite, ConnectionTrafficSecrets, ProtocolVersion};

/// TLS record content types (RFC 8446 §5.1) as the kernel reports them.
const RECORD_ALERT: u8 = 21;
const RECORD_HANDSHAKE: u8 = 22;
const RECORD_APPLICATION_DATA: u8 = 23;
/// The alert description that ends a TLS session cleanly.
const ALERT_CLOSE_NOTIFY: u8 = 0;
/// The handshake message a TLS 1.3 peer refreshes its keys with.
const HANDSHAKE_KEY_UPDATE: u8 = 24;
/// Largest plaintext of one TLS record (RFC 8446 §5.1): a control record read on its own fits.
const MAX_RECORD_PLAINTEXT_BYTES: usize = 16 * 1024;

/// The AEADs the kernel can run for TLS, as rustls negotiates them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

impl Cipher {
    const ALL: [Cipher; 3] = [Cipher::Aes128Gcm, Cipher::Aes256Gcm, Cipher::Chacha20Poly1305];

    fn of(suite: CipherSuite) -> Option<Cipher> {
        use CipherSuite as S;
        match suite {
            S::TLS13_AES_128_GCM_SHA256 | S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 | S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => {
                Some(Cipher::Aes128Gcm)
            }
            S::TLS13_AES_256_GCM_SHA384 | S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 | S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => {
                Some(Cipher::Aes256Gcm)
            }
            S::TLS13_CHACHA20_POLY1305_SHA256
            | S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            | S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => Some(Cipher::Chacha20Poly1305),
            _ => None,
        }
    }
}

/// The kernel's protocol constant for a TLS version FerroMQ negotiates.
fn kernel_version(version: ProtocolVersion) -> Option<u16> {
    match version {
        ProtocolVersion::TLSv1_2 => Some(libc::TLS_1_2_VERSION),
        ProtocolVersion::TLSv1_3 => Some(libc::TLS_1_3_VERSION),
        _ => None,
    }
}

/// What this kernel's TLS offload takes: for each protocol version and cipher, whether both
/// `TLS_TX` and `TLS_RX` were accepted on a probe socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Support {
    /// Bit `version_index * 3 + cipher_index`.
    taken: u8,
    /// Why the probe found nothing, for the start-up log (`None` when something was taken).
    pub unavailable: Option<&'static str>,
}

impl Support {
    fn bit(version: ProtocolVersion, cipher: Cipher) -> Option<u8> {
        let v = match version {
            ProtocolVersion::TLSv1_2 => 0,
            ProtocolVersion::TLSv1_3 => 1,
            _ => return None,
        };
        let c = Cipher::ALL.iter().position(|&x| x == cipher)?;
        Some(1 << (v * 3 + c))
    }

    /// Whether a connection of `version` and `suite` can move into the kernel.
    pub fn takes(&self, version: ProtocolVersion, suite: CipherSuite) -> bool {
        Cipher::of(suite).and_then(|c| Support::bit(version, c)).is_some_and(|bit| self.taken & bit != 0)
    }

    /// Whether the kernel takes anything at all.
    pub fn available(&self) -> bool {
        self.taken != 0
    }

    /// The pairs taken, for the log: e.g. `TLSv1_3/Aes128Gcm TLSv1_3/Aes256Gcm`.
    pub fn describe(&self) -> String {
        let mut out = Vec::new();
        for version in [ProtocolVersion::TLSv1_2, ProtocolVersion::TLSv1_3] {
            for cipher in Cipher::ALL {
                if Support::bit(version, cipher).is_some_and(|bit| self.taken & bit != 0) {
                    out.push(format!("{version:?}/{cipher:?}"));
                }
            }
        }
        out.join(" ")
    }
}

/// What this kernel takes, probed on first use (a loopback socket pair per protocol and cipher,
/// with zero keys) and kept for the life of the process.
pub fn support() -> Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    *SUPPORT.get_or_init(probe)
}

fn probe() -> Support {
    let mut support = Support::default();
    for version in [ProtocolVersion::TLSv1_2, ProtocolVersion::TLSv1_3] {
        for cipher in Cipher::ALL {
            match probe_one(version, cipher) {
                Ok(()) => support.taken |= Support::bit(version, cipher).unwrap_or(0),
                // No `tls` upper-layer protocol at all: nothing else will work either.
                Err(Probe::NoUlp) => {
                    support.unavailable = Some("the kernel has no TLS upper-layer protocol (module tls not loaded or not built)");
                    return support;
                }
                Err(Probe::Refused) => {}
            }
        }
    }
    if support.taken == 0 {
        support.unavailable = Some("the kernel refused every TLS cipher FerroMQ negotiates");
    }
    support
}

enum Probe {
    NoUlp,
    Refused,
}

fn probe_one(version: ProtocolVersion, cipher: Cipher) -> Result<(), Probe> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|_| Probe::Refused)?;
    let addr = listener.local_addr().map_err(|_| Probe::Refused)?;
    let client = std::net::TcpStream::connect(addr).map_err(|_| Probe::Refused)?;
    let _server = listener.accept().map_err(|_| Probe::Refused)?;
    set_ulp(client.as_raw_fd()).map_err(|_| Probe::NoUlp)?;
    let info = CryptoInfo::build(version, cipher, &[0u8; 32], &[0u8; 12], 0).ok_or(Probe::Refused)?;
    info.set(client.as_raw_fd(), libc::TLS_TX).map_err(|_| Probe::Refused)?;
    info.set(client.as_raw_fd(), libc::TLS_RX).map_err(|_| Probe::Refused)
}

/// Installs the kernel's TLS upper-layer protocol on a connected socket.
fn set_ulp(fd: RawFd) -> io::Result<()> {
    let name = b"tls";
    // SAFETY: `name` outlives the call and its length is passed with it.
    let rc = unsafe { libc::setsockopt(fd, libc::SOL_TCP, libc::TCP_ULP, name.as_ptr().cast(), name.len() as libc::socklen_t) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// One direction's `tls12_crypto_info_*` (the kernel uses the same layouts for TLS 1.3).
enum CryptoInfo {
    Aes128Gcm(libc::tls12_crypto_info_aes_gcm_128),
    Aes256Gcm(libc::tls12_crypto_info_aes_gcm_256),
    Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305),
}

impl CryptoInfo {
    /// `iv` is rustls' 12-byte nonce base: for AES-GCM the kernel takes its first 4 bytes as the
    /// salt and the other 8 as the IV (TLS 1.2's explicit nonce starts there); ChaCha20 takes
    /// all 12. `None` when a length does not fit.
    fn build(version: ProtocolVersion, cipher: Cipher, key: &[u8], iv: &[u8], seq: u64) -> Option<CryptoInfo> {
        let info = libc::tls_crypto_info {
            version: kernel_version(version)?,
            cipher_type: match cipher {
                Cipher::Aes128Gcm => libc::TLS_CIPHER_AES_GCM_128,
                Cipher::Aes256Gcm => libc::TLS_CIPHER_AES_GCM_256,
                Cipher::Chacha20Poly1305 => libc::TLS_CIPHER_CHACHA20_POLY1305,
            },
        };
        let rec_seq = seq.to_be_bytes();
        let (salt, explicit) = (iv.get(..4)?, iv.get(4..12)?);
        Some(match cipher {
            Cipher::Aes128Gcm => CryptoInfo::Aes128Gcm(libc::tls12_crypto_info_aes_gcm_128 {
                info,
                iv: explicit.try_into().ok()?,
                key: key.get(..16)?.try_into().ok()?,
                salt: salt.try_into().ok()?,
                rec_seq,
            }),
            Cipher::Aes256Gcm => CryptoInfo::Aes256Gcm(libc::tls12_crypto_info_aes_gcm_256 {
                info,
                iv: explicit.try_into().ok()?,
                key: key.get(..32)?.try_into().ok()?,
                salt: salt.try_into().ok()?,
                rec_seq,
            }),
            Cipher::Chacha20Poly1305 => CryptoInfo::Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305 {
                info,
                iv: iv.get(..12)?.try_into().ok()?,
                key: key.get(..32)?.try_into().ok()?,
                salt: [],
                rec_seq,
            }),
        })
    }

    fn from_secrets(version: ProtocolVersion, seq: u64, secrets: &ConnectionTrafficSecrets) -> Option<CryptoInfo> {
        let (cipher, key, iv) = match secrets {
            ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Cipher::Aes128Gcm, key.as_ref(), iv.as_ref()),
            ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Cipher::Aes256Gcm, key.as_ref(), iv.as_ref()),
            ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => (Cipher::Chacha20Poly1305, key.as_ref(), iv.as_ref()),
            _ => return None,
        };
        CryptoInfo::build(version, cipher, key, iv, seq)
    }

    /// `setsockopt(SOL_TLS, direction)`: `TLS_TX` or `TLS_RX`.
    fn set(&self, fd: RawFd, direction: libc::c_int) -> io::Result<()> {
        fn raw<T>(value: &T) -> (*const libc::c_void, libc::socklen_t) {
            (std::ptr::from_ref(value).cast(), std::mem::size_of::<T>() as libc::socklen_t)
        }
        let (ptr, len) = match self {
            CryptoInfo::Aes128Gcm(info) => raw(info),
            CryptoInfo::Aes256Gcm(info) => raw(info),
            CryptoInfo::Chacha20Poly1305(info) => raw(info),
        };
        // SAFETY: `ptr` points at a live `#[repr(C)]` struct of `len` bytes.
        let rc = unsafe { libc::setsockopt(fd, libc::SOL_TLS, direction, ptr, len) };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }
}

/// What became of a connection offered to the kernel.
#[allow(clippy::large_enum_variant)] // Moved once per connection, right after the handshake.
pub(crate) enum Offload {
    /// The kernel runs the record layer; the connection is served as a plain one.
    Kernel,
    /// Still rustls', unchanged (this kernel does not take its cipher, or rustls holds data).
    UserSpace(rustls::ServerConnection),
}

/// Moves a handshaken server connection's record layer into the kernel where it can go.
/// An error leaves the socket unusable (its upper-layer protocol is installed but its keys are
/// not): the caller closes it.
pub(crate) fn offload(fd: RawFd, mut conn: rustls::ServerConnection) -> io::Result<Offload> {
    let (Some(version), Some(suite)) = (conn.protocol_version(), conn.negotiated_cipher_suite()) else {
        return Ok(Offload::UserSpace(conn));
    };
    if !support().takes(version, suite.suite()) || conn.is_handshaking() || conn.wants_write() {
        return Ok(Offload::UserSpace(conn));
    }
    // Plaintext rustls decrypted but nobody read would be lost with it.
    match conn.process_new_packets() {
        Ok(state) if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() => {}
        _ => return Ok(Offload::UserSpace(conn)),
    }
    if set_ulp(fd).is_err() {
        // Nothing installed: rustls goes on in user space.
        return Ok(Offload::UserSpace(conn));
    }
    #[allow(deprecated)] // Its replacement needs rustls' unbuffered API; key updates: module docs.
    let secrets = conn.dangerous_extract_secrets().map_err(|e| io::Error::other(format!("kernel TLS: extracting the session keys: {e}")))?;
    for (direction, name, (seq, secrets)) in [(libc::TLS_TX, "TLS_TX", &secrets.tx), (libc::TLS_RX, "TLS_RX", &secrets.rx)] {
        let info = CryptoInfo::from_secrets(version, *seq, secrets)
            .ok_or_else(|| io::Error::other(format!("kernel TLS: no {name} layout for {:?}", suite.suite())))?;
        info.set(fd, direction).map_err(|e| io::Error::new(e.kind(), format!("kernel TLS: setsockopt {name}: {e}")))?;
    }
    Ok(Offload::Kernel)
}

/// After a plain read on a kernel TLS connection failed with `EIO` (a record that is not
/// application data is next), reads that record with its type: returns the bytes appended to
/// `buf` (application data), `Ok(0)` for close_notify (the end of the stream), or an error that
/// closes the connection. `Ok(None)`: no record was waiting (the `EIO` had another cause).
pub(crate) fn take_control_record(fd: RawFd, buf: &mut bytes::BytesMut) -> io::Result<Option<usize>> {
    let mut data = vec![0u8; MAX_RECORD_PLAINTEXT_BYTES];
    // Room for one cmsghdr carrying one byte (the record type), aligned as CMSG_SPACE wants.
    let mut control = [0u64; 4];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` describes live buffers; MSG_DONTWAIT keeps the shard thread from blocking.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::WouldBlock { Ok(None) } else { Err(e) };
    }
    let n = n as usize;
    let mut record_type = None;
    // SAFETY: the CMSG_* walk stays within `msg.msg_control`, which recvmsg filled.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_TLS && (*cmsg).cmsg_type == libc::TLS_GET_RECORD_TYPE {
                record_type = Some(*libc::CMSG_DATA(cmsg));
            }
            cmsg = libc::CMSG_NXTHDR(&raw const msg, cmsg);
        }
    }
    let payload = data.get(..n).unwrap_or_default();
    match record_type {
        None | Some(RECORD_APPLICATION_DATA) => {
            buf.extend_from_slice(payload);
            Ok(Some(n))
        }
        Some(RECORD_ALERT) => match payload {
            [_, ALERT_CLOSE_NOTIFY] => Ok(Some(0)),
            [level, description] => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!("kernel TLS: the peer sent alert {description} (level {level})"),
            )),
            _ => Err(io::Error::new(io::ErrorKind::InvalidData, format!("kernel TLS: a malformed alert of {n} bytes"))),
        },
        Some(RECORD_HANDSHAKE) if payload.first() == Some(&HANDSHAKE_KEY_UPDATE) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "kernel TLS: the peer refreshed its keys (TLS 1.3 KeyUpdate), which a kernel connection cannot follow: closing it \
             (the client reconnects; tlsKernelOffload=false keeps TLS in user space)",
        )),
        Some(other) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("kernel TLS: unexpected record of type {other} (first byte {:?}) after the handshake", payload.first()),
        )),
    }
}

/// Sends close_notify on a kernel TLS connection (best effort, never blocks: the socket is shut
/// down next).
pub(crate) fn send_close_notify(fd: RawFd) {
    let mut alert = [1u8, ALERT_CLOSE_NOTIFY];
    let mut iov = libc::iovec { iov_base: alert.as_mut_ptr().cast(), iov_len: alert.len() };
    let mut control = [0u64; 4];
    // SAFETY: as in `take_control_record`; the cmsg written fits `control` (CMSG_SPACE(1) <= 24).
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(1) as _;
        let cmsg = libc::CMSG_FIRSTHDR(&raw const msg);
        if cmsg.is_null() {
            return;
        }
        (*cmsg).cmsg_level = libc::SOL_TLS;
        (*cmsg).cmsg_type = libc::TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = RECORD_ALERT;
        libc::sendmsg(fd, &raw const msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphers_map_both_versions_and_nothing_else() {
        assert_eq!(Cipher::of(CipherSuite::TLS13_AES_128_GCM_SHA256), Some(Cipher::Aes128Gcm));
        assert_eq!(Cipher::of(CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384), Some(Cipher::Aes256Gcm));
        assert_eq!(Cipher::of(CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256), Some(Cipher::Chacha20Poly1305));
        assert_eq!(Cipher::of(CipherSuite::TLS_RSA_WITH_AES_128_CBC_SHA), None);
        let all = Support { taken: 0b11_1111, unavailable: None };
        assert!(all.takes(ProtocolVersion::TLSv1_3, CipherSuite::TLS13_CHACHA20_POLY1305_SHA256));
        assert!(!all.takes(ProtocolVersion::TLSv1_1, CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        let only_13_aes128 = Support { taken: Support::bit(ProtocolVersion::TLSv1_3, Cipher::Aes128Gcm).unwrap(), unavailable: None };
        assert!(only_13_aes128.takes(ProtocolVersion::TLSv1_3, CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert!(!only_13_aes128.takes(ProtocolVersion::TLSv1_2, CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256));
        assert_eq!(only_13_aes128.describe(), "TLSv1_3/Aes128Gcm");
    }

    #[test]
    fn key_layouts_split_the_nonce_as_the_kernel_wants() {
        let key: Vec<u8> = (0..32).collect();
        let iv: Vec<u8> = (100..112).collect();
        let Some(CryptoInfo::Aes128Gcm(info)) = CryptoInfo::build(ProtocolVersion::TLSv1_3, Cipher::Aes128Gcm, &key, &iv, 0x0102) else {
            panic!("AES-128-GCM layout");
        };
        assert_eq!({ info.info.version }, libc::TLS_1_3_VERSION);
        assert_eq!(info.salt, [100, 101, 102, 103]);
        assert_eq!(info.iv, [104, 105, 106, 107, 108, 109, 110, 111]);
        assert_eq!(info.key.to_vec(), key[..16].to_vec());
        assert_eq!(info.rec_seq, [0, 0, 0, 0, 0, 0, 1, 2]);
        let Some(CryptoInfo::Chacha20Poly1305(info)) = CryptoInfo::build(ProtocolVersion::TLSv1_2, Cipher::Chacha20Poly1305, &key, &iv, 7)
        else {
            panic!("ChaCha20-Poly1305 layout");
        };
        assert_eq!(info.iv.to_vec(), iv);
        assert_eq!({ info.info.cipher_type }, libc::TLS_CIPHER_CHACHA20_POLY1305);
        // A short key never becomes a layout.
        assert!(CryptoInfo::build(ProtocolVersion::TLSv1_3, Cipher::Aes256Gcm, &key[..16], &iv, 0).is_none());
    }

    /// The probe agrees with what the kernel lists: where `tcp_available_ulp` names `tls`, AES-GCM
    /// in TLS 1.3 (there since Linux 5.1) is taken; where it does not, nothing is (the
    /// module may also load on demand, so only the second direction is strict).
    #[test]
    fn probe_agrees_with_the_kernel() {
        let listed = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp").unwrap_or_default();
        let support = support();
        if listed.split_whitespace().any(|u| u == "tls") {
            assert!(support.takes(ProtocolVersion::TLSv1_3, CipherSuite::TLS13_AES_128_GCM_SHA256), "{support:?}");
        }
        if std::env::var_os("FERROMQ_EXPECT_KTLS").is_some() {
            assert!(support.available(), "FERROMQ_EXPECT_KTLS is set but {support:?}");
        }
        eprintln!("kernel TLS: {} ({:?})", support.describe(), support.unavailable);
    }
}
