//! The C programs of examples/c (and ffi/tests/c/api_test.c), built against
//! libsharray.a under AddressSanitizer (or valgrind), as real processes
//! next to Rust peers: a C producer feeding a Rust consumer, a Rust
//! producer feeding a C consumer, a C consumer SIGKILLed holding a lease
//! while the ring keeps flowing, the array demo and the C API contract.
//! Every child runs under a watchdog.

mod common;

use std::io::BufReader;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{c_command, finish, is_frame, read_line, report};
use sharray_core::{Dtype, ErrorKind, Ring, SharedArray};

const WORDS: usize = 8192; // 64 KiB frames
const FRAMES: u64 = 300;
const WAIT: Duration = Duration::from_secs(60);

fn ring(dir: &std::path::Path, slots: u32) -> (std::path::PathBuf, Ring) {
    let path = dir.join("ring.npy");
    let ring = Ring::builder(Dtype::parse_user("uint64").unwrap(), &[WORDS])
        .slots(slots)
        .create(&path)
        .unwrap();
    (path, ring)
}

#[test]
fn c_producer_feeds_a_rust_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ring) = ring(dir.path(), 4);
    let consumer = ring.consumer().unwrap();
    let producer = c_command("ring_producer")
        .arg(&path)
        .arg(FRAMES.to_string())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let result = (|| -> sharray_core::Result<()> {
        loop {
            let frame = match consumer.recv_timeout(WAIT) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::Disconnected => return Ok(()),
                Err(e) => return Err(e),
            };
            assert!(
                is_frame(frame.as_slice::<u64>()?, frame.tag()),
                "frame {} is wrong",
                frame.seq()
            );
            assert_eq!(frame.valid_len(), WORDS * 8);
            seen.push((frame.seq(), frame.tag()));
        }
    })();
    let (status, out, err) = finish(producer);
    result.unwrap_or_else(|e| panic!("rust consumer: {e}; C producer stderr: {err}"));
    assert!(status.success(), "C producer failed ({status}): {err}");
    let r = report(&out);
    assert_eq!(r["role"], "produce");
    assert_eq!(r["frames"], FRAMES);
    assert_eq!(r["bytes"], FRAMES * (WORDS as u64) * 8);
    let want: Vec<(u64, u64)> = (0..FRAMES).map(|n| (n, n)).collect();
    assert_eq!(seen, want);
    let st = ring.stats();
    assert!(st.closed && st.free == 4 && st.committed == FRAMES);
}

#[test]
fn rust_producer_feeds_a_c_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ring) = ring(dir.path(), 4);
    let mut child = c_command("ring_consumer")
        .arg(&path)
        .args(["--timeout", "60"])
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let first = read_line(&mut child, &mut stdout);
    assert_eq!(first, "ready", "C consumer did not start");
    let producer = ring.producer().unwrap();
    for n in 0..FRAMES {
        let mut loan = producer.loan_timeout(WAIT).unwrap();
        common::fill(loan.as_mut_slice::<u64>().unwrap(), n);
        loan.set_tag(n);
        if n == 7 {
            // A short frame: only the valid bytes are delivered and checked.
            loan.set_valid_len(100 * 8).unwrap();
        }
        loan.commit().unwrap();
    }
    producer.close().unwrap();
    child.stdout = Some(stdout.into_inner());
    let (status, out, err) = finish(child);
    assert!(status.success(), "C consumer failed ({status}): {err}");
    let r = report(&out);
    assert_eq!(r["role"], "consume");
    assert_eq!(r["frames"], FRAMES, "{out}");
    assert_eq!(r["bad"], 0, "{out}");
    assert_eq!(r["lost"], 0, "{out}");
    assert_eq!(r["bytes"], (FRAMES - 1) * (WORDS as u64) * 8 + 100 * 8);
    assert_eq!(ring.stats().free, 4);
}

