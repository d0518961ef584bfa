//! What a run measured, and its markdown, JSON and target verdicts.

use serde_json::{Value, json};

use super::common::pool::{Job, PoolResult};
use super::common::{Table, ns, percentile, size_label};

/// Every transport row, in table order: (id, label).
pub const TRANSPORTS: &[(&str, &str)] = &[
    ("inproc", "one process, write + read (reused buffer)"),
    (
        "busy",
        "busy-wait on a shared cache line (floor, no payload)",
    ),
    ("futex", "shared futex wait/wake (floor, no payload)"),
    ("mini", "hand-written shared-memory ring (same slots)"),
    ("sharray", "sharray ring"),
    ("sharray_parked", "sharray ring, parked (spin 0)"),
    ("iceoryx2", "iceoryx2 0.10 publish-subscribe (same slots)"),
    ("socket", "Unix domain socket (stream)"),
    ("pipe", "pipe (1 MiB pipe buffer)"),
    ("py_sharray", "Rust producer -> Python sharray consumer"),
    ("py_shm", "Python shared_memory ring + semaphores"),
    ("py_queue", "Python multiprocessing.Queue of numpy arrays"),
];

pub fn label(id: &str) -> &'static str {
    TRANSPORTS
        .iter()
        .find(|(i, _)| *i == id)
        .map_or("?", |(_, l)| l)
}

/// Throughput of one transport at one frame size: GB/s of every run.
#[derive(Clone, Debug)]
pub struct Tp {
    pub id: &'static str,
    pub size: u64,
    pub slots: u32,
    pub frames: u64,
    pub runs: Vec<f64>,
}

impl Tp {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.runs.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    /// (min, median, p99) GB/s over the runs (nearest rank: with fewer than
    /// 50 runs, p99 is the best run).
    pub fn stats(&self) -> (f64, f64, f64) {
        let v = self.sorted();
        if v.is_empty() {
            return (f64::NAN, f64::NAN, f64::NAN);
        }
        let at = |p: f64| v[((v.len() - 1) as f64 * p / 100.0).round() as usize];
        (v[0], at(50.0), at(99.0))
    }

    pub fn median(&self) -> f64 {
        self.stats().1
    }

    /// `self` / `other`: the median of the per-run ratios when both ran
    /// interleaved (same number of runs: run i of both saw the same machine
    /// load), else the ratio of the medians.
    pub fn ratio_to(&self, other: &Tp) -> f64 {
        if self.runs.len() != other.runs.len() || self.runs.is_empty() {
            return self.median() / other.median();
        }
        let mut q: Vec<f64> = self
            .runs
            .iter()
            .zip(&other.runs)
            .map(|(a, b)| a / b)
            .collect();
        q.sort_by(f64::total_cmp);
        q[q.len() / 2]
    }
}

/// One-way latency of one transport at one frame size.
#[derive(Clone, Debug)]
pub struct Lat {
    pub id: &'static str,
    pub size: u64,
    pub min: u64,
    pub p50: u64,
    pub p99: u64,
    pub n: usize,
}

impl Lat {
    pub fn from_samples(id: &'static str, size: u64, mut v: Vec<u64>) -> Lat {
        Lat {
            id,
            size,
            min: percentile(&mut v, 0.0),
            p50: percentile(&mut v, 50.0),
            p99: percentile(&mut v, 99.0),
            n: v.len(),
        }
    }
}

/// Attach cost of one array size.
#[derive(Clone, Debug)]
pub struct Attach {
    pub size: u64,
    pub first_ns: u64,
    pub min_ns: u64,
    pub median_ns: u64,
    pub rss_growth: u64,
    pub opens: usize,
}

/// Everything a run measured.
#[derive(Default)]
pub struct Results {
    pub header: String,
    pub command: String,
    pub tp: Vec<Tp>,
    pub lat: Vec<Lat>,
    pub attach: Vec<Attach>,
    pub pool: Option<(Job, PoolResult)>,
    pub notes: Vec<String>,
    /// A smoke run (debug build, tiny sizes): checks that the harness works,
    /// so its numbers are not held against the targets.
    pub smoke: bool,
}

impl Results {
    /// Add one run of a throughput case.
    pub fn add_tp(&mut self, id: &'static str, size: u64, slots: u32, frames: u64, gbps: f64) {
        match self.tp.iter_mut().find(|t| t.id == id && t.size == size) {
            Some(t) => t.runs.push(gbps),
            None => self.tp.push(Tp {
                id,
                size,
                slots,
                frames,
                runs: vec![gbps],
            }),
        }
    }

