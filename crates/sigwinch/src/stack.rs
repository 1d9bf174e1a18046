//! The helper's stack: private anonymous memory with a guard page below it.

use std::ffi::c_void;
use std::io;
use std::ptr;

/// Usable stack size. The helper's deepest path is a few frames of raw system calls and one
/// 2 KiB getdents64 buffer. It installs no signal handler, so no signal frame lands here.
const STACK_SIZE: usize = 64 * 1024;

/// An mmap'd stack whose lowest page is PROT_NONE, so an overflow faults instead of writing into
/// the caller's memory.
#[derive(Debug)]
pub(crate) struct Stack {
    base: *mut c_void,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; no thread-affine state is attached.
unsafe impl Send for Stack {}
// SAFETY: `Stack` exposes only its address, never the memory, through `&self`.
unsafe impl Sync for Stack {}

impl Stack {
    /// Maps a new stack with its guard page.
    pub(crate) fn new() -> io::Result<Self> {
        let guard = page_size();
        let len = STACK_SIZE + guard;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK;
        // SAFETY: an anonymous mapping at an address of the kernel's choice aliases nothing.
        let base = unsafe { libc::mmap(ptr::null_mut(), len, prot, flags, -1, 0) };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Stack { base, len };
        // SAFETY: the first page lies inside the mapping made above, which nothing uses yet.
        if unsafe { libc::mprotect(base, guard, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The highest address of the stack, page-aligned and so 16-byte aligned.
    pub(crate) fn top(&self) -> usize {
        self.base as usize + self.len
    }

    /// The lowest address of the mapping, guard page included.
    pub(crate) fn base(&self) -> usize {
        self.base as usize
    }

    /// Size of the mapping in bytes, guard page included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Size of the usable part in bytes, for clone3's `stack_size`.
    pub(crate) fn usable_len(&self) -> usize {
        self.len - page_size()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: the owner drops the stack only after the helper has been reaped, so nothing
        // runs on this mapping any more.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf takes no pointers.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}