#[test]
fn a_c_consumer_killed_holding_a_lease_does_not_stop_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    // Two slots: while the dead consumer's lease is not reclaimed, only
    // one slot is left for the stream.
    let (path, ring) = ring(dir.path(), 2);
    let mut child = c_command("ring_consumer")
        .arg(&path)
        .args(["--hold", "--timeout", "60"])
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    assert_eq!(read_line(&mut child, &mut stdout), "ready");
    let producer = ring.producer().unwrap();
    let rust = ring.consumer().unwrap();

    // The stream flows through a Rust consumer thread the whole time.
    let flow = std::thread::spawn(move || {
        let mut tags = Vec::new();
        loop {
            match rust.recv_timeout(WAIT) {
                Ok(f) => {
                    assert!(is_frame(f.as_slice::<u64>().unwrap(), f.tag()));
                    tags.push(f.tag());
                }
                Err(e) if e.kind() == ErrorKind::Disconnected => return tags,
                Err(e) => panic!("rust consumer: {e}"),
            }
        }
    });
    // The producer sends until the C consumer is dead, then 200 more
    // frames (which need the dead lease's slot back to keep both slots
    // going), then closes the stream.
    let killed = Arc::new(AtomicBool::new(false));
    let killed2 = killed.clone();
    let send = std::thread::spawn(move || {
        let (mut n, mut after) = (0u64, 0);
        while after < 200 {
            let dead = killed2.load(Ordering::SeqCst);
            let mut loan = producer.loan_timeout(WAIT).unwrap();
            common::fill(loan.as_mut_slice::<u64>().unwrap(), n);
            loan.set_tag(n);
            loan.commit().unwrap();
            n += 1;
            if dead {
                after += 1;
            } else {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        producer.close().unwrap();
        n
    });
    // The C consumer says "holding SEQ" once it has a frame.
    let held_line = read_line(&mut child, &mut stdout);
    let held: u64 = held_line
        .strip_prefix("holding ")
        .unwrap_or_else(|| panic!("unexpected line {held_line:?}"))
        .parse()
        .unwrap();
    // SIGKILL, mid-stream, lease held.
    child.kill().unwrap();
    child.stdout = Some(stdout.into_inner());
    let (status, _, _) = finish(child);
    assert!(!status.success());
    killed.store(true, Ordering::SeqCst);
    let n = send.join().unwrap();
    let mut got = flow.join().unwrap();
    got.sort_unstable();
    let want: Vec<u64> = (0..n).filter(|&t| t != held).collect();
    assert_eq!(
        got, want,
        "the Rust consumer got every frame but the held one"
    );
    assert!(ring.stats().closed);
    // No slot is lost: both slots can be loaned at once again (the second
    // loan blocks until the dead consumer's slot is reclaimed).
    let again = ring.producer_reopening().unwrap();
    let both = (
        again.loan_timeout(WAIT).unwrap(),
        again.loan_timeout(WAIT).unwrap(),
    );
    drop(both);
    let st = ring.stats();
    assert_eq!((st.free, st.reading), (2, 0), "{st:?}");
}

#[test]
fn the_array_demo_writes_under_the_guard_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("demo.npy");
    let (status, out, err) = finish(c_command("array_demo").arg(&path).spawn().unwrap());
    assert!(
        status.success(),
        "array_demo failed ({status}): {out}\n{err}"
    );
    assert!(out.contains("SHARRAY_ALREADY_EXISTS"), "{out}");
    let r = report(&out);
    assert_eq!(r["sum"], 99.0);
    assert_eq!(r["generation_after"], 1);
    // Rust sees what C wrote.
    let a = SharedArray::<f64>::open(&path).unwrap();
    assert_eq!(a.shape(), &[3, 4]);
    let want: Vec<f64> = (0..12).map(|i| 1.5 * i as f64).collect();
    assert_eq!(&a.read().unwrap()[..], &want[..]);
}

