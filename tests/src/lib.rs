//! Harness for FerroMQ's end-to-end tests: start our binaries as real processes on loopback
//! ports, read what they log, and play brokers or clients over the real wire protocol.
//!
//! Every process started here is killed when its handle drops, so a failing test leaves
//! nothing running.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::client::Client;
use ferromq_net::codes::request_code;

/// How long a process may take to say it is serving.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace binaries the end-to-end tests start: `mqbroker` and `mqadmin` (package
/// ferromq-core), `mqnamesrv` (ferromq-namesrv) and `ferromq-bench` (ferromq-bench). `cargo test` builds a
/// package's binaries only for that package's own integration tests, and this package has none,
/// so [`binary`] builds them.
const WORKSPACE_BINARIES: [&str; 4] = ["mqbroker", "mqadmin", "mqnamesrv", "ferromq-bench"];

/// The path of a workspace binary, built in this test run's profile.
///
/// The first call in a test process runs one `cargo build` of every binary in
/// [`WORKSPACE_BINARIES`] from the workspace root and takes each path from cargo's artifact
/// messages; later calls reuse the answer. The build runs even when the files exist, so a binary
/// left by an older checkout is rebuilt; it takes a second or two when all is up to date. Cargo's
/// build lock serialises test processes that build at once, and cargo puts a binary in place only
/// once it is linked, so no test starts a half-written one.
///
/// `FERROMQ_BIN_DIR` set: the binaries are taken from that folder instead, and nothing is built
/// (`tests/ktls-vm/run.sh` runs the tests in a guest without cargo).
pub fn binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("FERROMQ_BIN_DIR") {
        return Path::new(&dir).join(name);
    }
    static BUILT: OnceLock<Result<HashMap<String, PathBuf>, String>> = OnceLock::new();
    let built = BUILT.get_or_init(build_workspace_binaries).as_ref().unwrap_or_else(|e| panic!("{e}"));
    match built.get(name) {
        Some(path) => path.clone(),
        None => panic!("{name} is not a binary the end-to-end tests know: add it to WORKSPACE_BINARIES"),
    }
}

/// `cargo build --workspace --profile P --test SELF --bin …` for the binaries, where P and SELF
/// are the profile and the test target of this test executable.
///
/// Why each part: `--workspace` because `--bin` only sees the selected packages' binaries; the
/// same profile because `cargo test --release` must start release binaries; `--test SELF` (already
/// built, so free) because building a test turns on dev-dependencies, and with them the features
/// they enable in shared crates: without it the binaries' dependencies would resolve to other
/// features than those `cargo test --workspace` just compiled, and the first run would compile
/// the broker and half its dependency tree a second time. `CARGO` is the cargo that runs this
/// test, and `CARGO_TARGET_DIR` and the workspace's cargo config apply to both alike.
fn build_workspace_binaries() -> Result<HashMap<String, PathBuf>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("test executable path: {e}"))?;
    let (profile, test) = profile_and_test_target(&exe).ok_or_else(|| {
        format!("{} is not where cargo puts tests (<target>/<profile>/deps/<test>-<hash>)", exe.display())
    })?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().ok_or("tests/ has no parent folder")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // Without the variables cargo set for this test process (CARGO_MANIFEST_DIR, CARGO_PKG_NAME,
    // …): build scripts that declare them with `rerun-if-env-changed` (ring's does) would
    // otherwise see them changed from the `cargo test` that built this test and rebuild, with
    // everything above them, at every switch between the two (16 minutes on 2 cores).
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && (name.starts_with("CARGO_PKG_")
                || matches!(
                    name,
                    "CARGO_MANIFEST_DIR" | "CARGO_MANIFEST_PATH" | "CARGO_MANIFEST_LINKS" | "CARGO_CRATE_NAME" | "CARGO_PRIMARY_PACKAGE" | "CARGO_TARGET_TMPDIR"
                ))
        {
            command.env_remove(name);
        }
    }
    command.current_dir(workspace).args(["build", "--workspace", "--message-format=json-render-diagnostics"]);
    command.args(["--profile", &profile, "--test", &test]);
    for bin in WORKSPACE_BINARIES {
        command.args(["--bin", bin]);
    }
    // Progress and compiler errors go to our stderr; the JSON messages come to us.
    let shown = format!("{command:?}");
    let output = command.stderr(Stdio::inherit()).output().map_err(|e| format!("{shown}: {e}"))?;
    if !output.status.success() {
        return Err(format!("{shown} failed ({}): see its errors above", output.status));
    }
    let mut built = HashMap::new();
    for line in output.stdout.split(|&b| b == b'\n') {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
        if message["reason"] != "compiler-artifact" || !message["target"]["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin")) {
            continue;
        }
        if let (Some(name), Some(executable)) = (message["target"]["name"].as_str(), message["executable"].as_str()) {
            built.insert(name.to_owned(), PathBuf::from(executable));
        }
    }
    match WORKSPACE_BINARIES.iter().find(|bin| !built.contains_key(**bin)) {
        Some(missing) => Err(format!("{shown} reported no executable for {missing}")),
        None => Ok(built),
    }
}

