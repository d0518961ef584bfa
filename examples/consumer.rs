//! Consumer half of a producer/consumer pair (see `examples/producer.rs`).
//!
//! ```text
//! cargo run --release --example consumer -- [PATH]
//! ```
//!
//! Waits for the ring to appear, receives frames in place (no copy), checks
//! each against the producer's pattern, and prints rate, latency and losses
//! once a second. Exits when the producer has closed the stream and the ring
//! is drained (a producer that is restarted, or killed, does not end it).

mod common;

const USAGE: &str = "usage: consumer [PATH]\n\
\n\
Receives frames from the ring at PATH (default shm:sharray-example-ring, made by\n\
the producer example), checks each, and prints rate, latency and losses once a\n\
second. Exits when the producer has gone and the ring is drained.";

use std::time::{Duration, Instant};

use sharray::{ErrorKind, Ring};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::start(USAGE);
    let loc = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "shm:sharray-example-ring".into());
    let path = sharray::resolve_location(&loc)?;
    let started = Instant::now();
    let ring = loop {
        match Ring::open(&path) {
            Ok(r) => break r,
            Err(e)
                if e.kind() == ErrorKind::NotFound
                    && started.elapsed() < Duration::from_secs(60) =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e.into()),
        }
    };
    let consumer = ring.consumer()?;
    println!(
        "attached to {} as consumer #{}",
        path.display(),
        consumer.index()
    );
    let (mut n, mut bad, mut lost, mut lat_ns) = (0u64, 0u64, 0u64, 0u64);
    let mut tick = Instant::now();
    loop {
        let frame = match consumer.recv_timeout(Duration::from_secs(30)) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) => return Err(e.into()),
        };
        lat_ns += sharray::sys::monotonic_ns().saturating_sub(frame.timestamp_ns());
        lost += frame.lost();
        // The frame in place, as a slice (`frame.view::<u8>()` gives a
        // 480x640x3 ndarray view of the same memory).
        let px = frame.as_slice::<u8>()?;
        let at = |y: usize, x: usize, c: usize| px[(y * 640 + x) * 3 + c];
        let t = frame.tag() as usize;
        if at(10, 20, 1) != (20 + 10 + 85 + t) as u8
            || at(479, 639, 2) != (639 + 479 + 170 + t) as u8
        {
            bad += 1;
        }
        n += 1;
        drop(frame); // releases the slot
        if tick.elapsed() >= Duration::from_secs(1) {
            println!(
                "{n} frames, mean latency {:.1} us, {lost} lost, {bad} bad",
                lat_ns as f64 / n.max(1) as f64 / 1e3
            );
            tick = Instant::now();
        }
    }
    println!("producer gone: {n} frames received, {lost} lost, {bad} bad");
    Ok(())
}
