//! Where io_uring cannot be set up (here: a seccomp filter refusing io_uring_setup, as
//! container runtimes' default profiles do), stratad exits at once with a message that says
//! so and what to check, instead of starting half-working.

use e2e::server::{free_addr, stratad_bin};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Classic BPF over `struct seccomp_data` (its first field is the syscall number): refuse
/// io_uring_setup with EPERM, allow everything else.
fn deny_io_uring_setup() -> std::io::Result<()> {
    const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
    const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
    let filter = [
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: SECCOMP_RET_ALLOW,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with a filter program that lives across the call; runs in the forked
    // child before exec, touching no locks or allocations.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn stratad_without_io_uring_exits_with_a_clear_message() {
    let addr = free_addr();
    let mut cmd = Command::new(stratad_bin());
    cmd.arg("--listen")
        .arg(addr.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: the closure only makes two prctl calls (async-signal-safe) between fork and exec.
    unsafe { cmd.pre_exec(deny_io_uring_setup) };
    let mut child = cmd.spawn().expect("start stratad");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("stratad kept running without io_uring");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !status.success(),
        "stratad exited successfully without io_uring"
    );
    assert!(
        stderr.contains("io_uring could not be set up"),
        "no clear message:\n{stderr}"
    );
    assert!(
        stderr.contains("kernel.io_uring_disabled"),
        "the message does not say what to check:\n{stderr}"
    );
    assert!(
        stderr.contains("seccomp"),
        "the message does not mention seccomp:\n{stderr}"
    );
}
