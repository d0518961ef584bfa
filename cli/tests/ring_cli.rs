//! The ring commands of the `sharray` CLI, end to end, with numpy making and
//! reading the frames.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::{cli_fails as fails, cli_ok as ok};

use sharray::{ErrorKind, Ring};
use std::time::{Duration, Instant};

#[test]
fn push_pop_round_trip_with_numpy() {
    common::python_numpy();
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let ring = d("r.npy");
    ok(&[
        "ring",
        "create",
        &ring,
        "--dtype",
        "float32",
        "--frame-shape",
        "2,3",
        "--slots",
        "3",
    ]);
    common::python(
        "import numpy as np, sys; np.save(sys.argv[1], np.arange(6, dtype=np.float32).reshape(2, 3)); np.save(sys.argv[2], np.zeros((3, 3)))",
        &[&d("f.npy"), &d("bad.npy")],
    );
    assert_eq!(ok(&["push", &ring, &d("f.npy"), "--tag", "9"]).trim(), "0");
    let err = fails(&["push", &ring, &d("bad.npy")], 1);
    assert!(
        err.contains("<f8 [3, 3]") && err.contains("<f4 [2, 3]"),
        "{err}"
    );
    let meta = ok(&["pop", &ring, &d("out.npy"), "--timeout", "5"]);
    assert!(meta.contains("seq=0 tag=9"), "{meta}");
    let got = common::python(
        "import numpy as np, sys; a = np.load(sys.argv[1]); print(a.dtype, a.shape, a.sum())",
        &[&d("out.npy")],
    );
    assert_eq!(got.trim(), "float32 (2, 3) 15.0");
    // No clobbering, and numpy sees the ring itself as a (K, 2, 3) array.
    ok(&["push", &ring, &d("f.npy")]);
    fails(&["pop", &ring, &d("out.npy"), "--timeout", "1"], 1);
    let shape = common::python(
        "import numpy as np, sys; print(np.load(sys.argv[1], mmap_mode='r').shape)",
        &[&ring],
    );
    assert_eq!(shape.trim(), "(3, 2, 3)");
}

