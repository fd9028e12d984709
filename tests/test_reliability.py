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
  no_fd_leak     a worker's child (what the exec stage runs) sees no arena fd
"""
import json
import os
import subprocess
import sys

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


def case_no_fd_leak():
    r = Run("fdleak.json")
    r.all_ready()
    path = os.path.join(r.dir, "fds.txt")
    r.wait(lambda: os.path.exists(path) and open(path).read().strip(), "the child's fd list")
    fds = open(path).read()
    check("memfd:" not in fds, "the child sees the arena:\n" + fds)
    r.stop()


if __name__ == "__main__":
    ts.main(globals())
