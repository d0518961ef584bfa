"""sharray.dask with a LocalCluster of worker processes (not threads): a
sum over an array read block by block under row-region locks, the same
without locks (zero-copy memmap slices), and a store from several workers,
all checked against numpy. SHARRAY_DASK_MIB sets the array size (default
64 MiB; set it to several thousand for a multi-GiB run). Skipped, with the
reason printed, when dask or distributed cannot be imported.
"""

import os

import numpy as np
import pytest

import sharray

try:
    import dask.array as da
    from dask.distributed import Client, LocalCluster
except ImportError as e:  # pragma: no cover - depends on the install
    print(f"test_dask: skipped, dask is not installed ({e}); pip install 'sharray[dask]'")
    pytest.skip(f"dask is not installed ({e}); pip install 'sharray[dask]'", allow_module_level=True)

import sharray.dask as sdask  # noqa: E402  (after the skip: it needs nothing but numpy to import)

MIB = int(os.environ.get("SHARRAY_DASK_MIB", "64"))
COLS = 1024


@pytest.fixture(scope="module")
def client():
    cluster = LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_sum_over_a_big_array_read_by_worker_processes(tmp_path, client):
    rows = MIB * 1024 * 1024 // (COLS * 8)
    path = str(tmp_path / "big.npy")
    a = sharray.create(path, (rows, COLS), np.float64)
    # Fill in slabs (a multi-GiB array never sits in our memory twice).
    step = max(1, rows // 16)
    expect = 0.0
    for s in range(0, rows, step):
        e = min(rows, s + step)
        slab = (np.arange(s * COLS, e * COLS, dtype=np.float64) % 1000).reshape(e - s, COLS)
        with a.write() as v:
            v[s:e] = slab
        expect += slab.sum()
    x = sdask.from_sharray(path, chunks=(max(1, rows // 8), COLS))
    assert x.shape == (rows, COLS) and x.dtype == np.float64
    assert x.npartitions >= 8
    got = client.compute(x.sum()).result()
    assert got == pytest.approx(expect, rel=1e-12)
    # Zero-copy, lock-free reads agree.
    y = sdask.from_sharray(path, chunks=(max(1, rows // 8), COLS), lock=False)
    assert client.compute(y.sum()).result() == pytest.approx(expect, rel=1e-12)
    # Blocks narrower than a row, and a window of rows.
    z = sdask.from_sharray(path, chunks=(max(1, rows // 4), COLS // 4))
    ref = np.load(path, mmap_mode="r")
    assert np.array_equal(client.compute(z[3:7, 5:900]).result(), ref[3:7, 5:900])


def test_store_from_several_workers(tmp_path, client):
    rows = 4096
    path = str(tmp_path / "out.npy")
    sharray.create(path, (rows, 64), np.float32)
    x = da.arange(rows * 64, chunks=rows * 64 // 16, dtype=np.float32).reshape(rows, 64) * 2 + 1
    x = x.rechunk((rows // 16, 64))
    sdask.store(x, path, compute=False).compute(scheduler=client)
    expect = (np.arange(rows * 64, dtype=np.float32) * 2 + 1).reshape(rows, 64)
    assert np.array_equal(np.load(path), expect)
    # Which workers wrote: more than one process took part.
    pids = client.run(os.getpid)
    assert len(set(pids.values())) == 2


def test_store_refuses_a_shape_mismatch(tmp_path):
    path = str(tmp_path / "out.npy")
    sharray.create(path, (10, 3), np.int32)
    with pytest.raises(ValueError, match="shape"):
        sdask.store(da.zeros((10, 4), chunks=5), path)
