//! Per-ring state: the virtio queue, its fds, and the started/enabled flags.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use virtio_queue::desc::split::Descriptor;
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestAddress, GuestMemory, GuestMemoryMmap, Permissions};

use crate::error::KickError;
use crate::memory::MemoryMap;
use crate::message::{poll_now, poll_revents};

/// Ring addresses as the frontend sent them (frontend user addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RingAddresses {
    pub(crate) descriptor: u64,
    pub(crate) available: u64,
    pub(crate) used: u64,
}

/// One vring. A ring is started by `SET_VRING_KICK` and stopped by `GET_VRING_BASE`; it is
/// enabled by `SET_VRING_ENABLE`, or at start when `VHOST_USER_F_PROTOCOL_FEATURES` was not
/// negotiated.
#[derive(Debug)]
pub(crate) struct Vring {
    pub(crate) queue: Queue,
    pub(crate) kick: Option<File>,
    pub(crate) call: Option<File>,
    pub(crate) err: Option<File>,
    pub(crate) started: bool,
    pub(crate) enabled: bool,
    /// User addresses from `SET_VRING_ADDR`, kept to re-translate after a memory change.
    pub(crate) addresses: Option<RingAddresses>,
    /// Whether `addresses` translate in the current memory map.
    pub(crate) translated: bool,
}

impl Vring {
    pub(crate) fn new(queue: Queue) -> Self {
        Vring {
            queue,
            kick: None,
            call: None,
            err: None,
            started: false,
            enabled: false,
            addresses: None,
            translated: false,
        }
    }

    /// Stops and disables the ring, closes its fds and resets the queue.
    pub(crate) fn reset(&mut self) {
        self.queue.reset();
        self.kick = None;
        self.call = None;
        self.err = None;
        self.started = false;
        self.enabled = false;
        self.addresses = None;
        self.translated = false;
    }

    /// Returns whether the caller may process the ring now.
    pub(crate) fn is_ready(&self, memory: Option<&GuestMemoryMmap<()>>) -> bool {
        let Some(memory) = memory else {
            return false;
        };
        self.started && self.enabled && self.translated && RingAreas::of(&self.queue).fit(memory)
    }

    /// Translates `addresses` into the queue's guest physical addresses. With `require_fit`
    /// the three ring areas must also lie inside guest memory at the current queue size.
    /// On failure the ring keeps its previous addresses.
    pub(crate) fn apply_addresses(
        &mut self,
        addresses: RingAddresses,
        memory: &MemoryMap,
        require_fit: bool,
    ) -> Result<(), (&'static str, u64)> {
        let descriptor = translate(memory, "descriptor table", addresses.descriptor)?;
        let available = translate(memory, "available ring", addresses.available)?;
        let used = translate(memory, "used ring", addresses.used)?;
        let areas = RingAreas {
            size: self.queue.size(),
            descriptor,
            available,
            used,
        };
        let fits = memory.guest().is_some_and(|guest| areas.fit(guest));
        if require_fit && !fits {
            return Err(("ring extent", addresses.descriptor));
        }
        // The setters check alignment and leave the address unchanged on failure, so the three
        // calls go through a check first to keep the ring consistent.
        if descriptor.0 % 16 != 0 {
            return Err(("descriptor table", addresses.descriptor));
        }
        if available.0 % 2 != 0 {
            return Err(("available ring", addresses.available));
        }
        if used.0 % 4 != 0 {
            return Err(("used ring", addresses.used));
        }
        let _ = self.queue.try_set_desc_table_address(descriptor);
        let _ = self.queue.try_set_avail_ring_address(available);
        let _ = self.queue.try_set_used_ring_address(used);
        self.addresses = Some(addresses);
        self.translated = true;
        Ok(())
    }

    /// Re-translates the stored addresses after a memory map change.
    pub(crate) fn retranslate(&mut self, memory: &MemoryMap) {
        if let Some(addresses) = self.addresses {
            self.translated = self.apply_addresses(addresses, memory, false).is_ok();
        }
    }

    /// Writes the call fd once if it can take the write without blocking.
    pub(crate) fn signal_call(&self) -> io::Result<bool> {
        let Some(call) = &self.call else {
            return Ok(false);
        };
        if !writable_now(call)? {
            // The frontend has not drained the previous notifications; one is pending already.
            return Ok(true);
        }
        match (&*call).write(&1u64.to_ne_bytes()) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(err) => Err(err),
        }
    }

    /// Reads the kick fd if it is readable. Returns whether a kick was pending.
    ///
    /// A hang-up, an error condition or a read of 0 bytes means the fd will report itself ready
    /// forever without a kick, so each is an error.
    pub(crate) fn consume_kick(&self, queue: usize) -> Result<bool, KickError> {
        let Some(kick) = &self.kick else {
            return Ok(false);
        };
        let read_error = |source| KickError::Read { queue, source };
        let revents = poll_revents(kick.as_raw_fd(), libc::POLLIN, 0).map_err(read_error)?;
        if revents & KickError::BROKEN != 0 {
            return Err(KickError::HungUp { queue, revents });
        }
        if revents & libc::POLLIN == 0 {
            return Ok(false);
        }
        let mut value = [0u8; 8];
        match io::Read::read(&mut &*kick, &mut value) {
            Ok(0) => Err(KickError::EndOfFile { queue }),
            Ok(_) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(err) => Err(read_error(err)),
        }
    }
}

