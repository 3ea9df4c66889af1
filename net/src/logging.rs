//! Process-wide logging set-up shared by the binaries. Level from `FERROMQ_LOG` (or `RUST_LOG`):
//! `error | warn | info | debug | trace`, default `info`. Where the lines go and how they look
//! ([`LogOptions`]): human-readable text on stderr by default; `--log-format json` (or
//! `FERROMQ_LOG_FORMAT=json`) writes one JSON object per line; `--log-dir DIR` (or
//! `FERROMQ_LOG_DIR`) writes to daily files `DIR/<process>.YYYY-MM-DD.log` (UTC dates) with
//! `DIR/<process>.log` a link to the current one, keeping at most `--log-max-files` of them
//! (or `FERROMQ_LOG_MAX_FILES`, default [`DEFAULT_MAX_LOG_FILES`]). With a directory, stderr
//! keeps only the boot lines ([`BOOT_TARGET`]), as text, so that whatever waits for
//! `boot success` on stderr (a start script, the test harness) works unchanged.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tracing::level_filters::LevelFilter;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::Layer;
use tracing_subscriber::Registry;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Filter, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The target of the "boot success" lines: with a log directory they still go to stderr too.
pub const BOOT_TARGET: &str = "ferromq::boot";

/// Daily files kept in a log directory, today's included, when no limit is given: two weeks.
/// Older files of the same process are deleted at start and at each daily roll.
pub const DEFAULT_MAX_LOG_FILES: usize = 14;

/// Lines queued for the log-writing thread. Past this (a disk slower than the logging) lines
/// are dropped rather than blocking the threads that log (shard threads among them); the
/// count dropped is printed on stderr at exit.
pub const LOG_QUEUE_LINES: usize = 16_384;

/// How each line is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-01-02T03:04:05.678Z  INFO message key=value` (no colours in files).
    #[default]
    Text,
    /// One object per line: `timestamp`, `level`, `fields` (`message` and the event's own
    /// fields) and `target`.
    Json,
}

/// Where and how a binary logs, from its flags and the environment ([`LogOptions::resolve`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Daily files under this directory; stderr when `None`.
    pub dir: Option<PathBuf>,
    pub format: LogFormat,
    /// Files kept in `dir`, today's included (at least 1).
    pub max_files: usize,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { dir: None, format: LogFormat::Text, max_files: DEFAULT_MAX_LOG_FILES }
    }
}

/// The logging flags as given on a command line (`None`: not given): one definition for
/// `mqbroker` and `mqnamesrv`, which flatten it into their arguments.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct LogFlags {
    /// Log to daily files DIR/<process>.YYYY-MM-DD.log (DIR/<process>.log links to today's)
    /// instead of stderr; created if absent (env FERROMQ_LOG_DIR).
    #[arg(long = "log-dir", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// `text` (default) or `json`, one object per line (env FERROMQ_LOG_FORMAT).
    #[arg(long = "log-format", value_name = "text|json")]
    pub format: Option<String>,
    /// Daily log files kept in the log directory, today's included (default 14; env
    /// FERROMQ_LOG_MAX_FILES).
    #[arg(long = "log-max-files", value_name = "N")]
    pub max_files: Option<String>,
}

impl LogOptions {
    /// Each flag wins over its environment variable (`FERROMQ_LOG_DIR`, `FERROMQ_LOG_FORMAT`,
    /// `FERROMQ_LOG_MAX_FILES`); an empty variable counts as unset. A refused value is named
    /// with the flag or variable it came from.
    pub fn resolve(flags: LogFlags, env: impl Fn(&str) -> Option<OsString>) -> Result<LogOptions, String> {
        let env = |name: &str| env(name).filter(|value| !value.is_empty());
        let text = |flag: &str, given: Option<String>, var: &str| -> Result<Option<(String, String)>, String> {
            match given {
                Some(value) => Ok(Some((flag.to_owned(), value))),
                None => match env(var) {
                    Some(value) => value.into_string().map(|v| Some((var.to_owned(), v))).map_err(|v| format!("{var} {v:?}: not UTF-8")),
                    None => Ok(None),
                },
            }
        };
        let dir = flags.dir.or_else(|| env("FERROMQ_LOG_DIR").map(PathBuf::from));
        let format = match text("--log-format", flags.format, "FERROMQ_LOG_FORMAT")? {
            None => LogFormat::Text,
            Some((from, value)) => match value.trim() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(format!("{from} {value:?}: expected text or json")),
            },
        };
        let max_files = match text("--log-max-files", flags.max_files, "FERROMQ_LOG_MAX_FILES")? {
            None => DEFAULT_MAX_LOG_FILES,
            Some((from, value)) => match value.trim().parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(format!("{from} {value:?}: expected a number of files, at least 1")),
            },
        };
        Ok(LogOptions { dir, format, max_files })
    }
}

