//! What the helper inherits: none of the caller's signal handlers and none of its fds.

mod common;

use std::os::fd::AsFd;

use common::checks::*;
use common::*;
use ttyvm_sigwinch::ResizeListener;
use ttyvm_term::Pty;

#[test]
fn caller_handlers_not_inherited() {
    if role().is_some() {
        run_caller_with_handlers();
        return;
    }
    let output = run_role("caller_handlers_not_inherited", "handlers");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert_role_passed(&output);
}

#[test]
fn helper_holds_only_pipe_end() {
    let extra = open_extra_fds(50);
    let pty = Pty::open().unwrap();
    let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap();
    check_only_pipe_end(&listener);
    drop(extra);
    check_hangup_after_close(pty, &listener);
}
