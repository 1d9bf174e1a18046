//! Raw Linux system calls for the helper, which shares the caller's memory and TLS.
//!
//! glibc's `syscall(2)` wrapper stores a failure in `errno`, a thread-local variable. The helper
//! runs with the TLS pointer of the thread that spawned it, so that store would land in the
//! caller's `errno` at an arbitrary moment. These wrappers return the kernel's result unchanged:
//! a negative value is `-errno`.

use std::arch::asm;
use std::ffi::{c_long, c_void};

/// The function a cloned child runs on its new stack. It must never return.
pub(crate) type ChildEntry = extern "C" fn(*mut c_void) -> !;

/// Makes a system call with up to six arguments and returns the kernel's raw result.
///
/// # Safety
///
/// The arguments must be valid for system call `nr`: every pointer argument must point to memory
/// that the call may read or write for as long as the call needs it.
#[inline(always)]
pub(crate) unsafe fn syscall6(nr: c_long, args: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller guarantees the arguments are valid for `nr`. The `syscall` instruction
    // clobbers only rcx and r11 besides rax, and it touches no user stack.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Makes a system call with up to three arguments.
///
/// # Safety
///
/// As for [`syscall6`].
#[inline(always)]
pub(crate) unsafe fn syscall3(nr: c_long, a0: usize, a1: usize, a2: usize) -> isize {
    // SAFETY: forwarded from the caller.
    unsafe { syscall6(nr, [a0, a1, a2, 0, 0, 0]) }
}

/// Makes a clone-family system call (`clone` or `clone3`) whose child starts on a new stack, and
/// runs `entry(arg)` in the child. Returns the kernel's raw result in the parent.
///
/// # Safety
///
/// The arguments must ask the kernel for a new stack: for `clone`, `args[1]` is the top of a
/// stack, and for `clone3` the `clone_args` at `args[0]` name one. The stack must be 16-byte
/// aligned at its top and stay mapped for the child's whole life. `entry` must be
/// async-signal-safe and must not return.
pub(crate) unsafe fn clone_on_new_stack(
    nr: c_long,
    args: [usize; 5],
    entry: ChildEntry,
    arg: *mut c_void,
) -> isize {
    let ret: isize;
    // SAFETY: the caller guarantees the new stack. In the child the kernel returns 0 with rsp on
    // that stack and every other register as the parent left it, so r12 and r13 still hold `arg`
    // and `entry`. The child calls `entry`, which never returns (ud2 traps if it did). The parent
    // takes the branch to label 2 and returns the result in rax.
    unsafe {
        asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") nr as isize => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r12") arg,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Ends the calling process (thread group) with `status`. Never returns.
pub(crate) fn exit_group(status: i32) -> ! {
    loop {
        // SAFETY: exit_group takes no pointers and does not return.
        unsafe { syscall3(libc::SYS_exit_group, status as usize, 0, 0) };
    }
}

#[cfg(not(target_arch = "x86_64"))]
compile_error!("ttyvm-sigwinch implements its raw system calls for x86_64 only");