/// The cargo profile and test target of a test executable, from where cargo puts it:
/// `<target>/<profile folder>/deps/<test>-<hash>`. The folder `debug` holds the dev profile; every
/// other folder is named after its profile (`release`, or a custom one).
fn profile_and_test_target(exe: &Path) -> Option<(String, String)> {
    let deps = exe.parent()?;
    let folder = deps.parent()?.file_name()?.to_str()?;
    let (test, hash) = exe.file_name()?.to_str()?.rsplit_once('-')?;
    if deps.file_name()? != "deps" || hash.is_empty() || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let profile = if folder == "debug" { "dev" } else { folder };
    Some((profile.to_owned(), test.to_owned()))
}

/// A running server process and everything it has written to stderr so far.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    /// The I/O backend the process logged at start (`io_uring` or `epoll`).
    pub backend: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `command` and waits until it logs the line containing `ready_marker`, taking the
    /// listen address from that line's `local_addr=` field and the backend from `backend=`.
    pub fn start(mut command: Command, ready_marker: &str) -> Result<ServerProcess, String> {
        command.stdout(Stdio::null()).stderr(Stdio::piped()).stdin(Stdio::null());
        command.env("FERROMQ_LOG", "info").env("NO_COLOR", "1");
        // Readiness and `log()` read stderr: a log directory or format exported in the
        // developer's shell must not reach the child unless the test itself sets it.
        for name in ["FERROMQ_LOG_DIR", "FERROMQ_LOG_FORMAT", "FERROMQ_LOG_MAX_FILES"] {
            if !command.get_envs().any(|(key, _)| key == name) {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().map_err(|e| format!("spawn failed: {e}"))?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let marker = ready_marker.to_owned();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let line = strip_ansi(&line);
                // Into the log first: a test that reads `log()` right after the start returns
                // must find the ready line there.
                sink.lock().unwrap().push(line.clone());
                if line.contains(&marker) {
                    let _ = ready_tx.send(line);
                }
            }
        });
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(line) = ready_rx.recv_timeout(Duration::from_millis(50)) {
                let addr = field(&line, "local_addr").and_then(|a| a.parse().ok()).ok_or_else(|| format!("no local_addr in {line:?}"))?;
                let backend = field(&line, "backend").unwrap_or_default();
                return Ok(ServerProcess { child, addr, backend, log });
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!("exited with {status} before serving; log:\n{}", log.lock().unwrap().join("\n")));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("not ready after {START_TIMEOUT:?}; log:\n{}", log.lock().unwrap().join("\n")));
            }
        }
    }

    /// The process id (e.g. to read its memory from /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        self.child.wait().expect("wait for the child")
    }

    /// Sends SIGKILL and waits.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn field(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let value: String = line[start..].chars().take_while(|c| !c.is_whitespace()).collect();
    Some(value.trim_matches('"').to_owned())
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What one `mqadmin` run printed, and how it exited.
#[derive(Debug)]
pub struct AdminOutput {
    /// The exit code (None when killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl AdminOutput {
    /// The output when the run succeeded; panics with everything it printed otherwise.
    pub fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "mqadmin failed: {self:?}");
        self.stdout
    }
}