/// Keeps the log-writing thread for the life of the process: dropping it (at the end of
/// `main`) writes out the lines still queued, so nothing logged before exit is lost.
#[must_use = "logs queued for the file are lost when the guard is dropped early"]
pub struct LogGuard {
    /// The current log file's link (`DIR/<process>.log`), when logging to a directory.
    pub file: Option<PathBuf>,
    writer: Option<(WorkerGuard, ErrorCounter)>,
    process: String,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some((worker, dropped)) = self.writer.take() {
            drop(worker);
            let dropped = dropped.dropped_lines();
            if dropped > 0 {
                eprintln!("{}: {dropped} log lines dropped (the log writer fell {LOG_QUEUE_LINES} lines behind)", self.process);
            }
        }
    }
}

/// Installs the global subscriber for the binary `process` (`broker`, `namesrv`: the log files'
/// name). A log directory is created if absent; one that cannot be created or written is an
/// error naming it (the binary prints it and exits).
pub fn init_process(process: &str, options: &LogOptions) -> Result<LogGuard, String> {
    let level = level();
    let ansi = stderr_is_terminal();
    let mut guard = LogGuard { file: None, writer: None, process: process.to_owned() };
    let layers: Vec<BoxedLayer> = match &options.dir {
        None => vec![format_layer(options.format, std::io::stderr, ansi, level)],
        Some(dir) => {
            let (appender, link) = open_log_dir(dir, process, options.max_files)?;
            let (writer, worker) = NonBlockingBuilder::default()
                .buffered_lines_limit(LOG_QUEUE_LINES)
                .lossy(true)
                .thread_name("ferromq-log")
                .finish(appender);
            let dropped = writer.error_counter();
            guard.file = Some(link);
            guard.writer = Some((worker, dropped));
            let boot_only = tracing_subscriber::filter::filter_fn(|meta| meta.target() == BOOT_TARGET);
            vec![format_layer(options.format, writer, false, level), format_layer(LogFormat::Text, std::io::stderr, ansi, boot_only)]
        }
    };
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(guard)
}

/// Text on stderr at the `FERROMQ_LOG` level, for programs without logging flags (the
/// benchmark driver, in-process tests). Later calls do nothing.
pub fn init() {
    let _ = tracing_subscriber::registry().with(format_layer(LogFormat::Text, std::io::stderr, stderr_is_terminal(), level())).try_init();
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn format_layer<W, F>(format: LogFormat, writer: W, ansi: bool, filter: F) -> BoxedLayer
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    F: Filter<Registry> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text => layer.with_ansi(ansi).with_target(false).with_filter(filter).boxed(),
        // Not flattened: an event's own fields may be named `level` (the delay level) or
        // `target`, which at the top level would repeat a key of the line.
        LogFormat::Json => layer.json().with_ansi(false).with_filter(filter).boxed(),
    }
}

fn level() -> LevelFilter {
    ["FERROMQ_LOG", "RUST_LOG"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .and_then(|text| text.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO)
}

/// Colours only for a person at a terminal: logs captured to files stay plain text.
fn stderr_is_terminal() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none()
}

