//! A multi-process demo: this program creates a shared array, then starts
//! copies of itself as child processes. Three workers take turns changing
//! the array under the write guard; a watcher parks on `wait_changed` and
//! checks, under the read guard, that it never sees a half-done update.
//!
//! Run it with `cargo run --release --example demo`, then look at the file
//! from numpy with the one-liner it prints.

mod common;

const USAGE: &str = "usage: demo\n\
\n\
Creates a shared array in the temp directory and runs worker processes that\n\
update it under the write lock while a watcher checks it never sees a\n\
half-done update.";

use std::process::{Child, Command};
use std::time::Duration;

use sharray::SharedArray;
use sharray::ndarray::Axis;

const WORKERS: usize = 3;
const ROUNDS: u64 = 50;
const COLS: usize = 1 << 16; // 4 rows x 64 Ki f64 = 2 MiB

fn main() -> Result<(), Box<dyn std::error::Error>> {
    common::start(USAGE);
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("worker") => worker(&args[2], args[3].parse()?),
        Some("watcher") => watcher(&args[2]),
        _ => parent(),
    }
}

fn spawn(role: &str, path: &str, extra: &str) -> std::io::Result<Child> {
    Command::new(std::env::current_exe()?)
        .args([role, path, extra])
        .spawn()
}

fn parent() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::temp_dir().join("sharray-demo.npy");
    // The file from an earlier run of this demo: sharray never overwrites.
    let _ = std::fs::remove_file(&path);
    let a = SharedArray::<f64>::create(&path, &[WORKERS + 1, COLS])?;
    let p = path.to_str().ok_or("temp path is not UTF-8")?;
    println!(
        "created {p}: a {:?} float64 array, {} bytes of data, shared by every process below",
        a.shape(),
        a.len() * 8
    );
    let mut kids = vec![spawn("watcher", p, "")?];
    for w in 0..WORKERS {
        kids.push(spawn("worker", p, &w.to_string())?);
    }
    for mut k in kids {
        let st = k.wait()?;
        if !st.success() {
            return Err(format!("a child process failed: {st}").into());
        }
    }
    let r = a.read()?;
    let v = r.view();
    println!(
        "\nafter all processes finished (generation {}):",
        a.generation()
    );
    for w in 0..WORKERS {
        println!(
            "  row {w}: every element = {} (worker {w}'s updates)",
            v[[w, 0]]
        );
    }
    println!(
        "  row {WORKERS}: every element = {} (updates by anyone)",
        v[[WORKERS, 0]]
    );
    println!("\nlook at it from numpy (nothing else needed):");
    println!(
        "  python3 -c \"import numpy as np; a = np.load('{p}', mmap_mode='r'); print(a[:, :3], a.shape, a.dtype)\""
    );
    println!("or with the CLI: cargo run --release -- show {p}");
    Ok(())
}

fn worker(path: &str, w: usize) -> Result<(), Box<dyn std::error::Error>> {
    let a = SharedArray::<f64>::open(path)?;
    for _ in 0..ROUNDS {
        {
            let mut g = a.write()?; // excludes every other process and thread
            let mut v = g.view_mut();
            v.index_axis_mut(Axis(0), w).mapv_inplace(|x| x + 1.0);
            v.index_axis_mut(Axis(0), WORKERS).mapv_inplace(|x| x + 1.0);
        } // released here; the generation was bumped and waiters woken
        std::thread::sleep(Duration::from_millis(2));
    }
    println!(
        "worker {w} (pid {}): {ROUNDS} updates done",
        std::process::id()
    );
    Ok(())
}

fn watcher(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let a = SharedArray::<f64>::open_read_only(path)?;
    let total = WORKERS as u64 * ROUNDS;
    let (mut seen, mut wakeups) = (a.generation(), 0u64);
    while seen < total {
        seen = match a.wait_changed(seen, Duration::from_secs(10)) {
            Ok(g) => g,
            Err(e) => return Err(format!("watcher: {e}").into()),
        };
        wakeups += 1;
        let r = a.read()?;
        let v = r.view();
        for row in v.rows() {
            // Under the read guard, no row is ever half updated.
            assert!(row.iter().all(|&x| x == row[0]), "torn update seen");
        }
    }
    println!(
        "watcher (pid {}): woke {wakeups} times for {total} changes, never saw a half-done update",
        std::process::id()
    );
    Ok(())
}
