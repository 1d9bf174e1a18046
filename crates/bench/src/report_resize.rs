//! The end-to-end resize sections of BENCHMARKS.md: latency tables for each condition, the
//! scheduler's account of the slow resizes, and the explanation of the tail.

use std::fmt::Write;

use crate::report::{latency_table, ms, provenance, slower_sentences, times};
use crate::resize::{ResizeSamples, ResizeSched};
use crate::results::{ResizeResult, Results};
use crate::stats::{median, percentile, ratio, Summary};

/// Writes every resize section, then the section that compares their tails.
pub fn sections(out: &mut String, results: &Results) {
    for resize in &results.resize {
        resize_section(out, results, resize);
    }
    tail_section(out, &results.resize);
}

fn resize_section(out: &mut String, results: &Results, resize: &ResizeResult) {
    let variant = resize.variant;
    if variant.spinners > 0 {
        let _ = writeln!(
            out,
            "## Resize latency, end to end, under load\n\n\
             The same measurement while {} busy threads of the bench's own (one per CPU) \
             spin at normal priority, as other work on a shared machine would.\n",
            variant.spinners
        );
    } else if variant.pinned {
        out.push_str(
            "## Resize latency, end to end, with UML and the server on separate CPUs\n\n\
             The same measurement with every thread of UML and its children bound to CPU 0 \
             and the server with its helper bound to the last CPU (sched_setaffinity after \
             the boot), for both consoles. This is an experiment on where the tail comes \
             from, not a setting ttyvm makes.\n\n",
        );
    } else {
        out.push_str("## Resize latency, end to end\n\n");
        out.push_str(DESCRIPTION);
    }
    measured(out, results, resize);
}

/// The description of the measurement, which the quiet section gives once for all three.
const DESCRIPTION: &str =
    "From TIOCSWINSZ on the host pty to the line `size ROWS COLS` of `ttyvm-responder \
         winch` in the guest arriving back on the host. The responder blocks on a signalfd \
         for SIGWINCH and prints TIOCGWINSZ at once. Ours: the guest on `ttyvm serve \
         --console pty` with its program on the virtio console hvc0. Anchor: the same guest \
         and responder on UML's own console con0 (tty0) on a pty, which follows resizes with \
         a SIGWINCH helper thread of UML's own. Consecutive sizes always differ.\n\n\
         Ours takes more hops than the anchor: the listener helper wakes the server through \
         a pipe, the server sends a config-change message on the vhost-user backend channel, \
         the guest's virtio_uml reads it and queues the console driver's config work, which \
         reads cols and rows back with GET_CONFIG (a second round trip to the server) before \
         it resizes hvc0. The size line then travels through the transmit ring, a kick to the \
         server and the server's write to the pty. UML's con0 resizes tty0 directly from its \
         helper's interrupt and writes the line straight to the pty.\n\n";

/// Writes one condition's provenance, latency table and scheduler table.
fn measured(out: &mut String, results: &Results, resize: &ResizeResult) {
    provenance(out, results);
    let _ = writeln!(
        out,
        "Resizes per console: {} in {} boots; a report later than {:?} counts as lost. \
         Lost: ours {}, anchor {}.\n",
        resize.ours.latencies_ms.len() + resize.ours.lost,
        resize.rounds,
        resize.timeout,
        resize.ours.lost,
        resize.anchor.lost
    );
    let (Some(ours), Some(anchor)) = (
        Summary::of(&resize.ours.latencies_ms),
        Summary::of(&resize.anchor.latencies_ms),
    ) else {
        out.push_str("No resize report arrived on one of the consoles.\n\n");
        return;
    };
    latency_table(out, "ttyvm (hvc0)", "UML con0", &ours, &anchor);
    out.push('\n');
    slower_sentences(out, "ttyvm", &ours, &anchor);
    resize_sched_table(out, resize);
}

/// The medians of one console's resizes, all of them or those above a percentile.
struct SchedColumn {
    count: usize,
    latency: f64,
    server_wait: f64,
    server_cpu: f64,
    uml_cpu: f64,
    uml_wait: f64,
    reader_wait: f64,
}

