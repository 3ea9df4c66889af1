//! The metrics endpoint: `GET /metrics` over HTTP/1.1, served on threads of its own so that a
//! scrape never runs on a shard or the name server's thread.
//!
//! One accepting thread (`metrics-http`) and one short-lived thread per scrape connection
//! (`metrics-scrape`), at most [`ExporterLimits::max_connections`] at once; a connection beyond
//! that is answered 503 at once. Each connection serves one request, bounded in size
//! ([`ExporterLimits::max_request_bytes`]) and in time (read and write timeouts), then closes.
//! The request line and headers are parsed by `httparse`. Any path but [`METRICS_PATH`] is 404;
//! any method but GET or HEAD 405. What a scrape answers is the caller's `render` function,
//! called on the scrape's thread (it may block: it waits for the shards' snapshots).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, warn};

/// The one path served.
pub const METRICS_PATH: &str = "/metrics";

/// Headers a scrape request may carry (httparse needs the room up front).
const MAX_REQUEST_HEADERS: usize = 32;

/// Bounds on what a scraper can make the endpoint hold.
#[derive(Debug, Clone, Copy)]
pub struct ExporterLimits {
    /// Largest request (line and headers); a larger one is answered 431 and closed. A
    /// Prometheus scrape request is a few hundred bytes.
    pub max_request_bytes: usize,
    /// A request must arrive within this of the connection's start (per read).
    pub read_timeout: Duration,
    /// Each write of the answer must complete within this.
    pub write_timeout: Duration,
    /// Scrape connections served at once; beyond it 503.
    pub max_connections: usize,
}

impl Default for ExporterLimits {
    fn default() -> ExporterLimits {
        ExporterLimits {
            max_request_bytes: 8 * 1024,
            read_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            // Prometheus scrapes each target from one connection at a time; a few more for a
            // second Prometheus or an operator's curl.
            max_connections: 4,
        }
    }
}

