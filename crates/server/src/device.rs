//! The console device as the vhost-user connection sees it.

use ttyvm_console::{ConfigError, Console, CONFIG_SIZE, NUM_QUEUES};
use ttyvm_vhost_user::{ConfigAccessError, VhostUserDevice};

/// Largest ring the server accepts. Linux's virtio_console uses what the device offers; 256
/// entries of 4 KiB or smaller buffers are far more than a console needs.
const MAX_QUEUE_SIZE: u16 = 256;

/// A borrowed [`Console`] that answers the vhost-user connection's device calls.
pub struct ConsoleDevice<'a>(pub &'a mut Console);

impl VhostUserDevice for ConsoleDevice<'_> {
    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> u16 {
        MAX_QUEUE_SIZE
    }

    fn device_features(&self) -> u64 {
        self.0.device_features()
    }

    fn ack_features(&mut self, features: u64) {
        self.0.ack_features(features);
    }

    fn config_size(&self) -> u32 {
        CONFIG_SIZE as u32
    }

    fn read_config(&self, offset: u32, data: &mut [u8]) -> Result<(), ConfigAccessError> {
        self.0
            .read_config(u64::from(offset), data)
            .map_err(|err| access_error(err, offset, data.len()))
    }

    fn write_config(&mut self, offset: u32, data: &[u8]) -> Result<(), ConfigAccessError> {
        self.0
            .write_config(u64::from(offset), data)
            .map_err(|err| access_error(err, offset, data.len()))
    }

    fn reset(&mut self) {
        self.0.reset();
    }
}

fn access_error(err: ConfigError, offset: u32, len: usize) -> ConfigAccessError {
    match err {
        ConfigError::ReadOnly { .. } | ConfigError::EmergWriteNotNegotiated => {
            ConfigAccessError::ReadOnly { offset, len }
        }
        _ => ConfigAccessError::OutOfRange {
            offset,
            len,
            size: CONFIG_SIZE as u32,
        },
    }
}
