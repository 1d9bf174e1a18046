//! `bench`: measures ttyvm's console against UML's own console and writes BENCHMARKS.md.
//!
//! Every figure is taken side by side with an anchor in the same run, because the machines this
//! runs on are shared and noisy: the tables show distributions and ratios, not single times.
//! Guests boot one at a time.

mod binary;
mod console;
mod error;
mod frontend;
mod host_resize;
mod idle;
mod load;
mod machine;
mod procstat;
mod report;
mod report_resize;
mod resize;
mod results;
mod stats;
mod throughput;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use ttyvm_testkit::Guest;

use crate::console::{ConsoleKind, Tools};
use crate::error::BenchError;
use crate::results::{
    ConsoleRuns, HostResizeResult, IdleResults, ResizeResult, ResizeVariant, Results,
    ThroughputResult,
};
use crate::throughput::Direction;

/// The bound after which a resize counts as lost.
const RESIZE_TIMEOUT: Duration = Duration::from_secs(1);

/// One measurement, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Measurement {
    /// End-to-end resize latency, ours and UML's console.
    Resize,
    /// Host-side resize latency: server and listener.
    HostResize,
    /// Console throughput both ways.
    Throughput,
    /// Idle context switches and memory.
    Idle,
}

/// Command-line options of `bench`.
#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Benchmark ttyvm's console against UML's own console"
)]
struct Options {
    /// Run shortened measurements, for development; their figures are not for BENCHMARKS.md.
    #[arg(long)]
    quick: bool,
    /// Run only these measurements (repeatable); by default all of them.
    #[arg(long, value_enum)]
    only: Vec<Measurement>,
    /// The `ttyvm` binary to run; by default the release build next to this binary.
    #[arg(long, value_name = "PATH")]
    ttyvm: Option<PathBuf>,
    /// Path of the report file.
    #[arg(long, value_name = "PATH", default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../BENCHMARKS.md"))]
    output: PathBuf,
    /// A file with the output of `cargo bench -p ttyvm-sigwinch`, for the report.
    #[arg(long, value_name = "PATH")]
    listener_bench: Option<PathBuf>,
    /// The command shown in the report; by default this program's own command line.
    #[arg(long, value_name = "TEXT")]
    command: Option<String>,
}

/// The sizes of each measurement.
struct Plan {
    resizes: usize,
    rounds: usize,
    bytes: u64,
    runs: usize,
    idle: Duration,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Plan {
                resizes: 100,
                rounds: 2,
                bytes: 4 << 20,
                runs: 1,
                idle: Duration::from_secs(2),
            }
        } else {
            Plan {
                resizes: 1000,
                rounds: 4,
                bytes: 64 << 20,
                runs: 3,
                idle: Duration::from_secs(10),
            }
        }
    }
}

fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(options: &Options) -> Result<(), BenchError> {
    let tools = Tools {
        guest: Guest::locate()?,
        ttyvm: binary::ttyvm_binary(options.ttyvm.as_deref())?,
    };
    let plan = Plan::new(options.quick);
    let wanted = |measurement| options.only.is_empty() || options.only.contains(&measurement);
    let command = options.command.clone().unwrap_or_else(|| {
        let args: Vec<String> = std::env::args().collect();
        args.join(" ")
    });
    let mut results = Results {
        machine: machine::Machine::describe(),
        command,
        quick: options.quick,
        resize: Vec::new(),
        host_resize: None,
        throughput: Vec::new(),
        idle: None,
        listener_bench: read_listener_bench(options.listener_bench.as_deref())?,
    };
    eprintln!("bench: {}", results.machine.line());
    if wanted(Measurement::Resize) {
        let cpus = results.machine.cpus;
        for (spinners, pinned) in [(0, false), (cpus, false), (0, true)] {
            let variant = ResizeVariant { spinners, pinned };
            results.resize.push(run_resize(&tools, &plan, variant)?);
        }
    }
    if wanted(Measurement::HostResize) {
        results.host_resize = Some(run_host_resize(&tools, &plan)?);
    }
    if wanted(Measurement::Throughput) {
        for direction in [Direction::GuestToHost, Direction::HostToGuest] {
            results
                .throughput
                .push(run_throughput(&tools, &plan, direction));
        }
    }
    if wanted(Measurement::Idle) {
        results.idle = Some(run_idle(&tools, &plan)?);
    }
    let text = report::render(&results);
    println!("{text}");
    std::fs::write(&options.output, &text).map_err(BenchError::io(format!(
        "writing {}",
        options.output.display()
    )))?;
    eprintln!("bench: wrote {}", options.output.display());
    Ok(())
}

