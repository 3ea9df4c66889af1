//! The start-up raise of RLIMIT_NOFILE (`ferromq_net::server::raise_open_file_limit`), in a
//! test binary of its own: it lowers its own process's soft limit first, which must not race
//! with tests that open sockets.

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read or write the one struct they are given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    let hard = limit.rlim_max;
    let low = hard.min(256);
    let lowered = libc::rlimit { rlim_cur: low, rlim_max: hard };
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lowered) }, 0);

    let raised = ferromq_net::server::raise_open_file_limit().expect("raise");
    assert_eq!(raised, ferromq_net::server::OpenFileLimit { soft_before: low, soft_now: hard, hard });
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    assert_eq!((limit.rlim_cur, limit.rlim_max), (hard, hard));
    // Already at the hard limit: nothing to do, nothing fails.
    let again = ferromq_net::server::raise_open_file_limit().expect("raise again");
    assert_eq!(again, ferromq_net::server::OpenFileLimit { soft_before: hard, soft_now: hard, hard });
}
