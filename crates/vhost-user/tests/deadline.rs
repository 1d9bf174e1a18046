//! The limit for one whole message: a frontend that sends a message slowly is dropped.

mod common;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use ttyvm_vhost_user::{Connection, Error};
use vhost::vhost_user::message::FrontendReq;

/// Short limit for the tests; the default is several seconds.
const DEADLINE: Duration = Duration::from_millis(300);
/// Gap between two bytes of the slow frontend: well inside the limit for one read.
const GAP: Duration = Duration::from_millis(50);

/// Sends a GET_FEATURES header announcing `payload` bytes, then the payload a byte at a time,
/// until the backend closes the socket or the payload is complete.
fn dribble(mut frontend: UnixStream, payload: u32, header_too: bool) {
    let mut header = Vec::new();
    header.extend_from_slice(&u32::from(FrontendReq::GET_FEATURES).to_ne_bytes());
    header.extend_from_slice(&1u32.to_ne_bytes());
    header.extend_from_slice(&payload.to_ne_bytes());
    let bytes: Vec<u8> = if header_too {
        header
            .into_iter()
            .chain(vec![0; payload as usize])
            .collect()
    } else {
        frontend.write_all(&header).expect("send header");
        vec![0; payload as usize]
    };
    for byte in bytes {
        if frontend.write_all(&[byte]).is_err() {
            return;
        }
        thread::sleep(GAP);
    }
}

/// Starts a frontend that dribbles a message and returns how the connection ended and when.
fn serve_slow_frontend(header_too: bool) -> (Result<(), Error>, Duration) {
    let (frontend, backend) = UnixStream::pair().expect("socket pair");
    let mut device = TestDevice::new();
    let mut connection = Connection::new(backend, &device).expect("create connection");
    connection
        .set_message_timeout(DEADLINE)
        .expect("set the message timeout");
    let writer = thread::spawn(move || dribble(frontend, 200, header_too));
    assert!(wait_readable(connection.as_raw_fd(), TIMEOUT));
    let start = Instant::now();
    let mut result = Ok(());
    while start.elapsed() < TIMEOUT * 8 {
        if let Err(err) = connection.handle_request(&mut device) {
            result = Err(err);
            break;
        }
    }
    let elapsed = start.elapsed();
    drop(connection);
    writer.join().expect("writer thread");
    (result, elapsed)
}

fn assert_dropped_within_bound(result: Result<(), Error>, elapsed: Duration) {
    println!("dropped after {elapsed:?}, limit {DEADLINE:?}");
    let err = result.expect_err("a slow message must end the connection");
    assert!(
        matches!(err, Error::ReadTimeout { timeout } if timeout == DEADLINE),
        "{err:?}"
    );
    assert!(elapsed < DEADLINE * 3, "dropped only after {elapsed:?}");
    let message = err.to_string();
    println!("{message}");
    assert!(message.contains("timed out"), "{message}");
    assert!(message.contains("within 300ms"), "{message}");
}

#[test]
fn slow_payload_dropped_at_the_deadline() {
    let (result, elapsed) = serve_slow_frontend(false);
    assert_dropped_within_bound(result, elapsed);
}

#[test]
fn slow_header_dropped_at_the_deadline() {
    let (result, elapsed) = serve_slow_frontend(true);
    assert_dropped_within_bound(result, elapsed);
}
