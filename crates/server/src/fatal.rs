//! Puts the user's terminal back before the server dies of a panic or a fatal signal, so that a
//! crash in tty mode does not leave the terminal raw. SIGKILL, which no process can catch, still
//! does.
//!
//! The signal handler is async-signal-safe: it calls only tcsetattr, through
//! [`Restorer::restore`], and sigaction, and hands the signal on to the handler found before it
//! (Rust's stack-overflow reporter for SIGSEGV and SIGBUS) or to the default action.

use std::sync::OnceLock;

use ttyvm_term::Restorer;

/// Signals that end the process without running destructors.
const FATAL_SIGNALS: [libc::c_int; 6] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
    libc::SIGSYS,
];

static RESTORER: OnceLock<Restorer> = OnceLock::new();
static PREVIOUS: [OnceLock<libc::sigaction>; FATAL_SIGNALS.len()] =
    [const { OnceLock::new() }; FATAL_SIGNALS.len()];

/// Restores the terminal's original settings on a panic, before the panic message is printed,
/// and on every fatal signal. Call it once, before any handler that should run first on those
/// signals is installed.
pub fn restore_terminal_on_crash(restorer: Restorer) {
    if RESTORER.set(restorer).is_err() {
        return;
    }
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = restorer.restore();
        previous_hook(info);
    }));
    for (index, signal) in FATAL_SIGNALS.into_iter().enumerate() {
        if let Some(previous) = install(signal) {
            let _ = PREVIOUS[index].set(previous);
        }
    }
}

/// Installs the handler for `signal` and returns the disposition it replaced.
fn install(signal: libc::c_int) -> Option<libc::sigaction> {
    // SAFETY: a zeroed sigaction is a valid value: no handler, no flags and an empty mask.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = handle_fatal;
    action.sa_sigaction = handler as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    // SAFETY: a zeroed sigaction is a valid value for the kernel to overwrite.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers refer to live locals; sigaction reads one and writes the other.
    let ret = unsafe { libc::sigaction(signal, &action, &mut previous) };
    (ret == 0).then_some(previous)
}

extern "C" fn handle_fatal(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    if let Some(restorer) = RESTORER.get() {
        let _ = restorer.restore();
    }
    let previous = FATAL_SIGNALS
        .iter()
        .position(|&fatal| fatal == signal)
        .and_then(|index| PREVIOUS[index].get());
    match previous {
        Some(action) if action.sa_sigaction != libc::SIG_DFL => {
            call_previous(action, signal, info, context)
        }
        _ => {
            // SAFETY: resetting a disposition to SIG_DFL takes no pointers of ours. The faulting
            // instruction then runs again, or abort raises again, and the default action ends
            // the process with the status a crash should have.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    }
}

fn call_previous(
    action: &libc::sigaction,
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    if action.sa_sigaction == libc::SIG_IGN {
        // SAFETY: as above; an ignored synchronous fault would only fault again.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    } else if action.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: SA_SIGINFO means the previous handler has this three-argument type.
        let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(action.sa_sigaction) };
        handler(signal, info, context);
    } else {
        // SAFETY: without SA_SIGINFO the previous handler takes the signal number only.
        let handler: extern "C" fn(libc::c_int) =
            unsafe { std::mem::transmute(action.sa_sigaction) };
        handler(signal);
    }
}
