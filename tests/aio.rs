//! Async waits (`recv_async`, `loan_async`, `wait_changed_async`) against
//! real peer processes, driven by a minimal executor (the futures need no
//! runtime), plus cancellation, timeouts and more waiters than one
//! `futex_waitv` call takes.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use sharray::format::control;
use sharray::{Dtype, ErrorKind, Ring, SharedArray};

struct Unpark(std::thread::Thread);
impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Run every future to completion on this one thread (no thread per waiter).
fn block_on_all<T>(mut futs: Vec<Pin<Box<dyn Future<Output = T> + '_>>>) -> Vec<T> {
    let waker: Waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut out: Vec<Option<T>> = futs.iter().map(|_| None).collect();
    while out.iter().any(Option::is_none) {
        for (i, f) in futs.iter_mut().enumerate() {
            if out[i].is_none()
                && let Poll::Ready(v) = f.as_mut().poll(&mut cx)
            {
                out[i] = Some(v);
            }
        }
        if out.iter().any(Option::is_none) {
            std::thread::park_timeout(Duration::from_millis(200));
        }
    }
    out.into_iter().map(Option::unwrap).collect()
}

fn block_on<T>(f: impl Future<Output = T>) -> T {
    block_on_all(vec![Box::pin(f)]).pop().unwrap()
}

/// CPU time of this process, to the microsecond (getrusage; /proc's
/// 10 ms ticks are too coarse for a 50 ms wait).
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let ru = unsafe {
        let mut ru = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut ru), 0);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn frame_dtype() -> Dtype {
    Dtype::parse_user("uint64").unwrap()
}

#[test]
fn child_entry() {
    common::child_entry(|role, arg| match role {
        // Send frames 0..n (value i in every element), then close.
        "producer" => {
            let (path, n) = arg.split_once('|').unwrap();
            let p = Ring::open(path).unwrap().producer().unwrap();
            std::thread::sleep(Duration::from_millis(100));
            for i in 0..n.parse::<u64>().unwrap() {
                let mut loan = p.loan().unwrap();
                loan.as_mut_slice::<u64>().unwrap().fill(i);
                loan.commit().unwrap();
            }
            p.close().unwrap();
            println!("sent");
        }
        // Consume slowly until the stream ends; report the sum of frames.
        "slow-consumer" => {
            let c = Ring::open(arg).unwrap().consumer().unwrap();
            println!("attached");
            let mut sum = 0u64;
            loop {
                match c.recv_timeout(Duration::from_secs(60)) {
                    Ok(f) => {
                        sum += f.as_slice::<u64>().unwrap()[0];
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) if e.kind() == ErrorKind::Disconnected => break,
                    Err(e) => panic!("{e}"),
                }
            }
            println!("sum {sum}");
        }
        "writer" => {
            std::thread::sleep(Duration::from_millis(150));
            let a = SharedArray::<u8>::open(arg).unwrap();
            a.write().unwrap()[0] = 7;
            println!("wrote");
        }
        other => panic!("unknown role {other}"),
    });
}

/// A queue ring `r.npy` in `dir` of `slots` frames of `words` u64 words.
fn ring_in(dir: &tempfile::TempDir, words: usize, slots: u32) -> (std::path::PathBuf, Ring) {
    let path = dir.path().join("r.npy");
    let ring = Ring::builder(frame_dtype(), &[words])
        .slots(slots)
        .create(&path)
        .unwrap();
    (path, ring)
}