    pub fn tp(&self, id: &str, size: u64) -> Option<&Tp> {
        self.tp.iter().find(|t| t.id == id && t.size == size)
    }

    pub fn lat(&self, id: &str, size: u64) -> Option<&Lat> {
        self.lat.iter().find(|t| t.id == id && t.size == size)
    }

    fn sizes<T>(v: &[T], size: impl Fn(&T) -> u64) -> Vec<u64> {
        let mut s: Vec<u64> = v.iter().map(size).collect();
        s.sort_unstable();
        s.dedup();
        s
    }

    pub fn tp_sizes(&self) -> Vec<u64> {
        Self::sizes(&self.tp, |t| t.size)
    }

    pub fn lat_sizes(&self) -> Vec<u64> {
        Self::sizes(&self.lat, |t| t.size)
    }

    /// Transport ids present in `ids`, in table order.
    pub fn ids_in(&self, ids: impl Fn(&str) -> bool) -> Vec<&'static str> {
        TRANSPORTS
            .iter()
            .map(|(i, _)| *i)
            .filter(|i| ids(i))
            .collect()
    }

    pub fn tp_ids(&self) -> Vec<&'static str> {
        self.ids_in(|i| self.tp.iter().any(|t| t.id == i))
    }

    pub fn lat_ids(&self) -> Vec<&'static str> {
        self.ids_in(|i| self.lat.iter().any(|t| t.id == i))
    }
}

fn gb(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 0.1 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

fn rate(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.2} M", v / 1e6),
        v if v >= 1e3 => format!("{:.1} k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "-".into()
    } else {
        format!("{:.2}x", a / b)
    }
}

/// One target's verdict.
pub struct Verdict {
    pub target: String,
    pub measured: String,
    pub met: Option<bool>,
}

/// Check the targets against what was measured.
pub fn targets(r: &Results) -> Vec<Verdict> {
    let mut out = Vec::new();
    let big: Vec<u64> = r.tp_sizes().into_iter().filter(|&s| s >= 1 << 20).collect();
    let mut vs = |other: &str, want: f64, what: &str, strict: bool| {
        let mut parts = Vec::new();
        let mut met = None;
        for &s in &big {
            let (Some(a), Some(b)) = (r.tp("sharray", s), r.tp(other, s)) else {
                continue;
            };
            let q = a.ratio_to(b);
            parts.push(format!("{}: {:.2}x", size_label(s), q));
            let ok = if strict { q > want } else { q >= want };
            met = Some(met.unwrap_or(true) && ok);
        }
        out.push(Verdict {
            target: format!("frames >= 1 MiB: sharray {what}"),
            measured: if parts.is_empty() {
                "not measured".into()
            } else {
                parts.join(", ")
            },
            met,
        });
    };
    vs("mini", 0.9, ">= 0.9x the hand-written ring", false);
    vs("socket", 3.0, ">= 3x a Unix socket", false);
    vs("iceoryx2", 1.0, "ahead of iceoryx2", true);
    let spin = r.lat("sharray", 64);
    out.push(Verdict {
        target: "64 B one-way latency p50, spinning: < 1 us".into(),
        measured: spin.map_or("not measured".into(), |l| ns(l.p50)),
        met: spin.map(|l| l.p50 < 1000),
    });
    let (park, floor) = (r.lat("sharray_parked", 64), r.lat("futex", 64));
    out.push(Verdict {
        target: "64 B one-way latency p50, parked: <= 1.5x the bare futex floor".into(),
        measured: match (park, floor) {
            (Some(p), Some(f)) => format!(
                "{} vs {} ({:.2}x)",
                ns(p.p50),
                ns(f.p50),
                p.p50 as f64 / f.p50.max(1) as f64
            ),
            _ => "not measured".into(),
        },
        met: park
            .zip(floor)
            .map(|(p, f)| p.p50 as f64 <= 1.5 * f.p50 as f64),
    });
    let (first, last) = (r.attach.first(), r.attach.last());
    out.push(Verdict {
        target: "attach time flat: largest array within 2x of 1 MiB (medians)".into(),
        measured: match (first, last) {
            (Some(a), Some(b)) if r.attach.len() > 1 => format!(
                "{} {} vs {} {} ({:.2}x)",
                size_label(b.size),
                ns(b.median_ns),
                size_label(a.size),
                ns(a.median_ns),
                b.median_ns as f64 / a.median_ns.max(1) as f64
            ),
            _ => "not measured".into(),
        },
        met: match (first, last) {
            (Some(a), Some(b)) if r.attach.len() > 1 => {
                Some(b.median_ns as f64 <= 2.0 * a.median_ns as f64)
            }
            _ => None,
        },
    });
    out
}

