//! A frontend that truncates its guest memory file after handing it over. Touching the lost
//! pages raises SIGBUS; with the fault handler installed the server survives, reads zeros and
//! learns of the fault. This file is a test binary of its own because the handler is
//! process-wide.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use common::*;
use ttyvm_vhost_user::{install_fault_handler, take_memory_faults};
use vhost::vhost_user::message::VhostUserHeaderFlag;
use vhost::vhost_user::Frontend;
use vhost::{VhostBackend, VhostUserMemoryRegionInfo};
use vm_memory::{Bytes, GuestAddress};

const GUEST_BASE: u64 = 0x10_0000;
const MEMORY_SIZE: u64 = 0x10_0000;

#[test]
fn truncated_memory_faults_are_survived() {
    install_fault_handler().expect("install the SIGBUS handler");
    let (frontend_stream, backend_stream) = UnixStream::pair().expect("socket pair");
    let frontend = Frontend::from_stream(frontend_stream, NUM_QUEUES as u64);
    let server = Server::spawn(backend_stream);
    frontend.set_owner().expect("SET_OWNER");
    frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);

    let memfd = memfd(MEMORY_SIZE);
    let region = VhostUserMemoryRegionInfo {
        guest_phys_addr: GUEST_BASE,
        memory_size: MEMORY_SIZE,
        userspace_addr: 0x7f00_0000_0000,
        mmap_offset: 0,
        mmap_handle: memfd.as_raw_fd(),
    };
    frontend.set_mem_table(&[region]).expect("SET_MEM_TABLE");
    let written = server.with(|state| {
        let memory = state.connection.memory().expect("memory mapped");
        memory.write_obj(0xabcd_u32, GuestAddress(GUEST_BASE + 0x2000))
    });
    assert!(written.is_ok());
    assert_eq!(take_memory_faults(), 0);

    memfd.set_len(0).expect("truncate the memfd");
    let read = server.with(|state| {
        let memory = state.connection.memory().expect("memory mapped");
        memory.read_obj::<u32>(GuestAddress(GUEST_BASE + 0x2000))
    });
    // The page is gone from the file, so the server sees a zero page instead of dying.
    assert_eq!(read.ok(), Some(0));
    assert_eq!(take_memory_faults(), 1);
    assert_eq!(take_memory_faults(), 0, "taking the count resets it");
}
