//! The CLI and the examples behave like Unix tools: a closed stdout ends
//! them quietly with exit 0, every example answers `--help`, and `show`
//! names its real limit (issue 11, section 3).

#[path = "../../tests/common/mod.rs"]
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// `sharray show BIG --max 1000000 | head -c 100`: the reader closes the
/// pipe after a few bytes; `sharray` exits 0 with nothing on stderr.
#[test]
fn show_into_a_closed_pipe_exits_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.npy");
    let p = p.to_str().unwrap();
    let out = common::cli_run(&["create", p, "--dtype", "f4", "--shape", "1000,1000"]);
    assert!(out.status.success());
    let mut child = common::cli()
        .args(["show", p, "--max", "1000000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 100];
    stdout.read_exact(&mut buf).unwrap();
    assert!(buf.starts_with(b"[[0. 0."));
    drop(stdout);
    let status = common::wait_with_watchdog(&mut child, Duration::from_secs(60));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert!(err.is_empty(), "stderr: {err}");
}

/// More printed elements than the limit: the message says how many and
/// what the limit is, not "too many dimensions".
#[test]
fn show_names_the_element_limit() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.npy");
    let p = p.to_str().unwrap();
    assert!(
        common::cli_run(&["create", p, "--dtype", "u1", "--shape", "2000,1000"])
            .status
            .success()
    );
    let out = common::cli_run(&["show", p, "--max", "5000000"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("dimensions"), "{err}");
    assert!(err.contains("2000000 elements"), "{err}");
    assert!(err.contains("limit of 1048576 printed elements"), "{err}");
    assert!(err.contains("lower --max"), "{err}");
    // Summarised, the same array prints its corners.
    let out = common::cli_run(&["show", p, "--max", "1000"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("..."));
}

/// The root package's examples, built by Cargo (this runs `cargo build
/// --examples`, a no-op when they are up to date).
fn examples_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let st = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "--examples", "-p", "sharray"])
        .status()
        .expect("run cargo build --examples");
    assert!(st.success(), "cargo build --examples failed");
    // target/<profile>/deps/this_test -> target/<profile>/examples
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let dir = profile_dir.join("examples");
    if dir.join("producer").exists() {
        return dir;
    }
    // This test may run from another profile than `cargo build`'s debug one.
    profile_dir.parent().unwrap().join("debug").join("examples")
}

/// Every example answers `--help` (and `-h`) with its usage on stdout and
/// exit 0, and creates nothing (the producer once made a ring named
/// `--help`).
#[test]
fn every_example_takes_help() {
    let dir = examples_dir();
    let cwd = tempfile::tempdir().unwrap();
    let names = [
        "consumer",
        "demo",
        "lock_counter",
        "pipeline",
        "producer",
        "ring_peer",
        "worker_pool",
    ];
    for name in names {
        for flag in ["--help", "-h"] {
            let mut child = Command::new(dir.join(name))
                .arg(flag)
                .current_dir(cwd.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("run example {name}: {e}"));
            let status = common::wait_with_watchdog(&mut child, Duration::from_secs(30));
            let mut out = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert_eq!(status.code(), Some(0), "{name} {flag}");
            assert!(out.starts_with(&format!("usage: {name}")), "{name}: {out}");
        }
    }
    let left: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().collect();
    assert!(left.is_empty(), "--help created files: {left:?}");
    assert!(!std::path::Path::new("/dev/shm/--help").exists());
}

/// An example's output into a closed pipe: `demo | head -1` exits 0
/// without a panic.
#[test]
fn example_into_a_closed_pipe_exits_quietly() {
    let dir = examples_dir();
    let mut child = Command::new(dir.join("demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 8];
    stdout.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"created ");
    drop(stdout);
    let status = common::wait_with_watchdog(&mut child, Duration::from_secs(120));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "stderr: {err}");
    assert_eq!(status.code(), Some(0), "stderr: {err}");
}

