//! `bench`: measures ttyvm's console against UML's own console and writes BENCHMARKS.md.
//!
//! Every figure is taken side by side with an anchor in the same run, because the machines this
//! runs on are shared and noisy: the tables show distributions and ratios, not single times.

mod binary;
mod console;
mod error;
mod frontend;
mod host_resize;
mod machine;
mod resize;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ttyvm_testkit::Guest;

use crate::console::{ConsoleKind, Tools};
use crate::error::BenchError;

/// Command-line options of `bench`.
#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Benchmark ttyvm's console against UML's own console"
)]
struct Options {
    /// Run a short version of every measurement, for development; its figures are not for
    /// BENCHMARKS.md.
    #[arg(long)]
    quick: bool,
    /// The `ttyvm` binary to run; by default the release build next to this binary.
    #[arg(long, value_name = "PATH")]
    ttyvm: Option<PathBuf>,
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
    let count = if options.quick { 100 } else { 1000 };
    println!("{}", machine::Machine::describe().line());
    for kind in [ConsoleKind::Ours, ConsoleKind::Anchor] {
        let mut samples = resize::ResizeSamples::default();
        samples.extend(resize::measure(
            &tools,
            kind,
            count,
            Duration::from_secs(1),
        )?);
        let summary = stats::Summary::of(&samples.latencies_ms);
        println!("{}: {summary:?} lost {}", kind.name(), samples.lost);
    }
    let server = host_resize::measure_server(&tools, count, Duration::from_secs(1))?;
    println!(
        "server: {:?} lost {}",
        stats::Summary::of(&server.latencies_ms),
        server.lost
    );
    let listener = host_resize::measure_listener(count, Duration::from_secs(1))?;
    println!(
        "listener: {:?} lost {}",
        stats::Summary::of(&listener.latencies_ms),
        listener.lost
    );
    Ok(())
}