/// Runs `mqadmin` with `args` (the subcommand first) and `-n namesrv` appended when given,
/// and waits for it (it is killed after [`ADMIN_TIMEOUT`]).
pub fn mqadmin(namesrv: Option<SocketAddr>, args: &[&str]) -> AdminOutput {
    mqadmin_with(Command::new(binary("mqadmin")), namesrv, args)
}

/// [`mqadmin`] run in the directory `dir` (subcommands that write files where they run, as
/// `consumerStatus` does).
pub fn mqadmin_in(dir: &Path, namesrv: Option<SocketAddr>, args: &[&str]) -> AdminOutput {
    let mut command = Command::new(binary("mqadmin"));
    command.current_dir(dir);
    mqadmin_with(command, namesrv, args)
}

/// [`mqadmin`] with `ROCKETMQ_HOME` set to `home` (its `conf/tools.yml` gives the keys
/// `mqadmin` signs with; the other runs go without `ROCKETMQ_HOME`).
pub fn mqadmin_home(home: &Path, namesrv: Option<SocketAddr>, args: &[&str]) -> AdminOutput {
    let mut command = Command::new(binary("mqadmin"));
    command.env("ROCKETMQ_HOME", home);
    mqadmin_with(command, namesrv, args)
}

fn mqadmin_with(mut command: Command, namesrv: Option<SocketAddr>, args: &[&str]) -> AdminOutput {
    if command.get_envs().all(|(name, _)| name != "ROCKETMQ_HOME") {
        command.env_remove("ROCKETMQ_HOME");
    }
    command.args(args).env_remove("NAMESRV_ADDR").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(namesrv) = namesrv {
        command.arg("-n").arg(namesrv.to_string());
    }
    let child = command.spawn().expect("spawn mqadmin");
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let output = child.wait_with_output();
        let _ = done_tx.send(());
        output
    });
    if done_rx.recv_timeout(ADMIN_TIMEOUT).is_err() {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGKILL);
        }
    }
    let output = waiter.join().expect("mqadmin waiter").expect("wait for mqadmin");
    AdminOutput {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// How long one `mqadmin` run may take in a test.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// `mqnamesrv` on an ephemeral loopback port with a private KV directory.
pub fn start_namesrv(extra_args: &[&str], env: &[(&str, &str)]) -> Result<(ServerProcess, TempDir), String> {
    let dir = TempDir::new("namesrv");
    let mut command = Command::new(binary("mqnamesrv"));
    command
        .args(["--listen", "127.0.0.1:0", "--kv-config-path"])
        .arg(dir.path().join("kvConfig.json"))
        .args(extra_args);
    for (k, v) in env {
        command.env(k, v);
    }
    let process = ServerProcess::start(command, "The Name Server boot success")?;
    Ok((process, dir))
}

/// A free TCP port on 127.0.0.1 (bound, then released: good enough for tests that start a
/// server on it right away).
///
/// A broker binds ports beside its listen port (the fast port, listenPort - 2; the default HA
/// port, listenPort + 1) and refuses an embedded name server on one of them. Ports asked for one
/// after another are often that close, so a port is handed out at most once per process and
/// never within [`PORT_SPACING`] of one handed out before.
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1_000 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        if handed_out.iter().all(|p| p.abs_diff(port) > PORT_SPACING) {
            handed_out.push(port);
            return port;
        }
    }
    panic!("no free loopback port apart from the {} handed out already", handed_out.len());
}

/// How close two ports from [`free_port`] may be, at least: a broker's listen port and the
/// fast port two below it.
const PORT_SPACING: u16 = 2;

