//! Benchmark of the resize listener against an anchor, run with `cargo bench -p ttyvm-sigwinch`.
//!
//! The anchor is the direct way to learn of a resize, with no helper in between: a forked process
//! that is itself the terminal's foreground group (setsid, TIOCSCTTY), reads SIGWINCH from a
//! signalfd and writes one byte to a pipe. Both run side by side on ptys in the same run, and the listener's
//! figures are reported as ratios to the anchor's. Nothing here asserts a time.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use ttyvm_sigwinch::{ResizeListener, WindowSize};
use ttyvm_term::{set_window_size, Pty};

const SPAWNS: usize = 200;
const RESIZES: usize = 1000;
const IDLE: Duration = Duration::from_secs(10);
const WAKE_TIMEOUT: Duration = Duration::from_secs(1);

/// The anchor process: its pid and the read end of its notification pipe.
struct Anchor {
    pid: libc::pid_t,
    read: OwnedFd,
}

impl Anchor {
    /// Forks the anchor on `tty` and waits for its ready byte.
    fn start(tty: BorrowedFd<'_>) -> Anchor {
        let (read, write) = pipe();
        // SAFETY: the benchmark is single-threaded here, and the child runs only
        // async-signal-safe calls before _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            anchor_main(tty.as_raw_fd(), write.as_raw_fd());
        }
        assert!(pid > 0, "fork failed");
        drop(write);
        assert!(
            wait_readable(read.as_fd(), Duration::from_secs(5)),
            "anchor not ready"
        );
        drain(read.as_fd());
        Anchor { pid, read }
    }
}

impl Drop for Anchor {
    fn drop(&mut self) {
        // SAFETY: kill and waitpid take no pointers besides the null status.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// The anchor's body in the forked child. Async-signal-safe: libc system call wrappers only.
fn anchor_main(tty: RawFd, notify: RawFd) -> ! {
    // SAFETY: each call takes only integers or pointers to live locals, and _exit never returns.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGWINCH);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let signals = libc::signalfd(-1, &set, libc::SFD_CLOEXEC);
        if libc::setsid() < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 || signals < 0 {
            libc::_exit(1);
        }
        let byte = 1u8;
        libc::write(notify, (&byte as *const u8).cast(), 1);
        let mut info = [0u8; 128];
        loop {
            if libc::read(signals, info.as_mut_ptr().cast(), info.len()) > 0 {
                libc::write(notify, (&byte as *const u8).cast(), 1);
            }
        }
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the local array.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert_eq!(ret, 0, "pipe2 failed");
    // SAFETY: both fds are new and owned by nothing else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll writes `revents` of the one local pollfd.
    unsafe { libc::poll(&mut pollfd, 1, timeout.as_millis() as i32) > 0 }
}

fn drain(fd: BorrowedFd<'_>) {
    let mut buffer = [0u8; 512];
    // SAFETY: read writes at most `buffer.len()` bytes into the local buffer.
    while unsafe { libc::read(fd.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) } > 0 {}
}

/// Percentile `p` (0 to 100) of sorted samples, by nearest rank.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

fn spawn_times_listener(pty: &Pty) -> Vec<Duration> {
    let mut times = Vec::with_capacity(SPAWNS);
    for _ in 0..SPAWNS {
        let started = Instant::now();
        let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap();
        times.push(started.elapsed());
        drop(listener);
    }
    times.sort();
    times
}

fn spawn_times_anchor(pty: &Pty) -> Vec<Duration> {
    let mut times = Vec::with_capacity(SPAWNS);
    for _ in 0..SPAWNS {
        let started = Instant::now();
        let anchor = Anchor::start(pty.subsidiary.as_fd());
        times.push(started.elapsed());
        drop(anchor);
    }
    times.sort();
    times
}

/// Resizes `RESIZES` times and returns the sorted wake latencies and the number lost.
fn wake_latencies(main: BorrowedFd<'_>, reader: BorrowedFd<'_>) -> (Vec<Duration>, usize) {
    let mut latencies = Vec::with_capacity(RESIZES);
    let mut lost = 0;
    for i in 0..RESIZES {
        let size = WindowSize::new(20 + (i % 2) as u16, 80);
        let started = Instant::now();
        set_window_size(main, size).unwrap();
        if wait_readable(reader, WAKE_TIMEOUT) {
            latencies.push(started.elapsed());
        } else {
            lost += 1;
        }
        drain(reader);
    }
    latencies.sort();
    (latencies, lost)
}

fn status_field(pid: libc::pid_t, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn context_switches(pid: libc::pid_t) -> u64 {
    status_field(pid, "voluntary_ctxt_switches") + status_field(pid, "nonvoluntary_ctxt_switches")
}

fn machine() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name")?.split_once(':'))
        .map_or("unknown", |(_, model)| model.trim())
        .to_string();
    format!("Linux {}, {cpus} CPUs, {model}", release.trim())
}

fn micros(duration: Duration) -> String {
    format!("{:.1} µs", duration.as_secs_f64() * 1e6)
}

fn row(name: &str, ours: Duration, anchor: Duration) {
    let ratio = ours.as_secs_f64() / anchor.as_secs_f64();
    println!(
        "| {name} | {} | {} | {ratio:.2} |",
        micros(ours),
        micros(anchor)
    );
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let listener_pty = Pty::open().unwrap();
    let anchor_pty = Pty::open().unwrap();

    let spawn_ours = spawn_times_listener(&listener_pty);
    let spawn_anchor = spawn_times_anchor(&anchor_pty);

    let listener = ResizeListener::spawn(listener_pty.subsidiary.as_fd()).unwrap();
    let anchor = Anchor::start(anchor_pty.subsidiary.as_fd());
    let (wake_ours, lost_ours) = wake_latencies(listener_pty.main.as_fd(), listener.as_fd());
    let (wake_anchor, lost_anchor) = wake_latencies(anchor_pty.main.as_fd(), anchor.read.as_fd());

    let helper = listener.helper_pid();
    let rss_ours = status_field(helper, "VmRSS");
    let stack_ours = listener.stack_resident_bytes().unwrap_or(0) / 1024;
    let rss_anchor = status_field(anchor.pid, "VmRSS");
    let switches_before = (context_switches(helper), context_switches(anchor.pid));
    std::thread::sleep(IDLE);
    let idle_ours = context_switches(helper) - switches_before.0;
    let idle_anchor = context_switches(anchor.pid) - switches_before.1;

    println!("Machine: {}", machine());
    println!("Command: `cargo bench -p ttyvm-sigwinch`\n");
    println!("| Measure | Listener | Anchor (signalfd, foreground) | Ratio |");
    println!("|---|---|---|---|");
    row(
        "spawn, median",
        percentile(&spawn_ours, 50),
        percentile(&spawn_anchor, 50),
    );
    row(
        "spawn, p99",
        percentile(&spawn_ours, 99),
        percentile(&spawn_anchor, 99),
    );
    for p in [50, 90, 99] {
        let name = format!("TIOCSWINSZ to reader wake, p{p}");
        row(
            &name,
            percentile(&wake_ours, p),
            percentile(&wake_anchor, p),
        );
    }
    println!("| resizes lost of {RESIZES} | {lost_ours} | {lost_anchor} | |");
    println!(
        "| VmRSS | {rss_ours} KiB (shared with the caller; own stack {stack_ours} KiB) | \
         {rss_anchor} KiB (forked copy-on-write) | |"
    );
    println!(
        "| context switches in {} s idle | {idle_ours} | {idle_anchor} | |",
        IDLE.as_secs()
    );
    println!("\nSpawn: {SPAWNS} each, the anchor's from fork to its ready byte.");
}
