//! What every example does first: `--help` prints the usage and exits 0, and
//! a closed stdout (`example | head`) ends the program quietly with exit 0
//! instead of a "failed printing to stdout: Broken pipe" panic.
//! (A directory without `main.rs`, so Cargo does not build it as an example.)

/// Print `usage` (the program's doc text) and exit 0 when the arguments ask
/// for help (`-h` or `--help`, before any `--`); install the closed-pipe
/// handling either way.
pub fn start(usage: &str) {
    quiet_on_closed_pipe();
    let args = std::env::args().skip(1);
    if args
        .take_while(|a| a != "--")
        .any(|a| a == "-h" || a == "--help")
    {
        println!("{}", usage.trim());
        std::process::exit(0);
    }
}

/// Rust ignores SIGPIPE, so a write to a closed pipe fails with EPIPE and
/// `println!` panics. Turn exactly that panic into a quiet exit 0 (the reader
/// has all it wanted); every other panic reports as usual.
pub fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout")
            && msg.contains(&std::io::Error::from_raw_os_error(libc::EPIPE).to_string())
        {
            std::process::exit(0);
        }
        default(info);
    }));
}
