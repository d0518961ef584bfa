//! The `sharray` command-line tool: create, inspect, check, import/export,
//! push/pop and watch shared arrays, rings and queues; list and delete them.
//!
//! Exit codes: 0 success, 1 error, 2 usage error, 3 timeout (a lock or an
//! event did not come in time). Errors are one line on stderr.

mod args;
mod array_cmds;
mod fs_cmds;
mod grow_cmds;
mod hint_cmds;
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
    #[command(flatten)]
    Fs(fs_cmds::FsCmd),
    #[command(flatten)]
    Grow(grow_cmds::GrowCmd),
    #[command(flatten)]
    Hint(hint_cmds::HintCmd),
}

/// Rust ignores SIGPIPE, so printing to a closed pipe (`sharray show BIG |
/// head -3`) fails with EPIPE and `println!` panics. Turn exactly that panic
/// into a quiet exit 0 (the reader has what it wanted), for every command's
/// output at once; every other panic reports as usual. (The examples do the
/// same in `examples/common/mod.rs`.)
fn quiet_on_closed_pipe() {
    const EPIPE: i32 = 32; // Linux and macOS alike.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout")
            && msg.contains(&std::io::Error::from_raw_os_error(EPIPE).to_string())
        {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Unwound out of a long copy by Ctrl-C or SIGTERM (the signal number):
/// the copy's unpublished file is removed on the way.
pub struct Interrupted(pub i32);

fn main() {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match cli.cmd {
        Cmd::Array(c) => array_cmds::run(c),
        Cmd::Pool(c) => pool_cmds::run(c),
        Cmd::Ring(c) => ring_cmds::run(c),
        Cmd::Fs(c) => fs_cmds::run(c),
        Cmd::Grow(c) => grow_cmds::run(c),
        Cmd::Hint(c) => hint_cmds::run(c),
    }));
    let result = match run {
        Ok(r) => r,
        Err(payload) => match payload.downcast::<Interrupted>() {
            Ok(i) => {
                eprintln!("sharray: interrupted; nothing was published");
                std::process::exit(128 + i.0);
            }
            Err(other) => std::panic::resume_unwind(other),
        },
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
