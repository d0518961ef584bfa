"""Dask sum over a sharray file, side by side: ``from_sharray`` (copy under
shared row locks), ``from_sharray(lock=False)`` (zero-copy memmap slices)
on a LocalCluster of worker processes, beside numpy summing the memmap in
one process; then ``store`` of the same array. (``da.from_array`` of a
memmap is no baseline: it pickles the data into the graph.)

    python3 python/bench/bench_dask.py [--mib 1024] [--workers 2] [--dir /dev/shm]
"""

import argparse
import os
import tempfile
import time

import numpy as np

import sharray
import sharray.dask as sdask


def main():
    import dask.array as da
    from dask.distributed import Client, LocalCluster

    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    a = ap.parse_args()
    cols = 1024
    rows = a.mib * 1024 * 1024 // (cols * 8)
    chunks = (max(1, rows // (4 * a.workers)), cols)
    with tempfile.TemporaryDirectory(dir=a.dir) as d, LocalCluster(
        processes=True, n_workers=a.workers, threads_per_worker=1, dashboard_address=None
    ) as cluster, Client(cluster) as client:
        path, out = f"{d}/in.npy", f"{d}/out.npy"
        arr = sharray.create(path, (rows, cols), np.float64)
        with arr.write() as v:
            v[:] = 1.0
        sharray.create(out, (rows, cols), np.float64)
        nbytes = rows * cols * 8
        cases = [
            ("from_sharray (locked copy)", lambda: sdask.from_sharray(path, chunks=chunks)),
            ("from_sharray(lock=False)", lambda: sdask.from_sharray(path, chunks=chunks, lock=False)),
        ]
        print(f"{a.mib} MiB float64, {a.workers} worker processes, chunks {chunks}")
        for name, make in cases:
            best = float("inf")
            for _ in range(3):
                t = time.perf_counter()
                s = client.compute(make().sum()).result()
                best = min(best, time.perf_counter() - t)
                assert s == rows * cols
            print(f"  sum   {name:<30} {nbytes / best / 1e9:6.2f} GB/s")
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            assert np.load(path, mmap_mode="r").sum() == rows * cols
            best = min(best, time.perf_counter() - t)
        print(f"  sum   {'numpy, one process (memmap)':<30} {nbytes / best / 1e9:6.2f} GB/s")
        t = time.perf_counter()
        sdask.store(sdask.from_sharray(path, chunks=chunks) * 2, out, compute=False).compute(scheduler=client)
        dt = time.perf_counter() - t
        print(f"  store {'from_sharray * 2 -> file':<30} {nbytes / dt / 1e9:6.2f} GB/s (read + compute + locked write)")


if __name__ == "__main__":
    main()
