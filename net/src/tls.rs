//! TLS on remoting connections, with rustls (ring provider): the server modes of RocketMQ's
//! `tls.server.mode`, the configurations built from PEM files, and the record layer a
//! [`Connection`](crate::conn::Connection) runs over its TCP stream.
//!
//! After the handshake, an accepted connection moves into kernel TLS where the kernel takes its
//! cipher ([`crate::ktls`]; `tlsKernelOffload`) and is then served as a plain one, `sendfile`
//! included. Otherwise (and always on the client side) the connection's reader decrypts what it
//! reads and its writer encrypts what it writes, in user space; file bodies that go out with
//! `sendfile` on a plain connection are read into memory first on such a one (at most
//! [`COPY_MAX_BODY_BYTES`](crate::conn::COPY_MAX_BODY_BYTES) at a time; cold data in the
//! blocking pool as on the copy path).
//!
//! The rustls state of a connection is one `RefCell<rustls::Connection>` shared by its reader
//! and writer tasks (one thread); neither holds the borrow across an await.
//!
//! Limits: a read takes at most [`TLS_READ_BYTES`] of ciphertext at a time, and the plaintext
//! rustls decrypts is moved into the reader's frame buffer at once (so rustls buffers at most one
//! read's worth); a write encrypts into rustls' send buffer (rustls' 64 KiB limit) and flushes
//! it whenever it fills. A malformed record or a failed handshake closes that connection only.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use compio::BufResult;
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tracing::warn;

/// Ciphertext read from the socket at once: one full TLS record (16 KiB of plaintext plus the
/// record overhead).
pub const TLS_READ_BYTES: usize = 16 * 1024 + 512;
/// A TLS handshake (from the first byte to the last handshake message) must finish within this,
/// or the connection is closed.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first byte of a TLS record carrying a handshake message: how a permissive listener tells
/// a TLS client from a plain one.
pub const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// Refused plain connections and failed handshakes are logged at most this often (per thread),
/// with the number left unlogged in between.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// RocketMQ's `tls.server.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain connections only (FerroMQ's default; Java's is `permissive`).
    Disabled,
    /// TLS and plain connections on the same port, told apart by the first byte.
    Permissive,
    /// TLS connections only; a plain client is closed.
    Enforcing,
}

impl FromStr for TlsMode {
    type Err = String;
    fn from_str(text: &str) -> Result<TlsMode, String> {
        match text {
            "disabled" => Ok(TlsMode::Disabled),
            "permissive" => Ok(TlsMode::Permissive),
            "enforcing" => Ok(TlsMode::Enforcing),
            _ => Err("disabled, permissive or enforcing".to_owned()),
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Disabled => "disabled",
            TlsMode::Permissive => "permissive",
            TlsMode::Enforcing => "enforcing",
        })
    }
}

/// RocketMQ's `tls.server.need.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Optional,
    Require,
}

impl FromStr for ClientAuth {
    type Err = String;
    fn from_str(text: &str) -> Result<ClientAuth, String> {
        match text {
            "none" => Ok(ClientAuth::None),
            "optional" => Ok(ClientAuth::Optional),
            "require" => Ok(ClientAuth::Require),
            _ => Err("none, optional or require".to_owned()),
        }
    }
}

impl fmt::Display for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientAuth::None => "none",
            ClientAuth::Optional => "optional",
            ClientAuth::Require => "require",
        })
    }
}

/// Why a TLS configuration could not be built; each names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}")]
    Pem { what: &'static str, path: PathBuf, reason: String },
    #[error("{what} {path} holds no {expected}")]
    Empty { what: &'static str, path: PathBuf, expected: &'static str },
    #[error("{0}")]
    Rustls(String),
}

fn load_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |e: rustls::pki_types::pem::Error| TlsError::Pem { what, path: path.to_owned(), reason: e.to_string() };
    let certs = CertificateDer::pem_file_iter(path).map_err(pem_error)?.collect::<Result<Vec<_>, _>>().map_err(pem_error)?;
    if certs.is_empty() {
        return Err(TlsError::Empty { what, path: path.to_owned(), expected: "CERTIFICATE" });
    }
    Ok(certs)
}

