//! `sharray queue` commands: create, status (text and JSON), wait (exit 3 on
//! timeout, 0 when complete), reap, and one-line errors.

#[path = "../../tests/common/mod.rs"]
mod common;

use sharray::WorkQueue;

fn sharray(args: &[&str]) -> (i32, String, String) {
    let out = common::cli_run(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn create_status_wait_reap() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.npy");
    let ps = p.to_str().unwrap();
    let (code, out, _) = sharray(&["queue", "create", ps, "--rows", "1000", "--chunk", "64"]);
    assert_eq!(code, 0);
    assert!(out.contains("16 chunks"), "{out}");

    let (code, _, err) = sharray(&["queue", "wait", ps, "--timeout", "0.1"]);
    assert_eq!(code, 3, "timeout exits 3");
    assert_eq!(err.lines().count(), 1, "one line on stderr: {err}");
    assert!(err.contains("0 of 16 chunks done"), "{err}");

    let q = WorkQueue::open(&p).unwrap();
    let w = q.join().unwrap();
    let held = w.try_claim().unwrap().unwrap();
    let (code, out, _) = sharray(&["queue", "status", ps, "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["chunks"], 16);
    assert_eq!(v["in_flight"], 1);
    assert_eq!(
        v["workers"], 1,
        "our worker is alive as seen from another process"
    );
    assert_eq!(v["mode"], "rows");
    drop(held);
    while let Some(c) = w.try_claim().unwrap() {
        c.complete().unwrap();
    }
    let (code, out, _) = sharray(&["queue", "wait", ps, "--timeout", "10"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("done 16") && out.contains("re-queued 1"),
        "{out}"
    );
    let (code, out, _) = sharray(&["queue", "reap", ps]);
    assert_eq!(
        (code, out.trim()),
        (0, "re-queued 0 chunks of dead workers")
    );

    let (code, _, err) = sharray(&["queue", "create", ps, "--tasks", "3"]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, _) = sharray(&["queue", "create", ps, "--rows", "3"]);
    assert_eq!(code, 2, "usage error: --rows needs --chunk");
}
