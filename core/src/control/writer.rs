//! The metadata writer: a thread of its own that writes `topics.json` and
//! `subscriptionGroup.json` for the control thread, so that a slow write and fsync never stall
//! the control thread, and changes that arrive while a write is in flight are coalesced into
//! the next one.
//!
//! Ownership: one per broker, owned by the [`ControlPlane`](super::ControlPlane). Protocol:
//! the control thread hands over at most one job at a time (the whole file bodies it
//! serialized, [`MetaWriter::submit`]); the writer writes each atomically (temp file, fsync,
//! rename, fsync of the directory: [`crate::meta::write_atomic`]) and answers with the files
//! it could not write ([`MetaWriter::completions`]). Both channels hold one message: the
//! control thread submits only after the previous job's answer arrived.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::error;

/// A metadata file the writer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaFile {
    Topics,
    Groups,
}

/// One write: the whole body of each changed file.
pub type WriteJob = Vec<(MetaFile, PathBuf, Vec<u8>)>;

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
    pub fn spawn(files_written: Arc<AtomicU64>) -> std::io::Result<MetaWriter> {
        let (jobs, job_rx) = async_channel::bounded::<WriteJob>(1);
        let (done_tx, completions) = async_channel::bounded::<WriteOutcome>(1);
        let thread = std::thread::Builder::new().name("meta-writer".into()).spawn(move || {
            while let Ok(job) = job_rx.recv_blocking() {
                let failed = write_job(job, &files_written);
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

/// Writes each file of `job` atomically; returns the ones that failed (logged).
pub fn write_job(job: WriteJob, files_written: &AtomicU64) -> WriteOutcome {
    let mut failed = Vec::new();
    for (file, path, bytes) in job {
        match crate::meta::write_atomic(&path, &bytes) {
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
