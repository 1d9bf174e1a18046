//! Finding other clients attached to the same pty, by scanning the open files under /proc.

use std::fs;
use std::path::{Path, PathBuf};

/// A process other than this one that has the pty's subsidiary side open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// The process's command name from /proc/PID/comm.
    pub command: String,
}

/// Lists the processes, this one excluded, that have `path` open.
///
/// A process that also has the main side of the same pty open is the server, which may keep a
/// subsidiary fd so that the pty survives between clients, and is not listed. Processes whose fds
/// cannot be read (another user's, or one that exited during the scan) are skipped, so the list
/// can miss clients when the caller is not root.
pub fn other_holders(path: &Path) -> Vec<Holder> {
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let index = pts_index(&target);
    let own_pid = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut holders: Vec<Holder> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != own_pid)
        .filter(|&pid| is_client(pid, &target, index))
        .map(|pid| Holder {
            pid,
            command: command_name(pid),
        })
        .collect();
    holders.sort_by_key(|holder| holder.pid);
    holders
}

/// Whether process `pid` has `target` open and holds no main side of pty number `index`.
fn is_client(pid: u32, target: &Path, index: Option<u32>) -> bool {
    let fd_dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let Ok(fds) = fs::read_dir(&fd_dir) else {
        return false;
    };
    let mut holds_subsidiary = false;
    let mut holds_main = false;
    for fd in fds.flatten() {
        let Ok(link) = fs::read_link(fd.path()) else {
            continue;
        };
        if link == target {
            holds_subsidiary = true;
        } else if is_ptmx(&link) && index.is_some() {
            let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
            holds_main |= ptmx_index(&info) == index;
        }
    }
    holds_subsidiary && !holds_main
}

fn is_ptmx(link: &Path) -> bool {
    link == Path::new("/dev/ptmx") || link == Path::new("/dev/pts/ptmx")
}

/// Returns N for a path /dev/pts/N.
fn pts_index(path: &Path) -> Option<u32> {
    path.strip_prefix("/dev/pts").ok()?.to_str()?.parse().ok()
}

/// Reads the pty number that Linux (since 4.16) lists as `tty-index:` in a ptmx fd's fdinfo.
fn ptmx_index(fdinfo: &str) -> Option<u32> {
    let text = fs::read_to_string(fdinfo).ok()?;
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix("tty-index:"))?;
    line.trim().parse().ok()
}

fn command_name(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|name| name.trim_end().to_owned())
        .unwrap_or_else(|_| String::from("?"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use ttyvm_term::Pty;

    #[test]
    fn pts_index_parses_number() {
        assert_eq!(pts_index(Path::new("/dev/pts/12")), Some(12));
        assert_eq!(pts_index(Path::new("/dev/tty1")), None);
        assert_eq!(pts_index(Path::new("/dev/pts/ptmx")), None);
    }

    #[test]
    fn own_fds_are_not_listed() {
        // This process has both sides open, and is excluded as itself in any case.
        let pty = Pty::open().unwrap();
        assert_eq!(other_holders(&pty.path), Vec::new());
    }

    #[test]
    fn child_with_subsidiary_is_listed() {
        let pty = Pty::open().unwrap();
        let stdin = Stdio::from(pty.reopen_subsidiary().unwrap());
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(stdin)
            .spawn()
            .unwrap();
        let holders = other_holders(&pty.path);
        child.kill().unwrap();
        child.wait().unwrap();
        let expected = Holder {
            pid: child.id(),
            command: String::from("sleep"),
        };
        assert_eq!(holders, vec![expected]);
    }

    #[test]
    fn process_with_main_side_is_not_listed() {
        let pty = Pty::open().unwrap();
        // The child inherits both sides, as a server that keeps its subsidiary fd would have them.
        let stdin = Stdio::from(pty.reopen_subsidiary().unwrap());
        let stdout = Stdio::from(pty.main.try_clone().unwrap());
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(stdin)
            .stdout(stdout)
            .spawn()
            .unwrap();
        let holders = other_holders(&pty.path);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(holders, Vec::new());
    }
}
