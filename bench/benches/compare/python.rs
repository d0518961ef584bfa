//! Python rows: `multiprocessing.Queue` and a `multiprocessing.shared_memory`
//! ring (scripts in `benches/python/`, producer and consumer as separate
//! processes, printing JSON lines), and, when the `sharray` Python package
//! is importable and `benches/python/sharray_consumer.py` exists, a Rust
//! producer feeding a Python sharray consumer (contract in
//! `benches/python/README.md`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::common::link::{Case, Kind, Link, RingLink, parse_sink};
use super::common::{finish, pin_command, read_line};
use super::opts::Opts;
use super::report::{Lat, Results};

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python")
}

fn python_ok(code: &str) -> bool {
    Command::new("python3")
        .args(["-c", code])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Frames per Python run: the harness's count, capped (a Python queue moves
/// some ten thousand small frames a second).
fn py_frames(o: &Opts, size: u64) -> u64 {
    o.frames_for(size).min(20_000)
}

pub fn run(o: &Opts, dir: &Path, r: &mut Results) {
    if !python_ok("import numpy") {
        r.notes
            .push("Python rows skipped: `python3 -c \"import numpy\"` failed.".into());
        return;
    }
    let cases: Vec<Value> = o
        .sizes
        .iter()
        .map(|&size| {
            let b = o.latency_budget(size);
            json!({
                "size": size,
                "frames": py_frames(o, size),
                "slots": o.slots_for(size),
                "lat_samples": b.samples.min(2_000),
                "lat_warmup": b.warmup.min(200),
            })
        })
        .collect();
    let plan = json!({
        "cases": cases,
        "runs": o.runs,
        "lat_time": o.latency_budget(64).time.as_secs_f64(),
        "cpus": [0, 1],
    })
    .to_string();
    for (id, script) in [("py_shm", "mp_shm.py"), ("py_queue", "mp_queue.py")] {
        eprintln!("python: {script}");
        let out = Command::new("python3")
            .arg(scripts().join(script))
            .args(["--plan", &plan])
            .stderr(Stdio::inherit())
            .output()
            .expect("run python3");
        if !out.status.success() {
            r.notes.push(format!(
                "{script} failed ({}); its rows are missing.",
                out.status
            ));
            continue;
        }
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: Value = serde_json::from_str(line).expect(line);
            let size = v["size"].as_u64().unwrap();
            match v["metric"].as_str() {
                Some("throughput") => {
                    for g in v["gbps"].as_array().unwrap() {
                        r.add_tp(
                            id,
                            size,
                            v["slots"].as_u64().unwrap() as u32,
                            v["frames"].as_u64().unwrap(),
                            g.as_f64().unwrap(),
                        );
                    }
                }
                Some("latency") => {
                    let n = |k: &str| v[k].as_u64().unwrap();
                    r.lat.push(Lat {
                        id,
                        size,
                        min: n("min"),
                        p50: n("p50"),
                        p99: n("p99"),
                        n: n("n") as usize,
                    });
                }
                _ => panic!("unexpected line from {script}: {line}"),
            }
        }
    }
    sharray_hook(o, dir, r);
}

/// Rust producer -> `benches/python/sharray_consumer.py RING FRAMES`.
fn sharray_hook(o: &Opts, dir: &Path, r: &mut Results) {
    let script = scripts().join("sharray_consumer.py");
    if !script.exists() {
        r.notes.push(
            "Python sharray row skipped: bench/benches/python/sharray_consumer.py does not exist yet."
                .into(),
        );
        return;
    }
    if !python_ok("import sharray") {
        r.notes.push(
            "Python sharray row skipped: `python3 -c \"import sharray\"` failed (build the Python package first).".into(),
        );
        return;
    }
    for run in 0..o.runs {
        for &size in &o.sizes {
            eprintln!("python sharray consumer: {} B, run {}", size, run + 1);
            let case = Case {
                kind: Kind::Ring,
                words: (size / 8) as usize,
                slots: o.slots_for(size),
                spin: Duration::from_micros(20),
            };
            let n = py_frames(o, size);
            let path = dir.join(format!("py-sharray-{size}-{run}.npy"));
            RingLink::create(&path, &case);
            let p = path.to_str().unwrap();
            let mut cmd = Command::new("python3");
            cmd.arg(&script)
                .args([p, &n.to_string()])
                .stdout(Stdio::piped());
            pin_command(&mut cmd, 1);
            let mut child = cmd.spawn().expect("run python3");
            let mut link = RingLink::open(Some(p), None, case.spin);
            let ready = read_line(&mut child);
            if ready != "ready" {
                r.notes.push(format!(
                    "sharray_consumer.py did not say ready ({ready:?})."
                ));
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            for seq in 0..n {
                link.send(seq);
            }
            let line = read_line(&mut child);
            drop(link);
            finish(child);
            let _ = std::fs::remove_file(&path);
            r.add_tp(
                "py_sharray",
                size,
                case.slots,
                n,
                parse_sink(&line, n, size),
            );
        }
    }
}
