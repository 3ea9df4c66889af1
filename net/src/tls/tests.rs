//! TLS over real loopback sockets, on both backends: enforcing and permissive listeners, file
//! bodies (the `sendfile` path on a plain connection) copied byte-exact, a malformed record and
//! a plain client closing only their own connection, client certificates, and PEM errors.

use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::backend::{IoBackend, build_runtime};
use crate::client::Client;
use crate::codec::RemotingCommand;
use crate::conn::{Connection, FileSegment, NotSupported, RequestHandler, Response, RpcError};
use crate::server::{self, ServerLimits};

const ECHO: i32 = 2;
/// Ext `len`, `times`: a file body of `times` segments of `len` bytes of the handler's file.
const FILE: i32 = 6;
/// Answers with ext `tls` = whether the connection is TLS, `kernel` = whether kernel TLS.
const IS_TLS: i32 = 7;
const TIMEOUT: Duration = Duration::from_secs(10);

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/tls")).join(name)
}

fn server_files(client_auth: ClientAuth) -> ServerTlsFiles {
    ServerTlsFiles {
        cert_path: fixture("server.pem"),
        key_path: fixture("server.key"),
        client_auth,
        trust_cert_path: Some(fixture("ca.pem")),
    }
}

fn verifying_client() -> ClientTlsFiles {
    ClientTlsFiles { auth_server: true, trust_cert_path: Some(fixture("ca.pem")), ..ClientTlsFiles::default() }
}

struct Handler {
    file: Arc<std::fs::File>,
}

impl RequestHandler for Handler {
    async fn handle(&self, conn: &Connection, request: RemotingCommand) -> Option<Response> {
        let number = |key: &str| request.ext(key).map_or(0, |v| v.parse::<u64>().unwrap());
        match request.code {
            ECHO => Some(request.success_response().with_body(request.body.clone()).into()),
            FILE => {
                let segments = (0..number("times"))
                    .map(|i| FileSegment { file: self.file.clone(), offset: i * number("len"), len: number("len") as u32, settled_end: 0 })
                    .collect();
                Some(Response::FileBody(request.success_response(), segments))
            }
            IS_TLS => {
                Some(request.success_response().with_ext("tls", conn.is_tls()).with_ext("kernel", conn.is_kernel_tls()).into())
            }
            _ => None,
        }
    }
}

/// A file of `len` pseudo-random bytes under the temp directory, removed on drop.
struct TestFile {
    path: PathBuf,
    content: Vec<u8>,
}

impl Drop for TestFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn test_file(len: usize) -> TestFile {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("ferromq-tls-test-{}-{n}", std::process::id()));
    let content: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::File::create(&path).unwrap().write_all(&content).unwrap();
    TestFile { path, content }
}

