//! Listener::bind and accept on sockets in a temp folder.

mod common;

use std::os::unix::net::{UnixListener, UnixStream};

use common::*;
use ttyvm_vhost_user::{Listener, ListenerError};

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
