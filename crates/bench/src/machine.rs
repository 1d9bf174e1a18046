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
        }
    }

    /// Formats the description as one line.
    pub fn line(&self) -> String {
        format!(
            "{}, nproc {}, kernel {}, {}",
            self.cpu, self.cpus, self.kernel, self.date
        )
    }
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
