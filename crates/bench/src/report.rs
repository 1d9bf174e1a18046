//! Rendering the results as the Markdown of BENCHMARKS.md.

use std::fmt::Write;

use crate::console::ConsoleKind;
use crate::report_resize;
use crate::results::{HostResizeResult, IdleResults, Results, ThroughputResult};
use crate::stats::{median, range, ratio, Summary};

/// Renders the whole report.
pub fn render(results: &Results) -> String {
    let mut out = String::new();
    header(&mut out, results);
    report_resize::sections(&mut out, results);
    if let Some(host) = &results.host_resize {
        host_resize_section(&mut out, results, host);
    }
    if !results.throughput.is_empty() {
        throughput_section(&mut out, results, &results.throughput);
    }
    if let Some(idle) = &results.idle {
        idle_section(&mut out, results, idle);
        memory_section(&mut out, results, idle);
    }
    listener_bench_section(&mut out, results);
    out
}

fn header(out: &mut String, results: &Results) {
    out.push_str("# ttyvm benchmarks\n\n");
    out.push_str(
        "Written by `scripts/bench` (or `cargo run --release -p ttyvm-bench --bin bench`). \
         The machine is shared with other work, so every figure of ours stands next to an \
         anchor measured in the same run, and the tables give distributions and ratios. A \
         single absolute time here is no claim about another machine.\n\n",
    );
    if results.quick {
        out.push_str(
            "**This is a `--quick` run with shortened measurements, for development only.**\n\n",
        );
    }
}

/// Writes the line that every table carries: machine, date and command.
pub(crate) fn provenance(out: &mut String, results: &Results) {
    let _ = writeln!(
        out,
        "Machine: {}. Command: `{}`.\n",
        results.machine.line(),
        results.command
    );
}

pub(crate) fn ms(value: f64) -> String {
    format!("{value:.3} ms")
}

pub(crate) fn times(value: f64) -> String {
    if value.is_nan() {
        "n/a".to_string()
    } else {
        format!("{value:.2}x")
    }
}

pub(crate) fn latency_table(
    out: &mut String,
    ours_name: &str,
    anchor_name: &str,
    ours: &Summary,
    anchor: &Summary,
) {
    let _ = writeln!(out, "| | {ours_name} | {anchor_name} | ours / anchor |");
    out.push_str("|---|---:|---:|---:|\n");
    let rows = [
        ("min", ours.min, anchor.min),
        ("median", ours.median, anchor.median),
        ("90th percentile", ours.p90, anchor.p90),
        ("99th percentile", ours.p99, anchor.p99),
        ("max", ours.max, anchor.max),
    ];
    for (name, a, b) in rows {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} |",
            ms(a),
            ms(b),
            times(ratio(a, b))
        );
    }
}

/// Writes one plain sentence per percentile where ours is slower than the anchor.
pub(crate) fn slower_sentences(out: &mut String, what: &str, ours: &Summary, anchor: &Summary) {
    for (name, a, b) in [
        ("median", ours.median, anchor.median),
        ("90th percentile", ours.p90, anchor.p90),
        ("99th percentile", ours.p99, anchor.p99),
    ] {
        if a > b {
            let _ = writeln!(
                out,
                "- {what} is slower than the anchor at the {name}: {} against {} ({}).",
                ms(a),
                ms(b),
                times(ratio(a, b))
            );
        }
    }
    out.push('\n');
}

fn host_resize_section(out: &mut String, results: &Results, host: &HostResizeResult) {
    out.push_str("## Resize latency, host side only\n\n");
    out.push_str(
        "Server: from TIOCSWINSZ on the pty of a real `ttyvm serve --console pty` to its \
         config-change message (VHOST_USER_BACKEND_CONFIG_CHANGE_MSG, code 2) arriving on the \
         backend request channel of a minimal frontend of the bench's own (the vhost crate's \
         `Frontend`, a memfd memory table, two empty enabled rings). Anchor: the resize \
         listener alone (`ttyvm_sigwinch::ResizeListener` on a pty of the bench), from \
         TIOCSWINSZ to its fd becoming readable. The difference is what the server adds.\n\n",
    );
    provenance(out, results);
    let _ = writeln!(
        out,
        "Resizes: {} each; a message later than {:?} counts as lost. Lost: server {}, \
         listener {}.\n",
        host.server.latencies_ms.len() + host.server.lost,
        host.timeout,
        host.server.lost,
        host.listener.lost
    );
    let (Some(server), Some(listener)) = (
        Summary::of(&host.server.latencies_ms),
        Summary::of(&host.listener.latencies_ms),
    ) else {
        out.push_str("No notification arrived on one of the two.\n\n");
        return;
    };
    latency_table(
        out,
        "server (to CONFIG_CHANGE_MSG)",
        "listener wake",
        &server,
        &listener,
    );
    let _ = writeln!(
        out,
        "\nThe server adds {} at the median and {} at the 99th percentile over the \
         listener's own wake-up.\n",
        ms(server.median - listener.median),
        ms(server.p99 - listener.p99)
    );
}

