//! The `sharray` command-line tool: create, inspect, check, import/export,
//! push/pop and watch shared arrays, rings and queues.
//!
//! Exit codes: 0 success, 1 error, 2 usage error, 3 timeout (a lock or an
//! event did not come in time). Errors are one line on stderr.

mod args;
mod array_cmds;
mod pool_cmds;
mod ring_cmds;

use clap::{Parser, Subcommand};

/// Share large n-dimensional arrays between processes with zero copies.
#[derive(Parser)]
#[command(name = "sharray", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    #[command(flatten)]
    Array(array_cmds::ArrayCmd),
    #[command(flatten)]
    Pool(pool_cmds::PoolCmd),
    #[command(flatten)]
    Ring(ring_cmds::RingCmd),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Array(c) => array_cmds::run(c),
        Cmd::Pool(c) => pool_cmds::run(c),
        Cmd::Ring(c) => ring_cmds::run(c),
    };
    if let Err(e) = result {
        eprintln!("sharray: {e}");
        let code = match e.kind() {
            sharray::ErrorKind::Timeout | sharray::ErrorKind::LockTimeout => 3,
            _ => 1,
        };
        std::process::exit(code);
    }
}