#[test]
fn pop_timeout_exits_3_in_about_the_time() {
    let dir = tempfile::tempdir().unwrap();
    let ring = dir.path().join("r.npy");
    let ring = ring.to_str().unwrap();
    ok(&[
        "ring",
        "create",
        ring,
        "--dtype",
        "uint8",
        "--frame-shape",
        "16",
    ]);
    let out = dir.path().join("o.npy");
    let t0 = Instant::now();
    let err = fails(&["pop", ring, out.to_str().unwrap(), "--timeout", "0.5"], 3);
    let el = t0.elapsed();
    assert!(
        el >= Duration::from_millis(500) && el < Duration::from_secs(10),
        "{el:?}"
    );
    assert!(
        err.contains("timeout") || err.contains("timed out"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn subscribe_writes_numbered_frames_and_watch_reports_json() {
    common::python_numpy();
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let ring = d("b.npy");
    ok(&[
        "ring",
        "create",
        &ring,
        "--dtype",
        "uint16",
        "--frame-shape",
        "4",
        "--broadcast",
        "--slots",
        "4",
    ]);
    common::python(
        "import numpy as np, sys; np.save(sys.argv[1], np.arange(4, dtype=np.uint16))",
        &[&d("u.npy")],
    );
    let mut sub = common::cli()
        .args([
            "subscribe",
            &ring,
            "--count",
            "3",
            "--out-dir",
            &d("frames"),
            "--timeout",
            "60",
        ])
        .spawn()
        .unwrap();
    // Wait until the subscriber is registered, then push three frames.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let js = ok(&["watch", &ring, "--json"]);
        if js.contains("\"role\":\"subscriber\"") {
            break;
        }
        assert!(Instant::now() < deadline, "subscriber never attached: {js}");
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 0..3 {
        ok(&["push", &ring, &d("u.npy"), "--tag", &i.to_string()]);
    }
    assert!(common::wait_with_watchdog(&mut sub, Duration::from_secs(120)).success());
    for i in 0..3 {
        assert!(dir.path().join(format!("frames/frame_{i:06}.npy")).exists());
    }
    let js = ok(&["watch", &ring, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&js).unwrap();
    assert_eq!(v["kind"], "ring");
    assert_eq!(v["ring"]["committed"], 3);
    assert_eq!(v["ring"]["received"], 3);
    assert_eq!(v["ring"]["mode"], "broadcast");
    assert_eq!(v["ring"]["slots_free"], 4);
}

/// `pop` saves the frame while holding its lease; when saving fails (a
/// missing directory, a full filesystem) the frame goes back to the ring and
/// the next `pop` gets it: nothing is lost.
#[test]
fn pop_that_cannot_save_leaves_the_frame_for_the_next_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let ring = d("r.npy");
    ok(&[
        "ring",
        "create",
        &ring,
        "--dtype",
        "uint8",
        "--frame-shape",
        "4096",
        "--slots",
        "2",
    ]);
    common::python_numpy();
    common::python(
        "import numpy as np, sys; np.save(sys.argv[1], np.full(4096, 7, dtype=np.uint8))",
        &[&d("f.npy")],
    );
    ok(&["push", &ring, &d("f.npy"), "--tag", "5"]);
    let err = fails(
        &["pop", &ring, &d("no/such/dir/out.npy"), "--timeout", "5"],
        1,
    );
    assert!(err.contains("stays in the ring"), "{err}");

    // A full filesystem, where the kernel lets us make one (root).
    let mnt = dir.path().join("tiny");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=4k",
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if mounted {
        std::fs::write(mnt.join("filler"), vec![0u8; 4096]).ok();
        let out = mnt.join("out.npy");
        let err = fails(&["pop", &ring, out.to_str().unwrap(), "--timeout", "5"], 1);
        let _ = std::process::Command::new("umount").arg(&mnt).status();
        assert!(
            err.contains("full") && err.contains("stays in the ring"),
            "{err}"
        );
    } else {
        println!(
            "note: cannot mount a tiny tmpfs here (needs root); the full-disk case is skipped"
        );
    }

    let meta = ok(&["pop", &ring, &d("out.npy"), "--timeout", "5"]);
    assert!(meta.contains("seq=0 tag=5"), "{meta}");
    let got = common::python(
        "import numpy as np, sys; a = np.load(sys.argv[1]); print(a.shape, int(a.sum()))",
        &[&d("out.npy")],
    );
    assert_eq!(got.trim(), "(4096,) 28672");
}

fn create_u8_ring(ring: &str, extra: &[&str]) {
    let mut args = vec![
        "ring",
        "create",
        ring,
        "--dtype",
        "uint8",
        "--frame-shape",
        "4",
        "--slots",
        "2",
    ];
    args.extend_from_slice(extra);
    ok(&args);
}

fn save_u8_frame(path: &str, value: u8) {
    sharray::SharedArray::<u8>::builder()
        .shape(&[4])
        .fill(value)
        .create(path)
        .unwrap();
}

/// A long-running consumer (here a thread of this test process) fed by
/// `sharray push`, one process per frame: it receives every frame and ends
/// only at `push --close`, not when a push process exits.
#[test]
fn a_consumer_keeps_receiving_across_push_processes_until_push_close() {
    for broadcast in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
        let ring = d("r.npy");
        create_u8_ring(&ring, if broadcast { &["--broadcast"] } else { &[] });
        for v in 0..5u8 {
            save_u8_frame(&d(&format!("f{v}.npy")), v);
        }
        let r = Ring::open(&ring).unwrap();
        let c = r.consumer().unwrap();
        std::thread::scope(|s| {
            let got = s.spawn(|| {
                let mut got = Vec::new();
                loop {
                    match c.recv_timeout(Duration::from_secs(120)) {
                        Ok(f) => got.push((f.seq(), f.tag(), f.bytes()[0])),
                        Err(e) if e.kind() == ErrorKind::Disconnected => return got,
                        Err(e) => panic!("{e}"),
                    }
                }
            });
            for v in 0..5u8 {
                let (frame, tag) = (d(&format!("f{v}.npy")), v.to_string());
                let mut args = vec!["push", &ring, &frame, "--tag", &tag];
                if v == 4 {
                    args.push("--close");
                }
                assert_eq!(ok(&args).trim(), v.to_string());
                if v < 4 {
                    // The push process has gone; the stream has not ended.
                    let st = r.stats();
                    assert!(!st.closed && st.producers_attached() == 0, "{st:?}");
                    std::thread::sleep(Duration::from_millis(100));
                    assert!(!got.is_finished(), "the consumer stopped after push {v}");
                }
            }
            let got = common::with_watchdog(Duration::from_secs(120), || got.join().unwrap());
            let want: Vec<_> = (0..5u8).map(|v| (u64::from(v), u64::from(v), v)).collect();
            assert_eq!(got, want, "broadcast={broadcast}");
        });
        assert!(r.stats().closed);
    }
}

/// A closed ring refuses `push` until reopened (`push --reopen` or `ring
/// reopen`); `pop` on a closed and drained ring ends at once with a clear
/// message; `ring close` and `info`/`watch` report the state.
#[test]
fn a_closed_ring_refuses_producers_until_reopened_and_pop_says_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let ring = d("r.npy");
    create_u8_ring(&ring, &[]);
    save_u8_frame(&d("f.npy"), 7);
    let js = |args: &[&str]| -> serde_json::Value { serde_json::from_str(&ok(args)).unwrap() };
    assert_eq!(js(&["watch", &ring, "--json"])["ring"]["closed"], false);
    assert!(ok(&["ring", "close", &ring]).contains("closed"));
    assert_eq!(js(&["watch", &ring, "--json"])["ring"]["closed"], true);
    assert_eq!(js(&["info", &ring, "--json"])["ring"]["closed"], true);
    assert!(ok(&["ring", "close", &ring]).contains("already closed"));
    let err = fails(&["push", &ring, &d("f.npy")], 1);
    assert!(err.contains("closed") && err.contains("--reopen"), "{err}");
    let t0 = Instant::now();
    let err = fails(&["pop", &ring, &d("o.npy"), "--timeout", "60"], 1);
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "pop waited on a closed ring"
    );
    assert!(
        err.contains("closed") && err.contains("nothing left"),
        "{err}"
    );
    // push --reopen sends, and with --close ends the stream again: pop gets
    // the frame, then the end.
    assert_eq!(
        ok(&["push", &ring, &d("f.npy"), "--reopen", "--close"]).trim(),
        "0"
    );
    assert!(ok(&["pop", &ring, &d("o1.npy"), "--timeout", "5"]).contains("seq=0"));
    fails(&["pop", &ring, &d("o2.npy"), "--timeout", "5"], 1);
    assert!(ok(&["ring", "reopen", &ring]).contains("reopened"));
    assert!(ok(&["ring", "reopen", &ring]).contains("already open"));
    let v = js(&["watch", &ring, "--json"]);
    assert_eq!(
        (
            v["ring"]["closed"].clone(),
            v["ring"]["producers_attached"].clone()
        ),
        (false.into(), 0.into())
    );
    assert_eq!(ok(&["push", &ring, &d("f.npy")]).trim(), "1");
    // An open stream with no producer: pop waits for its timeout (exit 3)
    // and says no producer is attached.
    ok(&["pop", &ring, &d("o3.npy"), "--timeout", "5"]);
    let err = fails(&["pop", &ring, &d("o4.npy"), "--timeout", "0.3"], 3);
    assert!(err.contains("no producer is attached"), "{err}");
}
