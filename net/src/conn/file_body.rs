//! File bodies: how the writer sends a response whose body lies in files (log ranges of a
//! pull), either copied into memory and written with `writev`, or with one `sendfile(2)` per
//! segment.
//!
//! Owns no state. Nothing here blocks the calling (shard) thread on the disk: data is read on
//! the thread only when the page cache holds it (see [`cold`](super::cold)); the rest is read,
//! or warmed for `sendfile`, in the blocking pool.

use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;
use compio::BufResult;
use compio::io::AsyncWriteExt;
use compio::net::TcpStream;

use super::FileSegment;
use super::blocks;
use super::cold::{self, NoWait};

/// File bodies whose segments average at most this many bytes are copied (`pread` into one
/// buffer, then sent with the frame head in one `writev`, coalesced with the frames queued
/// behind them) instead of sent with one `sendfile` per segment: on loopback every `sendfile`
/// call costs a few µs whatever its size, so a pull of 32 interleaved ~1.2 KB records spent
/// most of its time in syscalls. Larger segments keep `sendfile` (no copy through user space).
pub const COPY_MAX_MEAN_SEGMENT_BYTES: usize = 16 * 1024;
/// Bodies larger than this are always sent with `sendfile`: it bounds the buffer one copied
/// body takes in the writer.
pub const COPY_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Segments of one file are read with one `pread` of the span that covers them while that span
/// is at most this many times the bytes wanted (and at most [`COPY_MAX_SPAN_BYTES`]), the
/// wanted slices then copied out; otherwise each segment is read on its own.
const COPY_MAX_SPAN_FACTOR: u64 = 4;
const COPY_MAX_SPAN_BYTES: u64 = 1024 * 1024;
/// Scratch buffer of one warm-up read in the pool (the bytes read are thrown away: reading
/// only puts them in the page cache).
const WARM_CHUNK_BYTES: usize = 256 * 1024;

/// Whether a file body goes out copied rather than with one `sendfile` per segment.
pub(super) fn worth_copying(segments: &[FileSegment]) -> bool {
    let body: usize = segments.iter().map(|s| s.len as usize).sum();
    !segments.is_empty() && body <= COPY_MAX_BODY_BYTES && body <= COPY_MAX_MEAN_SEGMENT_BYTES.saturating_mul(segments.len())
}

/// A copied body, or where reading it from the page cache stopped.
pub(super) enum Copied {
    Ready(Bytes),
    /// Part of it is not cached: finish it with [`finish_cold`].
    Cold(BodyReader),
}

/// Reads a body to copy from the page cache alone, on the calling thread.
pub(super) fn copy_resident(segments: Vec<FileSegment>) -> io::Result<Copied> {
    let mut reader = BodyReader::new(segments);
    Ok(match reader.advance(Mode::PageCacheOnly)? {
        Progress::Done => {
            cold::record_resident();
            Copied::Ready(reader.into_body())
        }
        Progress::Cold => Copied::Cold(reader),
    })
}

/// Reads the rest of a body whose data is partly cold in the blocking pool, under the
/// thread's cold-read limit.
pub(super) async fn finish_cold(mut reader: BodyReader, max_cold_reads: usize) -> io::Result<Bytes> {
    let bytes = reader.remaining_bytes();
    let reader = cold::in_pool(max_cold_reads, bytes, move || {
        reader.advance(Mode::Blocking)?;
        Ok(reader)
    })
    .await?;
    Ok(reader.into_body())
}

/// Copies a body: from the page cache on this thread, the rest in the pool.
pub(super) async fn copy(segments: Vec<FileSegment>, max_cold_reads: usize) -> io::Result<Bytes> {
    match copy_resident(segments)? {
        Copied::Ready(body) => Ok(body),
        Copied::Cold(reader) => finish_cold(reader, max_cold_reads).await,
    }
}

#[derive(Clone, Copy)]
enum Mode {
    /// Read only what the page cache holds; stop at the first run that is not all there.
    PageCacheOnly,
    /// Read everything, waiting for the disk (only ever in the blocking pool).
    Blocking,
}

enum Progress {
    Done,
    Cold,
}

/// File segments being read into one buffer, in order. Runs of segments of one file whose
/// covering span is small enough (see [`COPY_MAX_SPAN_FACTOR`]) are read together: on the
/// shard, through the thread's block cache ([`blocks`]) when they lie below their file's
/// settled end, else (and in the pool) with one `pread` of the span.
/// Moves between the shard (page-cache reads) and the pool (the cold rest), hence `Send`.
pub(super) struct BodyReader {
    segments: Vec<FileSegment>,
    /// Segments before `next` are in `body`, whose length only grows by whole segments.
    body: Vec<u8>,
    /// The whole body's length (the segments' sum).
    body_len: usize,
    next: usize,
}