/// Summarizes the resizes at or above the `above`th percentile of latency (0 for all).
fn sched_column(samples: &ResizeSamples, above: f64) -> Option<SchedColumn> {
    let mut sorted = samples.latencies_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let threshold = percentile(&sorted, above)?;
    let picked: Vec<(f64, &ResizeSched)> = samples
        .latencies_ms
        .iter()
        .copied()
        .zip(&samples.sched)
        .filter(|(latency, _)| *latency >= threshold)
        .collect();
    let ms_of = |get: fn(&ResizeSched) -> u64| -> Option<f64> {
        let values: Vec<f64> = picked.iter().map(|(_, s)| get(s) as f64 / 1e6).collect();
        median(&values)
    };
    let latencies: Vec<f64> = picked.iter().map(|(latency, _)| *latency).collect();
    Some(SchedColumn {
        count: picked.len(),
        latency: median(&latencies)?,
        server_wait: ms_of(|s| s.server.wait_ns)?,
        server_cpu: ms_of(|s| s.server.cpu_ns)?,
        uml_cpu: ms_of(|s| s.uml.cpu_ns)?,
        uml_wait: ms_of(|s| s.uml.wait_ns)?,
        reader_wait: ms_of(|s| s.reader.wait_ns)?,
    })
}

/// Writes where the time of the slowest resizes went, by the scheduler's account.
fn resize_sched_table(out: &mut String, resize: &ResizeResult) {
    let mut columns = Vec::new();
    for samples in [&resize.ours, &resize.anchor] {
        for above in [0.0, 90.0, 99.0] {
            match sched_column(samples, above) {
                Some(column) => columns.push(column),
                None => return,
            }
        }
    }
    let _ = writeln!(
        out,
        "Where the time goes, by the scheduler's account: /proc/PID/task/*/schedstat of the \
         server with its helper, of UML's kernel process with its threads and children (the \
         guest's processes), and of the bench's own thread that resizes and reads, read just \
         before TIOCSWINSZ and just after the size line arrived. Run-queue wait is time a task was runnable but had no CPU. \"Slowest 10%\" \
         are the resizes at or above that console's 90th percentile, \"slowest 1%\" those at \
         or above its 99th. Medians per resize; the anchor has no server. \
         Load average (1, 5, 15 min) before the first boot: {}; after the last resize: {}.\n",
        resize.load_before, resize.load_after
    );
    out.push_str(
        "| | ttyvm, all | ttyvm, slowest 10% | ttyvm, slowest 1% | UML con0, all | UML con0, \
         slowest 10% | UML con0, slowest 1% |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let row = |out: &mut String, name: &str, get: fn(&SchedColumn) -> String| {
        let cells: Vec<String> = columns.iter().map(get).collect();
        let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
    };
    row(out, "resizes", |c| c.count.to_string());
    row(out, "latency", |c| ms(c.latency));
    row(out, "server run-queue wait", |c| ms(c.server_wait));
    row(out, "server CPU time", |c| ms(c.server_cpu));
    row(out, "UML CPU time", |c| ms(c.uml_cpu));
    row(out, "UML run-queue wait", |c| ms(c.uml_wait));
    row(out, "bench thread run-queue wait", |c| ms(c.reader_wait));
    out.push('\n');
}

/// Returns the latency summaries of ours and of the anchor in one condition.
fn tails(resize: &ResizeResult) -> Option<(Summary, Summary)> {
    Some((
        Summary::of(&resize.ours.latencies_ms)?,
        Summary::of(&resize.anchor.latencies_ms)?,
    ))
}

fn condition(resize: &ResizeResult) -> &'static str {
    match (resize.variant.spinners > 0, resize.variant.pinned) {
        (true, _) => "under load",
        (false, true) => "on separate CPUs",
        (false, false) => "quiet",
    }
}

