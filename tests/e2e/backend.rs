//! Both I/O backends are first class: the backend is chosen by a start-up probe, can be
//! forced, is logged at start, and the automatic fallback works when io_uring is unavailable.
//! Unavailability is made real with a seccomp filter that answers ENOSYS to the io_uring
//! system calls, exactly what a 3.10 kernel (CentOS 7) answers.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ferromq_net::RemotingCommand;
use ferromq_net::backend::{ActiveBackend, BACKEND_ENV, runtime_from_env};
use ferromq_net::client::Client;
use ferromq_net::codes::request_code;
use ferromq_tests::{
    FakeBroker, FakeTopic, ServerProcess, TempDir, binary, create_topic_request, free_port, harness_args, on_compio, pull_bodies,
    register_broker_request, send_v2_request,
};

/// A seccomp filter program: io_uring_setup, io_uring_enter and io_uring_register fail with
/// ENOSYS; every other system call is allowed.
fn io_uring_enosys_filter() -> seccompiler::BpfProgram {
    enosys_filter([libc::SYS_io_uring_setup, libc::SYS_io_uring_enter, libc::SYS_io_uring_register])
}

/// A seccomp filter program: the system calls numbered in `syscalls` fail with ENOSYS, as on a
/// kernel that lacks them; every other system call is allowed.
fn enosys_filter(syscalls: impl IntoIterator<Item = i64>) -> seccompiler::BpfProgram {
    let rules = syscalls.into_iter().map(|nr| (nr, vec![])).collect();
    let filter = seccompiler::SeccompFilter::new(
        rules,
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(libc::ENOSYS as u32),
        std::env::consts::ARCH.try_into().expect("supported architecture"),
    )
    .expect("seccomp filter");
    filter.try_into().expect("compile seccomp filter")
}

/// Installs `program` in the child of `command` before it execs.
fn with_filter(command: &mut Command, program: seccompiler::BpfProgram) {
    // SAFETY: runs in the forked child before exec; apply_filter only issues prctl and
    // seccomp system calls on memory prepared before the fork (no allocation on success).
    unsafe {
        command.pre_exec(move || seccompiler::apply_filter(&program).map_err(|e| std::io::Error::other(e.to_string())));
    }
}

/// `mqnamesrv` with the given backend request, optionally without io_uring.
fn namesrv_command(backend: &str, without_io_uring: bool, dir: &TempDir) -> Command {
    let mut command = Command::new(binary("mqnamesrv"));
    command
        .args(["--listen", "127.0.0.1:0", "--kv-config-path"])
        .arg(dir.path().join("kv.json"))
        .env(BACKEND_ENV, backend);
    if without_io_uring {
        with_filter(&mut command, io_uring_enosys_filter());
    }
    command
}

