//! The metadata writer: a thread of its own that writes `topics.json` and
//! `subscriptionGroup.json` for the control thread, so that a slow write and fsync never stall
//! the control thread, and changes that arrive while a write is in flight are coalesced into
//! the next one.
//!
//! Ownership: one per broker, owned by the [`ControlPlane`](super::ControlPlane). Protocol:
//! the control thread hands over at most one job at a time ([`MetaWriter::submit`]): per
//! changed file either journal records to append (the changed entries; one fdatasync) or, on
//! compaction, the whole body, which the writer writes atomically (temp file, fsync, rename,
//! fsync of the directory: [`crate::meta::write_atomic`]) and then resets the file's journal
//! (`meta/journal.rs` argues the crash safety of that order). It answers with the files it
//! could not write ([`MetaWriter::completions`]). Both channels hold one message: the control
//! thread submits only after the previous job's answer arrived. The writer decides nothing:
//! what to write, and when to compact, is the control thread's.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::{error, warn};

use crate::meta::journal;

/// A metadata file the writer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaFile {
    Topics,
    Groups,
}

/// What to write to one metadata file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileWrite {
    /// Journal records to append to `<file>.journal` (`meta/journal.rs`), made durable by one
    /// fdatasync.
    Append(Vec<u8>),
    /// The whole file body (compaction): written atomically, then the journal is reset to it.
    Whole(Vec<u8>),
}

/// One write: each changed file's path and what to write to it.
pub type WriteJob = Vec<(MetaFile, PathBuf, FileWrite)>;

/// Environment variable of the tests' fault seam: the number of metadata file writes that fail
/// (with an injected EIO, before touching the file) from the broker's start. Never set in
/// production; logged at WARN when set.
pub const WRITE_FAILURES_ENV: &str = "FERROMQ_TEST_METADATA_WRITE_FAILURES";

/// How many of the next file writes fail (the fault seam of the tests; 0 in production).
#[derive(Debug, Default, Clone)]
pub struct WriteFaults(Arc<AtomicU64>);

impl WriteFaults {
    /// The count of [`WRITE_FAILURES_ENV`], if set.
    pub fn from_env() -> WriteFaults {
        let faults = WriteFaults::default();
        if let Some(count) = std::env::var(WRITE_FAILURES_ENV).ok().and_then(|v| v.parse::<u64>().ok()) {
            warn!(count, "{WRITE_FAILURES_ENV} is set: metadata file writes fail on purpose (tests only)");
            faults.fail_next(count);
        }
        faults
    }

    /// Makes the next `count` file writes fail.
    pub fn fail_next(&self, count: u64) {
        self.0.store(count, Ordering::Relaxed);
    }

    /// Takes one injected failure, if any is left.
    fn take(&self) -> bool {
        self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| left.checked_sub(1)).is_ok()
    }
}

/// The files of a job that could not be written (empty: all written and durable).
pub type WriteOutcome = Vec<MetaFile>;

/// The writer thread and its two channels.
pub struct MetaWriter {
    jobs: async_channel::Sender<WriteJob>,
    completions: async_channel::Receiver<WriteOutcome>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MetaWriter {
    /// Starts the thread. `files_written` counts every file it wrote successfully.
    pub fn spawn(files_written: Arc<AtomicU64>, faults: WriteFaults) -> std::io::Result<MetaWriter> {
        let (jobs, job_rx) = async_channel::bounded::<WriteJob>(1);
        let (done_tx, completions) = async_channel::bounded::<WriteOutcome>(1);
        let thread = std::thread::Builder::new().name("meta-writer".into()).spawn(move || {
            while let Ok(job) = job_rx.recv_blocking() {
                let failed = write_job(job, &files_written, &faults);
                if done_tx.send_blocking(failed).is_err() {
                    break;
                }
            }
        })?;
        Ok(MetaWriter { jobs, completions, thread: Some(thread) })
    }

    /// Hands a job over; `Err` gives it back when the writer is busy or gone (the caller
    /// submits only when idle, so that means gone: it writes the job itself).
    pub fn submit(&self, job: WriteJob) -> Result<(), WriteJob> {
        self.jobs.try_send(job).map_err(|e| e.into_inner())
    }

    /// Where the outcome of each submitted job arrives.
    pub fn completions(&self) -> async_channel::Receiver<WriteOutcome> {
        self.completions.clone()
    }

    /// Stops the thread after the job it holds, if any (its outcome stays in the channel).
    pub fn stop(&mut self) {
        self.jobs.close();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            error!("the metadata writer thread panicked");
        }
    }
}

impl Drop for MetaWriter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes each file of `job`; returns the ones that failed (logged). A failed file's
/// changes are the control thread's to retry (as a whole-file write: see
/// `ControlPlane::write_finished`).
pub fn write_job(job: WriteJob, files_written: &AtomicU64, faults: &WriteFaults) -> WriteOutcome {
    let mut failed = Vec::new();
    for (file, path, write) in job {
        let result = if faults.take() { Err(std::io::Error::other("injected failure (FERROMQ_TEST_METADATA_WRITE_FAILURES)")) } else { write_file(&path, &write) };
        match result {
            Ok(()) => {
                files_written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                error!("cannot persist {}: {e}", path.display());
                failed.push(file);
            }
        }
    }
    failed
}

/// One file's write. `Whole`: the body is renamed into place before the journal is reset, so
/// that a crash in between leaves a complete new file and a stale journal, which the next
/// start recognises by its base record and ignores (`meta/journal.rs`).
fn write_file(path: &std::path::Path, write: &FileWrite) -> std::io::Result<()> {
    let journal = journal::journal_path(path);
    match write {
        FileWrite::Append(records) => journal::append_journal(&journal, records),
        FileWrite::Whole(body) => {
            crate::meta::write_atomic(path, body).map_err(std::io::Error::other)?;
            journal::reset_journal(&journal, journal::body_crc(body))
        }
    }
}
