"""A ring in multiprocessing.shared_memory between two processes, with two
counting semaphores (free slots, filled slots): what a careful Python
programmer writes with the standard library (see benchlib.py for the plan,
the payload discipline and the output).

The segment is created by the parent and inherited by the forked child (so
Python < 3.13's resource tracker does not unlink it early). Frames are
written and read in place: no copies, no pickling.
"""

from multiprocessing import shared_memory

import numpy as np

import benchlib as b


class Ring:
    """`slots` frames of `words` uint64 in one segment, one producer, one
    consumer."""

    def __init__(self, ctx, slots, words):
        self.slots, self.words = slots, words
        self.shm = shared_memory.SharedMemory(create=True, size=slots * words * 8)
        self.free = ctx.Semaphore(slots)
        self.full = ctx.Semaphore(0)
        self.pos = 0

    def view(self):
        return np.ndarray((self.slots, self.words), dtype=np.uint64, buffer=self.shm.buf)

    def sender(self):
        v = self.view()

        def send(seq):
            self.free.acquire()
            b.fill(v[self.pos % self.slots], seq)
            self.pos += 1
            self.full.release()

        return send

    def receiver(self):
        v = self.view()

        def recv():
            self.full.acquire()
            got = b.check(v[self.pos % self.slots])
            self.pos += 1
            self.free.release()
            return got

        return recv

    def close(self):
        self.shm.close()
        self.shm.unlink()


def sink_proc(cpu, ring, n, result):
    b.pin(cpu)
    result.put(b.sink(ring.receiver(), n))


def echo_proc(cpu, ping, pong):
    b.pin(cpu)
    b.echo(pong.sender(), ping.receiver())


def throughput_run(ctx, case, cpu):
    size, n = case["size"], case["frames"]
    ring, result = Ring(ctx, case["slots"], size // 8), ctx.Queue()
    p = ctx.Process(target=sink_proc, args=(cpu, ring, n, result))
    p.start()
    send = ring.sender()
    for seq in range(n):
        send(seq)
    nanos, bad = result.get()
    p.join()
    ring.close()
    if bad:
        raise SystemExit(f"{bad} bad frames")
    return b.gbps(nanos, n, size)


def latency_run(ctx, case, cpu, time_cap):
    words = case["size"] // 8
    ping, pong = Ring(ctx, 1, words), Ring(ctx, 1, words)
    p = ctx.Process(target=echo_proc, args=(cpu, ping, pong))
    p.start()
    samples = b.ping_pong(
        ping.sender(), pong.receiver(), case["lat_warmup"], case["lat_samples"], time_cap
    )
    p.join()
    ping.close()
    pong.close()
    return samples


if __name__ == "__main__":
    b.main(throughput_run, latency_run)