fn load_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => {
            TlsError::Empty { what, path: path.to_owned(), expected: "unencrypted private key (PKCS#8, PKCS#1 or SEC1)" }
        }
        e => TlsError::Pem { what, path: path.to_owned(), reason: e.to_string() },
    })
}

fn roots(what: &'static str, path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    for cert in load_certs(what, path)? {
        store.add(cert).map_err(|e| TlsError::Rustls(format!("{what} {}: {e}", path.display())))?;
    }
    Ok(store)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side: `tls.server.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// `tls.server.certPath`: the certificate chain, PEM.
    pub cert_path: PathBuf,
    /// `tls.server.keyPath`: its private key, PEM, unencrypted.
    pub key_path: PathBuf,
    /// `tls.server.need.client.auth`.
    pub client_auth: ClientAuth,
    /// `tls.server.trustCertPath`: CA certificates client certificates are verified against
    /// (required unless `client_auth` is none).
    pub trust_cert_path: Option<PathBuf>,
}

/// Builds a server configuration; errors name the file at fault.
pub fn server_config(files: &ServerTlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certs("tls.server.certPath", &files.cert_path)?;
    let key = load_key("tls.server.keyPath", &files.key_path)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match (files.client_auth, &files.trust_cert_path) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError::Rustls(format!(
                "tls.server.need.client.auth={} needs tls.server.trustCertPath (the CA client certificates are verified against)",
                files.client_auth
            )));
        }
        (auth, Some(trust)) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots("tls.server.trustCertPath", trust)?),
                provider(),
            );
            let verifier = if auth == ClientAuth::Optional { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| TlsError::Rustls(e.to_string()))?)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Rustls(format!("tls.server.keyPath {}: {e}", files.key_path.display())))?;
    // Kernel TLS takes the session's keys from rustls after the handshake (crate::ktls).
    config.enable_secret_extraction = true;
    Ok(Arc::new(config))
}

/// The client side: `tls.client.*`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// `tls.client.authServer`: verify the server's certificate against `trust_cert_path`
    /// (Java's default, false, accepts any certificate).
    pub auth_server: bool,
    /// `tls.client.trustCertPath`: CA certificates, PEM (required when `auth_server`).
    pub trust_cert_path: Option<PathBuf>,
    /// `tls.client.certPath` and `tls.client.keyPath`: the certificate this side presents when a
    /// server asks for one (both or neither).
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
}

/// Builds a client configuration; errors name the file or key at fault.
pub fn client_config(files: &ClientTlsFiles) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = if files.auth_server {
        let Some(trust) = &files.trust_cert_path else {
            return Err(TlsError::Rustls(
                "tls.client.authServer=true needs tls.client.trustCertPath (the CA the server's certificate is verified against)"
                    .to_owned(),
            ));
        };
        builder.with_root_certificates(roots("tls.client.trustCertPath", trust)?)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServerCert(provider())))
    };
    let config = match (&files.cert_path, &files.key_path) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs("tls.client.certPath", cert)?, load_key("tls.client.keyPath", key)?)
            .map_err(|e| TlsError::Rustls(format!("tls.client.keyPath {}: {e}", key.display())))?,
        _ => return Err(TlsError::Rustls("tls.client.certPath and tls.client.keyPath go together".to_owned())),
    };
    Ok(Arc::new(config))
}

/// `tls.client.authServer=false`: any server certificate is accepted (the handshake signatures
/// are still checked), as Java's client does by default.
#[derive(Debug)]
struct AnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What a listener does with TLS: its mode and configuration.
#[derive(Clone, Debug)]
pub struct TlsAcceptor {
    pub mode: TlsMode,
    config: Arc<rustls::ServerConfig>,
    /// Whether handshaken connections move into kernel TLS where the kernel takes their cipher
    /// (`tlsKernelOffload`, default on; [`crate::ktls`]).
    kernel_offload: bool,
}

impl TlsAcceptor {
    pub fn new(mode: TlsMode, config: Arc<rustls::ServerConfig>) -> TlsAcceptor {
        TlsAcceptor { mode, config, kernel_offload: true }
    }

    /// Turns kernel TLS off (`tlsKernelOffload=false`: every connection stays on rustls in user
    /// space) or back on.
    #[must_use]
    pub fn with_kernel_offload(mut self, on: bool) -> TlsAcceptor {
        self.kernel_offload = on;
        self
    }

    pub fn kernel_offload(&self) -> bool {
        self.kernel_offload
    }

    /// Builds the configuration from `files`; `None` when `mode` is disabled.
    pub fn from_files(mode: TlsMode, files: &ServerTlsFiles) -> Result<Option<TlsAcceptor>, TlsError> {
        if mode == TlsMode::Disabled {
            return Ok(None);
        }
        Ok(Some(TlsAcceptor::new(mode, server_config(files)?)))
    }

    /// Looks at the first byte `stream` receives (without consuming it) and, for a TLS client,
    /// runs the server handshake, then moves the session into the kernel where it can go.
    /// `Ok(None)`: a plain client, to be served as such (permissive). A plain client in
    /// enforcing mode, a peer that sends nothing within [`HANDSHAKE_TIMEOUT`], a failed
    /// handshake and a failed move into the kernel are errors (the caller closes the stream).
    pub async fn accept(&self, stream: &TcpStream) -> io::Result<Option<TlsSession>> {
        let started = Instant::now();
        let peeked = compio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(Vec::with_capacity(1))).await;
        let first = match peeked {
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "no first byte within the handshake timeout")),
            Ok(BufResult(Ok(0), _)) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before sending anything")),
            Ok(BufResult(Ok(_), buf)) => buf.first().copied(),
            Ok(BufResult(Err(e), _)) => return Err(e),
        };
        if first != Some(TLS_HANDSHAKE_RECORD) {
            return match self.mode {
                TlsMode::Enforcing => Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "plain (non-TLS) connection refused: tls.server.mode=enforcing",
                )),
                _ => Ok(None),
            };
        }
        let server = rustls::ServerConnection::new(self.config.clone()).map_err(io::Error::other)?;
        let state = TlsState::new(rustls::Connection::Server(server));
        let left = HANDSHAKE_TIMEOUT.saturating_sub(started.elapsed());
        match compio::time::timeout(left, state.handshake(stream)).await {
            Ok(done) => done?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, format!("TLS handshake not done within {HANDSHAKE_TIMEOUT:?}"))),
        }
        if !self.kernel_offload {
            return Ok(Some(TlsSession::User(state)));
        }
        let rustls::Connection::Server(server) = state.tls.into_inner() else {
            return Err(io::Error::other("a server handshake produced a client connection"));
        };
        Ok(Some(match crate::ktls::offload(std::os::fd::AsRawFd::as_raw_fd(stream), server)? {
            crate::ktls::Offload::Kernel => TlsSession::Kernel,
            crate::ktls::Offload::UserSpace(server) => TlsSession::User(TlsState::new(rustls::Connection::Server(server))),
        }))
    }
}

/// A connection's TLS after the handshake.
#[allow(clippy::large_enum_variant)] // Moved once per connection, right after the handshake.
pub enum TlsSession {
    /// rustls in user space: the reader decrypts, the writer encrypts, file bodies are copied.
    User(TlsState),
    /// Kernel TLS ([`crate::ktls`]): served as a plain connection.
    Kernel,
}

/// The client side's configuration (`tls.enable=true`).
#[derive(Clone, Debug)]
pub struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
}

impl TlsConnector {
    pub fn new(config: Arc<rustls::ClientConfig>) -> TlsConnector {
        TlsConnector { config }
    }

    pub fn from_files(files: &ClientTlsFiles) -> Result<TlsConnector, TlsError> {
        Ok(TlsConnector::new(client_config(files)?))
    }

    /// Runs the client handshake on a connected `stream` to `addr` (its IP is the name the
    /// server's certificate is checked for), within [`HANDSHAKE_TIMEOUT`].
    pub async fn connect(&self, stream: &TcpStream, addr: std::net::SocketAddr) -> io::Result<TlsState> {
        let name = ServerName::IpAddress(addr.ip().into());
        let client = rustls::ClientConnection::new(self.config.clone(), name).map_err(io::Error::other)?;
        let state = TlsState::new(rustls::Connection::Client(client));
        match compio::time::timeout(HANDSHAKE_TIMEOUT, state.handshake(stream)).await {
            Ok(done) => done.map(|()| state),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, format!("TLS handshake not done within {HANDSHAKE_TIMEOUT:?}"))),
        }
    }
}

/// One connection's rustls state, shared by its reader and writer.
pub struct TlsState {
    tls: RefCell<rustls::Connection>,
}

impl TlsState {
    fn new(tls: rustls::Connection) -> TlsState {
        TlsState { tls: RefCell::new(tls) }
    }

    /// The negotiated protocol version, for the log.
    pub fn protocol(&self) -> Option<rustls::ProtocolVersion> {
        self.tls.borrow().protocol_version()
    }

    async fn handshake(&self, stream: &TcpStream) -> io::Result<()> {
        loop {
            self.flush(stream).await?;
            if !self.tls.borrow().is_handshaking() {
                return Ok(());
            }
            // One whole record at a time, never more: what follows the last handshake record
            // stays in the socket, where kernel TLS finds it (crate::ktls).
            let record = read_record(stream).await?;
            let fed = self.feed(&record, None);
            if let Err(e) = fed {
                // Sends the alert rustls queued, if the peer still listens.
                let _ = self.flush(stream).await;
                return Err(e);
            }
        }
    }

    /// Feeds ciphertext to rustls; the plaintext it yields goes to `plain` (during the
    /// handshake, `None`: plaintext that arrives with the last handshake messages stays in
    /// rustls until the first read). Returns the plaintext bytes moved.
    fn feed(&self, mut cipher: &[u8], mut plain: Option<&mut BytesMut>) -> io::Result<usize> {
        let mut tls = self.tls.borrow_mut();
        let mut moved = 0;
        while !cipher.is_empty() {
            tls.read_tls(&mut cipher)?;
            tls.process_new_packets().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            if let Some(plain) = plain.as_deref_mut() {
                moved += drain(&mut tls, plain)?.unwrap_or(0);
            }
        }
        Ok(moved)
    }

    /// Writes whatever rustls has to send.
    async fn flush(&self, stream: &TcpStream) -> io::Result<()> {
        loop {
            let out = {
                let mut tls = self.tls.borrow_mut();
                if !tls.wants_write() {
                    return Ok(());
                }
                let mut out = Vec::new();
                while tls.wants_write() {
                    tls.write_tls(&mut out)?;
                }
                out
            };
            let mut writer = stream;
            let BufResult(written, _) = writer.write_all(out).await;
            written?;
        }
    }

    /// Whether rustls has something to send that no write has taken yet (a key update, an
    /// alert, a session ticket): the reader asks the writer to flush it.
    pub(crate) fn wants_write(&self) -> bool {
        self.tls.borrow().wants_write()
    }

    /// Reads plaintext into `buf` (appended), as `AsyncReadExt::append` does on a plain
    /// stream: at least one byte, or `Ok(0)` at the end of the stream.
    pub(crate) async fn append(&self, stream: &TcpStream, mut buf: BytesMut) -> BufResult<usize, BytesMut> {
        loop {
            // Plaintext rustls already holds (decrypted with the last handshake messages).
            let held = drain(&mut self.tls.borrow_mut(), &mut buf);
            match held {
                Ok(Some(0)) => {}
                Ok(Some(n)) => return BufResult(Ok(n), buf),
                // close_notify: the end of the stream.
                Ok(None) => return BufResult(Ok(0), buf),
                Err(e) => return BufResult(Err(e), buf),
            }
            let BufResult(read, cipher) = read_some(stream, Vec::with_capacity(TLS_READ_BYTES)).await;
            let n = match read {
                // The end of the stream without close_notify: Java's clients close that way.
                Ok(0) => return BufResult(Ok(0), buf),
                Ok(n) => n,
                Err(e) => return BufResult(Err(e), buf),
            };
            match self.feed(cipher.get(..n).unwrap_or_default(), Some(&mut buf)) {
                Ok(0) => {}
                Ok(moved) => return BufResult(Ok(moved), buf),
                Err(e) => return BufResult(Err(e), buf),
            }
        }
    }

    /// Encrypts and writes `frames`, flushing rustls' send buffer whenever it fills.
    pub(crate) async fn write_all(&self, stream: &TcpStream, frames: &[Bytes]) -> io::Result<()> {
        for frame in frames {
            let mut rest: &[u8] = frame;
            while !rest.is_empty() {
                let taken = self.tls.borrow_mut().writer().write(rest)?;
                rest = rest.get(taken..).unwrap_or_default();
                if !rest.is_empty() {
                    self.flush(stream).await?;
                }
            }
        }
        self.flush(stream).await
    }

    /// Sends close_notify (best effort: the socket is shut down next).
    pub(crate) async fn close(&self, stream: &TcpStream) {
        self.tls.borrow_mut().send_close_notify();
        let _ = self.flush(stream).await;
    }
}

/// TLS record header: content type, version, length (u16, big-endian).
const RECORD_HEADER_BYTES: usize = 5;
/// The largest record a peer may send: 2^14 bytes of plaintext plus TLS 1.2's largest
/// expansion, 2048 (RFC 5246 §6.2.3; TLS 1.3 allows 256).
const MAX_RECORD_BYTES: usize = RECORD_HEADER_BYTES + 16 * 1024 + 2048;

/// Reads exactly one TLS record (header and body), of at most [`MAX_RECORD_BYTES`].
async fn read_record(stream: &TcpStream) -> io::Result<Vec<u8>> {
    let header = read_exactly(stream, Vec::with_capacity(RECORD_HEADER_BYTES), RECORD_HEADER_BYTES).await?;
    let length = match header.as_slice() {
        [_, _, _, high, low] => usize::from(u16::from_be_bytes([*high, *low])),
        _ => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed during the TLS handshake")),
    };
    if RECORD_HEADER_BYTES + length > MAX_RECORD_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("a TLS record of {length} bytes is over the limit")));
    }
    read_exactly(stream, header, RECORD_HEADER_BYTES + length).await
}

/// Reads until `buf` holds `total` bytes (each read asks for no more than what is missing).
async fn read_exactly(stream: &TcpStream, mut buf: Vec<u8>, total: usize) -> io::Result<Vec<u8>> {
    while buf.len() < total {
        let BufResult(read, part) = read_some(stream, Vec::with_capacity(total - buf.len())).await;
        let n = read?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed during the TLS handshake"));
        }
        buf.extend_from_slice(part.get(..n).unwrap_or_default());
    }
    Ok(buf)
}

async fn read_some(stream: &TcpStream, buf: Vec<u8>) -> BufResult<usize, Vec<u8>> {
    let mut reader = stream;
    reader.read(buf).await
}

/// Moves the plaintext rustls holds into `buf`. `Some(n)`: n bytes moved (0: none held);
/// `None`: the peer closed the TLS session (close_notify) and nothing is left.
fn drain(tls: &mut rustls::Connection, buf: &mut BytesMut) -> io::Result<Option<usize>> {
    let mut reader = tls.reader();
    let mut moved = 0;
    loop {
        match reader.fill_buf() {
            Ok([]) => return Ok(if moved > 0 { Some(moved) } else { None }),
            Ok(chunk) => {
                let len = chunk.len();
                buf.extend_from_slice(chunk);
                reader.consume(len);
                moved += len;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Some(moved)),
            // An unclean end: what came before it is served first.
            Err(_) if moved > 0 => return Ok(Some(moved)),
            Err(e) => return Err(e),
        }
    }
}

/// Logs refused connections (plain clients in enforcing mode, failed handshakes) at most once
/// per [`REFUSAL_LOG_EVERY`] per thread, with the count left unlogged since.
pub(crate) fn log_refusal(peer: std::net::SocketAddr, error: &io::Error) {
    std::thread_local! {
        static LOGGED_AT: Cell<Option<Instant>> = const { Cell::new(None) };
        static UNLOGGED: Cell<u64> = const { Cell::new(0) };
    }
    let due = LOGGED_AT.with(|at| at.get().is_none_or(|at| at.elapsed() >= REFUSAL_LOG_EVERY));
    if due {
        let unlogged = UNLOGGED.with(|n| n.replace(0));
        LOGGED_AT.with(|at| at.set(Some(Instant::now())));
        warn!(%peer, unlogged_since_last = unlogged, "TLS: connection closed: {error}");
    } else {
        UNLOGGED.with(|n| n.set(n.get() + 1));
    }
}

#[cfg(test)]
mod tests;