#[test]
fn recv_async_gets_every_frame_from_another_process_then_ends() {
    common::with_watchdog(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let (path, ring) = ring_in(&dir, 16, 4);
        let consumer = ring.consumer().unwrap();
        let n = 500u64;
        let kid = common::spawn_child(
            "child_entry",
            "producer",
            &format!("{}|{n}", path.display()),
        );
        let (count, sum) = block_on(async {
            let (mut count, mut sum) = (0u64, 0u64);
            loop {
                match consumer.recv_async(None).await {
                    Ok(f) => {
                        let s = f.as_slice::<u64>().unwrap();
                        assert!(s.iter().all(|&x| x == s[0]));
                        sum += s[0];
                        count += 1;
                    }
                    Err(e) if e.kind() == ErrorKind::Disconnected => return (count, sum),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        assert!(
            common::finish(kid, Duration::from_secs(30))
                .lines()
                .any(|l| l == "sent")
        );
        assert_eq!(count, n);
        assert_eq!(sum, n * (n - 1) / 2);
    });
}

/// A producer killed between publishing a frame in the log and marking its
/// slot READY (FORMAT.md 7.7): an async consumer parks instead of spinning
/// on the half-done commit, and gets the frame once its periodic reclaim
/// finishes the dead producer's commit.
#[test]
fn recv_async_parks_on_a_commit_its_producer_died_in() {
    common::with_watchdog(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let (path, ring) = ring_in(&dir, 16, 4);
        let consumer = ring.consumer().unwrap();
        let mut kid = common::spawn_child_env(
            "child_entry",
            "producer",
            &format!("{}|5", path.display()),
            &[("SHARRAY_FAILPOINTS", "ring.handoff.published=kill@3")],
        );
        let st = common::wait_with_watchdog(&mut kid, Duration::from_secs(30));
        assert!(!st.success(), "the producer must die in its third commit");
        let mut spent = (Duration::ZERO, Duration::ZERO);
        let got: Vec<u64> = block_on(async {
            let mut got = Vec::new();
            for i in 0..3 {
                let (cpu0, t0) = (process_cpu(), std::time::Instant::now());
                let f = consumer
                    .recv_async(Some(Duration::from_secs(20)))
                    .await
                    .unwrap();
                if i == 2 {
                    // The wait for the reclaim (up to one 50 ms slice).
                    spent = (process_cpu() - cpu0, t0.elapsed());
                }
                got.push(f.as_slice::<u64>().unwrap()[0]);
            }
            // Nothing more: the wait times out, parked.
            let err = consumer
                .recv_async(Some(Duration::from_millis(400)))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Timeout);
            got
        });
        assert_eq!(
            got,
            [0, 1, 2],
            "the dead producer's published frame is delivered"
        );
        let (cpu, wall) = spent;
        assert!(
            cpu <= wall / 4,
            "the async consumer spun while the commit was half done: {cpu:?} of CPU in {wall:?}"
        );
        assert!(sharray::check(&path, None).unwrap().is_empty());
    });
}

#[test]
fn loan_async_waits_for_a_slow_consumer_in_another_process() {
    common::with_watchdog(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let (path, ring) = ring_in(&dir, 4, 2);
        let producer = ring.producer().unwrap();
        let mut kid =
            common::spawn_child("child_entry", "slow-consumer", &path.display().to_string());
        let mut lines = common::Lines::of(&mut kid);
        lines.wait_for("attached", Duration::from_secs(30));
        let n = 100u64;
        block_on(async {
            for i in 0..n {
                let mut loan = producer
                    .loan_async(Some(Duration::from_secs(30)))
                    .await
                    .unwrap();
                loan.as_mut_slice::<u64>().unwrap().fill(i);
                loan.commit().unwrap();
            }
        });
        producer.close().unwrap();
        let got = lines.wait_for("sum ", Duration::from_secs(30));
        assert_eq!(got, format!("sum {}", n * (n - 1) / 2));
        assert!(common::wait_with_watchdog(&mut kid, Duration::from_secs(30)).success());
    });
}

#[test]
fn wait_changed_async_sees_a_write_by_another_process() {
    common::with_watchdog(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let a = SharedArray::<u8>::create(&path, &[4]).unwrap();
        let g = a.generation();
        let kid = common::spawn_child("child_entry", "writer", &path.display().to_string());
        let now = block_on(a.wait_changed_async(g, Some(Duration::from_secs(30)))).unwrap();
        assert!(now > g);
        assert_eq!(a.read().unwrap()[0], 7);
        assert!(
            common::finish(kid, Duration::from_secs(30))
                .lines()
                .any(|l| l == "wrote")
        );
    });
}

fn gen_waiters(path: &std::path::Path) -> u32 {
    // A 4-byte array: the control block starts at 64 KiB.
    let b = std::fs::read(path).unwrap();
    let off = 65536 + control::off::GEN_WAITERS;
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap())
}

#[test]
fn a_dropped_future_unregisters_and_a_timeout_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.npy");
    let a = SharedArray::<u8>::create(&path, &[4]).unwrap();
    let g = a.generation();
    {
        let mut fut = Box::pin(a.wait_changed_async(g, None));
        let waker: Waker = Arc::new(Unpark(std::thread::current())).into();
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        assert_eq!(gen_waiters(&path), 1, "a pending future counts as a waiter");
    }
    assert_eq!(gen_waiters(&path), 0, "dropping the future unregisters it");

    let err = block_on(a.wait_changed_async(g, Some(Duration::from_millis(30)))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(gen_waiters(&path), 0);

    let ring = Ring::builder(frame_dtype(), &[1])
        .slots(2)
        .create(dir.path().join("r.npy"))
        .unwrap();
    let c = ring.consumer().unwrap();
    let _p = ring.producer().unwrap();
    let err = block_on(c.recv_async(Some(Duration::from_millis(30)))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
}

#[test]
fn more_waiters_than_one_futex_waitv_call_takes_all_wake() {
    common::with_watchdog(Duration::from_secs(60), || {
        let dir = tempfile::tempdir().unwrap();
        let arrays: Vec<_> = (0..200)
            .map(|i| SharedArray::<u8>::create(dir.path().join(format!("a{i}.npy")), &[1]).unwrap())
            .collect();
        let writers: Vec<_> = arrays
            .iter()
            .map(|a| SharedArray::<u8>::open(a.path()).unwrap())
            .collect();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            for w in &writers {
                w.write().unwrap()[0] = 1;
            }
        });
        let futs: Vec<Pin<Box<dyn Future<Output = sharray::Result<u64>>>>> = arrays
            .iter()
            .map(|a| Box::pin(a.wait_changed_async(0, Some(Duration::from_secs(30)))) as _)
            .collect();
        for got in block_on_all(futs) {
            assert_eq!(got.unwrap(), 1);
        }
        t.join().unwrap();
    });
}
