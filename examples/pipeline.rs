//! A producer process and N consumer processes over one ring of large
//! frames: the main job sharray is for.
//!
//! ```text
//! cargo run --release --example pipeline -- [--frame-mib 8] [--seconds 10]
//!     [--frames N] [--consumers 3] [--mode queue|broadcast] [--slots K]
//! ```
//!
//! The program re-executes itself as the producer and the consumers. The
//! producer writes every byte of every frame (a pattern derived from the
//! sequence number) and commits it; each consumer reads every byte of the
//! frames it gets and checks the checksum. At the end the parent checks that
//! every frame was delivered exactly once (queue) or to every consumer
//! (broadcast) and prints frames/s and GB/s.

mod common;

const USAGE: &str = "usage: pipeline [--frame-mib 8] [--seconds 10] [--frames N] [--consumers 3]\n\
\x20               [--mode queue|broadcast] [--slots K]\n\
\n\
One producer process and N consumer processes over one ring of large frames;\n\
prints frames/s and GB/s and checks every frame was delivered.";

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sharray::{Dtype, ErrorKind, Ring};

const ROLE: &str = "SHARRAY_PIPELINE_ROLE";

struct Opts {
    frame_mib: f64,
    seconds: f64,
    frames: Option<u64>,
    consumers: usize,
    broadcast: bool,
    slots: Option<u32>,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        frame_mib: 8.0,
        seconds: 10.0,
        frames: None,
        consumers: 3,
        broadcast: false,
        slots: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        let bad = |e: &dyn std::fmt::Display| format!("invalid value for {a}: {e}");
        match a.as_str() {
            "--frame-mib" => o.frame_mib = val()?.parse().map_err(|e| bad(&e))?,
            "--seconds" => o.seconds = val()?.parse().map_err(|e| bad(&e))?,
            "--frames" => o.frames = Some(val()?.parse().map_err(|e| bad(&e))?),
            "--consumers" => o.consumers = val()?.parse().map_err(|e| bad(&e))?,
            "--slots" => o.slots = Some(val()?.parse().map_err(|e| bad(&e))?),
            "--mode" => {
                o.broadcast = match val()?.as_str() {
                    "queue" => false,
                    "broadcast" => true,
                    m => return Err(format!("--mode is queue or broadcast, not {m}")),
                }
            }
            "-h" | "--help" => return Err("usage: pipeline [--frame-mib 8] [--seconds 10] [--frames N] [--consumers 3] [--mode queue|broadcast] [--slots K]".into()),
            _ => return Err(format!("unknown argument {a}; try --help")),
        }
    }
    if o.consumers == 0 || o.consumers > 60 || o.frame_mib.is_nan() || o.frame_mib <= 0.0 {
        return Err("need 1..=60 consumers and a positive frame size".into());
    }
    Ok(o)
}

/// Every word of frame `seq` is `seq + i`: cheap to write, so the demo
/// measures memory traffic rather than arithmetic.
fn fill(words: &mut [u64], seq: u64) {
    for (i, w) in words.iter_mut().enumerate() {
        *w = seq.wrapping_add(i as u64);
    }
}

/// Read every word; the sum has a closed form, so a frame that mixes two
/// sequence numbers (torn) fails.
fn checksum_ok(words: &[u64], seq: u64) -> bool {
    let n = words.len() as u64;
    let sum = words.iter().fold(0u64, |a, &w| a.wrapping_add(w));
    sum == seq
        .wrapping_mul(n)
        .wrapping_add(n.wrapping_mul(n.wrapping_sub(1)) / 2)
}

fn producer(path: &str, seconds: f64, frames: Option<u64>) {
    let ring = Ring::open(path).unwrap();
    let p = ring.producer().unwrap();
    let t0 = Instant::now();
    let stop = Duration::from_secs_f64(seconds);
    let mut n = 0u64;
    while frames.map_or(t0.elapsed() < stop, |f| n < f) {
        let mut loan = p.loan().unwrap();
        fill(loan.as_mut_slice::<u64>().unwrap(), n);
        loan.set_tag(n);
        loan.commit().unwrap();
        n += 1;
    }
    let ns = t0.elapsed().as_nanos();
    // End of stream: consumers drain what is left, then stop.
    p.close().unwrap();
    println!("produced {n} {ns}");
}

fn consumer(path: &str) {
    let ring = Ring::open(path).unwrap();
    let c = ring.consumer().unwrap();
    println!("ready");
    let (mut n, mut bad, mut seqs_sum) = (0u64, 0u64, 0u128);
    let mut last = None;
    let mut in_order = true;
    loop {
        match c.recv() {
            Ok(f) => {
                if !checksum_ok(f.as_slice::<u64>().unwrap(), f.seq()) {
                    bad += 1;
                }
                in_order &= last.is_none_or(|l| f.seq() > l);
                last = Some(f.seq());
                seqs_sum += u128::from(f.seq());
                n += 1;
            }
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) => panic!("{e}"),
        }
    }
    println!("consumed {n} {bad} {seqs_sum} {in_order}");
}

