//! `ttyvm`: a vhost-user virtio-console server whose guest follows the size of its terminal, and
//! a terminal client that carries the user's window size to a pty console.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ttyvm", version, about)]
struct Cli {
    /// Log more: -v for info, -vv for debug, -vvv for trace. The default level is warn.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a virtio-console to a vhost-user frontend.
    Serve(ttyvm_server::ServeArgs),
    /// Attach the user's terminal to a pty console and carry its window size.
    Attach(ttyvm_attach::AttachArgs),
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .parse_default_env()
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match cli.command {
        Command::Serve(args) => ttyvm_server::run(args),
        Command::Attach(args) => ttyvm_attach::run(args),
    }
}