fn rate_cell(rates: &[f64]) -> String {
    match (median(rates), range(rates)) {
        (Some(mid), Some((low, high))) => format!("{mid:.2} ({low:.2} to {high:.2})"),
        _ => "no successful run".to_string(),
    }
}

fn throughput_section(out: &mut String, results: &Results, rows: &[ThroughputResult]) {
    out.push_str("## Console throughput\n\n");
    out.push_str(
        "`ttyvm-responder emit N` writes N bytes of a pseudo-random stream to its raw console \
         and the host reads them; `sink N` reads N bytes the host writes. Both sides check \
         the FNV-1a 64 checksum, and a run counts only when it matches. Emit is timed from \
         the ready line to the last byte, sink from the first write to the guest's sum line. \
         One guest runs at a time; a run fails when nothing moves for 30 s. Cells: median \
         MiB/s over the runs (smallest to largest). Each anchor row names the medium UML's \
         con0 ran on: one end of a Unix socketpair of the bench, or a pty as in the resize \
         measurement (both `con0=fd:3,fd:3`). The section after this one says why the pty \
         rows fail.\n\n",
    );
    provenance(out, results);
    out.push_str(
        "| direction | bytes | ttyvm (hvc0) MiB/s | anchor | anchor MiB/s | ours / anchor \
         (medians) | failed runs (ours, anchor) |\n",
    );
    out.push_str("|---|---:|---:|---|---:|---:|---:|\n");
    for row in rows {
        for anchor in &row.anchors {
            let quotient = match (median(&row.ours.rates), median(&anchor.rates)) {
                (Some(a), Some(b)) => times(ratio(a, b)),
                _ => "n/a".to_string(),
            };
            let _ = writeln!(
                out,
                "| {} | {} MiB | {} | {} | {} | {} | {} of {}, {} of {} |",
                row.direction.name(),
                row.bytes >> 20,
                rate_cell(&row.ours.rates),
                anchor_label(anchor.kind),
                rate_cell(&anchor.rates),
                quotient,
                row.ours.failures.len(),
                row.ours.runs(),
                anchor.failures.len(),
                anchor.runs()
            );
        }
    }
    out.push('\n');
    throughput_notes(out, rows);
    out.push_str(PTY_STALL);
}

/// The findings about the stalls of con0 on a pty.
const PTY_STALL: &str = "### Why UML's con0 stalls on a pty\n\n\
    UML's line driver (arch/um/drivers/line.c, chan_kern.c) keeps its host descriptor \
    nonblocking with O_ASYNC set (flags 024002 in /proc/PID/fdinfo during a stall, seen by hand) \
    and acts on it only when a SIGIO arrives. Output that the descriptor does not take stays in \
    a 4 KiB ring that only the write interrupt flushes, and that interrupt runs on a SIGIO; \
    input is read one byte per read() call from the read interrupt. Guest to host, when a run \
    stalls, the pty's main side holds nothing to read (FIONREAD 0 in a test by hand), so the \
    bench's reader is not behind; a SIGIO sent to UML by hand moves the stream on (the kick \
    count in each failure above). So UML waits for a write-space SIGIO that the pty did not \
    send. By our reading of drivers/tty/n_tty.c and pty.c (read, not traced), n_tty sends that \
    SIGIO only from its write-wakeup, which runs when the pty's reader reads; a write that fails \
    after the reader has drained the pty gets no wake-up. Host to guest, con0 on a pty reads \
    slowly and sometimes stops: the run recorded before this one (commit 1b368b6) saw all three \
    runs stop after 15 to 29 MiB with the bench's writes waiting on a full pty, and in a test by \
    hand a SIGIO did not start such a stop again. The cause of that stop was not found in UML's \
    code. A pipe or a socket signals both readable data and write space with SIGIO on every read \
    and write, so the socketpair rows are the anchor for throughput; the pty rows stay to show \
    what a user of `con0=fd:0,fd:1` on a terminal meets.\n\n";