/// A running `mqbroker` with an embedded name server, both on free loopback ports.
pub struct BrokerProcess {
    pub process: ServerProcess,
    pub namesrv: SocketAddr,
    pub store: TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// `--set` arguments for [`HARNESS_DEFAULTS`], for tests that start `mqbroker` themselves
/// (e.g. with `-c` and a deployment file).
pub fn harness_args() -> Vec<String> {
    let mut args: Vec<String> = HARNESS_DEFAULTS.iter().flat_map(|(key, value)| ["--set".to_owned(), format!("{key}={value}")]).collect();
    // A master listens on its HA port too (default listenPort + 1, which another test's
    // broker may hold): a free one of its own.
    args.extend(["--set".to_owned(), format!("haListenPort={}", free_port())]);
    args
}

/// Settings every harness broker starts with, before the test's own.
const HARNESS_DEFAULTS: &[(&str, &str)] = &[
    ("diskSpaceWarningLevelRatio", "99"),
    ("diskSpaceCleanForciblyRatio", "98"),
    ("diskMaxUsedSpaceRatio", "95"),
    ("mappedFileSizeCommitLog", "67108864"),
    // Java's fast port (listenPort - 2) is not free just because listenPort was: tests that
    // use it (broker_vip_channel) pick a pair of free ports and turn it on.
    ("fastListenPortEnable", "false"),
];

impl BrokerProcess {
    /// Starts `mqbroker` with a fresh store; `settings` are extra `--set KEY=VALUE` pairs.
    pub fn start(settings: &[(&str, &str)]) -> Result<BrokerProcess, String> {
        Self::start_in(TempDir::new("broker"), settings)
    }

    /// Starts `mqbroker` on the store in `store` (e.g. a fixture extracted there).
    pub fn start_in(store: TempDir, settings: &[(&str, &str)]) -> Result<BrokerProcess, String> {
        Self::start_in_with_env(store, settings, &[])
    }

    /// [`BrokerProcess::start_in`] with extra environment variables (kept across restarts).
    pub fn start_in_with_env(store: TempDir, settings: &[(&str, &str)], env: &[(&str, &str)]) -> Result<BrokerProcess, String> {
        let namesrv_port = free_port();
        let mut args = vec![
            "--set".to_owned(),
            format!("storePathRootDir={}", store.path().display()),
            "--set".to_owned(),
            format!("listenPort={}", free_port()),
            "--set".to_owned(),
            format!("embeddedNamesrvPort={namesrv_port}"),
            "--set".to_owned(),
            "brokerIP1=127.0.0.1".to_owned(),
        ];
        // Test brokers must not depend on how full the test machine's disk is: Java's defaults
        // refuse writes at 90 % and delete old segments from 85 %, which a shared CI disk can
        // reach on its own. Tests of disk-full behaviour set these keys themselves (later
        // `--set`s win). 64 MiB segments keep each broker's preallocated footprint small.
        args.extend(harness_args());
        for (key, value) in settings {
            args.push("--set".to_owned());
            args.push(format!("{key}={value}"));
        }
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let process = Self::spawn(&args, &env)?;
        let namesrv = SocketAddr::from(([127, 0, 0, 1], namesrv_port));
        Ok(BrokerProcess { process, namesrv, store, args, env })
    }

    fn spawn(args: &[String], env: &[(String, String)]) -> Result<ServerProcess, String> {
        let mut command = Command::new(binary("mqbroker"));
        command.args(args);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        ServerProcess::start(command, "The broker[")
    }

    /// SIGKILL, then start again on the same store and ports.
    pub fn kill_and_restart(&mut self) -> Result<(), String> {
        self.process.kill();
        self.process = Self::spawn(&self.args, &self.env)?;
        Ok(())
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.process.terminate()
    }