std::thread_local! {
    /// Scratch for span reads, one per thread (shard or pool thread), kept across bodies: it
    /// grows to the largest span read (at most [`COPY_MAX_SPAN_BYTES`]) and is never zeroed
    /// again. A fresh zeroed scratch per body cost more than the reads themselves: three
    /// quarters of a catch-up consume's instructions were `memset` (callgrind, 2026-12-02).
    static SPAN_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl BodyReader {
    fn new(segments: Vec<FileSegment>) -> BodyReader {
        let body_len: usize = segments.iter().map(|s| s.len as usize).sum();
        // Not zeroed: every byte is appended by a copy. Zeroing each pull's body was 1 % of the
        // broker's CPU samples in a catch-up (perf, 2026-12-07; callgrind counts each byte of
        // its `rep stosb`, so it showed there as 40 % of the instructions).
        BodyReader { segments, body: Vec::with_capacity(body_len), body_len, next: 0 }
    }

    fn remaining_bytes(&self) -> u64 {
        self.body_len.saturating_sub(self.body.len()) as u64
    }

    fn into_body(self) -> Bytes {
        Bytes::from(self.body)
    }

    fn advance(&mut self, mode: Mode) -> io::Result<Progress> {
        let BodyReader { segments, body, next, .. } = self;
        while let Some(rest) = segments.get(*next..)
            && let Some(first) = rest.first()
        {
            // The longest run of following segments of the same file, in increasing order,
            // whose covering span stays within the bounds.
            let start = first.offset;
            let (mut end, mut wanted, mut run) = (first.offset + u64::from(first.len), u64::from(first.len), 1usize);
            for following in rest.iter().skip(1) {
                // A segment of another file (the pull crossed into the next log segment) or one
                // before the run's end starts a new run.
                if !Arc::ptr_eq(&following.file, &first.file) || following.offset < end {
                    break;
                }
                let following_end = following.offset + u64::from(following.len);
                let following_wanted = wanted + u64::from(following.len);
                let span_bytes = following_end.saturating_sub(start);
                if span_bytes > COPY_MAX_SPAN_BYTES || span_bytes > following_wanted.saturating_mul(COPY_MAX_SPAN_FACTOR) {
                    break;
                }
                (end, wanted, run) = (following_end, following_wanted, run + 1);
            }
            let read = rest.get(..run).unwrap_or_default();
            let filled = body.len();
            // A run of several segments (queues interleaved in the log) is taken from the block
            // cache: the other queues' pulls want the bytes between them. A segment alone (its
            // neighbours far, as between large records) is read alone: a block read for it
            // would read up to 64 KiB for a record of one.
            let cached = matches!(mode, Mode::PageCacheOnly) && read.len() > 1 && read.iter().all(blocks::cacheable);
            let complete = if cached {
                let mut complete = true;
                for segment in read {
                    if !blocks::copy(segment, body)? {
                        complete = false;
                        break;
                    }
                }
                complete
            } else if read.len() == 1 {
                body.resize(filled + first.len as usize, 0);
                read_range(&first.file, body.get_mut(filled..).unwrap_or_default(), start, mode)?
            } else {
                SPAN_SCRATCH.with_borrow_mut(|span| -> io::Result<bool> {
                    let span_len = (end - start) as usize;
                    if span.len() < span_len {
                        span.resize(span_len, 0);
                    }
                    let span = span.get_mut(..span_len).ok_or_else(short_body)?;
                    if !read_range(&first.file, span, start, mode)? {
                        return Ok(false);
                    }
                    for segment in read {
                        let from = (segment.offset - start) as usize;
                        body.extend_from_slice(span.get(from..from + segment.len as usize).ok_or_else(short_body)?);
                    }
                    Ok(true)
                })?
            };
            if !complete {
                // The run is read again whole, in the pool.
                body.truncate(filled);
                return Ok(Progress::Cold);
            }
            *next += run;
        }
        Ok(Progress::Done)
    }
}

/// Sends a file body over TLS: copied (in pieces of at most [`COPY_MAX_BODY_BYTES`], so a
/// large body never sits in memory whole; cold data read in the pool), encrypted, written.
pub(super) async fn send_tls(
    stream: &TcpStream,
    tls: &crate::tls::TlsState,
    head: Bytes,
    segments: &[FileSegment],
    max_cold_reads: usize,
) -> io::Result<()> {
    let mut head = Some(head);
    for piece in pieces(segments, COPY_MAX_BODY_BYTES) {
        let body = copy(piece, max_cold_reads).await?;
        match head.take() {
            Some(head) => tls.write_all(stream, &[head, body]).await?,
            None => tls.write_all(stream, std::slice::from_ref(&body)).await?,
        }
    }
    match head {
        Some(head) => tls.write_all(stream, std::slice::from_ref(&head)).await,
        None => Ok(()),
    }
}

/// `segments` cut into runs of at most `max` bytes (a longer segment split across runs).
fn pieces(segments: &[FileSegment], max: usize) -> Vec<Vec<FileSegment>> {
    let max = max.max(1);
    let (mut out, mut run, mut run_bytes) = (Vec::new(), Vec::new(), 0usize);
    for segment in segments {
        let (mut offset, mut left) = (segment.offset, segment.len as usize);
        while left > 0 {
            let take = left.min(max - run_bytes);
            run.push(FileSegment { file: segment.file.clone(), offset, len: take as u32, settled_end: segment.settled_end });
            (offset, left, run_bytes) = (offset + take as u64, left - take, run_bytes + take);
            if run_bytes == max {
                out.push(std::mem::take(&mut run));
                run_bytes = 0;
            }
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

fn short_body() -> io::Error {
    io::Error::other("file body segments do not add up to the body length")
}

/// Fills `into` from `file` at `position`. In [`Mode::PageCacheOnly`], returns `false` (with
/// `into` partly filled) as soon as a page is found not cached.
fn read_range(file: &std::fs::File, into: &mut [u8], position: u64, mode: Mode) -> io::Result<bool> {
    if let Mode::Blocking = mode {
        file.read_exact_at(into, position)?;
        return Ok(true);
    }
    let mut done = 0usize;
    while let Some(rest) = into.get_mut(done..)
        && !rest.is_empty()
    {
        let at = position + done as u64;
        match cold::pread_nowait(file, rest, at)? {
            NoWait::Read(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shorter than the range to read")),
            NoWait::Read(n) => done += n,
            NoWait::WouldBlock => return Ok(false),
            NoWait::Unsupported => {
                if !cold::resident(file, at, rest.len() as u64) {
                    return Ok(false);
                }
                file.read_exact_at(rest, at)?;
                return Ok(true);
            }
        }
    }
    Ok(true)
}

/// Writes a frame head, then each segment with `sendfile` from its file straight to the
/// socket, waiting for writability through the runtime whenever the socket buffer is full.
/// Segments not wholly in the page cache are first read in the blocking pool (one pool task
/// for the body, under the thread's cold-read limit), so that `sendfile` finds them cached.
/// Also what a replication master sends its log with (`repl/`), on a stream of its own.
pub async fn send(stream: &mut TcpStream, head: Bytes, segments: &[FileSegment], max_cold_reads: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let cold: Vec<FileSegment> = segments.iter().filter(|s| !cold::resident(&s.file, s.offset, u64::from(s.len))).cloned().collect();
    if cold.is_empty() {
        cold::record_resident();
    } else {
        let bytes = cold.iter().map(|s| u64::from(s.len)).sum();
        cold::in_pool(max_cold_reads, bytes, move || warm(&cold)).await?;
    }
    let BufResult(written, _) = stream.write_all(head).await;
    written?;
    let mut readiness = None;
    for segment in segments {
        let mut offset = segment.offset as libc::off_t;
        let mut remaining = segment.len as usize;
        while remaining > 0 {
            // SAFETY: both descriptors are open for the whole call (`stream` and the Arc'ed
            // file are owned here), and `offset` is a valid, exclusively borrowed off_t.
            let sent = unsafe { libc::sendfile(stream.as_raw_fd(), segment.file.as_raw_fd(), &mut offset, remaining) };
            if sent > 0 {
                remaining -= sent as usize;
                continue;
            }
            if sent == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shorter than the range to send"));
            }
            let error = io::Error::last_os_error();
            match error.kind() {
                io::ErrorKind::WouldBlock => {
                    if readiness.is_none() {
                        readiness = Some(stream.to_poll_fd()?);
                    }
                    if let Some(poll) = &readiness {
                        poll.write_ready().await?;
                    }
                }
                io::ErrorKind::Interrupted => {}
                _ => return Err(error),
            }
        }
    }
    Ok(())
}

/// Reads `segments` (in the pool) so that they are in the page cache; stops quietly at the end
/// of a file (the `sendfile` that follows reports it).
fn warm(segments: &[FileSegment]) -> io::Result<()> {
    let largest = segments.iter().map(|s| s.len as usize).max().unwrap_or(0);
    let mut scratch = vec![0u8; largest.min(WARM_CHUNK_BYTES)];
    for segment in segments {
        let end = segment.offset + u64::from(segment.len);
        let mut at = segment.offset;
        while at < end {
            let want = ((end - at) as usize).min(scratch.len());
            let into = scratch.get_mut(..want).unwrap_or_default();
            match segment.file.read_at(into, at) {
                Ok(0) => break,
                Ok(n) => at += n as u64,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
