//! The echo client: sends lines to an echo server and prints the replies.
//!
//! Interactive (like `nc`): each line of standard input is sent and its
//! reply printed, with lines pipelined. One-shot: `--send LINE` (repeatable).

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use clap::Parser;
use credit_actors::{Config, Reactor};
use credit_echo::EchoClient;
use log::LevelFilter;

/// Talks to an echo-line server through the `EchoClient` actor.
#[derive(Parser, Debug)]
#[command(name = "echo-client", version)]
struct Args {
    /// Server host name or address.
    #[arg(long, default_value = "localhost")]
    host: String,
    /// Server port.
    #[arg(long, default_value_t = 4096)]
    port: u16,
    /// Send this line and print the reply (repeatable); without it, lines
    /// are read from standard input.
    #[arg(long = "send", value_name = "LINE")]
    send: Vec<String>,
    /// Seconds to wait for the connection and for each reply.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Log level (default: RUST_LOG, else warn).
    #[arg(long)]
    log_level: Option<LevelFilter>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut logger = simple_logger::SimpleLogger::new()
        .with_level(LevelFilter::Warn)
        .with_utc_timestamps()
        .env();
    if let Some(level) = args.log_level {
        logger = logger.with_level(level);
    }
    let _ = logger.init();
    let timeout = Duration::from_secs_f64(args.timeout.clamp(0.001, 86_400.0));

    let (handle, reactor) = match Reactor::start(Config::default(), |_| {}) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("echo-client: cannot start the reactor: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = match EchoClient::spawn(&handle, args.host.clone(), args.port) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("echo-client: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = client.connected(timeout) {
        eprintln!(
            "echo-client: cannot connect to {}:{}: {e}",
            args.host, args.port
        );
        return ExitCode::FAILURE;
    }

    // Lines are sent as they are read and replies printed in order, so a
    // piped file is pipelined rather than sent one round trip at a time.
    let (tx, rx) = mpsc::sync_channel(1024);
    let sender = client.clone();
    let lines = args.send.clone();
    std::thread::spawn(move || {
        if !lines.is_empty() {
            for line in lines {
                if tx.send(sender.send_line(line)).is_err() {
                    return;
                }
            }
            return;
        }
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { return };
            if tx.send(sender.send_line(line)).is_err() {
                return;
            }
        }
    });

    let mut status = ExitCode::SUCCESS;
    let stdout = std::io::stdout();
    for pending in rx {
        match pending.wait_timeout(timeout) {
            Ok(reply) => {
                let mut out = stdout.lock();
                if writeln!(out, "{reply}").and_then(|_| out.flush()).is_err() {
                    break;
                }
            }
            Err(e) => {
                eprintln!("echo-client: {e}");
                status = ExitCode::FAILURE;
                break;
            }
        }
    }
    client.stop();
    drop(client);
    handle.shutdown();
    drop(handle);
    let _ = reactor.join();
    status
}
