//! The master's HA port: one listener for the whole broker, on a thread of its own, that reads
//! each connection's [`Hello`] and hands the connection to the shard it names (shard *i* of a
//! slave follows shard *i* of the master). Connections are rare and short to set up, so plain
//! blocking I/O with a read timeout keeps this simple; the stream itself runs on the shard.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{info, warn};

use crate::wire::{HELLO_LEN, Hello, Welcome};

/// How long a new connection may take to send its hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// An `accept` that fails (EMFILE, …) is tried again after this long.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// A connection for a shard, with the hello it sent.
pub type Handoff = (TcpStream, Hello);

/// The running acceptor; [`Acceptor::stop`] ends it.
pub struct Acceptor {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Acceptor {
    /// Starts accepting on `listener`; `shards[i]` takes shard *i*'s connections (bounded: a
    /// shard that does not take them refuses the slave, which reconnects later).
    pub fn spawn(listener: TcpListener, shards: Vec<async_channel::Sender<Handoff>>) -> io::Result<Acceptor> {
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let stop = stopping.clone();
        let shard_count = u16::try_from(shards.len()).map_err(io::Error::other)?;
        let thread = std::thread::Builder::new().name("ha-accept".into()).spawn(move || {
            info!(%addr, "HA port listening for slaves");
            loop {
                let accepted = listener.accept();
                if stop.load(Ordering::Acquire) {
                    return;
                }
                match accepted {
                    Ok((stream, peer)) => {
                        if let Err(e) = hand_over(stream, shard_count, &shards) {
                            warn!(%peer, "replication connection dropped: {e}");
                        }
                    }
                    Err(e) => {
                        warn!(%addr, "HA accept failed: {e}; retrying");
                        std::thread::sleep(ACCEPT_RETRY);
                    }
                }
            }
        })?;
        Ok(Acceptor { addr, stopping, thread: Some(thread) })
    }

    /// The address the HA port listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the thread.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.stopping.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop_inner();
        }
    }
}

fn hand_over(mut stream: TcpStream, shard_count: u16, shards: &[async_channel::Sender<Handoff>]) -> io::Result<()> {
    stream.set_read_timeout(Some(HELLO_TIMEOUT))?;
    let mut b = [0u8; HELLO_LEN];
    stream.read_exact(&mut b)?;
    let refuse = |mut stream: TcpStream, reason: String| -> io::Result<()> {
        let _ = stream.write_all(&Welcome::Refused { reason: reason.clone() }.encode());
        Err(io::Error::other(format!("refused: {reason}")))
    };
    let hello = match Hello::decode(&b) {
        Ok(h) => h,
        Err(reason) => return refuse(stream, reason),
    };
    if let Some(reason) = hello.refusal(shard_count) {
        return refuse(stream, reason);
    }
    stream.set_read_timeout(None)?;
    stream.set_nonblocking(true)?;
    let Some(shard) = shards.get(usize::from(hello.shard)) else { return refuse(stream, format!("no shard {}", hello.shard)) };
    match shard.try_send((stream, hello)) {
        Ok(()) => Ok(()),
        Err(e) => {
            let (stream, _) = e.into_inner();
            let _ = stream.set_nonblocking(false);
            refuse(stream, format!("shard {} is not taking slaves now (stopping, or too many connecting)", hello.shard))
        }
    }
}
