//! Attach cost against array size: how long `SharedArray::open` takes, and
//! how much resident memory it adds, for arrays of 1 MiB to 16 GiB. The
//! arrays are sparse files (`.preallocate(false)`) in a temporary directory
//! on disk (`$TMPDIR`, not /dev/shm), so 16 GiB costs no RAM and no disk.

use std::time::Instant;

use sharray::SharedArray;

use super::common::{finish, percentile, read_line, spawn};
use super::report::Attach;

/// Parent: create every array, then time the opens in a fresh child process
/// per size.
pub fn run(sizes: &[u64], opens: usize) -> Vec<Attach> {
    let dir = tempfile::Builder::new()
        .prefix("sharray-bench-attach-")
        .tempdir()
        .unwrap();
    let mut out = Vec::new();
    for &size in sizes {
        let path = dir.path().join(format!("a{size}.npy"));
        SharedArray::<u8>::builder()
            .shape(&[size as usize])
            .preallocate(false)
            .create(&path)
            .unwrap();
        let p = path.to_str().unwrap();
        let mut child = spawn("attach", &[p, &opens.to_string()]);
        let line = read_line(&mut child);
        finish(child);
        std::fs::remove_file(&path).unwrap();
        let v: Vec<u64> = line
            .split_whitespace()
            .map(|x| x.parse().expect(&line))
            .collect();
        out.push(Attach {
            size,
            first_ns: v[0],
            min_ns: v[1],
            median_ns: v[2],
            rss_growth: v[3],
            opens,
        });
    }
    out
}

/// Child role `attach`: open the array `n` times; print
/// `FIRST MIN MEDIAN RSS_GROWTH`.
pub fn child(a: &[String]) {
    super::common::pin(1);
    let (path, n): (&str, usize) = (&a[0], a[1].parse().unwrap());
    let rss0 = sharray::sys::resident_bytes().unwrap();
    let t0 = Instant::now();
    let first = SharedArray::<u8>::open(path).unwrap();
    let first_ns = t0.elapsed().as_nanos() as u64;
    let rss1 = sharray::sys::resident_bytes().unwrap();
    assert!(!first.is_empty());
    drop(first);
    let mut v: Vec<u64> = (0..n)
        .map(|_| {
            let t0 = Instant::now();
            let a = SharedArray::<u8>::open(path).unwrap();
            let d = t0.elapsed().as_nanos() as u64;
            drop(a);
            d
        })
        .collect();
    println!(
        "{first_ns} {} {} {}",
        percentile(&mut v, 0.0),
        percentile(&mut v, 50.0),
        rss1.saturating_sub(rss0)
    );
}