fn anchor_label(kind: ConsoleKind) -> &'static str {
    match kind {
        ConsoleKind::AnchorSocket => "UML con0 on a socketpair",
        ConsoleKind::Anchor => "UML con0 on a pty",
        ConsoleKind::Ours => "ttyvm",
    }
}

fn throughput_notes(out: &mut String, rows: &[ThroughputResult]) {
    for row in rows {
        for anchor in &row.anchors {
            if let (Some(a), Some(b)) = (median(&row.ours.rates), median(&anchor.rates)) {
                if a < b {
                    let _ = writeln!(
                        out,
                        "- {}: ttyvm is slower than {}, {a:.2} MiB/s against {b:.2} MiB/s \
                         ({}).",
                        row.direction.name(),
                        anchor_label(anchor.kind),
                        times(ratio(a, b))
                    );
                }
            }
        }
        for console in std::iter::once(&row.ours).chain(&row.anchors) {
            for failure in &console.failures {
                let _ = writeln!(
                    out,
                    "- {} run of {} failed: {failure}",
                    row.direction.name(),
                    anchor_label(console.kind)
                );
            }
        }
    }
    out.push('\n');
}

fn idle_section(out: &mut String, results: &Results, idle: &IdleResults) {
    out.push_str("## Idle cost\n\n");
    let _ = writeln!(
        out,
        "Context switches over {:?} of idleness, from `voluntary_ctxt_switches` and \
         `nonvoluntary_ctxt_switches` in /proc/PID/task/*/status, summed over threads. The \
         helper is the server's only child, the resize listener's process. The goal is zero: \
         an idle server and helper should sleep until something happens. With a guest: a \
         `winch` guest connected, booted and idle, measured from 2 s after its ready line. \
         Without: the server 2 s after start, no frontend ever connected.\n",
        idle.interval
    );
    provenance(out, results);
    out.push_str("| state | server voluntary | server involuntary | helper voluntary | helper involuntary | goal |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|\n");
    for (state, result) in [
        ("guest connected, idle", &idle.with_guest),
        ("no guest", &idle.without_guest),
    ] {
        let _ = writeln!(
            out,
            "| {state} | {} | {} | {} | {} | 0 |",
            result.server.voluntary,
            result.server.involuntary,
            result.helper.voluntary,
            result.helper.involuntary
        );
    }
    out.push('\n');
}

fn memory_section(out: &mut String, results: &Results, idle: &IdleResults) {
    out.push_str("## Memory\n\n");
    out.push_str(
        "VmRSS and VmHWM from /proc/PID/status with a guest connected, at the end of the idle \
         interval. The helper is cloned with CLONE_VM and shares the server's address space, \
         so the kernel reports the server's figures for it too: its own cost is the stack \
         pages it touches, which /proc does not show apart.\n\n",
    );
    provenance(out, results);
    out.push_str("| process | VmRSS | VmHWM |\n|---|---:|---:|\n");
    let with = &idle.with_guest;
    for (name, memory) in [
        ("server", with.server_memory),
        ("helper", with.helper_memory),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {} KiB | {} KiB |",
            memory.rss_kib, memory.hwm_kib
        );
    }
    out.push('\n');
}

fn listener_bench_section(out: &mut String, results: &Results) {
    out.push_str("## Resize listener benchmark\n\n");
    let table: Option<String> = results.listener_bench.as_ref().and_then(|text| {
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| line.trim_start().starts_with('|'))
            .collect();
        if !lines.is_empty() {
            Some(lines.join("\n"))
        } else if text.trim().is_empty() {
            None
        } else {
            Some(format!("```\n{}\n```", text.trim_end()))
        }
    });
    match table {
        Some(table) => {
            out.push_str("The output of `cargo bench -p ttyvm-sigwinch` (crates/sigwinch/benches/listener.rs), run by `scripts/bench` just before the measurements above.\n\n");
            let _ = writeln!(out, "Machine: {}.\n", results.machine.line());
            out.push_str(&table);
            out.push_str("\n\n");
        }
        None => out.push_str(
            "**Not available yet.** `scripts/bench` runs `cargo bench -p ttyvm-sigwinch` \
             (crates/sigwinch/benches/listener.rs) and puts its table here; in this run that \
             benchmark printed nothing, or `scripts/bench` was not the command.\n\n",
        ),
    }
}
