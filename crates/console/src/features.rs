//! Feature bits of the virtio-console device (virtio 1.2, section 5.3.3).
//!
//! virtio-bindings 0.2.7 has no console module, so the bits are defined here.

/// The device complies with virtio 1.0 or later (bit 32).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// The `cols` and `rows` config fields are valid (bit 0).
pub const VIRTIO_CONSOLE_F_SIZE: u64 = 1 << 0;

/// The device supports multiple ports and the control queues (bit 1). This device never offers it.
pub const VIRTIO_CONSOLE_F_MULTIPORT: u64 = 1 << 1;

/// The driver may write single characters to the `emerg_wr` config field (bit 2).
pub const VIRTIO_CONSOLE_F_EMERG_WRITE: u64 = 1 << 2;

/// Returns the features this device offers: VERSION_1 and EMERG_WRITE always, SIZE only when the
/// backend has a terminal size.
pub const fn offered(has_size: bool) -> u64 {
    let base = VIRTIO_F_VERSION_1 | VIRTIO_CONSOLE_F_EMERG_WRITE;
    if has_size {
        base | VIRTIO_CONSOLE_F_SIZE
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_match_virtio_spec() {
        assert_eq!(VIRTIO_CONSOLE_F_SIZE, 0x1);
        assert_eq!(VIRTIO_CONSOLE_F_MULTIPORT, 0x2);
        assert_eq!(VIRTIO_CONSOLE_F_EMERG_WRITE, 0x4);
        assert_eq!(VIRTIO_F_VERSION_1, 0x1_0000_0000);
    }

    #[test]
    fn offered_never_includes_multiport() {
        assert_eq!(offered(true) & VIRTIO_CONSOLE_F_MULTIPORT, 0);
        assert_eq!(offered(false) & VIRTIO_CONSOLE_F_MULTIPORT, 0);
    }

    #[test]
    fn offered_size_follows_backend() {
        assert_ne!(offered(true) & VIRTIO_CONSOLE_F_SIZE, 0);
        assert_eq!(offered(false) & VIRTIO_CONSOLE_F_SIZE, 0);
        assert_ne!(offered(false) & VIRTIO_F_VERSION_1, 0);
        assert_ne!(offered(false) & VIRTIO_CONSOLE_F_EMERG_WRITE, 0);
    }
}
