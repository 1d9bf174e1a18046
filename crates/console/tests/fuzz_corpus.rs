//! Runs the queue fuzz harness without libFuzzer: every file of the stored corpus, then a fixed
//! set of pseudo-random inputs, so `cargo test` covers the fuzz target's code on stable Rust.

#[path = "../../../fuzz/harness.rs"]
mod harness;

use std::path::PathBuf;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/console_queues")
}

/// What each seed must reach: the range of guest output bytes written, and the host input
/// bytes left over.
const SEED_EFFECTS: [(&str, std::ops::RangeInclusive<usize>, usize); 5] = [
    ("tx_chained", 8..=8, 0),
    ("rx_posted", 0..=0, 0),
    // One good transmit chain of 4 bytes; the good receive chain takes all 3 input bytes.
    ("malformed_both", 4..=4, 0),
    // The 8-byte indirect chain plus the emerg_wr byte.
    ("tx_indirect", 9..=9, 0),
    // Twelve 200-byte chains, because the round writes post four more. The sink takes one byte
    // per accepted write, so up to the 512-byte output buffer may still wait at the end.
    ("tx_slow_sink", (2400 - 512)..=2400, 0),
];

#[test]
fn fuzz_seeds_reach_their_paths() {
    for (name, output, input_left) in SEED_EFFECTS {
        let data = std::fs::read(corpus_dir().join(name)).expect("seed file");
        let summary = harness::run(&data);
        assert!(output.contains(&summary.output), "seed {name}: {summary:?}");
        assert_eq!(summary.input_left, input_left, "seed {name}: {summary:?}");
    }
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("fuzz corpus directory") {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        harness::run(&data);
        count += 1;
    }
    assert!(count > 0, "the fuzz corpus is empty");
    println!("replayed {count} corpus inputs");
}

/// xorshift64*, so the inputs are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn fuzz_random_inputs_without_panic() {
    let mut rng = Rng(0x7474_7976_6d00_0001);
    for _ in 0..300 {
        let len = (rng.next() % 4096) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Small queue sizes and ring addresses near the start make the rings land in memory
        // that the random bytes fill.
        if data.len() >= 20 {
            for (field, value) in [
                (2usize, 1u16 << (rng.next() % 5)),
                (10, 1 << (rng.next() % 5)),
            ] {
                data[field..field + 2].copy_from_slice(&value.to_le_bytes());
            }
            for field in [4usize, 6, 8, 12, 14, 16] {
                let unit = (rng.next() % 64) as u16;
                data[field..field + 2].copy_from_slice(&unit.to_le_bytes());
            }
        }
        harness::run(&data);
    }
}
