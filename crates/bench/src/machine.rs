//! The description of the machine and the moment of a run, printed above every table.

use std::process::Command;

/// The machine a run measured, and when.
#[derive(Debug, Clone)]
pub struct Machine {
    /// The CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// The number of CPUs this process may run on (`nproc`).
    pub cpus: usize,
    /// The kernel release (`uname -r`).
    pub kernel: String,
    /// The date and time of the run in UTC, as `date -u` prints it.
    pub date: String,
    /// The measured commit (`git rev-parse --short HEAD`) and the state of the work tree.
    pub commit: String,
    /// The load averages over 1, 5 and 15 minutes when the run started.
    pub load: String,
}

impl Machine {
    /// Reads the machine description; a value that cannot be read becomes `unknown`.
    pub fn describe() -> Self {
        let cpus = std::thread::available_parallelism().map_or(0, usize::from);
        Machine {
            cpu: cpu_model().unwrap_or_else(|| "unknown".to_string()),
            cpus,
            kernel: command_output("uname", &["-r"]).unwrap_or_else(|| "unknown".to_string()),
            date: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
                .unwrap_or_else(|| "unknown".to_string()),
            commit: commit(),
            load: crate::procstat::load_average(),
        }
    }

    /// Formats the description as one line.
    pub fn line(&self) -> String {
        format!(
            "{}, nproc {}, kernel {}, {}, load average {} at the start, commit {}",
            self.cpu, self.cpus, self.kernel, self.date, self.load, self.commit
        )
    }
}

/// How many changed paths the commit description names.
const NAMED_CHANGES: usize = 4;

/// Describes the commit of the repository this bench was built from, and whether its work
/// tree differs from it, naming the first changed paths.
fn commit() -> String {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let Some(hash) = command_output("git", &["-C", root, "rev-parse", "--short", "HEAD"]) else {
        return "unknown (git rev-parse failed)".to_string();
    };
    let status = Command::new("git")
        .args(["-C", root, "status", "--porcelain"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).into_owned());
    let Some(status) = status else {
        return format!("{hash} (work tree state unknown)");
    };
    let changed: Vec<&str> = status.lines().filter_map(|line| line.get(3..)).collect();
    if changed.is_empty() {
        return format!("{hash} (clean work tree)");
    }
    let named = changed[..changed.len().min(NAMED_CHANGES)].join(", ");
    let more = changed.len().saturating_sub(NAMED_CHANGES);
    let rest = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "{hash} (work tree with uncommitted changes in {} paths: {named}{rest})",
        changed.len()
    )
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).trim().to_string())
}
