//! Fallback paths, forced by a seccomp filter in a subprocess that makes clone3 or close_range
//! fail with ENOSYS, as an old kernel or a container's seccomp profile does.

mod common;

use std::collections::BTreeMap;
use std::os::fd::AsFd;

use common::checks::*;
use common::*;
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
use ttyvm_sigwinch::{window_size, CloneSyscall, FdCloseMethod, ResizeListener, WindowSize};
use ttyvm_term::{set_window_size, Pty};

/// Installs a filter on the calling thread that makes each call in `syscalls` fail with ENOSYS.
/// Helpers spawned from this thread inherit it.
fn deny_with_enosys(syscalls: &[libc::c_long]) {
    let rules = syscalls
        .iter()
        .map(|&nr| (nr, Vec::new()))
        .collect::<BTreeMap<_, _>>();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        TargetArch::x86_64,
    )
    .unwrap();
    let program = BpfProgram::try_from(filter).unwrap();
    seccompiler::apply_filter(&program).unwrap();
}

/// Checks that clone3 really fails with ENOSYS on this thread now.
fn assert_clone3_denied() {
    // SAFETY: clone3 with a null argument pointer and size 0 is rejected before any clone.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0) };
    let err = std::io::Error::last_os_error();
    assert_eq!(ret, -1);
    assert_eq!(err.raw_os_error(), Some(libc::ENOSYS));
}

fn run_without_clone3() {
    deny_with_enosys(&[libc::SYS_clone3]);
    assert_clone3_denied();
    // Tests 1 and 4 again: the caller's handlers are not inherited, and a resize wakes.
    let listener = run_caller_with_handlers();
    assert_eq!(listener.clone_syscall(), CloneSyscall::Clone);
    assert_eq!(listener.fd_close_method(), FdCloseMethod::CloseRange);
    // The fallback resets every signal to SIG_DFL, ignored ones included.
    assert_eq!(signal_mask(listener.helper_pid(), "SigIgn"), 0);
    check_resize_wakes(&ttyvm_sigwinch::ListenerOptions { seccomp: true });
}

fn check_resize_wakes(options: &ttyvm_sigwinch::ListenerOptions) {
    let pty = Pty::open().unwrap();
    let listener = ResizeListener::spawn_with(pty.subsidiary.as_fd(), options).unwrap();
    let size = WindowSize::new(44, 55);
    set_window_size(pty.main.as_fd(), size).unwrap();
    assert!(wait_for_wake(&listener));
    assert_eq!(window_size(pty.subsidiary.as_fd()).unwrap(), size);
}

#[test]
fn spawn_without_clone3() {
    if role().is_some() {
        return run_without_clone3();
    }
    let output = run_role("spawn_without_clone3", "no-clone3");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert_role_passed(&output);
}

fn run_without_close_range(also_clone3: bool) {
    let mut denied = vec![libc::SYS_close_range];
    if also_clone3 {
        denied.push(libc::SYS_clone3);
    }
    deny_with_enosys(&denied);
    let extra = open_extra_fds(50);
    let pty = Pty::open().unwrap();
    let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap();
    assert_eq!(listener.fd_close_method(), FdCloseMethod::ProcFdWalk);
    let expected = match also_clone3 {
        true => CloneSyscall::Clone,
        false => CloneSyscall::Clone3,
    };
    assert_eq!(listener.clone_syscall(), expected);
    check_only_pipe_end(&listener);
    drop(extra);
    check_hangup_after_close(pty, &listener);
}

#[test]
fn spawn_without_close_range() {
    if let Some(role) = role() {
        return run_without_close_range(role == "no-close-range-no-clone3");
    }
    for role in ["no-close-range", "no-close-range-no-clone3"] {
        let output = run_role("spawn_without_close_range", role);
        eprintln!("{role}: {}", String::from_utf8_lossy(&output.stderr));
        assert_role_passed(&output);
    }
}