/// Writes the tail percentiles of every condition side by side, then their explanation.
fn tail_section(out: &mut String, resizes: &[ResizeResult]) {
    if resizes.is_empty() {
        return;
    }
    out.push_str("## What the tail of the end-to-end resize is\n\n");
    out.push_str(
        "| condition | ttyvm 90th | ttyvm 99th | UML con0 90th | UML con0 99th | ours / \
         anchor, 99th |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for resize in resizes {
        if let Some((ours, anchor)) = tails(resize) {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                condition(resize),
                ms(ours.p90),
                ms(ours.p99),
                ms(anchor.p90),
                ms(anchor.p99),
                times(ratio(ours.p99, anchor.p99))
            );
        }
    }
    out.push('\n');
    out.push_str(TAIL_FINDINGS);
}

/// The explanation of the tail; the scheduler tables above contain the evidence.
const TAIL_FINDINGS: &str = "Linux's virtio_console sends hvc output with __send_to_port \
    (drivers/char/virtio_console.c), which kicks the transmit queue and then spins with \
    cpu_relax() until the device hands the buffer back. Under UML that spin runs on a host CPU \
    as UML's kernel process, and only the server can end it. When the server's wake-up is \
    queued on the CPU where UML spins, it waits until the scheduler preempts UML, which takes \
    milliseconds, and the resize waits with it. In the scheduler tables this shows as slow \
    resizes of ours whose server run-queue wait and UML CPU time both come close to the \
    latency, while the server's own CPU time stays what it is in the median resize. Other \
    slow resizes of ours show neither: no watched task waited or ran for most of the latency, \
    so every process slept (this UML kernel runs at HZ=100), and the bench does not see which \
    sleep it was. Binding UML and the server to separate CPUs tests whether a kind of tail \
    comes from the two sharing a CPU: compare the rows quiet and on separate CPUs above. The \
    size line crosses the ring in two pieces (`size ROWS COLS`, then `\\r\\n` from the guest \
    tty's output processing, as an strace of the server shows), so each resize holds two such \
    spins. UML's con0 writes the line to its host descriptor with a plain write() and has no \
    wait of this kind.\n\n\
    Under load the busy threads also take the CPU the server would run on, and the server \
    waits behind them: see the run-queue wait of the slowest resizes under load. The run \
    recorded before this one (commit 1b368b6), made while other test runs shared the two \
    CPUs, read 3.977 ms at the 90th and 11.872 ms at the 99th percentile for ttyvm against \
    0.170 ms and 0.610 ms for the anchor.\n\n\
    The server's own share is small: its CPU time per resize is in the tables, the host-side \
    section below measures TIOCSWINSZ to the config-change message, and on the transmit side \
    the server returns each chain to the used ring as soon as it has copied the bytes, before \
    it writes them to the pty (crates/console/src/tx.rs, `process_transmitq`). No delay of \
    ttyvm's own that could be removed was found on this path.\n\n";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procstat::Sched;

    fn samples(latencies: &[f64]) -> ResizeSamples {
        let sched = latencies
            .iter()
            .map(|&latency| ResizeSched {
                server: Sched {
                    cpu_ns: 1_000,
                    wait_ns: (latency * 1e6) as u64,
                },
                uml: Sched::default(),
                reader: Sched::default(),
            })
            .collect();
        ResizeSamples {
            latencies_ms: latencies.to_vec(),
            lost: 0,
            sched,
        }
    }

    #[test]
    fn sched_column_slowest_tenth() {
        let latencies: Vec<f64> = (1..=100).map(f64::from).collect();
        let column = sched_column(&samples(&latencies), 90.0).unwrap();
        assert_eq!(column.count, 11);
        assert_eq!(column.latency, 95.0);
        assert_eq!(column.server_wait, 95.0);
        assert_eq!(column.server_cpu, 0.001);
        let all = sched_column(&samples(&latencies), 0.0).unwrap();
        assert_eq!(all.count, 100);
        assert!(sched_column(&samples(&[]), 90.0).is_none());
    }
}