    /// Starts again after `terminate`.
    pub fn restart(&mut self) -> Result<(), String> {
        self.process = Self::spawn(&self.args, &self.env)?;
        Ok(())
    }
}

/// A directory removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("ferromq-e2e-{tag}-{}-{seq}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One topic a fake broker registers.
#[derive(Clone, Debug)]
pub struct FakeTopic {
    pub name: String,
    pub read_queues: u32,
    pub write_queues: u32,
}

/// The REGISTER_BROKER request a Java 4.9 master broker sends (PROTOCOL.md §2.6), with the
/// body written as that broker writes it.
pub fn register_broker_request(cluster: &str, broker_name: &str, broker_addr: &str, topics: &[FakeTopic]) -> RemotingCommand {
    let table: serde_json::Map<String, serde_json::Value> = topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                serde_json::json!({"order": false, "perm": 6, "readQueueNums": t.read_queues,
                    "topicFilterType": "SINGLE_TAG", "topicName": t.name, "topicSysFlag": 0,
                    "writeQueueNums": t.write_queues}),
            )
        })
        .collect();
    let body = serde_json::json!({
        "filterServerList": [],
        "topicConfigSerializeWrapper": {
            "dataVersion": {"counter": 1, "timestamp": 1_700_000_000_000u64},
            "topicConfigTable": table,
        }
    });
    RemotingCommand::request(request_code::REGISTER_BROKER)
        .with_ext("brokerName", broker_name)
        .with_ext("brokerAddr", broker_addr)
        .with_ext("clusterName", cluster)
        .with_ext("haServerAddr", broker_addr)
        .with_ext("brokerId", 0)
        .with_body(serde_json::to_vec(&body).expect("JSON body"))
}