#[test]
fn c_and_rust_take_turns_on_one_array() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("turns.npy");
    let a = SharedArray::<i64>::create(&path, &[1024]).unwrap();
    const N: i64 = 100;
    let c = c_command("array_demo")
        .arg("turns")
        .arg(&path)
        .arg(N.to_string())
        .arg("0")
        .spawn()
        .unwrap();
    // Rust takes the odd turns.
    let mut mine = 0;
    while mine < N {
        let mut w = a.write_timeout(WAIT).unwrap();
        // Stable under the guard; reading through it does not bump it.
        let seen = a.generation();
        let v = w[0];
        assert!(w.iter().all(|&x| x == v), "torn array");
        if v % 2 == 1 {
            w.fill(v + 1);
            mine += 1;
            continue;
        }
        drop(w);
        match a.wait_changed(seen, Duration::from_millis(200)) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Timeout => {}
            Err(e) => panic!("{e}"),
        }
    }
    let (status, out, err) = finish(c);
    assert!(status.success(), "C side failed ({status}): {err}");
    assert_eq!(report(&out)["turns"], N);
    assert!(a.read().unwrap().iter().all(|&x| x == 2 * N));
}

#[test]
fn the_c_api_keeps_its_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (status, out, err) = finish(c_command("api_test").arg(dir.path()).spawn().unwrap());
    assert!(
        status.success(),
        "api_test failed ({status}):\n{out}\n{err}"
    );
    assert!(out.contains("api_test: all checks passed"), "{out}");
}

#[test]
fn the_cpp_wrappers_end_every_handle() {
    let dir = tempfile::tempdir().unwrap();
    let (status, out, err) = finish(c_command("cpp_test").arg(dir.path()).spawn().unwrap());
    assert!(
        status.success(),
        "cpp_test failed ({status}):\n{out}\n{err}"
    );
    assert!(out.contains("cpp_test: all checks passed"), "{out}");
}

