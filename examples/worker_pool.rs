//! A process pool that turns a large input array into an output array,
//! chunk by chunk, with no copies and no pickling: `out = 2 * in + 1`.
//!
//! The parent creates the input (default 1 GiB of f32), the output and a
//! chunk queue (in /dev/shm when it exists), spawns N worker processes
//! (default: the number of CPUs) that re-execute this program in a worker
//! role, waits for the queue, verifies the output and prints chunks/s and
//! GB/s.
//!
//! ```text
//! cargo run --release --example worker_pool -- [--mib 1024] [--workers N]
//!     [--chunk-mib 1] [--dir DIR] [--kill-one]
//! ```
//!
//! With `--kill-one`, one worker is SIGKILLed in the middle of a chunk
//! (after it filled the chunk's rows with NaN and wrote half of the real
//! values); its chunk is re-queued, another worker redoes it, and the output
//! still verifies.

mod common;

const USAGE: &str = "usage: worker_pool [--mib 1024] [--workers N] [--chunk-mib 1] [--dir DIR] [--kill-one]\n\
\n\
A process pool computing out = 2 * in + 1 chunk by chunk over shared arrays\n\
and a work queue; verifies the output and prints chunks/s and GB/s.";

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sharray::{ErrorKind, SharedArray, WorkQueue};

/// f32 per row: one row is 4 KiB.
const COLS: usize = 1024;

fn input_value(i: usize) -> f32 {
    (i % 1000) as f32 - 500.0
}

struct Args {
    mib: usize,
    workers: usize,
    chunk_mib: usize,
    dir: Option<PathBuf>,
    kill_one: bool,
}

fn usage(msg: &str) -> ! {
    eprintln!("worker_pool: {msg}");
    eprintln!(
        "usage: worker_pool [--mib N] [--workers N] [--chunk-mib N] [--dir DIR] [--kill-one]"
    );
    std::process::exit(2);
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Args {
    let mut a = Args {
        mib: 1024,
        workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        chunk_mib: 1,
        dir: None,
        kill_one: false,
    };
    while let Some(flag) = it.next() {
        let mut num = |name: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .unwrap_or_else(|| usage(&format!("{name} needs a positive number")))
        };
        match flag.as_str() {
            "--mib" => a.mib = num("--mib"),
            "--workers" => a.workers = num("--workers"),
            "--chunk-mib" => a.chunk_mib = num("--chunk-mib"),
            "--dir" => {
                a.dir = Some(
                    it.next()
                        .unwrap_or_else(|| usage("--dir needs a path"))
                        .into(),
                )
            }
            "--kill-one" => a.kill_one = true,
            other => usage(&format!("unknown argument {other}")),
        }
    }
    a
}

