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

/// Reads `/proc/PID/task/TASK/FILE`, or returns `None` when the task exited after it was
/// listed, which a thread may do at any moment.
fn read_task(pid: u32, task: &str, file: &str) -> Result<Option<String>, BenchError> {
    let path = PathBuf::from(format!("/proc/{pid}/task/{task}/{file}"));
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) if err.raw_os_error() == Some(libc::ESRCH) => Ok(None),
        Err(err) => Err(BenchError::io(format!("reading {}", path.display()))(err)),
    }
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
        let Some(status) = read_task(pid, &task, "status")? else {
            continue;
        };
        total.voluntary += field(&status, "voluntary_ctxt_switches").unwrap_or(0);
        total.involuntary += field(&status, "nonvoluntary_ctxt_switches").unwrap_or(0);
    }
    Ok(total)
}

/// Returns the process ids of the children of every thread of `pid`.
pub fn children(pid: u32) -> Result<Vec<u32>, BenchError> {
    let mut children = Vec::new();
    for task in task_ids(pid)? {
        let Some(text) = read_task(pid, &task, "children")? else {
            continue;
        };
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

/// CPU time and run-queue wait from /proc/PID/task/TID/schedstat, summed over tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sched {
    /// Time spent on a CPU, in nanoseconds.
    pub cpu_ns: u64,
    /// Time spent runnable but waiting for a CPU, in nanoseconds.
    pub wait_ns: u64,
}

impl Sched {
    /// Returns the time spent between `earlier` and this reading.
    pub fn since(self, earlier: Sched) -> Sched {
        Sched {
            cpu_ns: self.cpu_ns.saturating_sub(earlier.cpu_ns),
            wait_ns: self.wait_ns.saturating_sub(earlier.wait_ns),
        }
    }
}

/// Reads the schedstat of every thread of every process in `pids` and returns their sum.
pub fn sched(pids: &[u32]) -> Result<Sched, BenchError> {
    let mut total = Sched::default();
    for &pid in pids {
        for task in task_ids(pid)? {
            let Some(text) = read_task(pid, &task, "schedstat")? else {
                continue;
            };
            let mut words = text.split_whitespace().map(|word| word.parse::<u64>().ok());
            total.cpu_ns += words.next().flatten().unwrap_or(0);
            total.wait_ns += words.next().flatten().unwrap_or(0);
        }
    }
    Ok(total)
}

/// Reads the schedstat of the calling thread.
pub fn sched_self() -> Result<Sched, BenchError> {
    let text = read(PathBuf::from("/proc/thread-self/schedstat"))?;
    let mut words = text.split_whitespace().map(|word| word.parse::<u64>().ok());
    Ok(Sched {
        cpu_ns: words.next().flatten().unwrap_or(0),
        wait_ns: words.next().flatten().unwrap_or(0),
    })
}

/// Returns the three load averages of /proc/loadavg as text, or `unknown`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "unknown".to_string(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    )
}

/// Binds every thread of every process in `pids` to CPU `cpu` alone.
pub fn pin(pids: &[u32], cpu: usize) -> Result<(), BenchError> {
    for &pid in pids {
        for task in task_ids(pid)? {
            let Ok(tid) = task.parse::<libc::pid_t>() else {
                continue;
            };
            // SAFETY: an all-zero cpu_set_t is a valid empty set.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            // SAFETY: CPU_SET writes one bit of the set, which `cpu` indexes within its size
            // (the caller passes a CPU below the count this process may run on).
            unsafe { libc::CPU_SET(cpu, &mut set) };
            // SAFETY: `set` is a valid cpu_set_t of the size passed, alive for the call.
            let result = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
            if result != 0 {
                let error = std::io::Error::last_os_error();
                return Err(BenchError::Io {
                    action: format!("binding task {tid} of process {pid} to CPU {cpu}"),
                    source: error,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_of_this_process_counts_cpu_time() {
        let pid = std::process::id();
        let before = sched(&[pid]).unwrap();
        let mut sum = 0u64;
        for value in 0..2_000_000u64 {
            sum = sum.wrapping_add(std::hint::black_box(value));
        }
        std::hint::black_box(sum);
        // Sleeping switches the thread out, which brings its CPU time up to date.
        std::thread::sleep(std::time::Duration::from_millis(2));
        let after = sched(&[pid]).unwrap();
        assert!(before.cpu_ns > 0, "{before:?}");
        assert!(after.since(before).cpu_ns > 0, "{before:?} then {after:?}");
    }

    #[test]
    fn sched_names_a_missing_process() {
        let error = sched(&[u32::MAX]).unwrap_err().to_string();
        assert!(error.contains(&u32::MAX.to_string()), "{error}");
    }
}