/// The generated `target/<profile>/sharray.pc` builds a program against
/// the shared library (pkg-config, when installed).
#[test]
fn pkg_config_links_the_shared_library() {
    let progs = common::c_programs(); // builds the library and the .pc file
    let profile_dir = common::profile_dir();
    let pc = profile_dir.join("sharray.pc");
    assert!(pc.exists(), "{} was not generated", pc.display());
    let Ok(flags) = std::process::Command::new("pkg-config")
        .args(["--cflags", "--libs", "sharray"])
        .env("PKG_CONFIG_PATH", &profile_dir)
        .output()
    else {
        eprintln!("note: pkg-config is not installed; skipping the pkg-config build");
        return;
    };
    assert!(
        flags.status.success(),
        "{}",
        String::from_utf8_lossy(&flags.stderr)
    );
    let flags = String::from_utf8(flags.stdout).unwrap();
    let exe = progs.dir.join("array_demo_shared");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let st = std::process::Command::new("cc")
        .arg(format!("-I{}", root.join("examples/c").display()))
        .arg("-o")
        .arg(&exe)
        .arg(root.join("examples/c/array_demo.c"))
        .args(flags.split_whitespace())
        .status()
        .unwrap();
    assert!(st.success(), "cc with pkg-config flags {flags:?} failed");
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(&exe)
        .arg(dir.path().join("demo.npy"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (status, out, err) = finish(child);
    assert!(status.success(), "{out}\n{err}");
    assert_eq!(report(&out)["sum"], 99.0);
}

/// The README's C consumer (its one ```c block) compiles and drains a ring
/// fed by the C producer, which creates the ring when it is missing.
#[test]
fn the_readme_c_consumer_works() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("```c\n").expect("a ```c block in README.md") + 5;
    let end = start + readme[start..].find("```").unwrap();
    let progs = common::c_programs();
    let src = progs.dir.join("readme_consumer.c");
    std::fs::write(&src, &readme[start..end]).unwrap();
    let exe = progs.dir.join("readme_consumer");
    let mut cc = std::process::Command::new("cc");
    cc.args(["-std=c11", "-Wall", "-Werror"]);
    if progs.checker == common::Checker::AddressSanitizer {
        cc.arg("-fsanitize=address");
    }
    let st = cc
        .arg(format!("-I{}", root.join("include").display()))
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .arg(common::profile_dir().join("libsharray.a"))
        .args(["-lpthread", "-ldl", "-lm"])
        .status()
        .unwrap();
    assert!(st.success(), "the README's C block does not compile");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.npy");
    // The producer creates the ring, then the README consumer attaches
    // before it is closed (the producer waits for a free slot meanwhile).
    let (status, _, err) = finish(
        c_command("ring_producer")
            .arg(&path)
            .args(["3", "--no-close"])
            .spawn()
            .unwrap(),
    );
    assert!(status.success(), "{err}");
    let consumer = std::process::Command::new(&exe)
        .arg(&path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Frames committed before a queue consumer attached are still its to
    // take; closing the stream (before or after it attached) ends its loop
    // once they are drained.
    let ring = Ring::open(&path).unwrap();
    ring.producer().unwrap().close().unwrap();
    let (status, out, err) = finish(consumer);
    assert!(status.success(), "{out}\n{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "frame 0: 65536 bytes, first byte 0",
            "frame 1: 65536 bytes, first byte 1",
            "frame 2: 65536 bytes, first byte 2"
        ]
    );
}

/// C worker processes share a job with a Rust worker; one C worker is
/// SIGKILLed halfway through a chunk, which another worker redoes.
#[test]
fn c_workers_and_a_rust_worker_share_a_job_and_survive_a_kill() {
    use sharray_core::WorkQueue;
    let dir = tempfile::tempdir().unwrap();
    let (rows, cols) = (1000usize, 16usize);
    let out_path = dir.path().join("out.npy");
    let q_path = dir.path().join("q.npy");
    let out = SharedArray::<i64>::builder()
        .shape(&[rows, cols])
        .fill(-1)
        .create(&out_path)
        .unwrap();
    let q = WorkQueue::builder()
        .rows(rows)
        .chunk_rows(25)
        .create(&q_path)
        .unwrap();
    let victim = c_command("pool_worker")
        .arg(&q_path)
        .arg(&out_path)
        .args(["--die-in-chunk", "2"])
        .spawn()
        .unwrap();
    let (status, _, err) = finish(victim);
    assert!(!status.success(), "the victim should have died: {err}");
    let workers: Vec<_> = (0..2)
        .map(|_| {
            c_command("pool_worker")
                .arg(&q_path)
                .arg(&out_path)
                .spawn()
                .unwrap()
        })
        .collect();
    // A Rust worker in this process takes part too.
    let w = q.join().unwrap();
    let mut mine = 0;
    while let Some(claim) = w.claim_timeout(WAIT).unwrap() {
        let mut view = claim.rows_mut(&out).unwrap();
        let start = claim.rows().start;
        for (i, x) in view.iter_mut().enumerate() {
            *x = ((start + i / cols) * 1000 + i % cols) as i64;
        }
        drop(view);
        claim.complete().unwrap();
        mine += 1;
    }
    let mut c_chunks = 0;
    for child in workers {
        let (status, out, err) = finish(child);
        assert!(status.success(), "C worker failed ({status}): {err}");
        c_chunks += report(&out)["chunks"].as_u64().unwrap();
    }
    let p = q.wait_all(WAIT).unwrap();
    // The victim completed one chunk before dying in its second.
    assert_eq!(c_chunks + mine + 1, 40, "every chunk done exactly once");
    assert!(p.is_complete() && p.requeued >= 1, "{p:?}");
    let data = out.read().unwrap();
    for r in 0..rows {
        for c in 0..cols {
            assert_eq!(data[r * cols + c], (r * 1000 + c) as i64, "row {r} col {c}");
        }
    }
}
