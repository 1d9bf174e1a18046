//! Shared definitions of the `ttyvm-responder` guest program and the host tests that read it.
//!
//! The binary runs inside the User-Mode Linux test guest. This library contains what both ends must
//! agree on: the line formats ([`protocol`]), the byte stream that `emit` writes
//! ([`stream::PseudoRandomStream`]) and the checksum ([`checksum::Fnv1a64`]). It has no
//! dependencies, so the host side can link it without pulling in the guest's libc code.

pub mod checksum;
pub mod protocol;
pub mod stream;
