"""Cost of guards and views from Python, against baselines measured in the
same run. Prints numbers; asserts nothing.

    python3 python/bench/bench_views.py            # sizes 64 KiB .. 64 MiB
    SHARRAY_BENCH_REPS=2000 python3 python/bench/bench_views.py

Columns (median microseconds per operation):
- lock:      g = a.read(); g.release()             (lock + unlock, no view)
- lock+view: with a.read() as v: pass              (adds view + revocation)
- view cost: lock+view - lock                      (should not grow with size)
- sum:       with a.read() as v: v.sum()           (a consumer touching every byte)
- np sum:    m.sum() on np.load(mmap_mode="r")     (no lock, no view: the floor)
"""

import os
import statistics
import time
import uuid

import numpy as np

import sharray

REPS = int(os.environ.get("SHARRAY_BENCH_REPS", "300"))


def median_us(fn, reps):
    fn()  # warm up
    samples = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1e6


def main():
    print(f"{'size':>8} {'lock':>8} {'lock+view':>10} {'view cost':>10} {'sum':>9} {'np sum':>9} {'sum/np':>7}")
    for size in (64 << 10, 1 << 20, 8 << 20, 64 << 20):
        path = f"/dev/shm/sharray-bench-{uuid.uuid4().hex[:8]}"
        try:
            a = sharray.create(path, size // 4, np.float32, fill=1.0)
            m = np.load(path, mmap_mode="r")
            reps = max(20, REPS if size <= (8 << 20) else REPS // 10)

            def lock_only():
                a.read().release()

            def lock_view():
                with a.read():
                    pass

            def lock_view_sum():
                with a.read() as v:
                    v.sum()

            lock = median_us(lock_only, reps)
            lv = median_us(lock_view, reps)
            s = median_us(lock_view_sum, reps)
            base = median_us(m.sum, reps)
            print(f"{size >> 10:>6}Ki {lock:>8.1f} {lv:>10.1f} {lv - lock:>10.1f} {s:>9.1f} {base:>9.1f} {s / base:>7.2f}")
            del m
        finally:
            os.unlink(path)


if __name__ == "__main__":
    main()
