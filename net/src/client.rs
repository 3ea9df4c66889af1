//! The RPC client: one connection to a remoting server, pipelined requests matched by
//! `opaque`, per-request timeouts, one-way sends, and an optional handler for requests the
//! server sends back on the same connection (e.g. NOTIFY_CONSUMER_IDS_CHANGED).
//!
//! Used by tools, tests, the bench and the broker's outbound calls (name-server
//! registration). It runs on the calling thread's compio runtime and is `!Send`.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use compio::net::TcpStream;

use crate::acl::Credentials;
use crate::codec::RemotingCommand;
use crate::conn::{ConnLimits, Connection, NotSupported, RequestHandler, RpcError};
use crate::tls::TlsConnector;

/// A connected client.
#[derive(Clone)]
pub struct Client {
    conn: Connection,
    /// Signs every request sent (ACL, `crate::acl`), when set.
    signer: Option<Rc<Credentials>>,
}

impl Client {
    /// Connects to `addr`; requests the server sends are answered REQUEST_CODE_NOT_SUPPORTED.
    pub async fn connect(addr: SocketAddr, connect_timeout: Duration) -> Result<Client, RpcError> {
        Client::connect_with(addr, connect_timeout, Rc::new(NotSupported), ConnLimits::default()).await
    }

    /// Connects to `addr` and serves the server's requests with `handler`.
    pub async fn connect_with<H: RequestHandler>(
        addr: SocketAddr,
        connect_timeout: Duration,
        handler: Rc<H>,
        limits: ConnLimits,
    ) -> Result<Client, RpcError> {
        let stream = connect_stream(addr, connect_timeout).await?;
        Ok(Client { conn: Connection::spawn(stream, handler, limits), signer: None })
    }

    /// Signs every request from now on with `credentials` (a server with ACL on), or stops
    /// signing (`None`).
    pub fn signed_by(mut self, credentials: Option<Credentials>) -> Client {
        self.signer = credentials.map(Rc::new);
        self
    }

    fn sign(&self, request: &mut RemotingCommand) {
        if let Some(signer) = &self.signer {
            signer.sign(request);
        }
    }

    /// [`Client::connect_with`], over TLS when `tls` is given (the handshake within
    /// [`crate::tls::HANDSHAKE_TIMEOUT`]; a failed one is an [`RpcError::Io`]).
    pub async fn connect_with_tls<H: RequestHandler>(
        addr: SocketAddr,
        connect_timeout: Duration,
        handler: Rc<H>,
        limits: ConnLimits,
        tls: Option<&TlsConnector>,
    ) -> Result<Client, RpcError> {
        let Some(connector) = tls else {
            return Client::connect_with(addr, connect_timeout, handler, limits).await;
        };
        let stream = connect_stream(addr, connect_timeout).await?;
        let state = connector
            .connect(&stream, addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("TLS handshake with {addr} failed: {e}")))?;
        Ok(Client { conn: Connection::spawn_with(stream, Some(crate::tls::TlsSession::User(state)), handler, limits), signer: None })
    }

    /// Sends `request` and waits for its response, at most `timeout`.
    pub async fn invoke(&self, mut request: RemotingCommand, timeout: Duration) -> Result<RemotingCommand, RpcError> {
        self.sign(&mut request);
        self.conn.invoke(request, timeout).await
    }

    /// Sends `request` one-way.
    pub async fn invoke_oneway(&self, mut request: RemotingCommand) -> Result<(), RpcError> {
        self.sign(&mut request);
        self.conn.invoke_oneway(request).await
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// Closes the connection; pending requests fail with [`RpcError::Closed`].
    pub fn close(&self) {
        self.conn.close();
    }
}

async fn connect_stream(addr: SocketAddr, connect_timeout: Duration) -> Result<TcpStream, RpcError> {
    match compio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
        Ok(stream) => Ok(stream?),
        Err(_) => Err(RpcError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("connect to {addr} timed out after {connect_timeout:?}"),
        ))),
    }
}
