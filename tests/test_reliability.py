#!/usr/bin/env python3
"""test_reliability.py: the real `warren` under chaos and hostile workers.

    test_reliability.py WARREN TEST_WORKER CASE

Reuses test_supervisor.py's Run (a `warren --log-format json run` in a
fresh directory, its events parsed). Cases:
  chaos          --chaos SEED:RATE kills random workers, each kill logged
                 and followed by its reclaim and restart; the run stops clean
  chaos_config   the config key "chaos" does the same; a bad --chaos is usage
  hostile        a worker scribbles over the arena and SIGKILLs itself, again
                 and again: warren (built with ASan in the test build) never
                 crashes or hangs, logs arena.corrupt, restarts it, stops
  socket_mode    the control socket is 0600
  no_fd_leak     a worker's child (what the exec stage runs) sees no arena fd
  exactly_once   gen --resume -> file-sink --exactly-once under chaos: the
                 file equals the input exactly, in order, no duplicate
  soak           five stages with replicas (configs/soak.json) under chaos:
                 every record arrives (duplicates counted apart), heap back to
                 its baseline, every semaphore permit back, supervisor RSS flat.
                 bench/soak.py runs the same longer.
"""
import collections
import hashlib
import json
import os
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_supervisor as ts  # noqa: E402  (parses argv: WARREN TEST_WORKER CASE)
from test_supervisor import Run, check, fail  # noqa: E402


def kills_reclaimed(r, n):
    kills = r.wait(lambda: len(r.evs("chaos.kill")) >= n and r.evs("chaos.kill"),
                   "%d chaos kills" % n)
    for k in kills[:n]:
        r.wait(lambda: any(e.get("worker") == k["worker"] for e in r.evs("heap.reclaim")),
               "the reclaim of %s" % k["worker"])
    return kills


def case_chaos():
    r = Run("pipeline.json", extra=("--chaos", "42:20"))
    start = r.wait_event("chaos.start")[0]
    check(start["seed"] == 42 and start["rate"] == 20, "chaos.start: %s" % start)
    kills = kills_reclaimed(r, 6)
    pids = [k["pid"] for k in kills]
    check(len(set(pids)) == len(pids), "a pid killed twice: %s" % pids)
    check([k["kill"] for k in kills] == list(range(1, len(kills) + 1)), "kill numbers")
    check(len(r.evs("worker.start")) > 2, "workers restarted after the kills")
    check(not r.evs("arena.corrupt"), "corruption reported: %s" % r.evs("arena.corrupt"))
    r.stop()
    stop = r.evs("chaos.stop")
    check(stop and stop[0]["kills"] >= 6, "chaos.stop: %s" % stop)


