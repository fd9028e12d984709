#!/usr/bin/env python3
"""gc_split.py: one allocation-heavy job, three ways, and what the garbage
collector costs in each.

    gc_split.py all [--workers N] [--items M]   run (a), (b), (c) and print the table
    gc_split.py threads|queue|warren            one of them

(a) threads: one Python process, N threads (one interpreter, one GIL, one
    heap: a collection holds the GIL, so it stops every thread).
(b) queue:   N processes fed through multiprocessing.Queue.
(c) warren:  N Python workers under `warren run gc-split.json` (source ->
    N work replicas -> sink over warren channels).

The job: each item builds a few hundred small dicts and lists, keeps a
third of them in a per-worker cache of recent items (the live heap a real
service has) and returns a checksum. Every worker times each collection
with gc.callbacks (the binding's C callback when built: a Python callback
can lose the GIL between "start" and the collection and would count other
threads' work as pause) and logs when it finished each item
(CLOCK_MONOTONIC, comparable across processes). For the longest pause the
report says which workers it stopped: a worker that finished an item while
the pause was running was not stopped.

The worker roles of (c), started by warren: source, work, sink.
"""
import collections
import gc
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
K = 300     # objects built per item
KEEP = 3    # every KEEP-th object stays in the cache
CACHE = 300  # items a worker's cache holds


class Worker:
    """One worker's job state and its GC / progress log."""

    def __init__(self, wid):
        self.wid, self.cache = wid, collections.deque(maxlen=CACHE)
        self.done, self.pauses, self._t0 = [], [], 0.0

    def work(self, item):
        recs = [{"item": item, "i": i, "tags": [i, i + 1], "name": "r%d" % i} for i in range(K)]
        total = sum(r["i"] * len(r["tags"]) for r in recs) + item
        self.cache.append(recs[::KEEP])
        self.done.append(time.monotonic())
        return total

    def gc_start(self):
        gc.callbacks.append(GC_CB if GC_CB else self._py_cb)

    def gc_stop(self):
        gc.callbacks.remove(GC_CB if GC_CB else self._py_cb)
        if GC_CB:
            self.pauses = _ext.gc_pauses()

    def _py_cb(self, phase, info):  # without the extension (may over-count, see above)
        if phase == "start":
            self._t0 = time.monotonic()
        else:
            self.pauses.append((self._t0, time.monotonic(), info["generation"]))

    def stats(self):
        return {"wid": self.wid, "done": self.done, "pauses": self.pauses}


try:  # the binding's C timer: a Python callback can lose the GIL mid-measure
    from warren import _lib
    _ext = _lib.ext
    GC_CB = _ext.gc_callback if _ext else None
except ImportError:
    GC_CB = None


def report(mode, wall, stats, n):
    """One line of the table: wall, collections, longest pause, who it stopped."""
    pauses = [(p[1] - p[0], p, s["wid"]) for s in stats for p in s["pauses"]]
    if not pauses:
        return {"mode": mode, "wall_s": wall, "gcs": 0}
    dur, (t0, t1, gen), wid = max(pauses)
    running = sorted({s["wid"] for s in stats if any(t0 < t < t1 for t in s["done"])})
    return {"mode": mode, "wall_s": round(wall, 3), "gcs": len(pauses),
            "gc_total_ms": round(sum(p[0] for p in pauses) * 1e3, 1),
            "longest_ms": round(dur * 1e3, 2), "longest_gen": gen, "in_worker": wid,
            "kept_working": running, "stopped": n - len(running)}


# ------------------------------------------------------------------ (a) threads
def run_threads(n, items):
    q = queue.Queue()
    for i in range(items):
        q.put(i)
    ws = [Worker(i) for i in range(n)]
    # one interpreter: one collector; its callbacks are process-wide, so a
    # single recorder times every pause (any thread may trigger it)
    rec = Worker(-1)
    rec.gc_start()

    def loop(w):
        while True:
            try:
                item = q.get_nowait()
            except queue.Empty:
                return
            w.work(item)
    t0 = time.monotonic()
    ts = [threading.Thread(target=loop, args=(w,)) for w in ws]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.monotonic() - t0
    rec.gc_stop()
    st = [w.stats() for w in ws]
    st[0]["pauses"] = rec.pauses  # attributed to the process (all threads)
    return report("threads", wall, st, n)


# ------------------------------------------------------------------ (b) multiprocessing.Queue
def _mp_worker(wid, inq, outq):
    w = Worker(wid)
    w.gc_start()
    while True:
        item = inq.get()
        if item is None:
            break
        outq.put(w.work(item))
    w.gc_stop()
    outq.put(("stats", w.stats()))


def run_queue(n, items):
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    inq, outq = ctx.Queue(), ctx.Queue()
    t0 = time.monotonic()
    ps = [ctx.Process(target=_mp_worker, args=(i, inq, outq)) for i in range(n)]
    for p in ps:
        p.start()
    for i in range(items):
        inq.put(i)
    for _ in ps:
        inq.put(None)
    stats, got = [], 0
    while len(stats) < n:
        r = outq.get()
        if isinstance(r, tuple):
            stats.append(r[1])
        else:
            got += 1
    wall = time.monotonic() - t0
    for p in ps:
        p.join()
    assert got == items, (got, items)
    return report("mp.Queue", wall, stats, n)


