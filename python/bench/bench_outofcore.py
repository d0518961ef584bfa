"""Out-of-core reads from Python: np.memmap against sharray, with and
without access hints, on a file on disk. One case per call, so every case
runs in a fresh process with nothing of the file mapped; the Rust harness
(`cargo bench -p sharray-bench --bench outofcore`) calls it for the Python
columns of its table and evicts the file from the page cache before each
cold case. It can also run on its own:

    python3 python/bench/bench_outofcore.py FILE.npy PATTERN SIZE METHOD HINT COUNT NBYTES

PATTERN: seq (read the whole data in SIZE blocks, in order) or rand (COUNT
blocks of SIZE at offsets from the same generator as the Rust harness).
METHOD: npmemmap (np.memmap(mode="r")) or sharray (sharray.open(mode="r"),
one read guard around the loop). HINT: none, or hint (the recipe of
BENCHMARKS.md: a rolling willneed of the next 64 MiB for seq; random, plus
willneed on each block larger than a page, for rand). Every block is consumed the same way
(`block.view(np.uint64).sum()`). Prints one JSON line: seconds, bytes,
checksum. Asserts nothing. NBYTES is the data length (a sharray file has
its control block after the data, which np.memmap must not count).
"""

import json
import mmap
import sys
import time

import numpy as np

# Read-ahead window for hinted sequential scans (as the Rust harness).
AHEAD = 64 << 20


def offsets(nblocks, count):
    """The harness's generator: 64-bit LCG, block = (x >> 33) % nblocks."""
    x = 0x9E3779B97F4A7C15
    mask = (1 << 64) - 1
    for _ in range(count):
        x = (x * 6364136223846793005 + 1442695040888963407) & mask
        yield (x >> 33) % nblocks


def run(path, pattern, size, method, hint, count, total):
    data_offset = 4096
    if method == "npmemmap":
        m = np.memmap(path, dtype=np.uint8, mode="r", offset=data_offset, shape=(total,))
        if hint and pattern == "rand":
            m._mmap.madvise(mmap.MADV_RANDOM)
        # numpy maps from the page holding `offset` (4096): mmap offset == data offset.
        willneed = lambda lo, hi: m._mmap.madvise(mmap.MADV_WILLNEED, lo, hi - lo)  # noqa: E731
        view = m
        guard = None
    elif method == "sharray":
        import sharray

        a = sharray.open(path, mode="r")
        assert a.nbytes == total, (a.nbytes, total)
        if hint and pattern == "rand":
            a.advise("random")
        willneed = lambda lo, hi: a.advise("willneed", lo, hi)  # noqa: E731
        guard = a.read()
        view = guard.view
    else:
        raise SystemExit(f"unknown method {method}")
    acc = np.uint64(0)
    nbytes = 0
    t = time.perf_counter()
    if pattern == "seq":
        next_ahead = 0
        for off in range(0, total - total % size, size):
            if hint and off >= next_ahead:
                # Ask for the next window while this one is consumed.
                lo, hi = off + AHEAD // 2, min(off + AHEAD + AHEAD // 2, total)
                if lo < hi:
                    willneed(lo, hi)
                next_ahead = off + AHEAD // 2
            acc += view[off : off + size].view(np.uint64).sum()
            nbytes += size
    else:
        nblocks = total // size
        for b in offsets(nblocks, count):
            off = b * size
            if hint and size > 4096:
                willneed(off, off + size)
            acc += view[off : off + size].view(np.uint64).sum()
            nbytes += size
    secs = time.perf_counter() - t
    if guard is not None:
        guard.release()
    return {"seconds": secs, "bytes": nbytes, "checksum": int(acc)}


def main():
    path, pattern, size, method, hint, count, total = sys.argv[1:8]
    out = run(path, pattern, int(size), method, hint == "hint", int(count), int(total))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
