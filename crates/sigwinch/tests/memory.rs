//! Spawning makes none of the caller's memory copy-on-write.

use std::os::fd::AsFd;

use ttyvm_sigwinch::ResizeListener;
use ttyvm_term::Pty;

const REGION: usize = 64 * 1024 * 1024;
const PAGE: usize = 4096;
const PAGES: usize = REGION / PAGE;

/// Minor page faults of the calling thread so far.
fn minor_faults() -> i64 {
    // SAFETY: an all-zero rusage is valid, and getrusage fills the local.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
        usage
    };
    usage.ru_minflt
}

/// Private anonymous memory, with transparent huge pages off so faults count 4 KiB pages.
struct Region(*mut u8);

impl Region {
    fn new() -> Region {
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        // SAFETY: a new anonymous mapping aliases nothing.
        let base = unsafe { libc::mmap(std::ptr::null_mut(), REGION, prot, flags, -1, 0) };
        assert_ne!(base, libc::MAP_FAILED);
        // SAFETY: the range is the mapping made above.
        let ret = unsafe { libc::madvise(base, REGION, libc::MADV_NOHUGEPAGE) };
        assert_eq!(ret, 0);
        Region(base.cast())
    }

    /// Writes `value` into every page and returns the minor faults that took.
    fn write_all(&self, value: u8) -> i64 {
        let before = minor_faults();
        for page in 0..PAGES {
            // SAFETY: the offset lies inside the mapping, which only this value uses.
            unsafe { self.0.add(page * PAGE).write_volatile(value) };
        }
        minor_faults() - before
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` and nothing refers to it any more.
        unsafe { libc::munmap(self.0.cast(), REGION) };
    }
}

/// Rewrites the region while a forked child holds a copy-on-write view of it, so that the
/// measurement is shown to detect copy-on-write.
fn faults_with_forked_child(region: &Region) -> i64 {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two fds into the local array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: the child calls only read and _exit, which are async-signal-safe.
    let child = unsafe { libc::fork() };
    if child == 0 {
        let mut byte = 0u8;
        // SAFETY: close takes no pointers, read writes one byte into the local, and _exit does
        // not return. The child closes its copy of the write end so that read sees end of file.
        unsafe {
            libc::close(fds[1]);
            libc::read(fds[0], (&mut byte as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    assert!(child > 0);
    let faults = region.write_all(3);
    // SAFETY: closing the write end makes the child's read return, then waitpid reaps it.
    unsafe {
        libc::close(fds[1]);
        libc::close(fds[0]);
        assert_eq!(libc::waitpid(child, std::ptr::null_mut(), 0), child);
    }
    faults
}

#[test]
fn spawn_keeps_memory_private() {
    let region = Region::new();
    let first = region.write_all(1);
    assert!(
        first >= PAGES as i64 * 9 / 10,
        "first touch took only {first} faults"
    );
    let idle = region.write_all(2);

    let pty = Pty::open().unwrap();
    let listener = ResizeListener::spawn(pty.subsidiary.as_fd()).unwrap();
    let with_listener = region.write_all(4);
    drop(listener);

    let with_fork = faults_with_forked_child(&region);
    let ratio = with_listener as f64 / PAGES as f64;
    eprintln!(
        "minor faults rewriting {PAGES} pages: first touch {first}, no helper {idle}, \
         with listener {with_listener} ({:.4}%), with a forked child {with_fork}",
        ratio * 100.0
    );
    assert!(
        with_fork >= PAGES as i64 * 9 / 10,
        "the measurement misses copy-on-write"
    );
    assert!(
        with_listener < PAGES as i64 / 100,
        "{with_listener} faults with the listener"
    );
}