fn read_listener_bench(path: Option<&std::path::Path>) -> Result<Option<String>, BenchError> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(BenchError::io(format!("reading {}", path.display())))?;
    Ok(Some(text))
}

/// Alternates the consoles boot by boot, so both see the same spells of load. With
/// `spinners`, that many busy threads of the bench's own run throughout.
fn run_resize(
    tools: &Tools,
    plan: &Plan,
    variant: ResizeVariant,
) -> Result<ResizeResult, BenchError> {
    let ResizeVariant { spinners, pinned } = variant;
    let _load = load::Spinners::start(spinners);
    let mut result = ResizeResult {
        variant,
        ours: Default::default(),
        anchor: Default::default(),
        timeout: RESIZE_TIMEOUT,
        rounds: plan.rounds,
        load_before: procstat::load_average(),
        load_after: String::new(),
    };
    let per_round = plan.resizes.div_ceil(plan.rounds);
    for round in 0..plan.rounds {
        eprintln!(
            "bench: resize round {} of {} with {spinners} busy threads, pinned: {pinned}",
            round + 1,
            plan.rounds
        );
        let ours = resize::measure(tools, ConsoleKind::Ours, per_round, RESIZE_TIMEOUT, pinned)?;
        result.ours.extend(ours);
        let anchor = resize::measure(
            tools,
            ConsoleKind::Anchor,
            per_round,
            RESIZE_TIMEOUT,
            pinned,
        )?;
        result.anchor.extend(anchor);
    }
    result.load_after = procstat::load_average();
    Ok(result)
}

fn run_host_resize(tools: &Tools, plan: &Plan) -> Result<HostResizeResult, BenchError> {
    eprintln!("bench: host-side resize latency");
    Ok(HostResizeResult {
        server: host_resize::measure_server(tools, plan.resizes, RESIZE_TIMEOUT)?,
        listener: host_resize::measure_listener(plan.resizes, RESIZE_TIMEOUT)?,
        timeout: RESIZE_TIMEOUT,
    })
}

/// The consoles of the throughput measurement: ours and UML's con0 on both media.
const THROUGHPUT_CONSOLES: [ConsoleKind; 3] = [
    ConsoleKind::Ours,
    ConsoleKind::AnchorSocket,
    ConsoleKind::Anchor,
];

/// Runs ours and the anchors in turn; a failed run is recorded, not fatal, so a stall of
/// one console still leaves the others' figures.
fn run_throughput(tools: &Tools, plan: &Plan, direction: Direction) -> ThroughputResult {
    let hash = throughput::expected_hash(plan.bytes);
    let mut consoles = THROUGHPUT_CONSOLES.map(ConsoleRuns::new);
    for run in 0..plan.runs {
        for console in consoles.iter_mut() {
            eprintln!(
                "bench: {} run {} of {} on {}",
                direction.name(),
                run + 1,
                plan.runs,
                console.kind.name()
            );
            match throughput::measure(tools, console.kind, direction, plan.bytes, hash) {
                Ok(rate) => console.rates.push(rate),
                Err(error) => {
                    eprintln!("bench: {error}");
                    console.failures.push(first_line(&error.to_string()));
                }
            }
        }
    }
    let [ours, anchors @ ..] = consoles;
    ThroughputResult {
        direction,
        bytes: plan.bytes,
        ours,
        anchors: anchors.to_vec(),
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    line.chars().take(200).collect()
}

fn run_idle(tools: &Tools, plan: &Plan) -> Result<IdleResults, BenchError> {
    eprintln!("bench: idle cost with a guest");
    let with_guest = idle::with_guest(tools, plan.idle)?;
    eprintln!("bench: idle cost without a guest");
    let without_guest = idle::without_guest(tools, plan.idle)?;
    Ok(IdleResults {
        with_guest,
        without_guest,
        interval: plan.idle,
    })
}