fn main() {
    common::start(USAGE);
    if let Ok(role) = std::env::var(ROLE) {
        let args: Vec<String> = std::env::args().collect();
        match role.as_str() {
            "producer" => producer(&args[1], args[2].parse().unwrap(), args[3].parse().ok()),
            "consumer" => consumer(&args[1]),
            _ => panic!("unknown role {role}"),
        }
        return;
    }
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("pipeline: {e}");
            std::process::exit(2);
        }
    };
    let words = ((o.frame_mib * (1 << 20) as f64) as usize / 8).max(1);
    let slots = o.slots.unwrap_or(if o.broadcast {
        4
    } else {
        o.consumers as u32 + 2
    });
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm")
    } else {
        tempfile::tempdir()
    }
    .expect("temporary directory");
    let path = dir.path().join("pipeline.npy");
    let ring = Ring::builder(Dtype::parse_user("uint64").unwrap(), &[words])
        .slots(slots)
        .broadcast(o.broadcast)
        .create(&path)
        .expect("create the ring");
    let p = path.to_str().unwrap().to_string();
    println!(
        "pipeline: {} mode, 1 producer, {} consumers, {:.1} MiB frames, {} slots ({:.0} MiB), {}",
        if o.broadcast { "broadcast" } else { "queue" },
        o.consumers,
        (words * 8) as f64 / (1 << 20) as f64,
        slots,
        (words * 8 * slots as usize) as f64 / (1 << 20) as f64,
        o.frames
            .map_or(format!("{} s", o.seconds), |f| format!("{f} frames"))
    );
    let exe = std::env::current_exe().unwrap();
    let spawn = |role: &str, args: &[&str]| {
        Command::new(&exe)
            .args(args)
            .env(ROLE, role)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn a child process")
    };
    let mut consumers: Vec<_> = (0..o.consumers).map(|_| spawn("consumer", &[&p])).collect();
    let mut outs: Vec<_> = consumers
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().unwrap()).lines())
        .collect();
    for out in &mut outs {
        assert_eq!(out.next().unwrap().unwrap(), "ready"); // all subscribed before frame 0
    }
    let frames_arg = o.frames.map_or(String::new(), |f| f.to_string());
    let t0 = Instant::now();
    let mut prod = spawn("producer", &[&p, &o.seconds.to_string(), &frames_arg]);
    let line = BufReader::new(prod.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    assert!(prod.wait().unwrap().success(), "producer failed");
    let mut it = line.split_whitespace().skip(1);
    let produced: u64 = it.next().unwrap().parse().unwrap();
    let prod_ns: u64 = it.next().unwrap().parse().unwrap();
    let (mut total, mut bad_total, mut sum_total) = (0u64, 0u64, 0u128);
    for (i, (out, mut c)) in outs.into_iter().zip(consumers).enumerate() {
        let line = out.into_iter().next().unwrap().unwrap();
        assert!(c.wait().unwrap().success(), "consumer {i} failed");
        let f: Vec<&str> = line.split_whitespace().collect();
        let (n, bad, sum): (u64, u64, u128) = (
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        );
        println!(
            "consumer {i}: {n} frames, {bad} bad checksums, in order: {}",
            f[4]
        );
        assert_eq!(f[4], "true", "consumer {i} saw frames out of order");
        total += n;
        bad_total += bad;
        sum_total += sum;
    }
    let wall = t0.elapsed();
    let all_seqs: u128 = u128::from(produced) * u128::from(produced.saturating_sub(1)) / 2;
    let expect = if o.broadcast {
        produced * o.consumers as u64
    } else {
        produced
    };
    let exact = total == expect
        && sum_total == all_seqs * if o.broadcast { o.consumers as u128 } else { 1 };
    let secs = prod_ns as f64 / 1e9;
    let bytes = (words * 8) as f64;
    println!(
        "producer: {produced} frames in {secs:.2} s: {:.0} frames/s, {:.2} GB/s written",
        produced as f64 / secs,
        produced as f64 * bytes / secs / 1e9
    );
    println!(
        "consumers: {total} frames read and checked ({}), {:.2} GB/s read in total; wall {:.2} s",
        if exact {
            if o.broadcast {
                "every frame to every consumer"
            } else {
                "every frame exactly once"
            }
        } else {
            "MISMATCH"
        },
        total as f64 * bytes / wall.as_secs_f64() / 1e9,
        wall.as_secs_f64()
    );
    let st = ring.stats();
    assert!(exact && bad_total == 0, "delivery check failed: {st:?}");
    assert_eq!(st.free, st.slots, "slots not all free at the end");
}