/// The whole report as markdown.
pub fn markdown(r: &Results) -> String {
    let mut s = r.header.clone();
    if !r.tp.is_empty() {
        let sizes = r.tp_sizes();
        let head: Vec<String> = std::iter::once("GB/s, median of runs".to_string())
            .chain(sizes.iter().map(|&z| size_label(z)))
            .collect();
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        let mut t = Table::new(&head);
        let mut f = Table::new(&head);
        f.head_mut(0, "frames/s, median of runs");
        let mut d = Table::new(&head);
        d.head_mut(0, "GB/s min / median / p99 (runs)");
        for id in r.tp_ids() {
            let cell = |g: &dyn Fn(&Tp) -> String| -> Vec<String> {
                std::iter::once(label(id).to_string())
                    .chain(sizes.iter().map(|&z| r.tp(id, z).map_or("-".into(), g)))
                    .collect()
            };
            t.row(cell(&|x| gb(x.median())));
            f.row(cell(&|x| rate(x.median() * 1e9 / x.size as f64)));
            d.row(cell(&|x| {
                let (a, b, c) = x.stats();
                format!("{} / {} / {}", gb(a), gb(b), gb(c))
            }));
        }
        s += "## Throughput: every byte written by the producer process, read by the consumer process\n\n";
        s += &t.render();
        s += "\n";
        s += &f.render();
        s += "\n";
        let mut q = Table::new(&head);
        q.head_mut(0, "sharray ring vs (median of per-run ratios)");
        for (other, name) in [
            ("mini", "hand-written ring"),
            ("iceoryx2", "iceoryx2"),
            ("socket", "Unix socket"),
            ("pipe", "pipe"),
            ("inproc", "one process"),
            ("py_queue", "Python Queue"),
        ] {
            if r.tp.iter().any(|t| t.id == other) {
                let mut row = vec![name.to_string()];
                for &z in &sizes {
                    row.push(match (r.tp("sharray", z), r.tp(other, z)) {
                        (Some(a), Some(b)) => format!("{:.2}x", a.ratio_to(b)),
                        _ => "-".into(),
                    });
                }
                q.row(row);
            }
        }
        s += &q.render();
        s += "\nSlots per ring (all ring-like transports): ";
        s += &sizes
            .iter()
            .filter_map(|&z| {
                r.tp("sharray", z)
                    .or_else(|| r.tp.iter().find(|t| t.size == z))
                    .map(|t| format!("{} -> {}", size_label(z), t.slots))
            })
            .collect::<Vec<_>>()
            .join(", ");
        s += ".\n\n<details><summary>min / median / p99 of the runs</summary>\n\n";
        s += &d.render();
        s += "\n</details>\n\n";
    }
    if !r.lat.is_empty() {
        let sizes = r.lat_sizes();
        let head: Vec<String> = std::iter::once("one-way latency p50".to_string())
            .chain(sizes.iter().map(|&z| size_label(z)))
            .collect();
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        let mut t = Table::new(&head);
        for id in r.lat_ids() {
            let mut row = vec![label(id).to_string()];
            row.extend(
                sizes
                    .iter()
                    .map(|&z| r.lat(id, z).map_or("-".into(), |l| ns(l.p50))),
            );
            t.row(row);
        }
        s += "## Latency: ping-pong / 2, each side writes and reads every byte\n\n";
        s += &t.render();
        if let Some(&small) = sizes.first() {
            let mut d = Table::new(&[
                &format!("{} one-way latency", size_label(small)),
                "min",
                "p50",
                "p99",
                "samples",
            ]);
            for id in r.lat_ids() {
                if let Some(l) = r.lat(id, small) {
                    d.row(vec![
                        label(id).into(),
                        ns(l.min),
                        ns(l.p50),
                        ns(l.p99),
                        l.n.to_string(),
                    ]);
                }
            }
            s += "\n";
            s += &d.render();
        }
        s += "\n";
    }
    if !r.attach.is_empty() {
        let mut t = Table::new(&[
            "attach (open) a sparse array on disk",
            "first open",
            "min",
            "median",
            "RSS growth",
        ]);
        for a in &r.attach {
            t.row(vec![
                size_label(a.size),
                ns(a.first_ns),
                ns(a.min_ns),
                ns(a.median_ns),
                format!("{} KiB", a.rss_growth >> 10),
            ]);
        }
        s += "## Attach cost against array size\n\n";
        s += &t.render();
        s += &format!(
            "\n{} opens per size in a fresh process; RSS growth: resident set after the first open minus before.\n\n",
            r.attach.first().map_or(0, |a| a.opens)
        );
    }
    if let Some((job, p)) = &r.pool {
        let mut t = Table::new(&[
            "worker pool, out = 2*in+1",
            "threads",
            "processes",
            "processes / threads",
        ]);
        t.row(vec![
            "warm rounds, GB/s (read + written)".into(),
            gb(p.threads_gbps_warm),
            gb(p.procs_gbps_warm),
            format!("{:.2}x", p.ratio_warm),
        ]);
        t.row(vec![
            "first (cold) round, GB/s".into(),
            gb(p.threads_gbps_cold),
            gb(p.procs_gbps_cold),
            ratio(p.procs_gbps_cold, p.threads_gbps_cold),
        ]);
        s += &format!(
            "## Worker pool: {} processes vs {} threads\n\n{} MiB of f32, chunks of {} KiB, {} rounds (median of the warm ones).\n\n",
            job.workers, job.workers, job.mib, job.chunk_kib, job.rounds
        );
        s += &t.render();
        s += &format!(
            "\nclaim + complete: {:.0} ns uncontended, {:.0} ns with {} threads claiming at once.\n\n",
            p.claim_ns, p.claim_contended_ns, job.workers
        );
    }
    if r.smoke {
        s += "## Targets\n\nSmoke run: the harness works; no verdicts (tiny sizes, maybe a debug build). Run `cargo bench` for them.\n";
    } else {
        s += &targets_table(r);
    }
    if !r.notes.is_empty() {
        s += "\nNotes:\n";
        for n in &r.notes {
            s += &format!("- {n}\n");
        }
    }
    s
}

