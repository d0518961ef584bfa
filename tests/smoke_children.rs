//! A first cross-process test: children take turns under the write guard.
mod common;

use sharray::SharedArray;
use std::time::Duration;

#[test]
fn child_entry() {
    common::child_entry(|role, arg| match role {
        "incrementer" => {
            let a = SharedArray::<u64>::open(arg).unwrap();
            for _ in 0..200 {
                let mut w = a.write().unwrap();
                for x in w.iter_mut() {
                    *x += 1;
                }
            }
        }
        other => panic!("unknown role {other}"),
    });
}

#[test]
fn processes_take_turns_under_the_write_guard() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counter.npy");
    let a = SharedArray::<u64>::create(&path, &[64]).unwrap();
    let p = path.to_str().unwrap();
    let kids: Vec<_> = (0..3)
        .map(|_| common::spawn_child("child_entry", "incrementer", p))
        .collect();
    for k in kids {
        common::finish(k, Duration::from_secs(120));
    }
    let r = a.read().unwrap();
    assert!(r.iter().all(|&x| x == 600), "lost updates: {:?}", &r[..4]);
    assert_eq!(a.generation(), 600);
}
