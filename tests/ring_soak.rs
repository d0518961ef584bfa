//! No allocation per frame on the hot path: a producer and a consumer process
//! exchange many frames and their resident memory stays flat after warm-up.
//!
//! `SHARRAY_SOAK_FRAMES` sets the number of frames (default 20,000; use
//! 100,000 for the long soak).

mod common;

use std::time::Duration;

use sharray::{Dtype, Ring};

const WARMUP: u64 = 2000;

fn frames() -> u64 {
    std::env::var("SHARRAY_SOAK_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn rss() -> u64 {
    sharray::sys::resident_bytes().unwrap()
}

#[test]
fn child_entry() {
    common::child_entry(|role, arg| {
        let (path, n) = arg.split_once('|').unwrap();
        let n: u64 = n.parse().unwrap();
        let ring = Ring::open(path).unwrap();
        let mut before = 0;
        match role {
            "producer" => {
                let p = ring.producer().unwrap();
                for i in 0..n {
                    if i == WARMUP {
                        before = rss();
                    }
                    let mut loan = p.loan_timeout(Duration::from_secs(60)).unwrap();
                    loan.as_mut_slice::<u64>().unwrap()[0] = i;
                    loan.set_tag(i);
                    loan.commit().unwrap();
                }
            }
            "consumer" => {
                let c = ring.consumer().unwrap();
                for i in 0..n {
                    if i == WARMUP {
                        before = rss();
                    }
                    let f = c.recv_timeout(Duration::from_secs(60)).unwrap();
                    assert_eq!((f.seq(), f.tag()), (i, i));
                    assert_eq!(f.as_slice::<u64>().unwrap()[0], i);
                }
            }
            other => panic!("unknown role {other}"),
        }
        println!("rss before={before} after={}", rss());
    });
}

#[test]
fn resident_memory_stays_flat() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("soak.npy");
    let _ring = Ring::builder(Dtype::parse_user("uint64").unwrap(), &[512])
        .slots(8)
        .create(&path)
        .unwrap();
    let arg = format!("{}|{}", path.display(), frames());
    let c = common::spawn_child("child_entry", "consumer", &arg);
    let p = common::spawn_child("child_entry", "producer", &arg);
    for out in [
        common::finish(p, Duration::from_secs(300)),
        common::finish(c, Duration::from_secs(300)),
    ] {
        let line = out.lines().find(|l| l.starts_with("rss")).unwrap();
        let num = |k: &str| -> u64 {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .unwrap()
                .parse()
                .unwrap()
        };
        let (before, after) = (num("before="), num("after="));
        eprintln!("{line}");
        // A per-frame allocation of even 16 bytes would grow by > 288 KiB.
        assert!(
            after <= before + 256 * 1024,
            "resident memory grew from {before} to {after} bytes"
        );
    }
}
