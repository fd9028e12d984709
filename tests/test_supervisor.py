#!/usr/bin/env python3
"""test_supervisor.py: the real `warren` binary on real processes.

    test_supervisor.py WARREN TEST_WORKER CASE

Each CASE is one meson test (tests/meson.build). The configs come from
tests/configs/; the directory of warren-test-worker is put first on PATH so
they can name it bare. Every case runs `warren --log-format json run` in a
fresh temporary directory and asserts on the sequence of its events and on
`warren status/stats --json`, never on how long something took (timeouts
below only bound the waiting). Exit code 77 = skipped.
"""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

WARREN, WORKER, CASE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
# upper bound on any wait, never an assertion about time; scripts/valgrind.sh
# raises it (warren runs 10-50x slower under memcheck)
WAIT = float(os.environ.get("WARREN_TEST_WAIT", "60"))
_tmpdirs = []
atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _tmpdirs])


def mkdtemp():
    d = tempfile.mkdtemp(prefix="warren-test-")
    _tmpdirs.append(d)
    return d


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


class Run:
    def __init__(self, config, edit=None, extra=(), default_socket=False):
        self.dir = mkdtemp()
        os.chmod(self.dir, 0o755)
        with open(os.path.join(CONFIGS, config)) as f:
            cfg = json.load(f)
        if edit:
            edit(cfg)
        self.cfg_path = os.path.join(self.dir, config)
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f)
        # default_socket: warren picks $XDG_RUNTIME_DIR/warren/NAME.sock itself
        self.sock = (os.path.join(self.dir, "warren", cfg["name"] + ".sock") if default_socket
                     else os.path.join(self.dir, "ctl.sock"))
        sock_args = () if default_socket else ("--socket", self.sock)
        self.env = dict(os.environ)
        self.env["PATH"] = os.path.dirname(WORKER) + ":" + self.env.get("PATH", "/usr/bin:/bin")
        self.env["XDG_RUNTIME_DIR"] = self.dir
        self.events = []
        self.lines = []
        self.lock = threading.Lock()
        self.p = subprocess.Popen(
            [WARREN, "--log-format", "json", "run", self.cfg_path, *sock_args, *extra],
            cwd=self.dir, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for raw in self.p.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.lock:
                self.lines.append(line)
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    pass

    def evs(self, event=None, **fields):
        with self.lock:
            return [e for e in self.events if (event is None or e.get("event") == event)
                    and all(e.get(k) == v for k, v in fields.items())]

    def wait(self, pred, what):
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            r = pred()
            if r:
                return r
            if self.p.poll() is not None:
                time.sleep(0.1)  # let the reader catch up
                r = pred()
                if r:
                    return r
                self.dump()
                fail("warren exited (%s) while waiting for %s" % (self.p.returncode, what))
            time.sleep(0.02)
        self.dump()
        fail("timed out waiting for " + what)

    def wait_event(self, event, n=1, **fields):
        return self.wait(lambda: len(self.evs(event, **fields)) >= n and self.evs(event, **fields),
                         "%d x %s %s" % (n, event, fields))

    def ctl(self, *args):
        r = subprocess.run([WARREN, *args, "--socket", self.sock], env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    def status(self, cmd="status", must=True):
        rc, out, err = self.ctl(cmd, "--json")
        if not out.strip() and not must:
            return rc, None
        check(out.strip(), "no reply from warren %s: %s" % (cmd, err))
        return rc, json.loads(out)

    def workers(self):
        return {w["name"]: w for w in self.status()[1]["workers"]}

    def all_ready(self):
        return self.wait(lambda: self.status(must=False)[0] == 0, "every worker ready")

    def finish(self, expect=0):
        try:
            self.p.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.dump()
            fail("warren did not exit")
        self.t.join(5)
        if self.p.returncode != expect:
            self.dump()
            fail("warren exited %d, expected %d" % (self.p.returncode, expect))

    def stop(self, expect=0):
        self.ctl("stop")
        self.finish(expect)

    def dump(self):
        with self.lock:
            print("\n".join(self.lines[-80:]))


def kill(pid, sig):
    """os.kill for a worker pid from the supervisor: never 0 or -1 (own group, everything)."""
    check(isinstance(pid, int) and pid > 1, "refusing to signal pid %r" % (pid,))
    os.kill(pid, sig)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or before the read
        return False


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            tasks = os.listdir("/proc/%d/task" % p)
        except OSError:  # exited meanwhile
            tasks = []
        for t in tasks:
            try:
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                kids = []
            out += kids
            todo += kids
    return out


def total(r, name):
    """Sum of the counts the incarnations of a test worker appended to `name`."""
    with open(os.path.join(r.dir, name)) as f:
        return sum(int(x) for x in f.read().split())


# ------------------------------------------------------------------ cases

def case_cli():
    for args, code in ((["--help"], 0), (["--version"], 0), ([], 2), (["frobnicate"], 2),
                       (["run"], 2), (["--log-format", "xml", "status"], 2),
                       (["check", os.path.join(CONFIGS, "bad.json")], 2)):
        r = subprocess.run([WARREN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        check(r.returncode == code, "warren %s exited %d, expected %d" % (args, r.returncode, code))
    r = subprocess.run([WARREN, "check", os.path.join(CONFIGS, "bad.json")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = r.stderr.decode()
    for path in ("channels[0].capacity", "workers[0].out[1]", "workers[1].name",
                 "workers[1].exec[0]", "workers[1].depends_on[0]"):
        check(path + ":" in err, "check does not name %s:\n%s" % (path, err))


def case_start_stop():
    r = Run("order.json")
    r.all_ready()
    # captured output, prefixed by the worker's label
    r.wait_event("worker.output", worker="b.1", stream="stderr", msg="hello from b")
    # depends_on: a ready before any b starts, every b ready before c starts
    seq = [(e["event"], e["worker"]) for e in r.evs() if e["event"] in
           ("worker.start", "worker.ready")]
    pos = {x: i for i, x in enumerate(seq)}
    check(pos[("worker.ready", "a")] < pos[("worker.start", "b.0")], "b started before a ready")
    check(pos[("worker.ready", "b.1")] < pos[("worker.start", "c")], "c started before b ready")
    rc, st = r.status()
    check(rc == 0 and st["all_ready"], "status: %s" % st)
    pids = [w["pid"] for w in st["workers"]]
    r.stop()
    # stop in reverse order: c before the b's, the b's before a
    ex = [e["worker"] for e in r.evs("worker.exit")]
    check(ex.index("c") < ex.index("b.0") and ex.index("b.1") < ex.index("a"),
          "stop order %s" % ex)
    check(r.evs("supervisor.stop", exit_code=0), "no supervisor.stop")
    check(r.evs("heap.stats"), "no final heap.stats")
    check(not any(alive(p) for p in pids), "a worker outlived the run")


def case_status_not_ready():
    def edit(c):
        c["workers"][1]["exec"] = ["warren-test-worker", "plain"]  # never calls ready
        c["workers"][1]["ready"] = "notify"
    r = Run("strategy.json", edit)
    r.wait_event("worker.ready", worker="c")
    rc, st = r.status()
    check(rc != 0 and not st["all_ready"], "status must fail while b is not ready")
    check({w["name"]: w["state"] for w in st["workers"]}["b"] == "starting", "b: %s" % st)
    r.stop()


def case_crash_reclaim():
    r = Run("crash.json")
    r.wait_event("heap.reclaim", worker="crasher")
    r.all_ready()
    rec = r.evs("heap.reclaim", worker="crasher")[0]
    check(rec["bytes"] >= 262144 and rec["blocks"] >= 256, "reclaim event %s" % rec)
    check(r.evs("worker.exit", worker="crasher", signal="Killed"), "crasher did not die by SIGKILL")
    rc, st = r.status("stats")
    heap = st["heap"]
    check(heap["check"] == "ok", "heap check: %s" % heap["check"])
    check(heap["bytes"] == heap["baseline_bytes"], "heap not back to baseline: %s" % heap)
    check(heap["reclaimed_bytes"] >= 262144, "stats: %s" % heap)
    w = r.workers()["crasher"]
    check(w["state"] == "ready" and w["restarts"] == 1 and w["incarnation"] == 2, "crasher %s" % w)
    r.stop()


def case_backoff_crashloop():
    r = Run("crashloop.json")
    r.wait_event("worker.crashloop", worker="flaky")
    # retried at the cap: it starts again after the crashloop
    n_before = len(r.evs("worker.start", worker="flaky"))
    r.wait_event("worker.start", n_before + 1, worker="flaky")
    rs = r.evs("worker.restart", worker="flaky")
    states = [e["state"] for e in rs]
    check(states[:5] == ["backoff"] * 4 + ["crashloop"], "restart states %s" % states)
    d = [e["delay_ms"] for e in rs[:5]]
    # 20 ms doubling, +-20 % jitter, capped at 300 ms; the crashloop waits the cap
    for i in range(3):
        check(1.3 <= d[i + 1] / d[i] <= 3.1, "delays do not double: %s" % d)
    check(240 <= d[4] <= 360, "crashloop delay is not the cap: %s" % d)
    st = r.workers()["flaky"]
    check(st["state"] != "exited" and st["restarts"] >= 5, "status: %s" % st)
    # the state sequence, from the lifecycle table
    # (exec success makes a plain command ready; then it exits)
    seq = [e["to"] for e in r.evs("worker.state", worker="flaky")][:8]
    check(seq == ["starting", "ready", "backoff", "stopped"] * 2,
          "state sequence %s" % seq)
    r.wait(lambda: r.workers()["flaky"]["state"] == "crashloop", "crashloop shown in status")
    # `warren restart` resets the backoff: the next failure backs off from the start
    n = len(rs)
    r.wait(lambda: r.workers()["flaky"]["state"] in ("crashloop", "backoff"), "a backoff state")
    rc, _, err = r.ctl("restart", "flaky")
    check(rc == 0, "restart: %s" % err)
    nxt = r.wait(lambda: [e for e in r.evs("worker.restart", worker="flaky")[n:]
                          if e["state"] == "backoff" and e["delay_ms"] <= 30], "a reset backoff")
    check(nxt, "no reset")
    rc, _, err = r.ctl("restart", "nobody")
    check(rc == 1 and "no such worker" in err, "restart of an unknown worker: %d %s" % (rc, err))
    r.stop()


def case_give_up():
    def edit(c):
        c["restart"]["on_give_up"] = "exit"
    r = Run("crashloop.json", edit)
    r.finish(expect=1)
    check(r.evs("worker.crashloop"), "no crashloop")
    check(r.evs("supervisor.stop", exit_code=1), "no supervisor.stop with exit_code 1")


def strategy(name, expect_restarted):
    def edit(c):
        c["restart"]["strategy"] = name
    r = Run("strategy.json", edit)
    r.all_ready()
    before = r.workers()
    kill(before["b"]["pid"], signal.SIGKILL)
    r.wait_event("heap.reclaim", worker="b")
    r.wait(lambda: all(w["state"] == "ready" and w["pid"] for w in r.workers().values())
           and r.workers()["b"]["incarnation"] == 2, "every worker ready again")
    after = r.workers()
    restarted = sorted(n for n in after if after[n]["incarnation"] != before[n]["incarnation"])
    check(restarted == expect_restarted, "%s restarted %s, expected %s" %
          (name, restarted, expect_restarted))
    r.stop()


def case_one_for_one():
    strategy("one_for_one", ["b"])


def case_rest_for_one():
    strategy("rest_for_one", ["b", "c"])


def case_one_for_all():
    strategy("one_for_all", ["a", "b", "c"])


def case_stop_timeout():
    r = Run("stubborn.json")
    r.all_ready()
    kill(r.p.pid, signal.SIGTERM)
    r.finish(expect=0)
    check(r.evs("worker.kill", ), "deaf was not SIGKILLed after stop_timeout")
    check(r.evs("worker.exit", worker="deaf", signal="Killed"), "deaf: %s" % r.evs("worker.exit"))
    check(r.evs("worker.exit", worker="polite", code=0), "polite: %s" % r.evs("worker.exit"))


def case_sigkill_leaves_nothing():
    """SIGKILL the supervisor: within 1 s no process of the run is left (the
    guard kills every worker group), and the run leaves no file behind: no
    control socket, no $XDG_RUNTIME_DIR/warren, nothing in /dev/shm."""
    r = Run("orphans.json", default_socket=True)
    r.all_ready()
    files = set(os.listdir(r.dir))
    check(os.path.exists(r.sock), "no control socket at %s" % r.sock)
    pids = descendants(r.p.pid)
    with open(os.path.join(r.dir, "child.pid")) as f:
        child = int(f.read())
    check(child in pids, "the worker's child %d is not under the supervisor %s" % (child, pids))
    check(len(pids) >= 4, "expected the guard, sleep, the worker, its child: %s" % pids)
    kill(r.p.pid, signal.SIGKILL)
    r.p.wait()
    dead = time.monotonic()
    while any(alive(p) for p in pids) and time.monotonic() - dead < 1.0:
        time.sleep(0.005)
    gone_ms = (time.monotonic() - dead) * 1000
    check(not any(alive(p) for p in pids), "alive 1 s after the supervisor's death: %s" %
          [p for p in pids if alive(p)])
    r.wait(lambda: not os.path.exists(os.path.join(r.dir, "warren")),
           "the guard to remove $XDG_RUNTIME_DIR/warren")
    now = set(os.listdir(r.dir))
    check(now == files - {"warren"}, "the run directory held %s, now %s" % (files, now))
    shm = [f for f in os.listdir("/dev/shm") if any(".%d." % p in f for p in [r.p.pid] + pids)]
    check(not shm, "left in /dev/shm: %s" % shm)
    print("%d processes gone %.0f ms after the supervisor's SIGKILL; nothing left behind" %
          (len(pids), gone_ms))


def case_orphans_reaped():
    # a worker's child that outlives the worker is reaped (no zombie)
    r = Run("orphans.json")
    r.all_ready()
    with open(os.path.join(r.dir, "child.pid")) as f:
        child = int(f.read())
    kill(r.workers()["parent"]["pid"], signal.SIGKILL)
    r.wait_event("heap.reclaim", worker="parent")
    r.wait(lambda: not os.path.exists("/proc/%d" % child), "the orphan reaped")
    r.stop()


def case_peer_uid():
    if os.geteuid() != 0:
        print("SKIP: needs root to connect as another uid")
        sys.exit(77)
    r = Run("sleepers.json")
    r.all_ready()
    os.chmod(r.sock, 0o666)  # let the other uid reach the socket: SO_PEERCRED must refuse
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(r.sock)
            try:
                s.sendall(b'{"cmd":"stop"}\n')
            except BrokenPipeError:
                pass  # refused and closed before we wrote: the answer is still there
            reply = s.makefile().readline()
            os._exit(0 if '"permission denied"' in reply else 1)
        except Exception as e:
            print("child:", e)
            os._exit(2)
    _, st = os.waitpid(pid, 0)
    check(os.WEXITSTATUS(st) == 0, "another uid was not refused (%d)" % os.WEXITSTATUS(st))
    # the event goes through the log pipe, the reply through the socket: either may come first
    r.wait_event("control.refused", uid=65534)
    check(r.p.poll() is None, "another uid stopped the run")
    r.stop()


def case_pipeline_drain():
    r = Run("pipeline.json")
    r.all_ready()
    r.wait(lambda: [e for e in r.evs("channel.stats", channel="nums") if e["received"] > 200],
           "records flowing (channel.stats)")
    rc, st = r.status("stats")
    check(st["channels"] and st["channels"][0]["channel"] == "nums", "stats: %s" % st)
    r.stop()
    # the source was stopped first; the sink drained and ended on its own
    to = [(e["worker"], e["to"]) for e in r.evs("worker.state")]
    check(("source", "stopping") in to, "source was not stopped: %s" % to)
    check(("sink", "stopping") not in to and ("sink", "exited") in to,
          "sink did not finish by itself: %s" % to)
    check(r.evs("worker.exit", worker="sink", code=0), "sink: %s" % r.evs("worker.exit"))
    produced, consumed = total(r, "produced.0"), total(r, "consumed.0")
    check(produced > 0 and produced == consumed, "produced %d, consumed %d" % (produced, consumed))
    last = r.evs("channel.stats", channel="nums")[-1]
    check(last["closed"] and last["depth"] == 0 and last["received"] == produced, "%s" % last)
    heap = r.evs("heap.stats")[-1]
    check(heap["check"] == "ok" and heap["worker_bytes"] == 0, "heap %s" % heap)


def case_sem_reclaim():
    r = Run("semaphore.json")
    r.wait_event("heap.reclaim", worker="holder")
    r.all_ready()
    rec = r.evs("heap.reclaim", worker="holder")[0]
    check(rec["permits"] == 2, "permits not returned: %s" % rec)
    r.wait_event("worker.output", worker="holder", msg="took every permit: yes")
    r.stop()


def case_default_socket():
    # no --socket: $XDG_RUNTIME_DIR/warren/NAME.sock, found by --name or as the only run
    d = mkdtemp()
    env = dict(os.environ, XDG_RUNTIME_DIR=d)
    p = subprocess.Popen([WARREN, "run", os.path.join(CONFIGS, "sleepers.json")], env=env,
                         cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = os.path.join(d, "warren", "sleepers.sock")
    end = time.monotonic() + WAIT
    while time.monotonic() < end and subprocess.run(
            [WARREN, "status"], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL).returncode != 0:
        time.sleep(0.05)
    mode = os.stat(sock).st_mode & 0o777
    check(mode == 0o600, "socket mode %o" % mode)
    check(oct(os.stat(os.path.dirname(sock)).st_mode & 0o777) == oct(0o700), "run dir mode")
    r = subprocess.run([WARREN, "status", "--name", "sleepers"], env=env, stdout=subprocess.PIPE)
    check(r.returncode == 0 and b"ready" in r.stdout, "status --name: %s" % r.stdout)
    r = subprocess.run([WARREN, "status", "--name", "nobody"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    check(r.returncode == 1, "status of an unknown run exited %d" % r.returncode)
    subprocess.run([WARREN, "stop"], env=env, stdout=subprocess.DEVNULL)
    check(p.wait(timeout=WAIT) == 0, "exit %s" % p.returncode)
    check(not os.path.exists(sock), "socket left behind")
    check(not os.path.exists(os.path.dirname(sock)), "$XDG_RUNTIME_DIR/warren left behind")


def case_start_timeout():
    def edit(c):
        c["workers"][1]["exec"] = ["warren-test-worker", "plain"]  # never calls ready
        c["workers"][1]["start_timeout_s"] = 0.2
        c["workers"][1]["restart"] = "never"
    r = Run("strategy.json", edit)
    r.wait_event("worker.timeout")
    r.wait_event("worker.failed")
    check(r.evs("worker.exit", worker="b", signal="Killed"), "b was not killed")
    check(r.workers()["b"]["state"] == "exited", "b: %s" % r.workers()["b"])
    r.stop(expect=1)  # a worker failed for good: a runtime failure


def case_ready_exec():
    # a libwarren worker (it has channels: started without the shim) with
    # "ready": "exec" is ready once uv_spawn's exec succeeded
    def edit(c):
        c["workers"][1]["ready"] = "exec"
    r = Run("pipeline.json", edit)
    r.all_ready()
    r.stop()


def case_text_log():
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(WORKER) + ":" + env.get("PATH", "")
    d = mkdtemp()
    sock = os.path.join(d, "s.sock")
    p = subprocess.Popen([WARREN, "run", os.path.join(CONFIGS, "order.json"), "--socket", sock],
                         env=env, cwd=d, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        if subprocess.run([WARREN, "status", "--socket", sock], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0:
            break
        time.sleep(0.05)
    subprocess.run([WARREN, "stop", "--socket", sock])
    out = p.communicate(timeout=WAIT)[0].decode()
    check(p.returncode == 0, "exit %d" % p.returncode)
    check("c | hello from c" in out and "b.0 | hello from b" in out, out)


def case_watchdog():
    """watchdog_s: a worker that stops beating is found stuck, SIGKILLed, and
    only then reclaimed and restarted; workers blocked on an empty channel
    (idle) or a semaphore (waiter) for longer than watchdog_s are not."""
    r = Run("watchdog.json")
    r.wait_event("worker.output", worker="stuck", msg="stalling")
    st = r.wait_event("worker.stuck", worker="stuck")[0]
    check(st["watchdog_s"] == 1 and st["since_s"] >= 1 and st["pid"] > 1, "stuck %s" % st)
    ex = r.wait_event("worker.exit", worker="stuck", by="watchdog")[0]
    check(ex["signal"] == "Killed" and ex["pid"] == st["pid"], "exit %s" % ex)
    rec = r.wait_event("heap.reclaim", worker="stuck")[0]
    check(rec["blocks"] >= 64, "the stuck worker's blocks were not reclaimed: %s" % rec)
    r.wait_event("worker.ready", 2, worker="stuck")
    # killed first, reclaimed after its exit, restarted after the reclaim
    order = [(e["event"], e.get("by")) for e in r.evs() if e.get("worker") == "stuck" and
             e["event"] in ("worker.stuck", "worker.exit", "heap.reclaim", "worker.start")]
    check(order == [("worker.start", None), ("worker.stuck", None), ("worker.exit", "watchdog"),
                    ("heap.reclaim", None), ("worker.start", None)], "order %s" % order)
    w = r.workers()["stuck"]
    check(w["incarnation"] == 2 and w["restarts"] == 1 and w["watchdog_kills"] == 1,
          "stuck: %s" % w)
    # the idle workers have been blocked for more than watchdog_s already;
    # give them two more periods
    time.sleep(2)
    ws = r.workers()
    for n in ("idle", "waiter"):
        check(not r.evs("worker.stuck", worker=n), "%s was taken for stuck" % n)
        check(ws[n]["restarts"] == 0 and ws[n]["watchdog_kills"] == 0 and
              ws[n]["heartbeat_age_s"] is not None, "%s: %s" % (n, ws[n]))
    check("watchdog_s" not in ws["mute"], "mute has no watchdog: %s" % ws["mute"])
    _, out, _ = r.ctl("status")
    check("HEARTBEAT" in out and "/1s" in out, "status shows no heartbeat:\n" + out)
    check(len(r.evs("worker.stuck")) == 1, "stuck events %s" % r.evs("worker.stuck"))
    _, out, _ = r.ctl("stats", "--prometheus")
    check('warren_worker_watchdog_kills_total{worker="stuck",replica="0"} 1' in out,
          "no watchdog kill in the metrics:\n" + out)
    r.stop()
    check(r.evs("heap.stats")[-1]["check"] == "ok", "heap %s" % r.evs("heap.stats")[-1])


def case_watchdog_notify():
    """A plain command written for systemd's watchdog (WATCHDOG_USEC,
    WATCHDOG_PID, WATCHDOG=1 on NOTIFY_SOCKET) works unchanged: the one that
    keeps sending survives, the one that stops is killed and restarted."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workers", "sd-watchdog.py")

    def edit(c):
        for w in c["workers"]:
            w["exec"] = [sys.executable if x == "python3" else script if x == "sd-watchdog.py"
                         else x for x in w["exec"]]
    r = Run("watchdog-notify.json", edit)
    st = r.wait_event("worker.stuck", worker="quitter")[0]
    ex = r.wait_event("worker.exit", worker="quitter", by="watchdog")[0]
    check(ex["signal"] == "Killed" and ex["pid"] == st["pid"], "exit %s" % ex)
    r.wait_event("worker.ready", 2, worker="quitter")
    time.sleep(2)  # the pinger has beaten for longer than watchdog_s by now; two more periods
    ws = r.workers()
    check(not r.evs("worker.stuck", worker="pinger") and ws["pinger"]["restarts"] == 0,
          "the pinger was killed: %s" % ws["pinger"])
    with open(os.path.join(r.dir, "pinger.seen")) as f:
        usec, wpid, pid = (int(x) for x in f.read().split())
    check(usec == 1000000 and wpid == pid == ws["pinger"]["pid"],
          "WATCHDOG_USEC=%d WATCHDOG_PID=%d in pid %d (worker pid %d)" %
          (usec, wpid, pid, ws["pinger"]["pid"]))
    env = open("/proc/%d/environ" % ws["plain"]["pid"], "rb").read().split(b"\0")
    check(not [e for e in env if e.startswith((b"WATCHDOG_", b"NOTIFY_SOCKET="))],
          "a worker without watchdog_s got %s" % [e for e in env if b"WATCHDOG" in e])
    r.stop()


def main(cases):
    """Run case CASE of `cases` (tests/test_reliability.py reuses Run and this)."""
    cases = {k[5:]: v for k, v in cases.items() if k.startswith("case_")}
    if CASE not in cases:
        fail("unknown case %s (have: %s)" % (CASE, ", ".join(cases)))
    cases[CASE]()
    print("ok", CASE)


if __name__ == "__main__":
    main(globals())
