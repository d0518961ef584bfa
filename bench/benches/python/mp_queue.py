"""multiprocessing.Queue of numpy arrays between two processes (see
benchlib.py for the plan, the payload discipline and the output).

The producer makes a new array per frame (a Queue pickles in a feeder thread
after `put` returns, so reusing one buffer would race), fills it and puts
it; the consumer gets it (unpickling copies it out of the pipe) and checks
it. The queue holds at most `slots` frames (backpressure, like the rings).
"""

import numpy as np

import benchlib as b


def new_frame(words, seq):
    f = np.empty(words, dtype=np.uint64)
    b.fill(f, seq)
    return f


def recv_from(q):
    def recv():
        return b.check(q.get())

    return recv


def sink_proc(cpu, q, n, result):
    b.pin(cpu)
    result.put(b.sink(recv_from(q), n))


def echo_proc(cpu, q_in, q_out, words):
    b.pin(cpu)
    b.echo(lambda seq: q_out.put(new_frame(words, seq)), recv_from(q_in))


def throughput_run(ctx, case, cpu):
    size, n, words = case["size"], case["frames"], case["size"] // 8
    q, result = ctx.Queue(maxsize=case["slots"]), ctx.Queue()
    p = ctx.Process(target=sink_proc, args=(cpu, q, n, result))
    p.start()
    for seq in range(n):
        q.put(new_frame(words, seq))
    nanos, bad = result.get()
    p.join()
    if bad:
        raise SystemExit(f"{bad} bad frames")
    return b.gbps(nanos, n, size)


def latency_run(ctx, case, cpu, time_cap):
    words = case["size"] // 8
    q_ping, q_pong = ctx.Queue(maxsize=1), ctx.Queue(maxsize=1)
    p = ctx.Process(target=echo_proc, args=(cpu, q_ping, q_pong, words))
    p.start()
    samples = b.ping_pong(
        lambda seq: q_ping.put(new_frame(words, seq)),
        recv_from(q_pong),
        case["lat_warmup"],
        case["lat_samples"],
        time_cap,
    )
    p.join()
    return samples


if __name__ == "__main__":
    b.main(throughput_run, latency_run)
