//! The helper's optional seccomp filter, built in the caller where allocation is allowed.

use std::collections::BTreeMap;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// System calls the helper makes after installing the filter: the handshake and notification
/// writes, its wait, the zero-timeout poll for POLLERR, its exit, and restart_syscall, which the
/// kernel issues when a stopped and continued task resumes an interrupted call.
const ALLOWED: [libc::c_long; 5] = [
    libc::SYS_write,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_ppoll,
    libc::SYS_exit_group,
    libc::SYS_restart_syscall,
];

/// Builds the filter: the calls in [`ALLOWED`] pass, and any other call kills the helper.
pub(crate) fn helper_filter() -> Result<BpfProgram, seccompiler::BackendError> {
    let rules = ALLOWED
        .iter()
        .map(|&nr| (nr, Vec::new()))
        .collect::<BTreeMap<_, _>>();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )?;
    BpfProgram::try_from(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_filter_builds() {
        let program = helper_filter().unwrap();
        assert!(!program.is_empty());
        assert!(program.len() < usize::from(u16::MAX));
    }
}