fn on_both_backends(test: impl Fn(&'static str) -> std::pin::Pin<Box<dyn Future<Output = ()>>>) {
    for (backend, name) in [(IoBackend::IoUring, "io_uring"), (IoBackend::Epoll, "epoll")] {
        match build_runtime(backend) {
            Ok((runtime, _)) => runtime.block_on(test(name)),
            Err(e) => println!("skipping {name}: {e}"),
        }
    }
}

fn start(mode: TlsMode, client_auth: ClientAuth, file: &TestFile) -> std::net::SocketAddr {
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from_files(mode, &server_files(client_auth)).unwrap();
    let handler = Rc::new(Handler { file: Arc::new(std::fs::File::open(&file.path).unwrap()) });
    compio::runtime::spawn(server::serve_with_tls(listener, handler, ServerLimits::default(), acceptor, std::future::pending()))
        .detach();
    addr
}

async fn connect(addr: std::net::SocketAddr, tls: Option<&TlsConnector>) -> Result<Client, RpcError> {
    Client::connect_with_tls(addr, TIMEOUT, Rc::new(NotSupported), Default::default(), tls).await
}

async fn echo(client: &Client, body: &[u8]) -> Result<RemotingCommand, RpcError> {
    client.invoke(RemotingCommand::request(ECHO).with_body(Bytes::copy_from_slice(body)), TIMEOUT).await
}

async fn is_tls(client: &Client) -> bool {
    let answer = client.invoke(RemotingCommand::request(IS_TLS), TIMEOUT).await.unwrap();
    answer.ext("tls").unwrap() == "true"
}

/// A request on a connection the server refuses fails at once (closed), not by timing out.
async fn assert_refused(addr: std::net::SocketAddr) {
    let plain = connect(addr, None).await.unwrap();
    match echo(&plain, b"plain").await {
        Err(RpcError::Closed) | Err(RpcError::Io(_)) => {}
        other => panic!("a plain client of an enforcing listener got {other:?}"),
    }
}

#[test]
fn enforcing_serves_tls_and_closes_plain_clients() {
    on_both_backends(|backend| {
        Box::pin(async move {
            let file = test_file(4096);
            let addr = start(TlsMode::Enforcing, ClientAuth::None, &file);
            let connector = TlsConnector::from_files(&verifying_client()).unwrap();
            let client = connect(addr, Some(&connector)).await.unwrap();
            let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
            let answer = echo(&client, &body).await.unwrap();
            assert_eq!(answer.body.as_ref(), &body[..], "{backend}");
            assert!(is_tls(&client).await, "{backend}");
            assert_refused(addr).await;
            // The refusal closed only the plain connection.
            assert_eq!(echo(&client, b"still here").await.unwrap().body.as_ref(), b"still here", "{backend}");
        })
    });
}

#[test]
fn permissive_serves_plain_and_tls_on_one_port() {
    on_both_backends(|backend| {
        Box::pin(async move {
            let file = test_file(4096);
            let addr = start(TlsMode::Permissive, ClientAuth::None, &file);
            // Java's default client: no server verification.
            let connector = TlsConnector::from_files(&ClientTlsFiles::default()).unwrap();
            let tls = connect(addr, Some(&connector)).await.unwrap();
            let plain = connect(addr, None).await.unwrap();
            for _ in 0..3 {
                assert_eq!(echo(&tls, b"over tls").await.unwrap().body.as_ref(), b"over tls", "{backend}");
                assert_eq!(echo(&plain, b"in plain").await.unwrap().body.as_ref(), b"in plain", "{backend}");
            }
            assert!(is_tls(&tls).await, "{backend}");
            assert!(!is_tls(&plain).await, "{backend}");
        })
    });
}

#[test]
fn file_bodies_arrive_byte_exact_over_tls() {
    on_both_backends(|backend| {
        Box::pin(async move {
            // 3 × 700 KiB: sent with sendfile on a plain connection, and larger than one copied
            // piece (COPY_MAX_BODY_BYTES); then many small segments (the plain copy path).
            let file = test_file(3 * 700 * 1024);
            let addr = start(TlsMode::Enforcing, ClientAuth::None, &file);
            let connector = TlsConnector::from_files(&verifying_client()).unwrap();
            let client = connect(addr, Some(&connector)).await.unwrap();
            for (len, times) in [(700 * 1024u64, 3u64), (1000, 64), (1, 1)] {
                let request = RemotingCommand::request(FILE).with_ext("len", len).with_ext("times", times);
                // Pipelined with an echo behind it: frames after a file body keep their order.
                let (answer, after) = futures_util::join!(client.invoke(request, TIMEOUT), echo(&client, b"after"));
                let want = &file.content[..(len * times) as usize];
                let got = answer.unwrap().body;
                assert_eq!(got.len(), want.len(), "{backend}: {len} × {times}");
                assert!(got.as_ref() == want, "{backend}: {len} × {times}: body differs");
                assert_eq!(after.unwrap().body.as_ref(), b"after");
            }
        })
    });
}

#[test]
fn a_malformed_record_closes_only_its_connection() {
    on_both_backends(|backend| {
        Box::pin(async move {
            use compio::io::{AsyncReadExt, AsyncWriteExt};
            let file = test_file(4096);
            let addr = start(TlsMode::Permissive, ClientAuth::None, &file);
            let connector = TlsConnector::from_files(&verifying_client()).unwrap();
            let good = connect(addr, Some(&connector)).await.unwrap();
            // A handshake record of garbage.
            let mut bad = compio::net::TcpStream::connect(addr).await.unwrap();
            let mut garbage = vec![0x16, 0x03, 0x01, 0x00, 0x40];
            garbage.extend(std::iter::repeat_n(0xAB, 0x40));
            let BufResult(written, _) = bad.write_all(garbage).await;
            written.unwrap();
            // The server answers with an alert at most, then closes.
            let read = compio::time::timeout(TIMEOUT, bad.read_to_end(Vec::new())).await.expect("closed in time");
            let BufResult(read, got) = read;
            assert!(read.is_err() || got.len() < 64, "{backend}: {got:?}");
            assert_eq!(echo(&good, b"unaffected").await.unwrap().body.as_ref(), b"unaffected", "{backend}");
        })
    });
}

#[test]
fn client_certificates_are_required_when_configured() {
    on_both_backends(|backend| {
        Box::pin(async move {
            let file = test_file(4096);
            let addr = start(TlsMode::Enforcing, ClientAuth::Require, &file);
            let anonymous = TlsConnector::from_files(&verifying_client()).unwrap();
            // TLS 1.3: the client learns of the refusal on its first read.
            let refused = match connect(addr, Some(&anonymous)).await {
                Err(_) => true,
                Ok(client) => echo(&client, b"x").await.is_err(),
            };
            assert!(refused, "{backend}: a client without a certificate was served");
            let with_cert = TlsConnector::from_files(&ClientTlsFiles {
                cert_path: Some(fixture("client.pem")),
                key_path: Some(fixture("client.key")),
                ..verifying_client()
            })
            .unwrap();
            let client = connect(addr, Some(&with_cert)).await.unwrap();
            assert_eq!(echo(&client, b"mutual").await.unwrap().body.as_ref(), b"mutual", "{backend}");
        })
    });
}

#[test]
fn a_client_that_verifies_refuses_an_unknown_server() {
    on_both_backends(|backend| {
        Box::pin(async move {
            let file = test_file(4096);
            let addr = start(TlsMode::Enforcing, ClientAuth::None, &file);
            // The server's own certificate is no CA: its chain does not verify against it.
            let wrong_ca = TlsConnector::from_files(&ClientTlsFiles {
                auth_server: true,
                trust_cert_path: Some(fixture("client.pem")),
                ..ClientTlsFiles::default()
            })
            .unwrap();
            assert!(connect(addr, Some(&wrong_ca)).await.is_err(), "{backend}");
        })
    });
}

#[test]
fn pem_errors_name_the_file() {
    let missing = ServerTlsFiles { cert_path: fixture("no-such.pem"), ..server_files(ClientAuth::None) };
    let text = server_config(&missing).unwrap_err().to_string();
    assert!(text.contains("tls.server.certPath") && text.contains("no-such.pem"), "{text}");
    // A certificate where the key should be.
    let no_key = ServerTlsFiles { key_path: fixture("server.pem"), ..server_files(ClientAuth::None) };
    let text = server_config(&no_key).unwrap_err().to_string();
    assert!(text.contains("tls.server.keyPath") && text.contains("server.pem"), "{text}");
    let no_trust = ServerTlsFiles { trust_cert_path: None, ..server_files(ClientAuth::Require) };
    let text = server_config(&no_trust).unwrap_err().to_string();
    assert!(text.contains("tls.server.trustCertPath"), "{text}");
    let text = client_config(&ClientTlsFiles { auth_server: true, ..ClientTlsFiles::default() }).err().unwrap().to_string();
    assert!(text.contains("tls.client.trustCertPath"), "{text}");
}

#[test]
fn modes_parse_java_spellings() {
    assert_eq!("enforcing".parse::<TlsMode>(), Ok(TlsMode::Enforcing));
    assert_eq!("permissive".parse::<TlsMode>(), Ok(TlsMode::Permissive));
    assert_eq!("disabled".parse::<TlsMode>(), Ok(TlsMode::Disabled));
    assert!("ENFORCING".parse::<TlsMode>().is_err());
    assert_eq!("require".parse::<ClientAuth>(), Ok(ClientAuth::Require));
    assert!("yes".parse::<ClientAuth>().is_err());
}

/// A client configuration that offers only `suite` (and only its protocol version), verifying
/// the server against the fixture CA.
fn client_offering(suite: rustls::SupportedCipherSuite) -> Arc<rustls::ClientConfig> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![suite];
    let version: &'static rustls::SupportedProtocolVersion = match suite {
        rustls::SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
        rustls::SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots("ca", &fixture("ca.pem")).unwrap())
        .with_no_client_auth();
    Arc::new(config)
}

