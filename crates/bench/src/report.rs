//! Rendering the results as the Markdown of BENCHMARKS.md.

use std::fmt::Write;

use crate::results::{HostResizeResult, IdleResults, ResizeResult, Results, ThroughputResult};
use crate::stats::{median, range, ratio, Summary};

/// Renders the whole report.
pub fn render(results: &Results) -> String {
    let mut out = String::new();
    header(&mut out, results);
    if let Some(resize) = &results.resize {
        resize_section(&mut out, results, resize);
    }
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
fn provenance(out: &mut String, results: &Results) {
    let _ = writeln!(
        out,
        "Machine: {}. Command: `{}`.\n",
        results.machine.line(),
        results.command
    );
}

fn ms(value: f64) -> String {
    format!("{value:.3} ms")
}

fn times(value: f64) -> String {
    if value.is_nan() {
        "n/a".to_string()
    } else {
        format!("{value:.2}x")
    }
}

fn latency_table(
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
fn slower_sentences(out: &mut String, what: &str, ours: &Summary, anchor: &Summary) {
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

fn resize_section(out: &mut String, results: &Results, resize: &ResizeResult) {
    out.push_str("## Resize latency, end to end\n\n");
    out.push_str(
        "From TIOCSWINSZ on the host pty to the line `size ROWS COLS` of `ttyvm-responder \
         winch` in the guest arriving back on the host. The responder blocks on a signalfd \
         for SIGWINCH and prints TIOCGWINSZ at once. Ours: the guest on `ttyvm serve \
         --console pty` with its program on the virtio console hvc0. Anchor: the same guest \
         and responder on UML's own console con0 (tty0) on a pty, which follows resizes with \
         a SIGWINCH helper thread of UML's own. Consecutive sizes always differ.\n\n",
    );
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
    out.push_str(
        "Ours takes more hops than the anchor: the listener helper wakes the server through \
         a pipe, the server sends a config-change message on the vhost-user backend channel, \
         the guest's virtio_uml reads it and queues the console driver's config work, which \
         reads cols and rows back with GET_CONFIG (a second round trip to the server) before \
         it resizes hvc0. The size line then travels through the transmit ring, a kick to the \
         server and the server's write to the pty. UML's con0 resizes tty0 directly from its \
         helper's interrupt and writes the line straight to the pty.\n\n",
    );
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
         One guest runs at a time. Cells: median MiB/s over the runs (smallest to largest).\n\n",
    );
    provenance(out, results);
    out.push_str("| direction | bytes | runs | ttyvm (hvc0) MiB/s | UML con0 MiB/s | ours / anchor (medians) | failed runs (ours, anchor) |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        let quotient = match (median(&row.ours), median(&row.anchor)) {
            (Some(a), Some(b)) => times(ratio(a, b)),
            _ => "n/a".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} MiB | {} | {} | {} | {} | {}, {} |",
            row.direction.name(),
            row.bytes >> 20,
            row.ours.len() + row.ours_failures.len(),
            rate_cell(&row.ours),
            rate_cell(&row.anchor),
            quotient,
            row.ours_failures.len(),
            row.anchor_failures.len()
        );
    }
    out.push('\n');
    throughput_notes(out, rows);
}

fn throughput_notes(out: &mut String, rows: &[ThroughputResult]) {
    for row in rows {
        if let (Some(a), Some(b)) = (median(&row.ours), median(&row.anchor)) {
            if a < b {
                let _ = writeln!(
                    out,
                    "- {}: ttyvm is slower than the anchor, {a:.2} MiB/s against {b:.2} MiB/s \
                     ({}).",
                    row.direction.name(),
                    times(ratio(a, b))
                );
            }
        }
        for (who, failures) in [
            ("ttyvm", &row.ours_failures),
            ("UML con0", &row.anchor_failures),
        ] {
            for failure in failures.iter() {
                let _ = writeln!(
                    out,
                    "- {} run of {who} failed: {failure}",
                    row.direction.name()
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
