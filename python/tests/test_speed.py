"""The cheaper ends of views (issue 13 part 1), functionally: small read
views are private copies, views that never escaped keep their window for
the next guard or lease, escaped ones are revoked, and the policy switch.
Speed itself is measured in python/bench/bench_small.py, never here."""

import numpy as np
import pytest

import sharray


@pytest.fixture
def policy():
    old = sharray.set_view_policy()
    yield
    sharray.set_view_policy(*old)


def make_ring(tmp_path, nbytes, slots=1):
    return sharray.Ring.create(str(tmp_path / "r.npy"), (nbytes // 8,), np.uint64, slots=slots)


def test_defaults_and_bad_policy(policy):
    assert sharray.set_view_policy() == ("auto", 64 << 10)
    with pytest.raises(sharray.InvalidInput, match="unknown view policy"):
        sharray.set_view_policy("sometimes")
    assert sharray.set_view_policy("always", copy_below=0) == ("auto", 64 << 10)
    assert sharray.set_view_policy() == ("always", 0)


def test_small_lease_view_is_a_copy_that_keeps_its_frame(tmp_path, policy):
    ring = make_ring(tmp_path, 512)
    with ring.producer() as p, ring.consumer() as c:
        with p.loan() as f:
            f[:] = 1
        with c.recv() as v:
            assert lease_window_is_not(v, c)
            derived = v[10:]
            assert (v == 1).all()
        # Stale: read-only, still this lease's bytes, never the next frame.
        assert not v.flags.writeable and (v == 1).all() and (derived == 1).all()
        with p.loan() as f:
            f[:] = 2
        with c.recv() as w:
            assert (w == 2).all()
        assert (v == 1).all() and (derived == 1).all()


def lease_window_is_not(v, c):
    """The copy is not inside the (hidden) slot mapping."""
    return v.base is not None and type(v.base).__name__ == "_CopyBase"


def test_small_loan_copy_reaches_the_consumer_and_stale_writes_do_not(tmp_path, policy):
    ring = make_ring(tmp_path, 256)
    with ring.producer() as p, ring.consumer() as c:
        with p.loan() as f:
            f[:] = 5
            part = f[3:]
        part[:] = 99  # after commit: the copy only
        with c.recv() as v:
            assert (v == 5).all()
        assert (np.load(ring.path, mmap_mode="r")[0] == 5).all()


def test_reused_copy_buffers_never_change_a_live_copy(tmp_path, policy):
    """Copy buffers are recycled only once their views are gone: stale copies
    still held keep their own frame while later copies reuse freed buffers."""
    ring = make_ring(tmp_path, 256)
    held = []
    with ring.producer() as p, ring.consumer() as c:
        for n in range(40):
            with p.loan(tag=n) as f:
                f[:] = n
            with c.recv() as v:
                assert (v == n).all()
            if n % 3 == 0:
                held.append((n, v))  # keep every third stale copy alive
            del v, f  # the others' buffers go back to the spare list
        assert [type(v.base).__name__ for _, v in held[1:]] == ["_CopyBase"] * (len(held) - 1)
        for n, v in held:
            assert (v == n).all() and not v.flags.writeable


def test_read_guard_copy_and_write_guard_maps_the_file(tmp_path, policy):
    path = str(tmp_path / "a.npy")
    a = sharray.create(path, (16,), np.int64)
    b = sharray.open(path, readonly=False)
    with a.write() as w:
        assert type(w.base).__name__ != "_CopyBase"
        w[:] = 7
        # A write guard maps the file: its writes are there at once.
        assert (np.load(path, mmap_mode="r") == 7).all()
    with a.read() as r:
        assert type(r.base).__name__ == "_CopyBase" and (r == 7).all()
    with b.write() as w:
        w[:] = 8
    assert (r == 7).all() and not r.flags.writeable


def test_unescaped_views_keep_their_window(tmp_path, policy):
    sharray.set_view_policy("auto", copy_below=0)
    ring = make_ring(tmp_path, 8192)
    with ring.producer() as p, ring.consumer() as c:
        windows = []
        for n in range(4):
            with p.loan(tag=n) as f:
                f[:] = n
            lease = c.recv()
            assert int(lease.view[0]) == n  # the view is a temporary
            windows.append(lease._window)
            lease.release()
        # One slot: the same mapping every time, never revoked.
        assert len(set(windows)) == 1
        with p.loan() as f:
            f[:] = 7
        with c.recv() as v:
            kept = v[1:]
        # Escaped: revoked as before.
        assert not v.any() and not kept.any()
        with p.loan() as f:
            f[:] = 8
        lease = c.recv()
        assert int(lease.view[0]) == 8
        assert lease._window != windows[0]  # the revoked range is gone for good
        lease.release()
        assert not kept.any()


def test_always_revokes_every_window(tmp_path, policy):
    sharray.set_view_policy("always")
    ring = make_ring(tmp_path, 8192)
    with ring.producer() as p, ring.consumer() as c:
        views = []
        for n in range(3):
            with p.loan() as f:
                f[:] = n + 1
            with c.recv() as v:
                assert type(v.base).__name__ != "_CopyBase"  # no small copies
                views.append(v)
        assert not any(v.any() for v in views)
        a = sharray.create(str(tmp_path / "a.npy"), (4,), np.int32)
        with a.read() as v:
            assert type(v.base).__name__ != "_CopyBase"
        assert not v.flags.writeable


def test_never_leaves_stale_views_on_the_shared_bytes(tmp_path, policy):
    sharray.set_view_policy("never")
    ring = make_ring(tmp_path, 8192)
    with ring.producer() as p, ring.consumer() as c:
        with p.loan() as f:
            f[:] = 1
        with c.recv() as v:
            pass
        with p.loan() as f:
            f[:] = 2
        # The documented opt-out: the stale view sees the next frame.
        assert (v == 2).all()


def test_small_views_are_copies_only_while_views_escape(tmp_path, policy):
    ring = make_ring(tmp_path, 1024)
    with ring.producer() as p, ring.consumer() as c:

        def kind():
            with p.loan() as f:
                f[:] = 3
            lease = c.recv()
            k = type(lease.view.base).__name__  # the view is a temporary
            lease.release()
            return k

        with p.loan() as f:
            f[:] = 1
        with c.recv() as v:  # `v` outlives the block: escaped
            pass
        assert kind() == "_CopyBase"  # the last view escaped: copy
        assert kind() == "_ViewBase"  # the last one did not: the window, kept
        assert kind() == "_ViewBase"
        assert (v == 1).all()
