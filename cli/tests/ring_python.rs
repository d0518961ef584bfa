//! A Python peer written from FORMAT.md section 7 alone reads a live ring:
//! config line, counters, slot lines, log cells, participant entries, and
//! probes participant liveness with `F_OFD_GETLK`. Frames are read through
//! `np.load(mmap_mode="r")`.

#[path = "../../tests/common/mod.rs"]
mod common;

use sharray::{Dtype, Ring};

const PEER: &str = r#"
import fcntl, mmap, os, struct, sys, json
import numpy as np

path = sys.argv[1]
arr = np.load(path, mmap_mode="r")
nbytes = arr.nbytes
ctrl = (4096 + nbytes + 65535) // 65536 * 65536
f = open(path, "r+b")
m = mmap.mmap(f.fileno(), 0)
assert m[ctrl:ctrl + 8] == b"SHARRAY\0"
assert struct.unpack_from("<I", m, ctrl + 12)[0] == 2          # kind ring
sec = ctrl + struct.unpack_from("<Q", m, ctrl + 40)[0]
u32 = lambda o: struct.unpack_from("<I", m, sec + o)[0]
u64 = lambda o: struct.unpack_from("<Q", m, sec + o)[0]
version, flags, K, P = u32(0), u32(4), u32(8), u32(12)
slot_bytes, slots_off, log_off, parts_off, used = (u64(o) for o in (16, 24, 32, 40, 48))
assert version == 3 and K == arr.shape[0] and slot_bytes * K == nbytes
assert slots_off == 1024 and log_off == 1024 + 128 * K
assert parts_off == log_off + (8 * K + 127) // 128 * 128 and used == parts_off + 128 * P
head, tail = u64(896), u64(768)                                # queue mode: 7.7
committed = tail
assert u64(136) == 0                                           # journal empty
assert u32(128) == 0                                           # lock free
frames = []
for n in range(head, tail):                                    # queue: [head, tail) is READY
    cell = u64(log_off + 8 * (n % K))
    assert cell >> 63 == 1, hex(cell)                          # FULL(lap, k)
    assert (cell >> 16) & (2**47 - 1) == n // K                # ... of this position's lap
    k = cell & 0xffff
    line = slots_off + 128 * k
    state = u64(line)
    assert state & 0xff == 2, state                            # READY
    assert state >> 16 == n, state                             # ... at position n
    seq, tag, vlen = u64(line + 8), u64(line + 24), u64(line + 32)
    assert seq == n and vlen == slot_bytes
    assert int(arr[k][0]) == tag                               # the frame itself
    frames.append(int(tag))
parts = []
for i in range(P):
    e = parts_off + 128 * i
    role = u64(e)
    if role == 0:
        continue
    lk = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, sec + e, 1, 0)
    got = fcntl.fcntl(f.fileno(), 36, lk)                      # F_OFD_GETLK
    alive = struct.unpack("hhqqi", got)[0] != fcntl.F_UNLCK
    epoch = u64(e + 56)                                        # attach epoch, >= 1 once attached
    parts.append({"index": i, "role": role, "pid": u64(e + 8), "alive": alive, "epoch": epoch})
closed = u64(160)                                              # 1 once a producer closed the stream
assert closed in (0, 1)
print(json.dumps({"flags": flags, "committed": committed, "frames": frames, "parts": parts, "closed": closed}))
"#;

#[test]
fn python_peer_reads_the_ring_from_format_md() {
    common::python_numpy();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.npy");
    let ring = Ring::builder(Dtype::parse_user("int64").unwrap(), &[16])
        .slots(5)
        .max_participants(8)
        .create(&path)
        .unwrap();
    let p = ring.producer().unwrap();
    for tag in [11i64, 22, 33] {
        let mut loan = p.loan().unwrap();
        loan.as_mut_slice::<i64>().unwrap().fill(tag);
        loan.set_tag(tag as u64);
        loan.commit().unwrap();
    }
    let c = ring.consumer().unwrap();
    drop(c.recv().unwrap()); // head = 1: Python sees frames 22 and 33
    let out = common::python(PEER, &[path.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["committed"], 3);
    assert_eq!(v["frames"], serde_json::json!([22, 33]));
    assert_eq!(v["closed"], 0);
    let parts = v["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    let me = u64::from(std::process::id());
    for q in parts {
        assert_eq!(q["pid"], me);
        assert_eq!(
            q["alive"], true,
            "our OFD locks are visible to another process"
        );
        assert_eq!(q["epoch"], 1, "first attach of each entry");
    }
    assert_eq!(parts[0]["role"], 1);
    assert_eq!(parts[1]["role"], 2);
    p.close().unwrap();
    drop(c);
    drop(p);
    let out = common::python(PEER, &[path.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["parts"], serde_json::json!([]));
    assert_eq!(v["closed"], 1);
}