/// Checks that `file` is an eventfd, the only kind of kick fd that reads 8 bytes per kick and
/// never reaches end of file. Returns what the fd is otherwise.
///
/// Linux names an eventfd `anon_inode:[eventfd]` in /proc/self/fd, and that link is the one
/// test that tells it from other anonymous inodes, so this reads it. Without /proc the fd
/// cannot be checked and is rejected.
pub(crate) fn check_eventfd(file: &File) -> Result<(), String> {
    let link = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    match std::fs::read_link(&link) {
        Ok(target) if target.as_os_str() == "anon_inode:[eventfd]" => Ok(()),
        Ok(target) => Err(target.display().to_string()),
        Err(err) => Err(format!("an fd that {} cannot name ({err})", link.display())),
    }
}

fn translate(
    memory: &MemoryMap,
    ring: &'static str,
    address: u64,
) -> Result<GuestAddress, (&'static str, u64)> {
    memory.translate(address).ok_or((ring, address))
}

/// Guest physical placement of a split ring.
pub(crate) struct RingAreas {
    pub(crate) size: u16,
    pub(crate) descriptor: GuestAddress,
    pub(crate) available: GuestAddress,
    pub(crate) used: GuestAddress,
}

impl RingAreas {
    fn of(queue: &Queue) -> Self {
        RingAreas {
            size: queue.size(),
            descriptor: GuestAddress(queue.desc_table()),
            available: GuestAddress(queue.avail_ring()),
            used: GuestAddress(queue.used_ring()),
        }
    }

    /// Checks that the descriptor table, available ring and used ring lie inside guest memory.
    pub(crate) fn fit(&self, memory: &GuestMemoryMmap<()>) -> bool {
        let size = usize::from(self.size);
        let descriptor_len = std::mem::size_of::<Descriptor>() * size;
        // flags, idx, ring[size] and used_event, 2 bytes each.
        let available_len = 2 * size + 6;
        // flags and idx (2 bytes each), ring[size] of 8-byte elements, avail_event (2 bytes).
        let used_len = 8 * size + 6;
        GuestMemory::check_range(memory, self.descriptor, descriptor_len, Permissions::Read)
            && GuestMemory::check_range(memory, self.available, available_len, Permissions::Read)
            && GuestMemory::check_range(memory, self.used, used_len, Permissions::Write)
    }
}

fn writable_now(file: &File) -> io::Result<bool> {
    poll_now(file.as_raw_fd(), libc::POLLOUT)
}

#[cfg(test)]
mod tests {
    use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
    use std::os::unix::net::UnixStream;

    use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

    use super::*;

    /// The four kinds of fd that poll(2) reports ready although no kick ever arrives.
    fn never_kicking_fds() -> Vec<(&'static str, File)> {
        // Tests run in parallel threads, so each call gets a folder of its own.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("ttyvm-vring-kick-{}-{call}", std::process::id());
        let dir = std::env::temp_dir().join(name);
        std::fs::create_dir_all(&dir).expect("create temp folder");
        let regular = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("kick"))
            .expect("create regular file");
        std::fs::remove_dir_all(&dir).expect("remove temp folder");
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two fds pipe2 writes.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: pipe2 returned two new fds that nothing else owns.
        let (read_end, write_end) =
            unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) };
        drop(write_end);
        let (socket, peer) = UnixStream::pair().expect("socket pair");
        drop(peer);
        vec![
            ("regular file", regular),
            ("pipe without writer", read_end),
            (
                "/dev/null",
                File::open("/dev/null").expect("open /dev/null"),
            ),
            ("socket at EOF", File::from(OwnedFd::from(socket))),
        ]
    }

    /// Returns an eventfd as a File, and a second handle to it.
    fn eventfd_file() -> (File, EventFd) {
        let eventfd = EventFd::new(EFD_NONBLOCK).expect("eventfd");
        let raw = eventfd.try_clone().expect("clone eventfd").into_raw_fd();
        // SAFETY: into_raw_fd handed over a new fd that nothing else owns.
        (unsafe { File::from_raw_fd(raw) }, eventfd)
    }

    fn vring_with_kick(kick: File) -> Vring {
        let mut vring = Vring::new(Queue::new(8).expect("queue"));
        vring.kick = Some(kick);
        vring
    }

    #[test]
    fn kick_fd_that_never_kicks_is_an_error() {
        for (kind, file) in never_kicking_fds() {
            let error = vring_with_kick(file)
                .consume_kick(1)
                .expect_err(&format!("{kind} must not pass as a kick fd"));
            println!("{kind}: {error}");
            assert!(
                matches!(
                    error,
                    KickError::HungUp { queue: 1, .. } | KickError::EndOfFile { queue: 1 }
                ),
                "{kind}: {error:?}"
            );
            assert!(error.to_string().contains("vring 1"), "{error}");
        }
    }

    #[test]
    fn eventfd_kick_is_consumed_once() {
        let (file, kick) = eventfd_file();
        kick.write(1).expect("kick");
        let vring = vring_with_kick(file);
        assert!(vring.consume_kick(0).expect("first read"));
        assert!(!vring.consume_kick(0).expect("second read"));
    }

    #[test]
    fn only_an_eventfd_passes_the_check() {
        for (kind, file) in never_kicking_fds() {
            let target = check_eventfd(&file).expect_err(kind);
            println!("{kind}: {target}");
            assert!(!target.contains("eventfd"), "{kind}: {target}");
        }
        let (file, _eventfd) = eventfd_file();
        assert_eq!(check_eventfd(&file), Ok(()));
    }
}