/// The suites FerroMQ's server negotiates that the kernel may take (the fixture key is ECDSA).
fn kernel_candidates() -> Vec<rustls::SupportedCipherSuite> {
    use rustls::crypto::ring::cipher_suite as cs;
    vec![
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ]
}

fn start_with(acceptor: TlsAcceptor, file: &TestFile) -> std::net::SocketAddr {
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Rc::new(Handler { file: Arc::new(std::fs::File::open(&file.path).unwrap()) });
    compio::runtime::spawn(server::serve_with_tls(listener, handler, ServerLimits::default(), Some(acceptor), std::future::pending()))
        .detach();
    addr
}

/// Every suite, with kernel offload on and off: the connection is in the kernel exactly when
/// offload is on and this kernel takes the suite (`FERROMQ_EXPECT_KTLS` set: it must take every
/// TLS 1.3 suite), and echoes and file bodies (sendfile through the kernel's TLS) arrive
/// byte-exact either way.
#[test]
fn kernel_tls_where_the_kernel_takes_the_cipher() {
    let support = crate::ktls::support();
    eprintln!("kernel TLS here: {} ({:?})", support.describe(), support.unavailable);
    let expect_kernel = std::env::var_os("FERROMQ_EXPECT_KTLS").is_some();
    on_both_backends(|backend| {
        Box::pin(async move {
            let file = test_file(3 * 700 * 1024);
            let config = server_config(&server_files(ClientAuth::None)).unwrap();
            let mut kernel_connections = 0;
            for offload in [true, false] {
                let addr = start_with(TlsAcceptor::new(TlsMode::Enforcing, config.clone()).with_kernel_offload(offload), &file);
                for suite in kernel_candidates() {
                    let connector = TlsConnector::new(client_offering(suite));
                    let client = match connect(addr, Some(&connector)).await {
                        Ok(client) => client,
                        // The fixture key is ECDSA: RSA suites cannot be negotiated.
                        Err(_) if format!("{:?}", suite.suite()).contains("_RSA_") => continue,
                        Err(e) => panic!("{backend}: {suite:?}: {e}"),
                    };
                    let answer = client.invoke(RemotingCommand::request(IS_TLS), TIMEOUT).await.unwrap();
                    let kernel = answer.ext("kernel").unwrap() == "true";
                    let version = match suite {
                        rustls::SupportedCipherSuite::Tls12(_) => rustls::ProtocolVersion::TLSv1_2,
                        rustls::SupportedCipherSuite::Tls13(_) => rustls::ProtocolVersion::TLSv1_3,
                    };
                    let takes = support.takes(version, suite.suite());
                    assert_eq!(kernel, offload && takes, "{backend}: {suite:?}, offload {offload}, {support:?}");
                    if expect_kernel && version == rustls::ProtocolVersion::TLSv1_3 {
                        assert!(takes, "{backend}: FERROMQ_EXPECT_KTLS: the kernel must take {suite:?}");
                    }
                    kernel_connections += usize::from(kernel);
                    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
                    assert_eq!(echo(&client, &body).await.unwrap().body.as_ref(), &body[..], "{backend}: {suite:?}");
                    for (len, times) in [(700 * 1024u64, 3u64), (1000, 64), (1, 1)] {
                        let request = RemotingCommand::request(FILE).with_ext("len", len).with_ext("times", times);
                        let (answer, after) = futures_util::join!(client.invoke(request, TIMEOUT), echo(&client, b"after"));
                        let got = answer.unwrap().body;
                        let want = &file.content[..(len * times) as usize];
                        assert!(got.as_ref() == want, "{backend}: {suite:?}: {len} × {times}: body differs ({} bytes)", got.len());
                        assert_eq!(after.unwrap().body.as_ref(), b"after");
                    }
                }
            }
            if expect_kernel {
                assert!(kernel_connections >= 3, "{backend}: only {kernel_connections} connections in kernel TLS");
            }
        })
    });
}

