//! `sharray create --growable`, `sharray append`, `info` and `check` on
//! growable arrays: four `sharray append` processes at once (one of them
//! SIGKILLed), numpy reading the result.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::Duration;

use common::{cli_fails, cli_ok as ok, cli_run};
use sharray::{Dtype, Order};

/// A .npy of `n` rows of 3 `<i8`: (id, k, id * 1000 + k).
fn rows_file(path: &Path, id: i64, n: usize) {
    let data: Vec<i64> = (0..n as i64).flat_map(|k| [id, k, id * 1000 + k]).collect();
    sharray::write_npy(
        path,
        &Dtype::parse_user("<i8").unwrap(),
        &[n, 3],
        Order::C,
        &data
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
        0o600,
    )
    .unwrap();
}

#[test]
fn create_append_info_check() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.npy");
    let gs = g.to_str().unwrap();
    let out = ok(&[
        "create",
        gs,
        "--dtype",
        "int64",
        "--shape",
        "0,3",
        "--growable",
        "--capacity",
        "10",
    ]);
    assert!(out.contains("capacity 10 rows"), "{out}");
    let r = dir.path().join("r.npy");
    rows_file(&r, 1, 4);
    let out = ok(&["append", gs, r.to_str().unwrap()]);
    assert!(out.contains("appended 4 rows at row 0"), "{out}");
    let out = ok(&["append", gs, r.to_str().unwrap()]);
    assert!(out.contains("appended 4 rows at row 4"), "{out}");
    // Past the capacity: refused, naming it, nothing changes.
    let err = cli_fails(&["append", gs, r.to_str().unwrap()], 1);
    assert!(
        err.contains("capacity 10 rows") && err.contains("--capacity"),
        "{err}"
    );
    let info = ok(&["info", gs]);
    assert!(
        info.contains("8 published") && info.contains("capacity:       10 rows"),
        "{info}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&["info", "--json", gs])).unwrap();
    assert_eq!(json["kind"], "growable");
    assert_eq!(json["rows"], 8);
    assert_eq!(json["capacity"], 10);
    assert_eq!(json["shape"], serde_json::json!([8, 3]));
    assert!(ok(&["check", gs]).contains("valid sharray growable array"));
    // Wrong dtype or row shape: refused with what would fit.
    let f = dir.path().join("f.npy");
    sharray::write_npy(
        &f,
        &Dtype::parse_user("<f8").unwrap(),
        &[2, 3],
        Order::C,
        &[0u8; 48],
        0o600,
    )
    .unwrap();
    assert!(cli_fails(&["append", gs, f.to_str().unwrap()], 1).contains("holds <f8"));
    let w = dir.path().join("w.npy");
    sharray::write_npy(
        &w,
        &Dtype::parse_user("<i8").unwrap(),
        &[2, 4],
        Order::C,
        &[0u8; 64],
        0o600,
    )
    .unwrap();
    assert!(cli_fails(&["append", gs, w.to_str().unwrap()], 1).contains("give (N, 3) or one row"));
    // Growable options need a growable array.
    cli_fails(
        &[
            "create",
            dir.path().join("x.npy").to_str().unwrap(),
            "--dtype",
            "f4",
            "--shape",
            "3",
            "--capacity",
            "4",
        ],
        2,
    );
    let err = cli_fails(
        &[
            "create",
            dir.path().join("y.npy").to_str().unwrap(),
            "--dtype",
            "f4",
            "--shape",
            "0,3",
            "--growable",
            "--order",
            "F",
        ],
        1,
    );
    assert!(err.contains("C order"), "{err}");
    // Damage is found by check.
    use std::os::unix::fs::FileExt;
    let len = std::fs::metadata(&g).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&g).unwrap();
    file.write_all_at(&3u64.to_le_bytes(), len - 65536 + 256 + 256)
        .unwrap(); // reserved < published
    let out = cli_run(&["check", gs]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL"));
}

#[test]
fn four_cli_appenders_at_once_one_killed() {
    let dir = tempfile::tempdir().unwrap();
    let g = dir.path().join("g.npy");
    let gs = g.to_str().unwrap();
    ok(&[
        "create",
        gs,
        "--dtype",
        "<i8",
        "--shape",
        "0,3",
        "--growable",
        "--capacity",
        "100000",
    ]);
    let exe = env!("CARGO_BIN_EXE_sharray");
    let mut threads = Vec::new();
    for id in 1..=4i64 {
        let r = dir.path().join(format!("r{id}.npy"));
        rows_file(&r, id, 50 * id as usize);
        let (gs, rs) = (gs.to_string(), r.to_str().unwrap().to_string());
        // Each thread runs 10 `sharray append` processes one after the
        // other; appender 4's third process is SIGKILLed mid-run.
        threads.push(std::thread::spawn(move || {
            for i in 0..10 {
                let mut c = std::process::Command::new(exe)
                    .args(["append", &gs, &rs])
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap();
                if id == 4 && i == 2 {
                    std::thread::sleep(Duration::from_millis(2));
                    common::sigkill(&mut c);
                    continue;
                }
                let st = common::wait_with_watchdog(&mut c, Duration::from_secs(120));
                assert!(st.success(), "appender {id} failed");
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    // One more append rolls back whatever the killed one had reserved.
    let r = dir.path().join("r1.npy");
    ok(&["append", gs, r.to_str().unwrap()]);
    assert!(ok(&["check", gs]).contains("valid"));
    let a = sharray::GrowableArray::open_read_only(&g).unwrap();
    let v = a.read().unwrap();
    let rows = v.as_slice::<i64>().unwrap();
    let mut count = [0usize; 5];
    let mut i = 0;
    while i < rows.len() / 3 {
        // Every append is whole and contiguous: rows k = 0..n of one file.
        let id = rows[i * 3];
        let n = 50 * id as usize;
        for k in 0..n {
            let r = &rows[(i + k) * 3..(i + k) * 3 + 3];
            assert_eq!(
                r,
                [id, k as i64, id * 1000 + k as i64],
                "row {} torn or out of place",
                i + k
            );
        }
        count[id as usize] += 1;
        i += n;
    }
    assert_eq!(
        &count[1..4],
        &[11, 10, 10],
        "every completed append is there once"
    );
    assert!((9..=10).contains(&count[4]), "{count:?}");
    if common::python_numpy() {
        let out = common::python(
            "import sys, numpy as np; a = np.load(sys.argv[1], mmap_mode='r'); print(a.shape[0]); assert (a[:, 2] == a[:, 0] * 1000 + a[:, 1]).all()",
            &[gs],
        );
        assert_eq!(out.trim(), (rows.len() / 3).to_string());
    }
}
