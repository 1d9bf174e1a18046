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

/// Parses the command line. Usage errors become one line on stderr and exit status 2; help and
/// version requests print as usual.
fn parse_cli() -> Result<Cli, ExitCode> {
    let err = match Cli::try_parse() {
        Ok(cli) => return Ok(cli),
        Err(err) => err,
    };
    let full_output = !err.use_stderr()
        || err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand;
    if full_output {
        err.exit();
    }
    // clap's message runs up to the first blank line, before its usage and tip sections.
    let text = err.to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    eprintln!("ttyvm: {message}");
    Err(ExitCode::from(2))
}

fn main() -> ExitCode {
    let cli = match parse_cli() {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    init_logging(cli.verbose);
    match cli.command {
        Command::Serve(args) => ttyvm_server::run(args),
        Command::Attach(args) => ttyvm_attach::run(args),
    }
}