/// Creates `dir` if absent and opens today's file in it (which prunes the files past
/// `max_files`). Returns the appender and the path of the `<process>.log` link. A regular
/// file already named `<process>.log` (say, stderr redirected there by an older start script)
/// is refused rather than replaced by the link: the appender would delete it.
fn open_log_dir(dir: &Path, process: &str, max_files: usize) -> Result<(RollingFileAppender, PathBuf), String> {
    let refuse = |what: String| format!("log directory {}: {what}", dir.display());
    std::fs::create_dir_all(dir).map_err(|e| refuse(format!("cannot create it: {e}")))?;
    // Absolute, so that the link's target resolves from inside the directory.
    let absolute = std::fs::canonicalize(dir).map_err(|e| refuse(format!("cannot resolve it: {e}")))?;
    let link_name = format!("{process}.log");
    let link = absolute.join(&link_name);
    if let Ok(meta) = std::fs::symlink_metadata(&link)
        && !meta.file_type().is_symlink()
    {
        return Err(refuse(format!("{link_name} exists and is not the link to the current log file; move it away")));
    }
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix(process)
        .filename_suffix("log")
        .latest_symlink(link_name)
        .max_log_files(max_files)
        .build(&absolute)
        .map_err(|e| refuse(format!("cannot write in it: {e}")))?;
    Ok((appender, link))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(flags: LogFlags, env: &[(&str, &str)]) -> Result<LogOptions, String> {
        LogOptions::resolve(flags, |name| env.iter().find(|(k, _)| *k == name).map(|(_, v)| OsString::from(v)))
    }

    fn flags(dir: Option<&str>, format: Option<&str>, max_files: Option<&str>) -> LogFlags {
        LogFlags { dir: dir.map(PathBuf::from), format: format.map(str::to_owned), max_files: max_files.map(str::to_owned) }
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferromq-logging-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn flags_win_over_the_environment_and_bad_values_are_named() {
        assert_eq!(resolve(LogFlags::default(), &[]).unwrap(), LogOptions::default());
        let env = [("FERROMQ_LOG_DIR", "/env/logs"), ("FERROMQ_LOG_FORMAT", "json"), ("FERROMQ_LOG_MAX_FILES", "3")];
        let from_env = resolve(LogFlags::default(), &env).unwrap();
        assert_eq!(from_env, LogOptions { dir: Some("/env/logs".into()), format: LogFormat::Json, max_files: 3 });
        let from_flags = resolve(flags(Some("/flag/logs"), Some("text"), Some("30")), &env).unwrap();
        assert_eq!(from_flags, LogOptions { dir: Some("/flag/logs".into()), format: LogFormat::Text, max_files: 30 });
        // An empty variable is unset (FERROMQ_LOG_DIR= turns a unit's directory off).
        let empty = resolve(LogFlags::default(), &[("FERROMQ_LOG_DIR", ""), ("FERROMQ_LOG_FORMAT", "")]).unwrap();
        assert_eq!(empty, LogOptions::default());

        for (given, env, named) in [
            (flags(None, Some("yaml"), None), &[][..], "--log-format \"yaml\": expected text or json"),
            (flags(None, None, None), &[("FERROMQ_LOG_FORMAT", "JSON ")][..], "FERROMQ_LOG_FORMAT \"JSON \": expected"),
            (flags(None, None, Some("0")), &[][..], "--log-max-files \"0\": expected a number of files, at least 1"),
            (flags(None, None, None), &[("FERROMQ_LOG_MAX_FILES", "-1")][..], "FERROMQ_LOG_MAX_FILES \"-1\": expected"),
            (flags(None, None, Some("ten")), &[][..], "--log-max-files \"ten\""),
        ] {
            let err = resolve(given, env).unwrap_err();
            assert!(err.starts_with(named), "{err}");
        }
    }

    #[test]
    fn a_directory_that_cannot_be_created_is_refused_naming_it() {
        // Under a regular file: refused even for root, which ignores permission bits.
        let base = temp_dir("refused");
        let file = base.join("not-a-dir");
        std::fs::write(&file, b"x").unwrap();
        let dir = file.join("logs");
        let err = open_log_dir(&dir, "broker", 3).expect_err("refused");
        assert!(err.starts_with(&format!("log directory {}: cannot create it: ", dir.display())), "{err}");
        assert!(!err.contains('\n'), "one line: {err}");
        // And through the public entry, before any subscriber is installed.
        let options = LogOptions { dir: Some(dir.clone()), ..LogOptions::default() };
        let err = init_process("broker", &options).err().expect("refused");
        assert!(err.contains(&dir.display().to_string()), "{err}");
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn a_regular_file_in_the_links_place_is_refused_and_kept() {
        let dir = temp_dir("regular");
        std::fs::write(dir.join("namesrv.log"), b"an older stderr capture\n").unwrap();
        let err = open_log_dir(&dir, "namesrv", 3).expect_err("refused");
        assert!(err.contains("namesrv.log exists and is not the link"), "{err}");
        assert_eq!(std::fs::read(dir.join("namesrv.log")).unwrap(), b"an older stderr capture\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_directory_is_created_linked_and_pruned_to_max_files() {
        let base = temp_dir("pruned");
        let dir = base.join("a/b");
        std::fs::create_dir_all(&dir).unwrap();
        for day in 1..=5 {
            std::fs::write(dir.join(format!("broker.2020-01-0{day}.log")), b"old\n").unwrap();
        }
        std::fs::write(dir.join("namesrv.2020-01-01.log"), b"another process\n").unwrap();
        std::fs::write(dir.join("notes.txt"), b"not a log\n").unwrap();
        // Relative, as a flag usually is: the link must still resolve.
        let cwd = std::env::current_dir().unwrap();
        let relative = pathdiff(&dir, &cwd);
        let (mut appender, link) = open_log_dir(&relative, "broker", 3).unwrap();
        std::io::Write::write_all(&mut appender, b"today\n").unwrap();
        std::io::Write::flush(&mut appender).unwrap();
        assert_eq!(link, std::fs::canonicalize(&dir).unwrap().join("broker.log"));
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&link).unwrap(), b"today\n", "the link reads today's file");

        let mut broker_files: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("broker.") && name != "broker.log")
            .collect();
        broker_files.sort();
        assert_eq!(broker_files.len(), 3, "today's and the two newest: {broker_files:?}");
        assert!(dir.join("namesrv.2020-01-01.log").exists() && dir.join("notes.txt").exists());
        drop(appender);
        std::fs::remove_dir_all(&base).unwrap();
    }

    /// `path` relative to `base` when below it, else `path` itself.
    fn pathdiff(path: &Path, base: &Path) -> PathBuf {
        let mut up = PathBuf::new();
        let mut base = base.to_path_buf();
        loop {
            if let Ok(rest) = path.strip_prefix(&base) {
                return up.join(rest);
            }
            if !base.pop() {
                return path.to_path_buf();
            }
            up.push("..");
        }
    }
}
