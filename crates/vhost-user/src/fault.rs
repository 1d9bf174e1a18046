//! Survives a frontend that shrinks a guest memory file after handing it over.
//!
//! Guest memory is the frontend's file (a memfd, tmpfs or hugetlbfs file) mapped shared. If the
//! frontend truncates it, touching a mapped page past the new end raises SIGBUS, whose default
//! action kills the server. [`install_fault_handler`] installs a SIGBUS handler that recognizes a
//! fault inside a registered guest memory range, maps an anonymous zero page over the faulting
//! page so the access completes, and counts the fault. The caller checks [`take_memory_faults`]
//! after it has touched guest memory and drops that connection. A SIGBUS anywhere else goes on to
//! the handler that was installed before, or to the default action.
//!
//! The handler is async-signal-safe: it reads atomics, calls mmap and sigaction, and allocates
//! nothing.
//!
//! NOTE: a zero page cannot replace one page of a hugetlbfs mapping, because hugetlb mappings
//! cannot be split, so a fault there still goes to the previous handler.

use std::io;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Guest memory ranges the handler can recognize at once. A vhost-user connection maps at most
/// [`crate::MAX_MEM_SLOTS`] regions, and the server serves one connection at a time.
const MAX_RANGES: usize = 64;

/// A registered range: start address and length, both 0 when the slot is free.
struct Range {
    start: AtomicUsize,
    len: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const FREE: Range = Range {
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
};

static RANGES: [Range; MAX_RANGES] = [FREE; MAX_RANGES];
/// Serializes slot allocation; the handler never takes it.
static SLOTS: Mutex<()> = Mutex::new(());
static FAULTS: AtomicU64 = AtomicU64::new(0);
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);
/// The SIGBUS disposition found at installation, to hand other faults on to.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Installs the SIGBUS handler, once per process. Later calls do nothing.
///
/// Call it after any other SIGBUS handler the process wants (Rust's own stack-overflow handler
/// is one), because faults outside guest memory are passed on to the handler found here.
pub fn install_fault_handler() -> io::Result<()> {
    static RESULT: OnceLock<Result<(), i32>> = OnceLock::new();
    let result = RESULT.get_or_init(|| install().map_err(|err| err.raw_os_error().unwrap_or(0)));
    result.map_err(io::Error::from_raw_os_error)
}

/// Returns how many guest memory faults the handler repaired since the last call, and resets
/// the count. A non-zero count means the frontend truncated a memory file: the guest memory
/// contents are no longer what the guest wrote, so drop the connection.
pub fn take_memory_faults() -> u64 {
    FAULTS.swap(0, Ordering::SeqCst)
}

fn install() -> io::Result<()> {
    // SAFETY: sysconf takes no pointers.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        PAGE_SIZE.store(page as usize, Ordering::SeqCst);
    }
    // SAFETY: a zeroed sigaction is a valid value: no handler, no flags and an empty mask.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
        handle_sigbus;
    action.sa_sigaction = handler as *const () as usize;
    action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
    let mut previous = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: both pointers refer to live locals; sigaction reads one and writes the other.
    if unsafe { libc::sigaction(libc::SIGBUS, &action, previous.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sigaction succeeded, so it wrote the previous disposition.
    let previous = unsafe { previous.assume_init() };
    let _ = PREVIOUS.set(previous);
    Ok(())
}

/// A guest memory range registered with the handler while it lives.
#[derive(Debug)]
pub(crate) struct FaultRange {
    slot: Option<usize>,
}

impl FaultRange {
    /// Registers `len` bytes of mapped guest memory at `start`. With every slot taken, the range
    /// is not covered, and a fault in it takes the previous handler's path.
    pub(crate) fn register(start: *const u8, len: usize) -> Self {
        let _slots = SLOTS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = RANGES
            .iter()
            .position(|range| range.len.load(Ordering::SeqCst) == 0);
        if let Some(index) = slot {
            RANGES[index].start.store(start as usize, Ordering::SeqCst);
            RANGES[index].len.store(len, Ordering::SeqCst);
        } else {
            log::warn!("vhost-user: more than {MAX_RANGES} guest memory ranges; not all are guarded against truncation");
        }
        FaultRange { slot }
    }
}

impl Drop for FaultRange {
    fn drop(&mut self) {
        if let Some(index) = self.slot {
            let _slots = SLOTS
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            RANGES[index].len.store(0, Ordering::SeqCst);
            RANGES[index].start.store(0, Ordering::SeqCst);
        }
    }
}

fn in_guest_memory(address: usize) -> bool {
    RANGES.iter().any(|range| {
        let len = range.len.load(Ordering::SeqCst);
        let start = range.start.load(Ordering::SeqCst);
        len != 0 && address >= start && address - start < len
    })
}

/// Maps a private zero page over the page that contains `address`. Returns whether it worked.
fn replace_page(address: usize) -> bool {
    let page_size = PAGE_SIZE.load(Ordering::SeqCst);
    let page = address & !(page_size - 1);
    let flags = libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    let protection = libc::PROT_READ | libc::PROT_WRITE;
    // SAFETY: the page lies inside a registered guest memory mapping that this crate owns and
    // that no Rust reference covers; MAP_FIXED replaces just that page of it.
    let mapped = unsafe { libc::mmap(page as *mut _, page_size, protection, flags, -1, 0) };
    mapped != libc::MAP_FAILED
}

extern "C" fn handle_sigbus(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let address = unsafe { (*info).si_addr() } as usize;
    if in_guest_memory(address) && replace_page(address) {
        FAULTS.fetch_add(1, Ordering::SeqCst);
        return;
    }
    pass_on(signal, info, context);
}

/// Hands a fault outside guest memory to the previous disposition: its handler, or the default
/// action, which the re-executed faulting instruction then triggers.
fn pass_on(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let previous = PREVIOUS
        .get()
        .map(|action| (action.sa_sigaction, action.sa_flags));
    match previous {
        Some((handler, flags)) if handler != libc::SIG_DFL && handler != libc::SIG_IGN => {
            if flags & libc::SA_SIGINFO != 0 {
                // SAFETY: SA_SIGINFO means the previous handler has this three-argument type.
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute(handler) };
                handler(signal, info, context);
            } else {
                // SAFETY: without SA_SIGINFO the previous handler takes the signal number only.
                let handler: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
                handler(signal);
            }
        }
        _ => {
            // SAFETY: resetting a disposition to SIG_DFL takes no pointers of ours.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_only_their_bytes() {
        let buffer = [0u8; 64];
        let start = buffer.as_ptr() as usize;
        let range = FaultRange::register(buffer.as_ptr(), 32);
        assert!(in_guest_memory(start));
        assert!(in_guest_memory(start + 31));
        assert!(!in_guest_memory(start + 32));
        assert!(!in_guest_memory(start.wrapping_sub(1)));
        drop(range);
        assert!(!in_guest_memory(start));
    }
}
