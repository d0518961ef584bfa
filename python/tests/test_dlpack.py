"""DLPack export (`__dlpack__`, `__dlpack_device__`) of guards, loans,
leases and claims' rows: zero copy, the read-only flag on read views, and
the revocation promise for what a consumer holds after release."""

import gc

import numpy as np
import pytest

import sharray

KDLCPU = 1


def small_windows():
    """Views map the file (no small-view copies) for zero-copy checks."""
    return sharray.set_view_policy("auto", copy_below=0)


@pytest.fixture
def ring(tmp_path):
    return sharray.Ring.create(str(tmp_path / "r.npy"), (4, 8), np.float32, slots=2)


def test_device_is_cpu_everywhere(tmp_path, ring):
    a = sharray.create(str(tmp_path / "a.npy"), (3, 4), np.int16)
    with ring.producer() as p, ring.consumer() as c:
        loan = p.loan()
        assert loan.__dlpack_device__() == (KDLCPU, 0)
        loan.commit()
        lease = c.recv()
        assert lease.__dlpack_device__() == (KDLCPU, 0)
        lease.release()
    g = a.read()
    assert g.__dlpack_device__() == (KDLCPU, 0)
    g.release()


@pytest.mark.usefixtures("windows")
def test_read_lease_shares_memory_read_only_and_is_revoked(ring):
    with ring.producer() as p, ring.consumer() as c:
        with p.loan() as f:
            f[:] = 3.5
        lease = c.recv()
        t = np.from_dlpack(lease)
        assert t.shape == (4, 8) and t.dtype == np.float32
        assert np.shares_memory(t, lease.view) and (t == 3.5).all()
        assert not t.flags.writeable  # DLPACK_FLAG_BITMASK_READ_ONLY
        cap = lease.__dlpack__(max_version=(1, 0))
        assert "dltensor_versioned" in repr(cap)
        del cap  # never consumed: the capsule's destructor frees it
        lease.release()
        # The tensor held a reference: the view escaped and was revoked.
        assert not t.any()
        with p.loan() as f:
            f[:] = 9.0
        assert not t.any()  # never the next frame


def test_legacy_capsule_for_write_views_refused_for_read_views(ring):
    with ring.producer() as p, ring.consumer() as c:
        loan = p.loan()
        cap = loan.__dlpack__()
        assert repr(cap).startswith('<capsule object "dltensor"')
        del cap
        loan.commit()
        lease = c.recv()
        with pytest.raises(BufferError, match="read-only"):
            lease.__dlpack__()
        # copy=True works for any consumer (a writable copy, legacy capsule).
        cap = lease.__dlpack__(copy=True)
        assert repr(cap).startswith('<capsule object "dltensor"')
        del cap
        lease.release()


def test_write_loan_through_dlpack_reaches_the_consumer(ring):
    with ring.producer() as p, ring.consumer() as c:
        loan = p.loan()
        t = np.from_dlpack(loan)
        assert t.flags.writeable
        t[:] = 6.0
        del t
        loan.commit()
        with c.recv() as v:
            assert (v == 6.0).all()


def test_bad_requests_are_buffer_errors(ring):
    with ring.producer() as p:
        loan = p.loan()
        with pytest.raises(BufferError, match="stream"):
            loan.__dlpack__(stream=1)
        with pytest.raises(BufferError, match="device"):
            loan.__dlpack__(dl_device=(2, 0))
        loan.abandon()
        with pytest.raises(sharray.InvalidInput):
            loan.__dlpack__()


@pytest.mark.usefixtures("windows")
def test_guards_and_claim_rows(tmp_path):
    a = sharray.create(str(tmp_path / "a.npy"), (5, 3), np.float64, order="F")
    with a.write() as v:
        v[:] = np.arange(15.0).reshape(5, 3)
    g = a.read()
    t = np.from_dlpack(g)
    assert (t == np.arange(15.0).reshape(5, 3)).all() and not t.flags.writeable
    g.release()
    assert not t.any()
    w = a.write()
    t = np.from_dlpack(w)
    t[0, 0] = -1.0
    w.release()
    with a.read() as v:
        assert v[0, 0] == -1.0

    out = sharray.create(str(tmp_path / "out.npy"), (6, 2), np.int32)
    q = sharray.WorkQueue.create(str(tmp_path / "q.npy"), rows=6, chunk_rows=3)
    w = q.join()
    c = w.claim(timeout=5)
    rows = c.rows_mut(out)
    assert rows.__dlpack_device__() == (KDLCPU, 0)
    t = np.from_dlpack(rows)
    assert t.shape == (3, 2) and t.flags.writeable
    t[:] = 4
    rows.release()
    assert not t.any()  # revoked with the rows
    c.complete()
    with out.read() as v:
        assert (v[:3] == 4).all() and not v[3:].any()


def test_unsupported_dtype_is_a_clear_error(tmp_path):
    a = sharray.create(str(tmp_path / "s.npy"), 4, np.dtype([("x", "<i4"), ("y", "<f4")]))
    with a.write() as _:
        pass
    g = a.write()
    with pytest.raises(BufferError, match="cannot be exported through DLPack"):
        g.__dlpack__(max_version=(1, 0))
    g.release()


def test_capsules_free_their_view(ring):
    """An unconsumed capsule keeps the view alive, dropping it lets go."""
    with ring.producer() as p, ring.consumer() as c:
        with p.loan() as f:
            f[:] = 1
        lease = c.recv()
        view = lease.view
        before = sys_refcount(view)
        caps = [lease.__dlpack__(max_version=(1, 0)) for _ in range(5)]
        assert sys_refcount(view) == before + 5
        del caps
        gc.collect()
        assert sys_refcount(view) == before
        del view
        lease.release()


def sys_refcount(x):
    import sys

    return sys.getrefcount(x)


def test_torch_shares_the_frame():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed: the torch DLPack test is skipped")
    import tempfile, os

    with tempfile.TemporaryDirectory() as d:
        old = small_windows()
        try:
            r = sharray.Ring.create(os.path.join(d, "t.npy"), (16,), np.float32, slots=2)
            with r.producer() as p, r.consumer() as c:
                with p.loan() as f:
                    f[:] = np.arange(16, dtype=np.float32)
                lease = c.recv()
                t = torch.from_dlpack(lease)
                assert t.dtype == torch.float32 and t.shape == (16,)
                assert float(t.sum()) == float(np.arange(16).sum())
                assert t.data_ptr() == lease.view.ctypes.data  # no copy
                lease.release()
                assert float(t.abs().sum()) == 0.0  # revoked with the lease
                loan = p.loan()
                w = torch.from_dlpack(loan)
                w.fill_(2.0)
                del w
                loan.commit()
                with c.recv() as v:
                    assert (v == 2.0).all()
        finally:
            sharray.set_view_policy(*old)