/// Registers a broker and resolves its route through `namesrv`: proof that it serves.
fn assert_serves(namesrv: std::net::SocketAddr) {
    let topics = [FakeTopic { name: "FallbackTopic".into(), read_queues: 2, write_queues: 2 }, FakeTopic { name: "Second".into(), read_queues: 1, write_queues: 1 }];
    let broker = FakeBroker::start(namesrv, register_broker_request("C", "b", "127.0.0.1:10911", &topics), Duration::from_secs(30));
    broker.wait_registered().unwrap();
    let (runtime, _) = runtime_from_env().unwrap();
    runtime.block_on(async {
        let client = Client::connect(namesrv, Duration::from_secs(5)).await.unwrap();
        let route = client
            .invoke(RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", "FallbackTopic"), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(route.code, 0, "{route:?}");
        assert!(String::from_utf8_lossy(&route.body).contains("127.0.0.1:10911"));
    });
}

#[test]
fn without_io_uring_the_probe_falls_back_to_epoll_and_serves() {
    let dir = TempDir::new("fallback");
    let namesrv = ServerProcess::start(namesrv_command("auto", true, &dir), "The Name Server boot success").unwrap();
    assert_eq!(namesrv.backend, "epoll", "log: {:#?}", namesrv.log());
    assert_serves(namesrv.addr);
}

#[test]
fn forcing_an_unavailable_io_uring_fails_with_a_clear_error() {
    let dir = TempDir::new("forced-missing");
    let error = ServerProcess::start(namesrv_command("io_uring", true, &dir), "The Name Server boot success").err().expect("must not start");
    assert!(error.contains("io_uring"), "{error}");
}

#[test]
fn forced_backends_are_used_and_logged() {
    for backend in ["epoll", "io_uring"] {
        let dir = TempDir::new("forced");
        let namesrv = ServerProcess::start(namesrv_command(backend, false, &dir), "The Name Server boot success").unwrap();
        assert_eq!(namesrv.backend, backend);
        assert_serves(namesrv.addr);
    }
    // With io_uring available, the probe picks it.
    let dir = TempDir::new("auto");
    let namesrv = ServerProcess::start(namesrv_command("auto", false, &dir), "The Name Server boot success").unwrap();
    assert_eq!(namesrv.backend, "io_uring");
}

/// CI runs the suite once per backend through FERROMQ_IO_BACKEND; this proves the variable
/// really moves the tests' own runtimes.
#[test]
fn the_suite_runs_on_the_backend_it_asks_for() {
    let (_runtime, active) = runtime_from_env().unwrap();
    match std::env::var(BACKEND_ENV).as_deref() {
        Ok("epoll") => assert_eq!(active, ActiveBackend::Epoll),
        Ok("io_uring") => assert_eq!(active, ActiveBackend::IoUring),
        _ => {}
    }
    eprintln!("test runtimes run on {active}");
}

/// The folder of release binaries built for glibc 2.17 (`.ci/run` builds them with
/// cargo-zigbuild and sets this); without it the CentOS 7 test runs this build's binaries.
const GLIBC_217_BIN_DIR_ENV: &str = "FERROMQ_GLIBC217_BIN_DIR";

/// x86_64 numbers of every system call Linux added after 3.10, the kernel CentOS 7 ships:
/// sched_setattr (314, Linux 3.14) through rseq (334, 4.18), then, from 424, the block every
/// architecture shares (pidfd_send_signal, io_uring_*, clone3, openat2, faccessat2,
/// epoll_pwait2, … and whatever comes next). 335–423 were never assigned on x86_64.
#[cfg(target_arch = "x86_64")]
const ADDED_AFTER_LINUX_3_10: [std::ops::RangeInclusive<i64>; 2] = [314..=334, 424..=511];

/// A seccomp filter that answers ENOSYS, as a 3.10 kernel does, to every system call in
/// [`ADDED_AFTER_LINUX_3_10`], and allows the rest.
#[cfg(target_arch = "x86_64")]
fn linux_3_10_filter() -> seccompiler::BpfProgram {
    enosys_filter(ADDED_AFTER_LINUX_3_10.into_iter().flatten())
}

/// The newest `GLIBC_2.N` symbol version `binary` needs, from `objdump -T`.
fn newest_glibc_version(binary: &Path) -> (u32, u32) {
    let output = Command::new("objdump").arg("-T").arg(binary).output().expect("objdump (binutils) runs");
    assert!(output.status.success(), "objdump -T {}: {}", binary.display(), String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8_lossy(&output.stdout);
    text.split(|c: char| c.is_whitespace() || c == '(' || c == ')')
        .filter_map(|word| word.strip_prefix("GLIBC_"))
        .filter_map(|version| {
            let mut parts = version.split('.');
            Some((parts.next()?.parse().ok()?, parts.next().map_or(Some(0), |minor| minor.parse().ok())?))
        })
        .max()
        .unwrap_or_else(|| panic!("{} needs no GLIBC_ symbol version: not a glibc binary?", binary.display()))
}

/// CentOS 7: the binaries (with `FERROMQ_GLIBC217_BIN_DIR`, the glibc-2.17 release build)
/// need no glibc symbol newer than 2.17, and under a filter that answers ENOSYS to every
/// system call added after Linux 3.10 they fall back to epoll, register and serve a
/// produce/consume round trip.
#[test]
#[cfg(target_arch = "x86_64")]
fn on_a_linux_3_10_system_call_table_the_binaries_serve_a_round_trip() {
    let (broker_binary, namesrv_binary) = match std::env::var_os(GLIBC_217_BIN_DIR_ENV) {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            for name in ["mqbroker", "mqnamesrv"] {
                let newest = newest_glibc_version(&dir.join(name));
                assert!(newest <= (2, 17), "{name} needs GLIBC_{}.{}, newer than CentOS 7's 2.17", newest.0, newest.1);
            }
            (dir.join("mqbroker"), dir.join("mqnamesrv"))
        }
        None => (binary("mqbroker"), binary("mqnamesrv")),
    };
    eprintln!("running {} and {}", broker_binary.display(), namesrv_binary.display());

    let namesrv_dir = TempDir::new("linux-3-10-namesrv");
    let mut command = Command::new(&namesrv_binary);
    command
        .args(["--listen", "127.0.0.1:0", "--kv-config-path"])
        .arg(namesrv_dir.path().join("kv.json"))
        .env(BACKEND_ENV, "auto");
    with_filter(&mut command, linux_3_10_filter());
    let namesrv = ServerProcess::start(command, "The Name Server boot success").unwrap();
    assert_eq!(namesrv.backend, "epoll", "log: {:#?}", namesrv.log());

    let store = TempDir::new("linux-3-10-broker");
    let mut command = Command::new(&broker_binary);
    for setting in [
        format!("storePathRootDir={}", store.path().display()),
        format!("listenPort={}", free_port()),
        format!("namesrvAddr={}", namesrv.addr),
        "brokerIP1=127.0.0.1".to_owned(),
    ] {
        command.arg("--set").arg(setting);
    }
    command.args(harness_args()).env(BACKEND_ENV, "auto");
    with_filter(&mut command, linux_3_10_filter());
    let broker = ServerProcess::start(command, "The broker[").unwrap();
    assert_eq!(broker.backend, "epoll", "log: {:#?}", broker.log());

    let (broker_addr, namesrv_addr) = (broker.addr, namesrv.addr);
    let bodies: Vec<Vec<u8>> = (0..10).map(|i| format!("centos7-{i}").into_bytes()).collect();
    let sent = bodies.clone();
    let pulled = on_compio(move || async move {
        let client = Client::connect(([127, 0, 0, 1], broker_addr.port()).into(), Duration::from_secs(5)).await.unwrap();
        let created = client.invoke(create_topic_request("Linux310", 1), Duration::from_secs(5)).await.unwrap();
        assert_eq!(created.code, 0, "{created:?}");
        for body in sent {
            let response = client.invoke(send_v2_request("P", "Linux310", 1, 0, "", body), Duration::from_secs(5)).await.unwrap();
            assert_eq!(response.code, 0, "{response:?}");
        }
        let bodies = pull_bodies(&client, "C", "Linux310", 0, 0, 10, Duration::from_secs(10)).await;
        // The broker registered the new topic with the filtered name server.
        let names = Client::connect(namesrv_addr, Duration::from_secs(5)).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let route = names
                .invoke(RemotingCommand::request(request_code::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", "Linux310"), Duration::from_secs(5))
                .await
                .unwrap();
            // The broker listens on 0.0.0.0 and registers its brokerIP1.
            if route.code == 0 && String::from_utf8_lossy(&route.body).contains(&format!("127.0.0.1:{}", broker_addr.port())) {
                break;
            }
            assert!(Instant::now() < deadline, "Linux310 never routed to {broker_addr}: {route:?}");
            compio::time::sleep(Duration::from_millis(200)).await;
        }
        bodies
    });
    assert_eq!(pulled, bodies);
}