def case_chaos_config():
    def edit(c):
        c["chaos"] = {"seed": 7, "rate": 20}
    r = Run("pipeline.json", edit)
    start = r.wait_event("chaos.start")[0]
    check(start["seed"] == 7, "chaos.start: %s" % start)
    kills_reclaimed(r, 3)
    r.stop()
    for bad in ("x", "1:0", "1:", "1:2:3", "-"):
        p = subprocess.run([ts.WARREN, "run", os.path.join(ts.CONFIGS, "pipeline.json"),
                            "--chaos", bad], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check(p.returncode == 2, "--chaos %s: exit %d" % (bad, p.returncode))


def case_hostile():
    r = Run("hostile.json")
    r.wait(lambda: len(r.evs("heap.reclaim", worker="vandal")) >= 12, "12 vandal reclaims")
    check(r.evs("arena.corrupt"), "no arena.corrupt event after 12 scribbles")
    rc, st = r.status("stats", must=False)
    check(st is not None, "warren stats does not answer")
    r.ctl("stop")
    try:
        r.p.wait(timeout=ts.WAIT)
    except subprocess.TimeoutExpired:
        r.dump()
        fail("warren did not stop")
    r.t.join(5)
    # workers may crash on what the vandal wrote; the supervisor (its own
    # lines, not its workers' output events) must not
    own = [l for l in r.lines if '"event":"worker.output"' not in l]
    bad = [l for l in own if "Sanitizer" in l or "runtime error" in l]
    if bad or r.p.returncode not in (0, 1):
        r.dump()
        fail("warren exited %d: %s" % (r.p.returncode, bad[:3]))
    print("%d vandal incarnations, %d arena.corrupt events" %
          (len(r.evs("heap.reclaim", worker="vandal")), len(r.evs("arena.corrupt"))))


def case_socket_mode():
    """The control socket is the owner's alone (0600)."""
    r = Run("sleepers.json")
    r.all_ready()
    mode = stat.S_IMODE(os.stat(r.sock).st_mode)
    check(mode & 0o077 == 0, "control socket mode %o" % mode)
    r.stop()


def case_no_fd_leak():
    r = Run("fdleak.json")
    r.all_ready()
    path = os.path.join(r.dir, "fds.txt")
    r.wait(lambda: os.path.exists(path) and open(path).read().strip(), "the child's fd list")
    fds = open(path).read()
    check("memfd:" not in fds, "the child sees the arena:\n" + fds)
    r.stop()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int([l for l in f if l.startswith("VmRSS:")][0].split()[1])


def checksum(lines):
    """Order-independent: the sum of each line's 64-bit hash."""
    return sum(int.from_bytes(hashlib.blake2b(l.encode(), digest_size=8).digest(), "little")
               for l in lines) % (1 << 64)


def soak(count, rate, chaos, seed=1, sinks=2):
    """Run configs/soak.json moving `count` records at `rate` a second, `chaos`
    kills a second; returns the figures. Fails on any loss or leak."""
    def edit(c):
        c["workers"][0]["exec"][3:7] = ["--count", str(count), "--rate", str(rate)]
        c["workers"][-1]["replicas"] = sinks
    r = Run("soak.json", edit, extra=("--chaos", "%d:%g" % (seed, chaos)))
    r.wait_event("chaos.start")
    rss = [rss_kib(r.p.pid)]
    end = time.monotonic() + 3600
    while r.p.poll() is None and time.monotonic() < end:
        time.sleep(0.2)
        if r.evs("worker.exit", code=2):
            r.dump()
            fail("a stage refused its arguments")
        try:
            rss.append(rss_kib(r.p.pid))
        except (OSError, IndexError):
            break
    r.finish()  # the run ends by itself once the sink drained everything
    got = []
    for k in range(sinks):
        with open(os.path.join(r.dir, "out.%d" % k)) as f:
            got += f.read().splitlines()
    want = [str(i) for i in range(count)]
    seen, wanted = collections.Counter(got), set(want)
    lost = [x for x in want if x not in seen]
    extra = [x for x in seen if x not in wanted]
    heap = r.evs("heap.stats")[-1]
    sems = r.evs("semaphore.stats")
    fig = {
        "records": count, "received": len(got), "kills": len(r.evs("chaos.kill")),
        "restarts": len(r.evs("worker.start")) - 9, "duplicates": len(got) - len(seen),
        "lost": len(lost), "foreign": len(extra),
        "checksum_source": "%016x" % checksum(want), "checksum_sink": "%016x" % checksum(seen),
        "leaked_bytes": heap["bytes"] - heap["baseline_bytes"],
        "lost_permits": sum(e["initial"] - e.get("value", 0) for e in sems),
        "rss_kib_first": rss[0], "rss_kib_max": max(rss), "rss_kib_last": rss[-1],
        "corrupt": len(r.evs("arena.corrupt")),
    }
    print(json.dumps(fig))
    check(not lost and not extra, "lost %d records (%s...), %d foreign" %
          (len(lost), lost[:5], len(extra)))
    check(fig["checksum_source"] == fig["checksum_sink"], "checksums differ")
    check(fig["leaked_bytes"] == 0, "heap: %s" % heap)
    check(sems and fig["lost_permits"] == 0, "semaphores: %s" % sems)
    check(fig["corrupt"] == 0, "corruption: %s" % r.evs("arena.corrupt"))
    check(fig["kills"] > 0 or chaos < 0.01, "chaos killed nothing")
    return fig


def case_soak():
    fig = soak(count=10000, rate=2000, chaos=8)
    # flat: what the supervisor holds at the end is what it held early on
    check(fig["rss_kib_last"] <= fig["rss_kib_first"] * 1.5 + 16384, "RSS grew: %s" % fig)


def case_exactly_once():
    def edit(c):
        c["channels"] = [{"name": "c0", "capacity": 64, "slot_size": 64}]
        c["semaphores"] = []
        c["workers"] = [
            {"name": "src", "out": ["c0"], "exec": ["warren-worker", "gen", "--resume",
                                                    "--count", "20000", "--rate", "8000"]},
            {"name": "sink", "in": ["c0"],
             "exec": ["warren-worker", "file-sink", "--exactly-once", "out"]}]
    r = Run("soak.json", edit, extra=("--chaos", "3:5"))
    r.finish()
    with open(os.path.join(r.dir, "out")) as f:
        got = f.read().splitlines()
    kills = r.evs("chaos.kill")
    check(len(kills) > 0, "chaos killed nothing")
    first_bad = next((i for i, x in enumerate(got) if x != str(i)), None)
    check(got == [str(i) for i in range(20000)],
          "%d lines, %d kills (%s); first wrong line %s: %r" %
          (len(got), len(kills), collections.Counter(k["worker"] for k in kills), first_bad,
           got[first_bad - 2:first_bad + 2] if first_bad else None))
    print("exactly once: 20000 records, %d kills (%s), 0 duplicates, 0 lost" %
          (len(kills), dict(collections.Counter(k["worker"] for k in kills))))


if __name__ == "__main__":
    ts.main(globals())