# ------------------------------------------------------------------ (c) warren
def run_warren(n, items):
    out = tempfile.mkdtemp(prefix="gc-split-")
    with open(os.path.join(HERE, "gc-split.json")) as f:
        cfg = json.load(f)
    cfg["workers"][1]["replicas"] = n
    cfg_path = os.path.join(out, "gc-split.json")
    for w in cfg["workers"]:
        w["cwd"] = HERE
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    env = dict(os.environ, GC_SPLIT_OUT=out, GC_SPLIT_ITEMS=str(items), XDG_RUNTIME_DIR=out)
    warren = os.environ.get("WARREN") or _find_warren()
    t0 = time.monotonic()
    with open(os.path.join(out, "log"), "w") as log:
        rc = subprocess.run([warren, "run", cfg_path, "--socket", os.path.join(out, "s")],
                            env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    total = time.monotonic() - t0
    try:
        with open(os.path.join(out, "summary.json")) as f:
            s = json.load(f)
    except FileNotFoundError:
        sys.exit(f"warren run failed (exit {rc}); its log is {out}/log")
    r = report("warren", s["wall"], s["stats"], n)
    r["with_startup_s"] = round(total, 3)
    assert s["results"] == items, s["results"]
    return r


def _find_warren():
    """$WARREN, else the build tree's (beside the warren package warren-python
    put on the path), else `warren` on PATH."""
    import shutil
    try:
        import warren as w
        p = os.path.join(os.path.dirname(w.__file__), "..", "..", "..", "src", "supervisor",
                         "warren")
        if os.access(p, os.X_OK):
            return os.path.normpath(p)
    except ImportError:
        pass
    return shutil.which("warren") or sys.exit("warren not found: set WARREN=path/to/warren")


def role_source():
    import warren
    with warren.Worker() as w:
        out = w.output(0)
        w.ready()
        items = int(os.environ.get("GC_SPLIT_ITEMS", "2000"))
        out.send(b"T%r" % time.monotonic())
        for i in range(0, items, 64):
            out.send_batch([b"%d" % j for j in range(i, min(items, i + 64))])
        out.close()


def role_work():
    import warren
    with warren.Worker() as w:
        inp, out = w.input(0), w.output(0)
        w.ready()
        me = Worker(w.replica)
        me.gc_start()
        for rec in inp:
            if rec[:1] == b"T":
                out.send(rec)
            else:
                out.send(b"R%d" % me.work(int(rec)))
        me.gc_stop()
        st = json.dumps(me.stats()).encode()  # in pieces that fit a slot
        out.send_batch([b"S%d " % w.replica + st[i:i + 4000] for i in range(0, len(st), 4000)])
        out.close()


def role_sink():
    import warren
    with warren.Worker() as w:
        inp = w.input(0)
        w.ready()
        t0, results, parts = None, 0, collections.defaultdict(bytes)
        for rec in inp:
            k = rec[:1]
            if k == b"R":
                results += 1
            elif k == b"T":
                t0 = float(rec[1:])
            else:
                wid, piece = rec[1:].split(b" ", 1)
                parts[wid] += piece
        stats = [json.loads(v) for v in parts.values()]
        last = max(t for s in stats for t in s["done"])
        s = {"wall": last - t0, "results": results, "stats": stats}
        r = report("warren", s["wall"], stats, len(stats))
        print(json.dumps(r), flush=True)
        out = os.environ.get("GC_SPLIT_OUT")
        if out:
            with open(os.path.join(out, "summary.json"), "w") as f:
                json.dump(s, f)


def main():
    args = sys.argv[1:]
    opt = lambda k, d: int(args[args.index(k) + 1]) if k in args else d  # noqa: E731
    n, items = opt("--workers", 4), opt("--items", 2000)
    mode = args[0] if args else "all"
    roles = {"source": role_source, "work": role_work, "sink": role_sink}
    if mode in roles:
        return roles[mode]()
    runs = {"threads": run_threads, "queue": run_queue, "warren": run_warren}
    rows = [runs[m](n, items) for m in (runs if mode == "all" else [mode])]
    print(f"{items} items, {n} workers; GC pauses timed with gc.callbacks\n")
    print(f"{'mode':9} {'wall s':>7} {'GCs':>5} {'GC ms':>7} {'longest ms':>10} {'gen':>3}  "
          f"stopped by the longest pause")
    for r in rows:
        who = ("%d of %d workers (finished nothing during it)" % (r["stopped"], n)
               if r["stopped"] == n else "in worker %d; workers %s finished items during it"
               % (r["in_worker"], r["kept_working"]))
        print(f"{r['mode']:9} {r['wall_s']:7.2f} {r['gcs']:5} {r.get('gc_total_ms', 0):7.1f} "
              f"{r.get('longest_ms', 0):10.2f} {r.get('longest_gen', '-'):>3}  {who}")
        if "with_startup_s" in r:
            print(f"{'':9} {r['with_startup_s']:7.2f}  (warren run, start-up of 6 interpreters "
                  "included)")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