/// What a scrape answers: the exposition text, or why it could not be gathered (500).
pub type Render = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// A running endpoint; dropping it stops accepting and joins the accepting thread (a scrape in
/// progress finishes on its own thread, within its timeouts).
pub struct Exporter {
    local_addr: SocketAddr,
    /// The accepting thread's listener (shared): shut down to wake its blocking `accept`.
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Binds `addr` (an error names it) and serves scrapes with `render`.
    pub fn start(addr: SocketAddr, limits: ExporterLimits, render: Render) -> io::Result<Exporter> {
        let listener = TcpListener::bind(addr).map_err(|e| io::Error::new(e.kind(), format!("metrics endpoint: cannot listen on {addr}: {e}")))?;
        let local_addr = listener.local_addr()?;
        let accepting = listener.try_clone()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new().name("metrics-http".into()).spawn(move || accept_loop(accepting, limits, render, stopping))?;
        Ok(Exporter { local_addr, listener, stop, thread: Some(thread) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept: shutting a listening socket down makes Linux fail the
        // accept (EINVAL); a connection of our own wakes it too, should that not.
        let _ = socket2::SockRef::from(&self.listener).shutdown(Shutdown::Both);
        let ip = match self.local_addr.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let _ = TcpStream::connect_timeout(&SocketAddr::new(ip, self.local_addr.port()), Duration::from_millis(100));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn accept_loop(listener: TcpListener, limits: ExporterLimits, render: Render, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(_) if stop.load(Ordering::SeqCst) => break,
            Err(e) => {
                // EMFILE and the like: wait a little rather than spin.
                warn!("metrics endpoint: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if active.load(Ordering::SeqCst) >= limits.max_connections {
            refuse(&mut stream, &limits);
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (slot, render) = (active.clone(), render.clone());
        let spawned = std::thread::Builder::new().name("metrics-scrape".into()).spawn(move || {
            if let Err(e) = serve(&mut stream, &limits, &render) {
                debug!("metrics endpoint: scrape connection ended: {e}");
            }
            // The slot is free before the peer sees the connection close.
            slot.fetch_sub(1, Ordering::SeqCst);
            let _ = stream.shutdown(Shutdown::Both);
        });
        if let Err(e) = spawned {
            warn!("metrics endpoint: cannot start a scrape thread: {e}");
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// How long the accepting thread waits for a refused connection's request before closing
/// it: closing with the request unread would reset the connection, and the scraper would see
/// a reset instead of the 503.
const REFUSE_DRAIN_TIMEOUT: Duration = Duration::from_millis(200);

/// Answers 503 on the accepting thread: every scrape slot is taken.
fn refuse(stream: &mut TcpStream, limits: &ExporterLimits) {
    let _ = stream.set_write_timeout(Some(REFUSE_DRAIN_TIMEOUT));
    let _ = stream.set_read_timeout(Some(REFUSE_DRAIN_TIMEOUT));
    let _ = write_answer(stream, "503 Service Unavailable", "text/plain; charset=utf-8", b"too many scrapes in progress\n", false);
    let _ = stream.shutdown(Shutdown::Write);
    let _ = read_request(stream, limits.max_request_bytes);
}

/// What one request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    /// GET (`true`: HEAD, no body) of the metrics path.
    Metrics { head: bool },
    NotFound,
    MethodNotAllowed,
    TooLarge,
    Malformed,
}

/// Reads one request (at most `max_bytes`) and classifies it; `Ok(None)`: the peer closed
/// before sending a whole request.
fn read_request(stream: &mut impl Read, max_bytes: usize) -> io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(512.min(max_bytes));
    let mut chunk = [0u8; 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => return Ok(Some(classify(request.method, request.path))),
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Ok(Some(Request::TooLarge)),
            Err(_) => return Ok(Some(Request::Malformed)),
        }
        if buf.len() >= max_bytes {
            return Ok(Some(Request::TooLarge));
        }
        let room = (max_bytes - buf.len()).min(chunk.len());
        let Some(into) = chunk.get_mut(..room) else { return Ok(Some(Request::TooLarge)) };
        let read = stream.read(into)?;
        if read == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(into.get(..read).unwrap_or_default());
    }
}

fn classify(method: Option<&str>, path: Option<&str>) -> Request {
    let path = path.unwrap_or_default();
    // A query string (`?name[]=…`, which Prometheus may send) does not change the answer.
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    if path != METRICS_PATH {
        return Request::NotFound;
    }
    match method {
        Some("GET") => Request::Metrics { head: false },
        Some("HEAD") => Request::Metrics { head: true },
        _ => Request::MethodNotAllowed,
    }
}

fn serve(stream: &mut TcpStream, limits: &ExporterLimits, render: &Render) -> io::Result<()> {
    stream.set_read_timeout(Some(limits.read_timeout))?;
    stream.set_write_timeout(Some(limits.write_timeout))?;
    let Some(request) = read_request(stream, limits.max_request_bytes)? else { return Ok(()) };
    let text = "text/plain; charset=utf-8";
    match request {
        Request::Metrics { head } => match render() {
            Ok(body) => write_answer(stream, "200 OK", super::CONTENT_TYPE, body.as_bytes(), head),
            Err(why) => {
                warn!("metrics endpoint: scrape failed: {why}");
                write_answer(stream, "500 Internal Server Error", text, format!("{why}\n").as_bytes(), head)
            }
        },
        Request::NotFound => write_answer(stream, "404 Not Found", text, format!("only {METRICS_PATH} is served\n").as_bytes(), false),
        Request::MethodNotAllowed => write_answer(stream, "405 Method Not Allowed", text, b"GET or HEAD\n", false),
        Request::TooLarge => write_answer(stream, "431 Request Header Fields Too Large", text, b"request too large\n", false),
        Request::Malformed => write_answer(stream, "400 Bad Request", text, b"malformed request\n", false),
    }
}

fn write_answer(stream: &mut impl Write, status: &str, content_type: &str, body: &[u8], head: bool) -> io::Result<()> {
    let header = format!("HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(header.as_bytes())?;
    if !head {
        stream.write_all(body)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_bytes(bytes: &[u8], max: usize) -> Option<Request> {
        read_request(&mut &bytes[..], max).unwrap()
    }

    #[test]
    fn requests_are_classified_and_bounded() {
        assert_eq!(classify_bytes(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 8192), Some(Request::Metrics { head: false }));
        assert_eq!(classify_bytes(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n", 8192), Some(Request::Metrics { head: true }));
        assert_eq!(classify_bytes(b"GET / HTTP/1.1\r\n\r\n", 8192), Some(Request::NotFound));
        assert_eq!(classify_bytes(b"POST /metrics HTTP/1.1\r\n\r\n", 8192), Some(Request::MethodNotAllowed));
        assert_eq!(classify_bytes(b"\x16\x03\x01garbage\r\n\r\n", 8192), Some(Request::Malformed));
        assert_eq!(classify_bytes(b"GET /metrics HTTP/1.1\r\nHost: x\r\n", 8192), None, "closed mid-request");
        let long = format!("GET /metrics HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(10_000));
        assert_eq!(classify_bytes(long.as_bytes(), 8192), Some(Request::TooLarge));
        let many: String = (0..MAX_REQUEST_HEADERS + 1).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(classify_bytes(format!("GET /metrics HTTP/1.1\r\n{many}\r\n").as_bytes(), 8192), Some(Request::TooLarge));
    }

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn serves_the_metrics_path_only_and_refuses_connections_beyond_the_limit() {
        let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let hooks = std::sync::Mutex::new((entered_tx, release_rx));
        let slow = Arc::new(AtomicBool::new(false));
        let slow_in_render = slow.clone();
        let render: Render = Arc::new(move || {
            if slow_in_render.swap(false, Ordering::SeqCst) {
                let hooks = hooks.lock().unwrap();
                let _ = hooks.0.send(());
                let _ = hooks.1.recv();
            }
            Ok("up 1\n".to_owned())
        });
        let limits = ExporterLimits { max_connections: 1, ..ExporterLimits::default() };
        let exporter = Exporter::start("127.0.0.1:0".parse().unwrap(), limits, render).unwrap();
        let addr = exporter.local_addr();
        let ok = get(addr, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("\r\n\r\nup 1\n") && ok.contains("Content-Length: 5\r\n"), "{ok}");
        assert!(get(addr, "GET /other HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(get(addr, "DELETE /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
        // One scrape held inside render: the next connection is refused at once.
        slow.store(true, Ordering::SeqCst);
        let held = std::thread::spawn(move || get(addr, "GET /metrics HTTP/1.1\r\n\r\n"));
        entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(get(addr, "GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 503 "));
        release_tx.send(()).unwrap();
        assert!(held.join().unwrap().starts_with("HTTP/1.1 200 OK"));
        drop(exporter);
        assert!(TcpStream::connect(addr).is_err(), "stopped: nothing listens");
    }
}
