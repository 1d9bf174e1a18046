//! Listener::bind and accept on sockets in a temp folder.

mod common;

use std::os::unix::net::{UnixListener, UnixStream};

use common::*;
use ttyvm_vhost_user::{Listener, ListenerError, MAX_SOCKET_PATH};

#[test]
fn bind_missing_folder() {
    let folder = TempFolder::new("missing");
    let path = folder.0.join("absent").join("vhost.sock");
    let error = Listener::bind(&path).expect_err("bind in a missing folder");
    assert!(
        matches!(error, ListenerError::MissingFolder { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    println!("{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(!message.contains('\n'));
}

#[test]
fn bind_live_socket_in_use() {
    let folder = TempFolder::new("live");
    let path = folder.0.join("vhost.sock");
    let first = Listener::bind(&path).expect("first bind");
    let error = Listener::bind(&path).expect_err("second bind");
    assert!(matches!(error, ListenerError::InUse(_)), "{error:?}");
    let message = error.to_string();
    println!("{message}");
    assert!(message.contains("in use"), "{message}");
    assert!(
        UnixStream::connect(&path).is_ok(),
        "first listener lost its socket"
    );
    drop(first);
}

#[test]
fn bind_replaces_stale_socket() {
    let folder = TempFolder::new("stale");
    let path = folder.0.join("vhost.sock");
    drop(UnixListener::bind(&path).expect("bind and leave a stale socket file"));
    assert!(path.exists());
    let listener = Listener::bind(&path).expect("bind over the stale socket");
    let client = UnixStream::connect(&path).expect("connect to the new listener");
    let connection = listener.accept(&TestDevice::new()).expect("accept");
    assert_eq!(connection.num_queues(), NUM_QUEUES);
    drop(client);
}

#[test]
fn bind_leaves_non_socket_alone() {
    let folder = TempFolder::new("file");
    let path = folder.0.join("vhost.sock");
    std::fs::write(&path, b"not a socket").expect("write file");
    let error = Listener::bind(&path).expect_err("bind over a regular file");
    assert!(matches!(error, ListenerError::NotASocket(_)), "{error:?}");
    let message = error.to_string();
    println!("{message}");
    assert!(message.contains("not a socket"), "{message}");
    assert_eq!(
        std::fs::read(&path).expect("file still there"),
        b"not a socket"
    );
}

#[test]
fn drop_removes_socket_file() {
    let folder = TempFolder::new("drop");
    let path = folder.0.join("vhost.sock");
    let listener = Listener::bind(&path).expect("bind");
    assert!(path.exists());
    drop(listener);
    assert!(!path.exists());
}

/// Joins an error and its sources, as `ttyvm serve` prints them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

/// Returns a path of exactly `length` bytes inside `folder`.
fn path_of_length(folder: &TempFolder, length: usize) -> std::path::PathBuf {
    let prefix = folder.0.display().to_string().len() + 1;
    assert!(
        length > prefix + 5,
        "temp folder path too long for the test"
    );
    let path = folder.0.join("s".repeat(length - prefix));
    assert_eq!(path.as_os_str().len(), length);
    path
}

#[test]
fn bind_path_too_long_says_length_and_limit() {
    let folder = TempFolder::new("long");
    let path = path_of_length(&folder, MAX_SOCKET_PATH + 1);
    let error = Listener::bind(&path).expect_err("bind a 108-byte path");
    assert!(
        matches!(error, ListenerError::PathTooLong { length: 108, .. }),
        "{error:?}"
    );
    let line = chain(&error);
    println!("{line}");
    assert!(line.contains("is 108 bytes"), "{line}");
    assert!(line.contains("107 bytes"), "{line}");
    assert!(line.contains("choose a shorter path"), "{line}");
    assert_eq!(line.matches("is 108 bytes").count(), 1, "{line}");
    assert!(!path.exists(), "nothing may be created");
}

#[test]
fn bind_path_at_the_limit_works() {
    let folder = TempFolder::new("limit");
    let path = path_of_length(&folder, MAX_SOCKET_PATH);
    let listener = Listener::bind(&path).expect("bind a 107-byte path");
    UnixStream::connect(&path).expect("connect to it");
    drop(listener);
}
