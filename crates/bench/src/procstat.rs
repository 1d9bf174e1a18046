//! Reading context switches, children and memory of a process from /proc.

use std::path::PathBuf;

use crate::error::BenchError;

/// Context-switch counts of a process, summed over its threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Switches {
    /// `voluntary_ctxt_switches`: the process blocked, e.g. in poll.
    pub voluntary: u64,
    /// `nonvoluntary_ctxt_switches`: the scheduler preempted it.
    pub involuntary: u64,
}

impl Switches {
    /// Returns the switches from `earlier` to `self`.
    pub fn since(self, earlier: Switches) -> Switches {
        Switches {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            involuntary: self.involuntary.saturating_sub(earlier.involuntary),
        }
    }
}

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size.
    pub hwm_kib: u64,
}

fn read(path: PathBuf) -> Result<String, BenchError> {
    std::fs::read_to_string(&path).map_err(BenchError::io(format!("reading {}", path.display())))
}

/// Returns the value of field `name` in a /proc status text, as its first number.
fn field(status: &str, name: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|line| line.split(':').next() == Some(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn task_ids(pid: u32) -> Result<Vec<String>, BenchError> {
    let dir = PathBuf::from(format!("/proc/{pid}/task"));
    let entries =
        std::fs::read_dir(&dir).map_err(BenchError::io(format!("listing {}", dir.display())))?;
    Ok(entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect())
}

/// Reads the context switches of every thread of `pid` and returns their sum.
pub fn switches(pid: u32) -> Result<Switches, BenchError> {
    let mut total = Switches::default();
    for task in task_ids(pid)? {
        let status = read(PathBuf::from(format!("/proc/{pid}/task/{task}/status")))?;
        total.voluntary += field(&status, "voluntary_ctxt_switches").unwrap_or(0);
        total.involuntary += field(&status, "nonvoluntary_ctxt_switches").unwrap_or(0);
    }
    Ok(total)
}

/// Returns the process ids of the children of every thread of `pid`.
pub fn children(pid: u32) -> Result<Vec<u32>, BenchError> {
    let mut children = Vec::new();
    for task in task_ids(pid)? {
        let text = read(PathBuf::from(format!("/proc/{pid}/task/{task}/children")))?;
        children.extend(
            text.split_whitespace()
                .filter_map(|word| word.parse::<u32>().ok()),
        );
    }
    Ok(children)
}

/// Reads VmRSS and VmHWM of `pid`.
pub fn memory(pid: u32) -> Result<Memory, BenchError> {
    let status = read(PathBuf::from(format!("/proc/{pid}/status")))?;
    Ok(Memory {
        rss_kib: field(&status, "VmRSS").unwrap_or(0),
        hwm_kib: field(&status, "VmHWM").unwrap_or(0),
    })
}

/// Returns the single child of the server, which is the resize listener's helper.
pub fn helper_of(server: u32) -> Result<u32, BenchError> {
    match children(server)?.as_slice() {
        [helper] => Ok(*helper),
        other => Err(BenchError::Process(format!(
            "expected the server {server} to have exactly one child, the resize helper, \
             but it has {other:?}"
        ))),
    }
}
