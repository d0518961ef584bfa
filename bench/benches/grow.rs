//! Growable-array benchmark: rows per second appended by 1, 2 and 4
//! appender *processes* at once into one growable array (batches of 1 and
//! 64 rows), beside one process writing the same batches into a
//! preallocated plain array, each batch under the whole-array write lock
//! (what one does without growable arrays: a fixed size, and a generation
//! bump per batch), with the ratio.
//!
//! ```text
//! cargo bench -p sharray-bench --bench grow -- [--rows 200000] [--row-bytes 256] [--json]
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a quick
//! smoke run (4000 rows).
//!
//! Method: files in /dev/shm. The appender processes start, open the file
//! and say "ready"; the clock starts when all are ready and they are told to
//! go, and stops when the last one has returned from its last append (its
//! rows published). Every appended row is verified afterwards (untimed).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use sharray::{Dtype, GrowableArray, SharedArray};

const CHILD: &str = "SHARRAY_GROW_BENCH_CHILD";

fn row(id: u64, k: u64, words: usize) -> Vec<u64> {
    (0..words as u64).map(|w| id << 48 ^ k << 8 ^ w).collect()
}

/// In a child: `path,id,rows,batch,words`.
fn child(arg: &str) {
    let a: Vec<&str> = arg.split(',').collect();
    let g = GrowableArray::open(a[0]).expect("open");
    let (id, rows, batch, words): (u64, u64, u64, usize) = (
        a[1].parse().unwrap(),
        a[2].parse().unwrap(),
        a[3].parse().unwrap(),
        a[4].parse().unwrap(),
    );
    let data: Vec<Vec<u64>> = (0..rows / batch)
        .map(|b| {
            (0..batch)
                .flat_map(|k| row(id, b * batch + k, words))
                .collect()
        })
        .collect();
    println!("ready");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    for d in &data {
        g.append(d).expect("append");
    }
    println!("done");
}

fn appenders(dir: &std::path::Path, n: u64, rows: u64, batch: u64, words: usize) -> f64 {
    let path = dir.join(format!("g-{n}-{batch}.npy"));
    let per = rows / n / batch * batch;
    GrowableArray::builder(Dtype::parse_user("<u8").unwrap())
        .row_shape(&[words])
        .capacity(per * n)
        .create(&path)
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut kids: Vec<_> = (0..n)
        .map(|id| {
            Command::new(&exe)
                .env(
                    CHILD,
                    format!("{},{id},{per},{batch},{words}", path.display()),
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outs: Vec<_> = kids
        .iter_mut()
        .map(|k| BufReader::new(k.stdout.take().unwrap()).lines())
        .collect();
    for o in &mut outs {
        assert_eq!(o.next().unwrap().unwrap(), "ready");
    }
    let t = Instant::now();
    for k in &mut kids {
        k.stdin.take().unwrap().write_all(b"go\n").unwrap();
    }
    for o in &mut outs {
        assert_eq!(o.next().unwrap().unwrap(), "done");
    }
    let secs = t.elapsed().as_secs_f64();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    // Untimed: every row there once, intact.
    let g = GrowableArray::open_read_only(&path).unwrap();
    let v = g.read().unwrap();
    let all = v.as_slice::<u64>().unwrap();
    assert_eq!(all.len() as u64, per * n * words as u64);
    let mut seen = vec![0u32; (per * n) as usize];
    for r in all.chunks_exact(words) {
        let (id, k) = (r[0] >> 48, (r[0] >> 8) & ((1 << 40) - 1));
        assert_eq!(r, &row(id, k, words)[..], "torn row");
        seen[(id * per + k) as usize] += 1;
    }
    assert!(seen.iter().all(|&c| c == 1), "a row missing or twice");
    drop(v);
    let _ = std::fs::remove_file(&path);
    (per * n) as f64 / secs
}

fn locked_plain(dir: &std::path::Path, rows: u64, batch: u64, words: usize) -> f64 {
    let path = dir.join(format!("p-{batch}.npy"));
    let n = rows / batch * batch;
    let a = SharedArray::<u64>::create(&path, &[n as usize, words]).unwrap();
    let data: Vec<Vec<u64>> = (0..n / batch)
        .map(|b| {
            (0..batch)
                .flat_map(|k| row(0, b * batch + k, words))
                .collect()
        })
        .collect();
    let w = (batch as usize) * words;
    let t = Instant::now();
    for (b, d) in data.iter().enumerate() {
        let mut g = a.write().unwrap();
        g[b * w..(b + 1) * w].copy_from_slice(d);
    }
    let secs = t.elapsed().as_secs_f64();
    drop(a);
    let _ = std::fs::remove_file(&path);
    n as f64 / secs
}

fn main() {
    if let Ok(arg) = std::env::var(CHILD) {
        child(&arg);
        return;
    }
    let args: Vec<String> = std::env::args().collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let flag = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rows = flag("--rows", if smoke { 4000 } else { 200_000 });
    let row_bytes = flag("--row-bytes", 256).max(8);
    let words = (row_bytes / 8) as usize;
    let json = args.iter().any(|a| a == "--json");
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    println!(
        "growable appends: {rows} rows of {} bytes, rows/s (higher is better)",
        words * 8
    );
    println!(
        "{:>6} {:>22} {:>14} {:>14} {:>14} {:>8}",
        "batch", "plain, write lock/batch", "1 appender", "2 appenders", "4 appenders", "4 vs 1"
    );
    let mut results = Vec::new();
    for batch in [1u64, 64] {
        let plain = locked_plain(base.path(), rows, batch, words);
        let r: Vec<f64> = [1u64, 2, 4]
            .iter()
            .map(|&n| appenders(base.path(), n, rows, batch, words))
            .collect();
        println!(
            "{batch:>6} {plain:>22.0} {:>14.0} {:>14.0} {:>14.0} {:>7.2}x",
            r[0],
            r[1],
            r[2],
            r[2] / r[0]
        );
        println!(
            "{:>6} {:>22} {:>13.2}x {:>13.2}x {:>13.2}x   (vs plain)",
            "",
            "",
            r[0] / plain,
            r[1] / plain,
            r[2] / plain
        );
        results.push(serde_json::json!({
            "batch": batch, "plain_locked": plain,
            "appenders_1": r[0], "appenders_2": r[1], "appenders_4": r[2],
        }));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"bench": "grow", "rows": rows, "row_bytes": words * 8, "results": results})
        );
    }
}