/// A fake broker on its own thread: registers `topics` with the name server every `period`
/// until [`FakeBroker::stop_registering`], keeping its connection open until dropped (so
/// that the name server can only forget it by expiry).
pub struct FakeBroker {
    stop_registering: async_channel::Sender<()>,
    drop_connection: async_channel::Sender<()>,
    registered: std::sync::mpsc::Receiver<Result<(), String>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeBroker {
    pub fn start(namesrv: SocketAddr, request: RemotingCommand, period: Duration) -> FakeBroker {
        let (stop_registering, stop_rx) = async_channel::bounded::<()>(1);
        let (drop_connection, drop_rx) = async_channel::bounded::<()>(1);
        let (registered_tx, registered) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let (runtime, _) = ferromq_net::backend::runtime_from_env().expect("runtime");
            runtime.block_on(async move {
                let client = match Client::connect(namesrv, Duration::from_secs(5)).await {
                    Ok(client) => client,
                    Err(e) => {
                        let _ = registered_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                loop {
                    let result = match client.invoke(request.clone(), Duration::from_secs(5)).await {
                        Ok(r) if r.code == 0 => Ok(()),
                        Ok(r) => Err(format!("REGISTER_BROKER answered {}: {:?}", r.code, r.remark)),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = registered_tx.send(result);
                    // A message or a closed channel both mean stop; only the timeout repeats.
                    if compio::time::timeout(period, stop_rx.recv()).await.is_ok() {
                        break;
                    }
                }
                let _ = drop_rx.recv().await;
                client.close();
            });
        });
        FakeBroker { stop_registering, drop_connection, registered, thread: Some(thread) }
    }

    /// Waits for the first registration's answer.
    pub fn wait_registered(&self) -> Result<(), String> {
        self.registered.recv_timeout(Duration::from_secs(10)).map_err(|e| e.to_string())?
    }

    pub fn stop_registering(&self) {
        let _ = self.stop_registering.try_send(());
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop_registering.close();
        self.drop_connection.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A metadata table as persisted under `config_dir`: the file `name` (`topics.json`,
/// `subscriptionGroup.json`; `{}` when absent) with its journal `<name>.journal` applied — read
/// here independently of the broker's code, from the format documented in
/// `core/src/meta/journal.rs`: records `[len u32 LE][crc32c u32 LE][kind][payload]`, the first a
/// base record `B` holding the crc32c of the file body it applies to (else the journal is
/// stale and ignored), then upserts `U` (name length u16 LE, name, entry JSON), deletes `D`
/// (name) and data versions `V` (JSON). A torn last record is ignored; a bad checksum before
/// the end panics.
pub fn persisted_metadata(config_dir: &Path, name: &str) -> serde_json::Value {
    let body = std::fs::read(config_dir.join(name)).unwrap_or_default();
    let mut table: serde_json::Value = if body.is_empty() { serde_json::json!({}) } else { serde_json::from_slice(&body).expect("the metadata file is JSON") };
    let key = if name.starts_with("topics") { "topicConfigTable" } else { "subscriptionGroupTable" };
    if table.get(key).is_none() {
        table[key] = serde_json::json!({});
    }
    let journal = std::fs::read(config_dir.join(format!("{name}.journal"))).unwrap_or_default();
    let mut at = 0usize;
    let mut first = true;
    while journal.len() >= at + 8 {
        let len = u32::from_le_bytes(journal[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(journal[at + 4..at + 8].try_into().unwrap());
        let Some(record) = journal.get(at + 8..at + 8 + len) else { break };
        if record.is_empty() || crc32c::crc32c(record) != crc {
            assert_eq!(at + 8 + len, journal.len(), "{name}.journal: damaged record at byte {at}");
            break;
        }
        let (kind, payload) = (record[0], &record[1..]);
        match kind {
            b'B' if first => {
                if u32::from_le_bytes(payload.try_into().expect("base record")) != crc32c::crc32c(&body) {
                    break; // stale: the file was compacted after it
                }
            }
            b'U' => {
                let name_len = usize::from(u16::from_le_bytes([payload[0], payload[1]]));
                let entry = std::str::from_utf8(&payload[2..2 + name_len]).expect("UTF-8 name");
                table[key][entry] = serde_json::from_slice(&payload[2 + name_len..]).expect("entry JSON");
            }
            b'D' => {
                if let Some(map) = table[key].as_object_mut() {
                    map.remove(std::str::from_utf8(payload).expect("UTF-8 name"));
                }
            }
            b'V' => table["dataVersion"] = serde_json::from_slice(payload).expect("version JSON"),
            other => panic!("{name}.journal: unexpected record kind {other} at byte {at}"),
        }
        first = false;
        at += 8 + len;
    }
    table
}

/// UPDATE_AND_CREATE_TOPIC (17): `topic` with `queues` read and write queues, read-write
/// (perm 6).
pub fn create_topic_request(topic: &str, queues: u32) -> RemotingCommand {
    RemotingCommand::request(request_code::UPDATE_AND_CREATE_TOPIC)
        .with_ext("topic", topic)
        .with_ext("readQueueNums", queues)
        .with_ext("writeQueueNums", queues)
        .with_ext("perm", 6)
}

/// SEND_MESSAGE_V2 (310) of `body` to queue `queue_id` of `topic` (of `queues`) for
/// `producer_group`, with the properties string `properties` (`NAME\u{1}VALUE\u{2}`…).
pub fn send_v2_request(producer_group: &str, topic: &str, queues: u32, queue_id: u32, properties: &str, body: Vec<u8>) -> RemotingCommand {
    RemotingCommand::request(request_code::SEND_MESSAGE_V2)
        .with_ext("a", producer_group)
        .with_ext("b", topic)
        .with_ext("c", "TBW102")
        .with_ext("d", queues)
        .with_ext("e", queue_id)
        .with_ext("f", 0)
        .with_ext("g", 0)
        .with_ext("h", 0)
        .with_ext("i", properties)
        .with_body(body)
}

/// A PULL_MESSAGE (11) of up to 32 messages of every tag (`*`), not held by long polling
/// (sysFlag 4: subscription inline; suspendTimeoutMillis 0), committing nothing.
pub fn pull_request(group: &str, topic: &str, queue_id: u32, queue_offset: u64) -> RemotingCommand {
    RemotingCommand::request(request_code::PULL_MESSAGE)
        .with_ext("consumerGroup", group)
        .with_ext("topic", topic)
        .with_ext("queueId", queue_id)
        .with_ext("queueOffset", queue_offset)
        .with_ext("maxMsgNums", 32)
        .with_ext("sysFlag", 4)
        .with_ext("commitOffset", 0)
        .with_ext("suspendTimeoutMillis", 0)
        .with_ext("subscription", "*")
        .with_ext("subVersion", 0)
}

/// The bodies of the `count` records of queue `queue_id` of `topic` from `from` on, pulled
/// (in group `group`, all tags) until they are all there or `within` runs out (a panic naming
/// the last answer). A SEND_OK precedes the record's consume-queue entry — the dispatcher
/// writes it after the append, as Java's ReputMessageService — so a pull right after a send
/// may find nothing new yet (PULL_NOT_FOUND) or only some of the records: it asks again. Each
/// record must sit at the queue offset that comes next.
pub async fn pull_bodies(client: &Client, group: &str, topic: &str, queue_id: u32, from: u64, count: usize, within: Duration) -> Vec<Vec<u8>> {
    use ferromq_net::codes::response_code;
    let deadline = Instant::now() + within;
    let mut bodies = Vec::with_capacity(count);
    let mut offset = from;
    while bodies.len() < count {
        let response = client.invoke(pull_request(group, topic, queue_id, offset), within).await.expect("PULL_MESSAGE");
        match response.code {
            response_code::SUCCESS => {
                let records = ferromq_store::record::decode_body_strict(&response.body)
                    .unwrap_or_else(|(at, e)| panic!("{topic}:{queue_id}@{offset}: undecodable body at byte {at}: {e}"));
                assert!(!records.is_empty(), "{topic}:{queue_id}@{offset}: SUCCESS with no records");
                for record in records {
                    assert_eq!((record.queue_id.0, record.queue_offset), (queue_id, offset as i64), "{topic}: a record out of place");
                    bodies.push(record.body.to_vec());
                    offset += 1;
                }
            }
            response_code::PULL_NOT_FOUND => {
                assert!(Instant::now() < deadline, "{topic}:{queue_id}: {} of {count} records from {from} within {within:?}; last answer {response:?}", bodies.len());
                compio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => panic!("{topic}:{queue_id}@{offset}: {response:?}"),
        }
    }
    bodies
}

/// A key of the broker's GET_BROKER_RUNTIME_INFO table, as a number.
pub async fn runtime_number(client: &Client, key: &str) -> u64 {
    let response = client.invoke(RemotingCommand::request(request_code::GET_BROKER_RUNTIME_INFO), Duration::from_secs(20)).await.expect("GET_BROKER_RUNTIME_INFO");
    let body: serde_json::Value = serde_json::from_slice(&response.body).expect("a JSON body");
    body["table"][key].as_str().and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{key} missing: {body}"))
}

/// Runs `make()`'s future on a fresh compio runtime (the backend FERROMQ_IO_BACKEND picks) on
/// a thread of its own, so that it can be called from plain and tokio tests alike; a panic in
/// the future is the caller's.
pub fn on_compio<T, F, Fut>(make: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    std::thread::spawn(move || {
        let (runtime, _) = ferromq_net::backend::runtime_from_env().expect("compio runtime");
        runtime.block_on(make())
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_and_test_target_come_from_where_cargo_put_the_test() {
        let found = |p: &str| profile_and_test_target(Path::new(p));
        assert_eq!(found("/w/target/debug/deps/broker_client-0123456789abcdef"), Some(("dev".into(), "broker_client".into())));
        assert_eq!(found("/w/target/release/deps/bench_suite-0123456789abcdef"), Some(("release".into(), "bench_suite".into())));
        assert_eq!(found("/w/target/x86_64-unknown-linux-gnu/ci/deps/a_b-00ff"), Some(("ci".into(), "a_b".into())));
        assert_eq!(found("/w/target/debug/broker_client-0123456789abcdef"), None, "not in deps/");
        assert_eq!(found("/w/target/debug/deps/broker_client"), None, "no hash");
    }
}

