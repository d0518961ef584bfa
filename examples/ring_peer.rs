//! A Rust producer or consumer for a ring of `uint64` frames, for tests and
//! benchmarks across languages (the Python suite and `python/bench` use it).
//!
//! ```text
//! cargo run --release --example ring_peer -- produce PATH [--frames N] [--seconds S] [--fps F] [--no-close] [--reopen]
//! cargo run --release --example ring_peer -- consume PATH [--max-frames N] [--timeout S]
//! ```
//!
//! The ring must exist (any slot count, queue or broadcast; dtype `uint64`).
//! Frame `n` (tagged `n`) holds the words `n, n + 1, n + 2, ...` (wrapping).
//! The producer writes every word of every frame; it stops after `--frames`
//! frames or `--seconds` seconds (whichever comes first; default 100 frames),
//! then closes the stream (`--no-close`: just detaches, so consumers keep
//! waiting for the next producer; `--reopen`: reopens a closed stream). The
//! consumer reads and checks every word of every frame (a wrapping sum
//! against the closed form, plus the first and last word) until the stream
//! is closed and drained, or it
//! has `--max-frames` frames. Both print one JSON line: frames, bad frames,
//! lost frames, bytes, seconds, frames_per_s, gb_per_s.

mod common;

const USAGE: &str = "usage: ring_peer produce PATH [--frames N] [--seconds S] [--fps F]\n\
\x20      ring_peer consume PATH [--max-frames N] [--timeout S]\n\
\n\
A Rust producer or consumer for an existing ring of uint64 frames; prints one\n\
JSON line with frames, bad and lost frames, bytes and rates.";

use std::time::{Duration, Instant};

use sharray::{ErrorKind, Ring};

/// Fill `words` with frame `n`'s pattern. Never inlined, so producers and
/// consumers of every benchmark run the same machine code.
#[inline(never)]
fn fill(words: &mut [u64], n: u64) {
    for (i, w) in words.iter_mut().enumerate() {
        *w = n.wrapping_add(i as u64);
    }
}

/// Read every word of frame `n` and check it.
#[inline(never)]
fn check(words: &[u64], n: u64) -> bool {
    let len = words.len() as u64;
    if len == 0 {
        return true;
    }
    let sum = words.iter().fold(0u64, |a, &w| a.wrapping_add(w));
    let want = n
        .wrapping_mul(len)
        .wrapping_add((len as u128 * (len as u128 - 1) / 2) as u64);
    sum == want && words[0] == n && words[words.len() - 1] == n.wrapping_add(len - 1)
}

struct Opts {
    frames: Option<u64>,
    seconds: Option<f64>,
    fps: f64,
    timeout: f64,
    close: bool,
    reopen: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        frames: None,
        seconds: None,
        fps: 0.0,
        timeout: 60.0,
        close: true,
        reopen: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--no-close" => {
                o.close = false;
                continue;
            }
            "--reopen" => {
                o.reopen = true;
                continue;
            }
            _ => {}
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = value
            .parse::<f64>()
            .map_err(|_| format!("{flag}: {value:?} is not a number"))?;
        match flag.as_str() {
            "--frames" | "--max-frames" => o.frames = Some(num as u64),
            "--seconds" => o.seconds = Some(num),
            "--fps" => o.fps = num,
            "--timeout" => o.timeout = num,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

fn report(role: &str, frames: u64, bad: u64, lost: u64, bytes: u64, secs: f64) {
    println!(
        "{{\"role\": \"{role}\", \"frames\": {frames}, \"bad\": {bad}, \"lost\": {lost}, \"bytes\": {bytes}, \"seconds\": {secs:.6}, \"frames_per_s\": {:.3}, \"gb_per_s\": {:.4}}}",
        frames as f64 / secs.max(1e-9),
        bytes as f64 / secs.max(1e-9) / 1e9
    );
}

fn produce(ring: &Ring, o: &Opts) -> sharray::Result<()> {
    let producer = if o.reopen {
        ring.producer_reopening()?
    } else {
        ring.producer()?
    };
    let limit = o
        .frames
        .unwrap_or(if o.seconds.is_some() { u64::MAX } else { 100 });
    let until = o.seconds.map(Duration::from_secs_f64);
    let t0 = Instant::now();
    let mut n = 0u64;
    while n < limit && until.is_none_or(|d| t0.elapsed() < d) {
        if o.fps > 0.0 {
            let due = t0 + Duration::from_secs_f64(n as f64 / o.fps);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let mut loan = producer.loan()?;
        fill(loan.as_mut_slice::<u64>()?, n);
        loan.set_tag(n);
        loan.commit()?;
        n += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    if o.close {
        producer.close()?;
    }
    report("produce", n, 0, 0, n * ring.slot_bytes() as u64, secs);
    Ok(())
}

fn consume(ring: &Ring, o: &Opts) -> sharray::Result<()> {
    let consumer = ring.consumer()?;
    println!("ready");
    let limit = o.frames.unwrap_or(u64::MAX);
    let (mut n, mut bad, mut lost, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut t0 = None;
    while n < limit {
        let frame = match consumer.recv_timeout(Duration::from_secs_f64(o.timeout)) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) => return Err(e),
        };
        // The clock starts at the first frame: waiting for a producer to
        // start is not part of the rate.
        t0.get_or_insert_with(Instant::now);
        if !check(frame.as_slice::<u64>()?, frame.tag()) {
            bad += 1;
        }
        lost += frame.lost();
        bytes += frame.valid_len() as u64;
        n += 1;
    }
    let secs = t0.map_or(0.0, |t| t.elapsed().as_secs_f64());
    report("consume", n, bad, lost, bytes, secs);
    Ok(())
}

fn main() {
    common::start(USAGE);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: ring_peer produce|consume PATH [--frames N] [--max-frames N] [--seconds S] [--fps F] [--timeout S] [--no-close] [--reopen]";
    let (Some(role), Some(path)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let opts = parse(&args[2..]).unwrap_or_else(|e| {
        eprintln!("ring_peer: {e}\n{usage}");
        std::process::exit(2);
    });
    let run = || -> sharray::Result<()> {
        let ring = Ring::open(sharray::resolve_location(path)?)?;
        match role.as_str() {
            "produce" => produce(&ring, &opts),
            "consume" => consume(&ring, &opts),
            _ => {
                eprintln!("{usage}");
                std::process::exit(2);
            }
        }
    };
    if let Err(e) = run() {
        eprintln!("ring_peer: {e}");
        std::process::exit(if e.kind() == ErrorKind::Timeout { 3 } else { 1 });
    }
}
