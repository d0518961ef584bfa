//! Wake-up latency of `Consumer::recv_async` (one helper thread per process,
//! `futex_waitv`) against the blocking `Consumer::recv`, side by side.
//!
//! A producer process commits a small frame every `--interval-us` (default
//! 1000, so every receive really parks); the consumer measures commit ->
//! receive from the frame's `CLOCK_MONOTONIC` timestamp, first with
//! blocking receives, then with `recv_async` driven by a minimal executor
//! (thread park/unpark; a tokio runtime adds its own scheduling on top).
//!
//! ```text
//! cargo run --release --example async_latency -- [--frames 2000] [--interval-us 1000]
//! ```

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use sharray::{Dtype, ErrorKind, Ring};

struct Unpark(std::thread::Thread);
impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on<T>(f: impl Future<Output = T>) -> T {
    let waker: Waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn produce(path: &str, frames: u64, interval: Duration) -> sharray::Result<()> {
    let p = Ring::open(path)?.producer()?;
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..frames {
        std::thread::sleep(interval);
        p.loan()?.commit()?;
    }
    p.close()
}

fn percentiles(mut v: Vec<u64>) -> [f64; 3] {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    [at(0.5), at(0.9), at(0.99)]
}

fn run(path: &std::path::Path, frames: u64, interval: u64, asynchronous: bool) -> Vec<u64> {
    let ring = Ring::open(path).expect("open the ring");
    let consumer = ring.consumer().expect("attach");
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--produce", &path.display().to_string()])
        .args([
            "--frames",
            &frames.to_string(),
            "--interval-us",
            &interval.to_string(),
        ])
        .spawn()
        .expect("spawn the producer");
    let mut lat = Vec::with_capacity(frames as usize);
    loop {
        let got = if asynchronous {
            block_on(consumer.recv_async(Some(Duration::from_secs(30))))
        } else {
            consumer.recv_timeout(Duration::from_secs(30))
        };
        match got {
            Ok(f) => lat.push(sharray::sys::monotonic_ns().saturating_sub(f.timestamp_ns())),
            Err(e) if e.kind() == ErrorKind::Disconnected => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(child.wait().unwrap().success());
    // Reopen the stream for the next run.
    drop(ring.producer_reopening().expect("reopen"));
    lat
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let frames = arg("--frames", 2000);
    let interval = arg("--interval-us", 1000);
    if let Some(i) = args.iter().position(|a| a == "--produce") {
        produce(&args[i + 1], frames, Duration::from_micros(interval)).expect("producer");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("lat.npy");
    Ring::builder(Dtype::parse_user("uint64").unwrap(), &[8])
        .slots(8)
        .create(&path)
        .expect("create the ring");
    let blocking = percentiles(run(&path, frames, interval, false));
    let asynchronous = percentiles(run(&path, frames, interval, true));
    println!(
        "commit -> receive latency, us ({frames} frames, one every {interval} us, producer in another process)"
    );
    println!("{:<28} {:>8} {:>8} {:>8}", "", "p50", "p90", "p99");
    println!(
        "{:<28} {:>8.1} {:>8.1} {:>8.1}",
        "blocking recv", blocking[0], blocking[1], blocking[2]
    );
    println!(
        "{:<28} {:>8.1} {:>8.1} {:>8.1}",
        "recv_async (futex_waitv)", asynchronous[0], asynchronous[1], asynchronous[2]
    );
    println!(
        "{:<28} {:>8.1} {:>8.1} {:>8.1}",
        "added by async",
        asynchronous[0] - blocking[0],
        asynchronous[1] - blocking[1],
        asynchronous[2] - blocking[2]
    );
}
