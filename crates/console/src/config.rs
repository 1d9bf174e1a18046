//! The console's config space (virtio 1.2, section 5.3.4): twelve little-endian bytes.
//!
//! | offset | field          | type |
//! |--------|----------------|------|
//! | 0      | `cols`         | u16  |
//! | 2      | `rows`         | u16  |
//! | 4      | `max_nr_ports` | u32  |
//! | 8      | `emerg_wr`     | u32  |

use ttyvm_term::WindowSize;

/// Size of the config space in bytes.
pub const CONFIG_SIZE: usize = 12;

/// Offset of the `emerg_wr` field, the only field a driver writes.
pub const EMERG_WR_OFFSET: u64 = 8;

/// Value of `max_nr_ports`. The field is meaningful only with VIRTIO_CONSOLE_F_MULTIPORT, which
/// this device never offers, so it reports its single port.
const MAX_NR_PORTS: u32 = 1;

/// A rejected config space access.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The access reaches past the end of the config space.
    #[error(
        "config access at offset {offset} with length {len} is outside the {CONFIG_SIZE}-byte \
         console config space"
    )]
    OutOfRange {
        /// Offset of the access.
        offset: u64,
        /// Length of the access in bytes.
        len: usize,
    },
    /// The write touches a field other than `emerg_wr`, which the driver must not write.
    #[error(
        "config write at offset {offset} with length {len} touches a read-only field; only \
         emerg_wr (offset 8, up to 4 bytes) is writable"
    )]
    ReadOnly {
        /// Offset of the write.
        offset: u64,
        /// Length of the write in bytes.
        len: usize,
    },
    /// The driver wrote `emerg_wr` without negotiating VIRTIO_CONSOLE_F_EMERG_WRITE.
    #[error("emerg_wr write rejected: the driver did not negotiate VIRTIO_CONSOLE_F_EMERG_WRITE")]
    EmergWriteNotNegotiated,
}

/// Returns the config space bytes for `size`. `emerg_wr` reads as zero.
pub fn config_bytes(size: WindowSize) -> [u8; CONFIG_SIZE] {
    let mut bytes = [0u8; CONFIG_SIZE];
    bytes[0..2].copy_from_slice(&size.cols.to_le_bytes());
    bytes[2..4].copy_from_slice(&size.rows.to_le_bytes());
    bytes[4..8].copy_from_slice(&MAX_NR_PORTS.to_le_bytes());
    bytes
}

/// Returns the byte range `offset..offset + len` if it lies inside the config space.
fn checked_range(offset: u64, len: usize) -> Result<std::ops::Range<usize>, ConfigError> {
    let out_of_range = ConfigError::OutOfRange { offset, len };
    let start = usize::try_from(offset).map_err(|_| out_of_range.clone())?;
    let end = start.checked_add(len).ok_or(out_of_range.clone())?;
    if end > CONFIG_SIZE {
        return Err(out_of_range);
    }
    Ok(start..end)
}

/// Copies the config bytes at `offset` into `data`, for any offset and length inside the space.
pub fn read(size: WindowSize, offset: u64, data: &mut [u8]) -> Result<(), ConfigError> {
    let range = checked_range(offset, data.len())?;
    data.copy_from_slice(&config_bytes(size)[range]);
    Ok(())
}

/// Checks a config write and returns the character written to `emerg_wr`.
///
/// The driver writes the character as a little-endian u32; a write of 1 to 4 bytes at offset 8
/// is accepted and its low byte is the character.
pub fn parse_write(offset: u64, data: &[u8]) -> Result<u8, ConfigError> {
    checked_range(offset, data.len())?;
    if offset != EMERG_WR_OFFSET || data.is_empty() {
        return Err(ConfigError::ReadOnly {
            offset,
            len: data.len(),
        });
    }
    Ok(data[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: WindowSize = WindowSize::new(0x1234, 0xabcd);
    const EXPECTED: [u8; CONFIG_SIZE] = [0xcd, 0xab, 0x34, 0x12, 1, 0, 0, 0, 0, 0, 0, 0];

    #[test]
    fn config_bytes_little_endian() {
        assert_eq!(config_bytes(SIZE), EXPECTED);
    }

    #[test]
    fn read_every_offset_and_length() {
        for len in 1..=CONFIG_SIZE {
            for offset in 0..=(CONFIG_SIZE - len) {
                let mut data = vec![0xffu8; len];
                read(SIZE, offset as u64, &mut data).unwrap();
                assert_eq!(
                    data,
                    EXPECTED[offset..offset + len],
                    "offset {offset} len {len}"
                );
            }
        }
    }

    #[test]
    fn read_outside_space_rejected() {
        for (offset, len) in [(12u64, 1usize), (11, 2), (0, 13), (8, 5), (u64::MAX, 1)] {
            let mut data = vec![0u8; len];
            let err = read(SIZE, offset, &mut data).unwrap_err();
            assert_eq!(err, ConfigError::OutOfRange { offset, len });
        }
    }

    #[test]
    fn read_with_huge_offset_and_length_rejected() {
        let mut data = [0u8; 4];
        assert!(read(SIZE, u64::MAX - 1, &mut data).is_err());
        assert!(read(SIZE, usize::MAX as u64, &mut data).is_err());
    }

    #[test]
    fn write_emerg_wr_returns_low_byte() {
        assert_eq!(parse_write(8, &[b'x', 0, 0, 0]), Ok(b'x'));
        assert_eq!(parse_write(8, b"y"), Ok(b'y'));
    }

    #[test]
    fn write_other_fields_rejected() {
        for (offset, len) in [(0u64, 2usize), (2, 2), (4, 4), (7, 2), (9, 1)] {
            let data = vec![0u8; len];
            let err = parse_write(offset, &data).unwrap_err();
            assert_eq!(err, ConfigError::ReadOnly { offset, len });
        }
        assert_eq!(
            parse_write(8, &[0; 5]),
            Err(ConfigError::OutOfRange { offset: 8, len: 5 })
        );
        assert_eq!(
            parse_write(8, &[]),
            Err(ConfigError::ReadOnly { offset: 8, len: 0 })
        );
    }
}