/// `info` on a ring is text only (no JSON block); `--json` is JSON only.
#[test]
fn ring_info_is_one_format() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("r");
    let r = r.to_str().unwrap();
    let out = common::cli_run(&[
        "ring",
        "create",
        r,
        "--dtype",
        "u1",
        "--frame-shape",
        "4,2",
        "--slots",
        "2",
    ]);
    assert!(out.status.success());
    let out = common::cli_run(&["info", r]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains('{') && !text.contains('"'), "{text}");
    assert!(text.contains("ring state:\n"), "{text}");
    assert!(text.contains("  frame_shape: [4, 2]\n"), "{text}");
    assert!(text.contains("  slots: 2\n"), "{text}");
    let out = common::cli_run(&["info", r, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ring"]["slots"], 2);
}

/// The small texts: an article, the `queue create` usage, `ring --help`.
#[test]
fn small_texts() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.npy");
    let a = a.to_str().unwrap();
    assert!(
        common::cli_run(&["create", a, "--dtype", "u1", "--shape", "3"])
            .status
            .success()
    );
    let o = dir.path().join("o.npy");
    let out = common::cli_run(&["pop", a, o.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("this is a sharray array, not a ring"), "{err}");
    assert!(!err.contains("a array"), "{err}");

    let out = common::cli_run(&["queue", "create", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("sharray queue create <PATH> --rows <N> --chunk <R>"),
        "{help}"
    );
    assert!(
        help.contains("sharray queue create <PATH> --tasks <N>"),
        "{help}"
    );

    let out = common::cli_run(&["ring", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(!help.contains("inspect rings"), "{help}");
}

/// `sharray ls DIR` lists arrays, rings and queues (not other files) with
/// kind, dtype, shape and live participants; `sharray rm` refuses other
/// files and a ring a live process holds, unless `--force`.
#[test]
fn ls_and_rm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let a = format!("{d}/a.npy");
    let r = format!("{d}/r");
    let t = format!("{d}/t.txt");
    let run_ok = |args: &[&str]| {
        let out = common::cli_run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run_ok(&["create", &a, "--dtype", "f4", "--shape", "3,4"]);
    run_ok(&[
        "ring",
        "create",
        &r,
        "--dtype",
        "u1",
        "--frame-shape",
        "4",
        "--slots",
        "2",
    ]);
    std::fs::write(&t, "not sharray").unwrap();
    let ls = |want_live: u64| -> bool {
        let v: serde_json::Value = serde_json::from_str(&run_ok(&["ls", d, "--json"])).unwrap();
        let rows = v.as_array().unwrap();
        assert_eq!(rows.len(), 2, "{v}");
        assert_eq!(rows[0]["kind"], "array");
        assert_eq!(rows[0]["dtype"], "<f4");
        assert_eq!(rows[0]["shape"], serde_json::json!([3, 4]));
        assert!(rows[0]["live"].is_null());
        assert_eq!(rows[1]["kind"], "ring");
        rows[1]["live"] == want_live
    };
    assert!(ls(0));
    let text = run_ok(&["ls", d]);
    assert!(text.starts_with("KIND"), "{text}");
    assert!(
        text.contains("array  <f4") && text.contains("(3, 4)"),
        "{text}"
    );
    assert!(!text.contains("t.txt"), "{text}");

    // A file that is not sharray's stays.
    let out = common::cli_run(&["rm", &t]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a sharray file"));
    assert!(Path::new(&t).exists());

    // A consumer waits on the ring: rm refuses, --force removes.
    let mut pop = common::cli()
        .args(["pop", &r, &format!("{d}/out.npy"), "--timeout", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while !ls(1) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the consumer never attached"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = common::cli_run(&["rm", &r]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1 live participant") && err.contains("--force"),
        "{err}"
    );
    assert!(Path::new(&r).exists());
    run_ok(&["rm", "--force", &r]);
    assert!(!Path::new(&r).exists());
    common::sigkill(&mut pop);

    run_ok(&["rm", &a]);
    assert!(!Path::new(&a).exists());
    let out = common::cli_run(&["rm", &a]);
    assert_eq!(out.status.code(), Some(1));
}

/// A file of another user: `info`, `show`, `export` and `import` refuse
/// it, naming `--allow-other-owner`, and read it with that option.
#[test]
fn allow_other_owner_on_the_commands_that_read() {
    if sharray::sys::euid() != 0 {
        eprintln!("skipped: giving a file to another user needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let a = format!("{d}/theirs.npy");
    let out = common::cli_run(&["create", &a, "--dtype", "u1", "--shape", "3", "--fill", "7"]);
    assert!(out.status.success());
    std::os::unix::fs::chown(&a, Some(65534), Some(65534)).unwrap();
    let q = format!("{d}/q");
    let out = common::cli_run(&["queue", "create", &q, "--tasks", "3"]);
    assert!(out.status.success());
    std::os::unix::fs::chown(&q, Some(65534), Some(65534)).unwrap();
    let cases: [Vec<String>; 7] = [
        vec!["info".into(), a.clone()],
        vec!["show".into(), a.clone()],
        vec!["export".into(), a.clone(), format!("{d}/e.npy")],
        vec!["import".into(), a.clone(), format!("{d}/i.npy")],
        vec!["queue".into(), "status".into(), q.clone()],
        vec!["queue".into(), "reap".into(), q.clone()],
        vec![
            "queue".into(),
            "wait".into(),
            q.clone(),
            "--timeout".into(),
            "0.1".into(),
        ],
    ];
    for args in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = common::cli_run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--allow-other-owner"), "{args:?}: {err}");
        let mut with = args.clone();
        with.push("--allow-other-owner");
        let out = common::cli_run(&with);
        // `queue wait` on a queue nobody works on times out (exit 3) after
        // opening it.
        let want = if args[1] == "wait" { 3 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(want),
            "{with:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if args[0] == "show" {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[7 7 7]");
        }
    }
    assert!(Path::new(&format!("{d}/e.npy")).exists());
    assert!(Path::new(&format!("{d}/i.npy")).exists());
}

/// `export --force` replaces an existing file atomically: a new inode is
/// renamed over the name, and a process that maps the old file still sees
/// its bytes (nothing truncated it). Without `--force` the file stays.
#[test]
fn export_force_replaces_atomically() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (a, b, out) = (
        format!("{d}/a.npy"),
        format!("{d}/b.npy"),
        format!("{d}/out.npy"),
    );
    for (p, fill) in [(&a, "1"), (&b, "2")] {
        let o = common::cli_run(&[
            "create", p, "--dtype", "u1", "--shape", "4096", "--fill", fill,
        ]);
        assert!(o.status.success());
    }
    assert!(common::cli_run(&["export", &a, &out]).status.success());
    // A reader of the old file (an open descriptor: a mapping sees the same
    // inode; sharray's own guards report the replacement as `Replaced`).
    let mut old = std::fs::File::open(&out).unwrap();
    let old_len = old.metadata().unwrap().len();
    let old_ino = std::fs::metadata(&out).unwrap().ino();

    let o = common::cli_run(&["export", &b, &out]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));

    let o = common::cli_run(&["export", "--force", &b, &out]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(std::fs::metadata(&out).unwrap().ino(), old_ino);
    // The old file is intact (not truncated, old bytes); the name holds
    // the new data.
    let mut bytes = Vec::new();
    old.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len() as u64, old_len);
    assert!(bytes[bytes.len() - 4096..].iter().all(|&x| x == 1));
    let new = sharray::UntypedArray::open_read_only(&out).unwrap();
    assert!(new.read().unwrap().bytes().iter().all(|&x| x == 2));
    // No temporary file is left; a directory is never replaced.
    let mut names: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.npy", "b.npy", "out.npy"]);
    std::fs::create_dir(format!("{d}/sub")).unwrap();
    let o = common::cli_run(&["export", "--force", &b, &format!("{d}/sub")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(Path::new(&format!("{d}/sub")).is_dir());
}

/// `pop --force` replaces an existing output file atomically (new inode);
/// without it the frame stays in the ring and the file is untouched.
#[test]
fn pop_force_replaces_atomically() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let (r, f, out) = (
        format!("{d}/r"),
        format!("{d}/f.npy"),
        format!("{d}/out.npy"),
    );
    let run = |args: &[&str]| {
        let o = common::cli_run(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run(&[
        "ring",
        "create",
        &r,
        "--dtype",
        "u1",
        "--frame-shape",
        "4",
        "--slots",
        "2",
    ]);
    run(&["create", &f, "--dtype", "u1", "--shape", "4", "--fill", "9"]);
    run(&["export", &f, &format!("{d}/plain.npy")]);
    run(&["push", &r, &format!("{d}/plain.npy")]);
    std::fs::write(&out, b"old").unwrap();
    let ino = std::fs::metadata(&out).unwrap().ino();
    let o = common::cli_run(&["pop", &r, &out, "--timeout", "5"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&out).unwrap(), b"old");
    run(&["pop", &r, &out, "--timeout", "5", "--force"]);
    assert_ne!(std::fs::metadata(&out).unwrap().ino(), ino);
    let a = sharray::UntypedArray::open_read_only(&out).unwrap();
    assert_eq!(a.read().unwrap().bytes(), &[9, 9, 9, 9]);
}