/// The "Targets" section: each target, what was measured, met or missed.
fn targets_table(r: &Results) -> String {
    let mut s = String::new();
    let v = targets(r);
    let mut t = Table::new(&["target", "measured", "verdict"]);
    for x in &v {
        t.row(vec![
            x.target.clone(),
            x.measured.clone(),
            match x.met {
                Some(true) => "met".into(),
                Some(false) => "**missed**".into(),
                None => "-".into(),
            },
        ]);
    }
    s += "## Targets\n\n";
    s += &t.render();
    s
}

/// The whole run as one JSON value.
pub fn json(r: &Results) -> Value {
    let tp: Vec<Value> =
        r.tp.iter()
            .map(|t| {
                let (min, med, p99) = t.stats();
                json!({
                    "transport": t.id, "label": label(t.id), "size": t.size,
                    "slots": t.slots, "frames_per_run": t.frames,
                    "gbps_runs": t.runs, "gbps_min": min, "gbps_median": med, "gbps_p99": p99,
                    "frames_per_s_median": med * 1e9 / t.size as f64,
                })
            })
            .collect();
    let lat: Vec<Value> = r
        .lat
        .iter()
        .map(|l| {
            json!({
                "transport": l.id, "label": label(l.id), "size": l.size,
                "one_way_ns_min": l.min, "one_way_ns_p50": l.p50, "one_way_ns_p99": l.p99,
                "samples": l.n,
            })
        })
        .collect();
    let attach: Vec<Value> = r
        .attach
        .iter()
        .map(|a| {
            json!({
                "size": a.size, "first_open_ns": a.first_ns, "open_ns_min": a.min_ns,
                "open_ns_median": a.median_ns, "rss_growth_bytes": a.rss_growth, "opens": a.opens,
            })
        })
        .collect();
    let pool = r
        .pool
        .as_ref()
        .map(|(j, p)| serde_json::from_str::<Value>(&p.json(j)).unwrap());
    let targets: Vec<Value> = targets(r)
        .into_iter()
        .map(|v| json!({"target": v.target, "measured": v.measured, "met": if r.smoke { None } else { v.met }}))
        .collect();
    json!({
        "bench": "compare",
        "command": r.command,
        "machine": r.header,
        "throughput": tp,
        "latency": lat,
        "attach": attach,
        "pool": pool,
        "targets": targets,
        "notes": r.notes,
    })
}