fn main() {
    common::start(USAGE);
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--worker") {
        args.next();
        let v: Vec<String> = args.collect();
        if let Err(e) = worker(&v) {
            eprintln!("worker_pool worker: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = parent(parse_args(args)) {
        eprintln!("worker_pool: {e}");
        std::process::exit(1);
    }
}

/// The worker role: `--worker QUEUE INPUT OUTPUT [--stall-at K]`.
fn worker(v: &[String]) -> sharray::Result<()> {
    let q = WorkQueue::open(&v[0])?;
    let input = SharedArray::<f32>::open_read_only(&v[1])?;
    let out = SharedArray::<f32>::open(&v[2])?;
    let stall_at: Option<usize> = v.get(4).and_then(|s| s.parse().ok());
    let src = input.read()?; // nobody writes the input during the job
    let w = q.join()?;
    let mut done = 0;
    while let Some(c) = w.claim()? {
        let r = c.rows();
        let x = &src[r.start * COLS..r.end * COLS];
        let mut y = c.rows_mut(&out)?;
        if stall_at == Some(done) {
            // Leave a half-written chunk behind, then wait for the SIGKILL.
            y.fill(f32::NAN);
            let half = y.len() / 2;
            for (o, i) in y[..half].iter_mut().zip(x) {
                *o = 2.0 * i + 1.0;
            }
            println!("MID {}", c.index());
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        for (o, i) in y.iter_mut().zip(x) {
            *o = 2.0 * i + 1.0;
        }
        drop(y);
        c.complete()?;
        done += 1;
    }
    println!("DONE {} {done}", w.id());
    Ok(())
}

fn spawn(q: &Path, i: &Path, o: &Path, stall_at: Option<usize>) -> std::io::Result<Child> {
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.arg("--worker").arg(q).arg(i).arg(o);
    if let Some(k) = stall_at {
        cmd.arg("--stall-at").arg(k.to_string());
    }
    cmd.stdout(Stdio::piped()).spawn()
}

fn parent(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let base = a.dir.clone().unwrap_or_else(|| {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        }
    });
    let dir = tempfile::Builder::new()
        .prefix("worker_pool-")
        .tempdir_in(&base)?;
    let rows = (a.mib << 20) / (COLS * 4);
    let chunk_rows = ((a.chunk_mib << 20) / (COLS * 4)).max(1);
    let (qp, ip, op) = (
        dir.path().join("queue.npy"),
        dir.path().join("in.npy"),
        dir.path().join("out.npy"),
    );
    println!(
        "input {} MiB f32 ({rows} x {COLS}) in {}, chunks of {chunk_rows} rows, {} workers{}",
        a.mib,
        dir.path().display(),
        a.workers,
        if a.kill_one {
            ", killing one mid-chunk"
        } else {
            ""
        }
    );
    let input = SharedArray::<f32>::create(&ip, &[rows, COLS])?;
    {
        let mut w = input.write()?;
        for (i, v) in w.iter_mut().enumerate() {
            *v = input_value(i);
        }
    }
    let out = SharedArray::<f32>::create(&op, &[rows, COLS])?;
    let q = WorkQueue::builder()
        .rows(rows)
        .chunk_rows(chunk_rows)
        .create(&qp)?;

    let t0 = Instant::now();
    let mut kids = Vec::new();
    for k in 0..a.workers {
        let stall = (a.kill_one && k == 0).then_some(0);
        kids.push(spawn(&qp, &ip, &op, stall)?);
    }
    if a.kill_one {
        let victim = &mut kids[0];
        let mut lines = BufReader::new(victim.stdout.take().expect("piped")).lines();
        match lines.next() {
            Some(Ok(l)) if l.starts_with("MID ") => {
                victim.kill()?;
                victim.wait()?;
                println!(
                    "killed worker pid {} in the middle of chunk {}",
                    victim.id(),
                    &l[4..]
                );
            }
            other => {
                println!("the victim got no chunk to stall in ({other:?}); nothing was killed")
            }
        }
    }
    let p = loop {
        match q.wait_all(Duration::from_millis(500)) {
            Ok(p) => break p,
            Err(e) if e.kind() == ErrorKind::Timeout => {
                let p = q.progress();
                println!(
                    "  {} / {} chunks done, {} in flight, {} workers",
                    p.done, p.chunks, p.in_flight, p.workers
                );
                if t0.elapsed() > Duration::from_secs(600) {
                    return Err("the job did not finish in 10 minutes".into());
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    for mut k in kids {
        let st = k.wait()?;
        if !st.success() && !a.kill_one {
            return Err(format!("a worker failed: {st}").into());
        }
    }

    let r = out.read()?;
    if let Some(bad) = (0..r.len()).find(|&i| r[i] != 2.0 * input_value(i) + 1.0) {
        return Err(format!(
            "verification failed at element {bad}: {} instead of {}",
            r[bad],
            2.0 * input_value(bad) + 1.0
        )
        .into());
    }
    let bytes = (rows * COLS * 4) as f64;
    println!(
        "verified {} chunks ({} re-queued) in {secs:.3} s: {:.0} chunks/s, {:.2} GB/s of input ({:.2} GB/s read + written), including worker start-up",
        p.chunks,
        p.requeued,
        p.chunks as f64 / secs,
        bytes / secs / 1e9,
        2.0 * bytes / secs / 1e9
    );
    Ok(())
}
