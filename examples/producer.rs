//! Producer half of a producer/consumer pair: run it in one terminal and
//! `examples/consumer.rs` in another.
//!
//! ```text
//! cargo run --release --example producer -- [PATH] [FRAMES] [FPS]
//! cargo run --release --example consumer -- [PATH]
//! ```
//!
//! PATH defaults to `shm:sharray-example-ring` (`/dev/shm/...`). The ring of
//! 480x640x3 `uint8` "camera" frames is created if it does not exist. FRAMES
//! (default 300) are committed at FPS (default 30; 0 = as fast as possible),
//! then the producer closes the stream: consumers drain it and exit. Each run
//! reopens the stream (a consumer left running keeps receiving).

mod common;

const USAGE: &str = "usage: producer [PATH] [FRAMES] [FPS]\n\
\n\
Creates the ring at PATH (default shm:sharray-example-ring) if needed and\n\
commits FRAMES (default 300) 480x640x3 uint8 frames at FPS (default 30;\n\
0 = as fast as possible). Run the consumer example next to it.";

use std::time::{Duration, Instant};

use sharray::{Dtype, ErrorKind, Ring};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::start(USAGE);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let loc = args
        .first()
        .map_or("shm:sharray-example-ring", String::as_str);
    let frames: u64 = args.get(1).map_or(Ok(300), |s| s.parse())?;
    let fps: f64 = args.get(2).map_or(Ok(30.0), |s| s.parse())?;
    let path = sharray::resolve_location(loc)?;
    let ring = match Ring::builder(Dtype::parse_user("uint8")?, &[480, 640, 3])
        .slots(8)
        .create(&path)
    {
        Ok(r) => {
            println!("created {}", path.display());
            r
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ring::open(&path)?,
        Err(e) => return Err(e.into()),
    };
    // A previous run closed the stream: this run reopens it.
    let producer = ring.producer_reopening()?;
    println!(
        "producing {frames} frames of {:?} {} at {} fps into {}",
        ring.frame_shape(),
        ring.dtype().descr(),
        if fps > 0.0 {
            fps.to_string()
        } else {
            "max".into()
        },
        path.display()
    );
    let t0 = Instant::now();
    for n in 0..frames {
        if fps > 0.0 {
            let due = t0 + Duration::from_secs_f64(n as f64 / fps);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let mut loan = producer.loan()?;
        // Fill in place: a moving gradient, as a camera driver would write it.
        // (`loan.view_mut::<u8>()` gives the same memory as a 480x640x3 view.)
        let pixels = loan.as_mut_slice::<u8>()?;
        for (y, row) in pixels.chunks_exact_mut(640 * 3).enumerate() {
            for (x, px) in row.chunks_exact_mut(3).enumerate() {
                for (c, v) in px.iter_mut().enumerate() {
                    *v = (x + y + c * 85 + n as usize) as u8;
                }
            }
        }
        loan.set_tag(n);
        let seq = loan.commit()?;
        if n % 30 == 0 {
            let st = ring.stats();
            println!(
                "seq {seq}: {} slots in use, {} consumers attached",
                st.in_use(),
                st.participants
                    .iter()
                    .filter(|p| p.role != sharray::ring::Role::Producer)
                    .count()
            );
        }
    }
    producer.close()?; // end of stream: consumers drain it, then stop
    println!(
        "done: {frames} frames in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
