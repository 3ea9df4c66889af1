//! Both I/O backends are first class: the backend is chosen by a start-up probe, can be
//! forced, is logged at start, and the automatic fallback works when io_uring is unavailable.
//! Unavailability is made real with a seccomp filter that answers ENOSYS to the io_uring
//! system calls, exactly what a 3.10 kernel (CentOS 7) answers.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use ferromq_net::RemotingCommand;
use ferromq_net::backend::{ActiveBackend, BACKEND_ENV, runtime_from_env};
use ferromq_net::client::Client;
use ferromq_net::codes::request_code;
use ferromq_tests::{FakeBroker, FakeTopic, ServerProcess, TempDir, binary, register_broker_request};

/// A seccomp filter program: io_uring_setup, io_uring_enter and io_uring_register fail with
/// ENOSYS; every other system call is allowed.
fn io_uring_enosys_filter() -> seccompiler::BpfProgram {
    let rules = [libc::SYS_io_uring_setup, libc::SYS_io_uring_enter, libc::SYS_io_uring_register]
        .into_iter()
        .map(|nr| (nr, vec![]))
        .collect();
    let filter = seccompiler::SeccompFilter::new(
        rules,
        seccompiler::SeccompAction::Allow,
        seccompiler::SeccompAction::Errno(libc::ENOSYS as u32),
        std::env::consts::ARCH.try_into().expect("supported architecture"),
    )
    .expect("seccomp filter");
    filter.try_into().expect("compile seccomp filter")
}

/// `mqnamesrv` with the given backend request, optionally without io_uring.
fn namesrv_command(backend: &str, without_io_uring: bool, dir: &TempDir) -> Command {
    let mut command = Command::new(binary("mqnamesrv"));
    command
        .args(["--listen", "127.0.0.1:0", "--kv-config-path"])
        .arg(dir.path().join("kv.json"))
        .env(BACKEND_ENV, backend);
    if without_io_uring {
        let program = io_uring_enosys_filter();
        // SAFETY: runs in the forked child before exec; apply_filter only issues prctl and
        // seccomp system calls on memory prepared before the fork (no allocation on success).
        unsafe {
            command.pre_exec(move || {
                seccompiler::apply_filter(&program).map_err(|e| std::io::Error::other(e.to_string()))
            });
        }
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
