use super::*;

fn sized(rows: u16, cols: u16) -> Sink {
    Sink {
        has_size: true,
        size: WindowSize::new(rows, cols),
        ..Sink::default()
    }
}

fn process(console: &mut Console) -> crate::Notify {
    let mem = memory();
    console.process(&mem, None, None)
}

fn read_size(console: &Console) -> (u16, u16) {
    let mut data = [0u8; 4];
    console.read_config(0, &mut data).unwrap();
    (
        u16::from_le_bytes([data[0], data[1]]),
        u16::from_le_bytes([data[2], data[3]]),
    )
}

#[test]
fn driver_ok_raises_one_with_initial_size() {
    let (backend, _sink) = TestBackend::new(sized(24, 80));
    let mut console = Console::new(Box::new(backend), Limits::default());
    console.ack_features(console.device_features());
    assert!(
        !process(&mut console).config_changed,
        "raised before DRIVER_OK"
    );

    console.driver_ready();

    assert!(process(&mut console).config_changed);
    assert_eq!(read_size(&console), (80, 24));
    assert!(
        !process(&mut console).config_changed,
        "raised twice for one size"
    );
}

#[test]
fn resize_raises_exactly_one_config_change() {
    let (mut console, sink) = ready_console(sized(24, 80), Limits::default());
    assert!(process(&mut console).config_changed);

    {
        let mut sink = lock(&sink);
        sink.size = WindowSize::new(50, 132);
        sink.resize_pending = true;
    }
    console.handle_ready(Source::Resize, libc::POLLIN);

    assert!(process(&mut console).config_changed);
    assert_eq!(read_size(&console), (132, 50));
    assert!(!process(&mut console).config_changed);
    console.handle_ready(Source::Resize, libc::POLLIN);
    assert!(
        !process(&mut console).config_changed,
        "raised for an unchanged size"
    );
}

#[test]
fn unknown_size_keeps_last_known() {
    let (mut console, sink) = ready_console(sized(24, 80), Limits::default());
    assert!(process(&mut console).config_changed);
    lock(&sink).size = WindowSize::new(0, 0);
    console.handle_ready(Source::Resize, libc::POLLIN);
    assert!(!process(&mut console).config_changed);
    assert_eq!(console.size(), WindowSize::new(24, 80));
    assert_eq!(read_size(&console), (80, 24));
}

#[test]
fn unknown_initial_size_waits_for_first_size() {
    let (mut console, sink) = ready_console(sized(0, 0), Limits::default());
    assert!(!process(&mut console).config_changed, "raised for 0x0");
    lock(&sink).size = WindowSize::new(30, 100);
    console.handle_ready(Source::Resize, libc::POLLIN);
    assert!(process(&mut console).config_changed);
    assert_eq!(read_size(&console), (100, 30));
}

#[test]
fn no_config_change_without_size_feature() {
    let (backend, _sink) = TestBackend::new(sized(24, 80));
    let mut console = Console::new(Box::new(backend), Limits::default());
    console.ack_features(VIRTIO_F_VERSION_1);
    console.driver_ready();
    assert!(!process(&mut console).config_changed);
}

#[test]
fn reset_forgets_size_guest_saw() {
    let (mut console, _sink) = ready_console(sized(24, 80), Limits::default());
    assert!(process(&mut console).config_changed);
    console.reset();
    console.ack_features(console.device_features());
    assert!(
        !process(&mut console).config_changed,
        "raised before DRIVER_OK"
    );
    console.driver_ready();
    assert!(
        process(&mut console).config_changed,
        "next driver not told the size"
    );
}

#[test]
fn config_read_every_offset_through_console() {
    let (console, _sink) = ready_console(sized(0x0102, 0x0304), Limits::default());
    let expected = [0x04, 0x03, 0x02, 0x01, 1, 0, 0, 0, 0, 0, 0, 0];
    for len in 1..=crate::CONFIG_SIZE {
        for offset in 0..=(crate::CONFIG_SIZE - len) {
            let mut data = vec![0xeeu8; len];
            console.read_config(offset as u64, &mut data).unwrap();
            assert_eq!(
                data,
                expected[offset..offset + len],
                "offset {offset} len {len}"
            );
        }
    }
    let mut data = [0u8; 1];
    assert!(console.read_config(12, &mut data).is_err());
}