/// A blocking rustls client on its own thread, against a server on the test's runtime: a key
/// update from the client is followed in user space and closes a kernel TLS connection (the
/// module docs say why), and close_notify ends either cleanly.
#[test]
fn client_key_updates_and_close_notify() {
    use std::io::{Read, Write};
    fn exchange(tls: &mut rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>, body: &[u8]) -> std::io::Result<Vec<u8>> {
        let frame = crate::codec::encode_to_bytes(&RemotingCommand::request(ECHO).with_body(Bytes::copy_from_slice(body))).unwrap();
        tls.write_all(&frame)?;
        tls.flush()?;
        let mut length = [0u8; 4];
        tls.read_exact(&mut length)?;
        let mut rest = vec![0u8; u32::from_be_bytes(length) as usize];
        tls.read_exact(&mut rest)?;
        let mut whole = length.to_vec();
        whole.extend_from_slice(&rest);
        let limits = crate::WireLimits { max_frame_bytes: usize::MAX, max_header_bytes: usize::MAX };
        let (answer, _) = crate::codec::decode_frame(&Bytes::from(whole), &limits).unwrap().unwrap();
        Ok(answer.body.to_vec())
    }
    on_both_backends(|backend| {
        Box::pin(async move {
            let file = test_file(4096);
            let config = server_config(&server_files(ClientAuth::None)).unwrap();
            for offload in [true, false] {
                let addr = start_with(TlsAcceptor::new(TlsMode::Enforcing, config.clone()).with_kernel_offload(offload), &file);
                let kernel = offload && crate::ktls::support().takes(rustls::ProtocolVersion::TLSv1_3, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
                let client = client_offering(rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256);
                let outcome = compio::runtime::spawn_blocking(move || {
                    let socket = std::net::TcpStream::connect(addr).unwrap();
                    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
                    let conn = rustls::ClientConnection::new(client, rustls::pki_types::ServerName::IpAddress(addr.ip().into())).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, socket);
                    let first = exchange(&mut tls, b"before the key update").unwrap();
                    tls.conn.refresh_traffic_keys().unwrap();
                    let second = exchange(&mut tls, b"after the key update");
                    // A second connection ends with close_notify: the server closes too.
                    let socket = std::net::TcpStream::connect(addr).unwrap();
                    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
                    let conn = rustls::ClientConnection::new(
                        client_offering(rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256),
                        rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
                    )
                    .unwrap();
                    let mut closing = rustls::StreamOwned::new(conn, socket);
                    assert_eq!(exchange(&mut closing, b"x").unwrap(), b"x");
                    closing.conn.send_close_notify();
                    closing.flush().unwrap();
                    let mut rest = Vec::new();
                    let ended = closing.read_to_end(&mut rest);
                    (first, second.map_err(|e| e.kind()), ended.map_err(|e| e.kind()))
                })
                .await
                .unwrap();
                let (first, second, ended) = outcome;
                assert_eq!(first, b"before the key update", "{backend}");
                if kernel {
                    assert!(second.is_err(), "{backend}: a kernel TLS connection answered after a key update: {second:?}");
                } else {
                    assert_eq!(second.unwrap(), b"after the key update", "{backend}, offload {offload}");
                }
                // The server closed after close_notify (with its own close_notify, or at least EOF).
                assert!(matches!(ended, Ok(_) | Err(std::io::ErrorKind::UnexpectedEof)), "{backend}: {ended:?}");
            }
        })
    });
}
