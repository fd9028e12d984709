#!/usr/bin/env python3
"""bench_python.py: Python producer -> Python consumer through warren,
against the baselines of py_baselines.py, all in one run under one
interpreter, each side its own forked process. Prints rates and the ratios
of issue 9's goals (best of --runs; numbers only here, never in tests).

    build/bindings/python/warren-python bench/bench_python.py [--quick] [--runs N]
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import py_baselines as pb  # noqa: E402
import warren  # noqa: E402

QUICK = "--quick" in sys.argv
RUNS = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else (1 if QUICK else 3)
SCALE = 0.25 if QUICK else 1.0
BATCH = 64


class Warren:
    name = "warren"

    def __init__(self, slot=1024):
        self.slot = slot

    def setup(self):
        self.arena = warren.Arena.create(64 << 20)
        self.arena.create_channel("b", capacity=1024, slot_size=self.slot)
        self.arena.create_channel("back", capacity=1024, slot_size=self.slot)

    def side(self, producer):  # in the forked child / the parent
        if producer:
            self.a = warren.Arena.attach(self.arena.fd)
            self.a.claim()
            self.ch, self.back = self.a.producer("b"), self.a.consumer("back")
        else:
            self.ch, self.back = self.arena.consumer("b"), self.arena.producer("back")
        # the user's calls, without a wrapper frame (the baselines have one)
        self.send, self.send_many = self.ch.send, self.ch.send_batch
        self.recv = self.ch.recv

    def recv_many(self):
        return self.ch.recv_batch(BATCH)

    def recv_zc(self):
        with self.ch.peek_batch(BATCH) as b:  # as the Queue consumer: no per-record work
            return range(len(b))

    def finish(self):
        self.ch.close()

    def close(self):
        self.arena.close()


def fork(child):
    pid = os.fork()
    if pid == 0:
        try:
            child()
        finally:
            os._exit(0)
    return pid


def reap(pid):
    if pid > 1:
        os.waitpid(pid, 0)


def stream(t, size, n, mode):
    """Records/s from the consumer's first to last record. mode: one, batch, zc."""
    n -= n % BATCH
    t.setup()
    rec = bytes(size)
    recs = [rec] * BATCH

    def producer():
        if hasattr(t, "side"):
            t.side(True)
        if mode == "one":
            for _ in range(n):
                t.send(rec)
        else:
            for _ in range(n // BATCH):
                t.send_many(recs)
        t.finish()

    pid = fork(producer)
    if hasattr(t, "side"):
        t.side(False)
    got = 0
    if mode == "one":
        t.recv()
        t0 = time.perf_counter()
        for _ in range(n - 1):
            t.recv()
        got = n - 1
    else:
        rm = t.recv_zc if mode == "zc" else t.recv_many
        got = len(rm()) - BATCH  # counted from the first full batch's arrival
        t0 = time.perf_counter()
        while got < n - BATCH:
            got += len(rm())
    el = time.perf_counter() - t0
    reap(pid)
    if hasattr(t, "close"):
        t.close()
    return got / el


def rtt(kind, n):
    """Seconds per round trip."""
    if kind == "spin":
        s = pb.ShmSpin()
        s.setup()
        pid = fork(lambda: [s.pong(i) for i in range(1, n + 1)])
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            s.ping(i)
        el = time.perf_counter() - t0
        reap(pid)
        s.close()
    elif kind == "pipe":
        a, b = pb._ctx.Pipe(), pb._ctx.Pipe()

        def pong():
            for _ in range(n):
                b[1].send_bytes(a[0].recv_bytes())
        pid = fork(pong)
        t0 = time.perf_counter()
        for _ in range(n):
            a[1].send_bytes(b"p" * 8)
            b[0].recv_bytes()
        el = time.perf_counter() - t0
        reap(pid)
    else:
        old = warren.set_spin(0 if kind == "block" else 50e-6)
        w = Warren(64)
        w.setup()

        def pong():
            w.side(True)
            for _ in range(n):
                w.ch.send(w.back.recv())
        pid = fork(pong)
        w.side(False)
        ping, pong_ = w.back, w.ch
        t0 = time.perf_counter()
        for _ in range(n):
            ping.send(b"p" * 8)
            pong_.recv()
        el = time.perf_counter() - t0
        reap(pid)
        w.close()
        warren.set_spin(old)
    return el / n


def idle_cpu():
    """CPU share the consumer uses while waiting 0.3 s on an empty channel."""
    w = Warren(64)
    w.setup()
    c = w.arena.consumer("b")
    c0, t0 = time.process_time(), time.perf_counter()
    try:
        c.recv(timeout=0.3)
    except warren.Timeout:
        pass
    share = (time.process_time() - c0) / (time.perf_counter() - t0)
    w.close()
    return share


def best(f, *a):
    return max(f(*a) for _ in range(RUNS))


def main():
    print(f"warren {warren.version()}, C extension: {warren.FAST}, best of {RUNS}"
          f"{' (quick)' if QUICK else ''}")
    k = lambda n: max(BATCH * 4, int(n * SCALE))  # noqa: E731
    res = {}
    for size in (64, 1024):
        r = res[size] = {}
        r["queue"] = best(stream, pb.MPQueue(), size, k(20000), "one")
        r["pipe"] = best(stream, pb.MPPipe(), size, k(50000), "one")
        r["framed"] = best(stream, pb.FramedPipe(), size, k(50000), "one")
        r["ring"] = best(stream, pb.ShmRing(slot=size), size, k(100000), "one")
        r["w1"] = best(stream, Warren(size), size, k(300000), "one")
        r["queue64"] = best(stream, pb.MPQueue(), size, k(200000), "batch")
        r["wb"] = best(stream, Warren(size), size, k(1000000), "batch")
        r["wzc"] = best(stream, Warren(size), size, k(1000000), "zc")
        print(f"\n{size} B records/s: " + ", ".join(f"{n} {v / 1e3:.0f}k" for n, v in r.items()))
        print("  (queue64 = Queue with 64 records a put; w1 = warren one a call; wb = warren"
              " send_batch/recv_batch 64; wzc = send_batch/peek_batch memoryviews)")
    print("\nratios (goal in brackets):")
    for size in (64, 1024):
        r = res[size]
        print(f"  {size:4} B one a call  vs Queue        {r['w1'] / r['queue']:6.1f}x  [>= 10]")
        print(f"  {size:4} B one a call  vs framed pipe  {r['w1'] / r['framed']:6.2f}x  [>= 1.2]")
        print(f"  {size:4} B one a call  vs Pipe         {r['w1'] / r['pipe']:6.2f}x")
        print(f"  {size:4} B one a call  vs py shm ring  {r['w1'] / r['ring']:6.2f}x")
        goal = ">= 1.0" if size == 64 else ">= 3"
        for m in ("wb", "wzc"):
            what = "batch 64 " if m == "wb" else "zero-copy"
            print(f"  {size:4} B {what}    vs py shm ring  {r[m] / r['ring']:6.1f}x  [>= 1.0]")
            print(f"  {size:4} B {what}    vs Queue x64    {r[m] / r['queue64']:6.1f}x  [{goal}]")
    n = int(20000 * SCALE)
    spin, pipe, w, wb = (min(rtt(k, n) for _ in range(RUNS))
                         for k in ("spin", "pipe", "warren", "block"))
    print(f"\nround trip: warren {w * 1e6:.1f} us (polls 50 us, then sleeps), warren blocking "
          f"{wb * 1e6:.1f} us (no binding poll; the library spins 4 us+),\n  "
          f"pure-Python spin {spin * 1e6:.1f} us, Pipe {pipe * 1e6:.1f} us")
    print(f"  warren RTT vs pure-Python spin  {w / spin:6.2f}x  [<= 1.5]")
    print(f"  warren blocking RTT vs Pipe     {wb / pipe:6.2f}x  [<= 1.1]")
    print(f"  consumer CPU while idle: {idle_cpu() * 100:.1f}% (blocks on a futex)")


if __name__ == "__main__":
    main()
