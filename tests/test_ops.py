#!/usr/bin/env python3
"""test_ops.py: the operations features of `warren` (issue 10) on real processes.

    test_ops.py WARREN TEST_WORKER CASE

Reload, metrics (scraped with curl), events, top (under tmux), log files,
hooks, process settings read back from /proc, sd_notify and PID 1. Built on
the helpers of test_supervisor.py; same rules: assert on events, replies and
/proc, never on how long something took. Exit code 77 = skipped.
"""
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

from test_supervisor import (CONFIGS, WAIT, WARREN, WORKER, CASE, Run, alive, check, descendants,
                             fail, kill, mkdtemp, total)


def rewrite(r, edit):
    with open(r.cfg_path) as f:
        cfg = json.load(f)
    edit(cfg)
    with open(r.cfg_path, "w") as f:
        json.dump(cfg, f)


def pids(r):
    return {n: w["pid"] for n, w in r.workers().items()}


def environ(pid):
    with open("/proc/%d/environ" % pid, "rb") as f:
        return dict(x.split(b"=", 1) for x in f.read().split(b"\0") if b"=" in x)


def skip(why):
    print("SKIP:", why)
    sys.exit(77)


# ------------------------------------------------------------------ reload

def case_reload_unchanged():
    r = Run("strategy.json")
    r.all_ready()
    before = pids(r)
    rc, out, err = r.ctl("reload", "--json")
    check(rc == 0, "reload: %s %s" % (out, err))
    rep = json.loads(out)
    rc, out, err = r.ctl("reload")  # again, as text
    check(rc == 0 and out.startswith("reload: restart [] add [] remove [] rebuild []"), out)
    check(rep["restart"] == [] and rep["add"] == [] and rep["unchanged"] == 3, "plan %s" % rep)
    r.wait_event("supervisor.reloaded", 2)
    r.all_ready()
    check(pids(r) == before, "an unchanged reload restarted workers: %s -> %s" %
          (before, pids(r)))
    r.stop()


def case_reload_changed():
    r = Run("strategy.json")
    r.all_ready()
    before = pids(r)
    envf = os.path.join(r.dir, "b.env")
    with open(envf, "w") as f:
        f.write("# b's environment\nexport FROM_FILE='one'\n")

    def edit(c):
        c["workers"][1]["env"] = {"GREETING": "hello"}
        c["workers"][1]["env_file"] = "b.env"
        c["workers"].append({"name": "d", "exec": ["warren-test-worker", "ready"],
                             "ready": "notify"})
    rewrite(r, edit)
    os.kill(r.p.pid, signal.SIGHUP)  # SIGHUP is a reload too
    r.wait_event("supervisor.reloaded")
    plan = r.evs("supervisor.reload")[0]
    check(plan["restart"] == ["b"] and plan["add"] == ["d"], "plan %s" % plan)
    r.all_ready()
    after = pids(r)
    check(after["a"] == before["a"] and after["c"] == before["c"], "a or c restarted")
    check(after["b"] != before["b"] and "d" in after, "b not restarted / d not added: %s" % after)
    env = environ(after["b"])
    check(env.get(b"GREETING") == b"hello" and env.get(b"FROM_FILE") == b"one", "env %s" % env)
    # the env_file's content alone is a change: only b restarts again
    with open(envf, "w") as f:
        f.write("FROM_FILE=two\n")
    rc, out, err = r.ctl("reload", "--json")
    check(rc == 0 and json.loads(out)["restart"] == ["b"], "reload: %s %s" % (out, err))
    r.wait_event("supervisor.reloaded", 2)
    r.all_ready()
    again = pids(r)
    check(environ(again["b"]).get(b"FROM_FILE") == b"two", "env_file change not applied")
    check(all(again[n] == after[n] for n in ("a", "c", "d")), "%s -> %s" % (after, again))
    r.stop()


def case_reload_invalid():
    r = Run("strategy.json")
    r.all_ready()
    before = pids(r)
    good = open(r.cfg_path).read()

    def edit(c):
        c["workers"][1]["restrt"] = "always"
        c["workers"][2]["depends_on"] = ["nobody"]
    rewrite(r, edit)
    rc, out, err = r.ctl("reload", "--json")
    check(rc == 2 and "workers[1].restrt" in err and "workers[2].depends_on[0]" in err,
          "invalid reload: rc %d\n%s" % (rc, err))
    with open(r.cfg_path, "w") as f:
        f.write(good[:-3])  # not JSON
    os.kill(r.p.pid, signal.SIGHUP)
    r.wait_event("supervisor.reload", 2, ok=False)
    with open(r.cfg_path, "w") as f:
        f.write(good)
    rewrite(r, lambda c: c.update(heap={"size": "32MiB"}))
    rc, out, err = r.ctl("reload", "--json")
    check(rc == 2 and "heap.size" in err, "heap change: %s" % err)
    rc, out, err = r.ctl("reload")  # text output
    check(rc == 2 and "invalid config; the old one keeps running" in err, err)
    check(not r.evs("supervisor.reloaded"), "an invalid config was applied")
    rc, st = r.status()
    check(rc == 0 and pids(r) == before, "the old config does not run as before: %s" % st)
    r.stop()


def case_reload_channel():
    r = Run("pipeline.json")
    r.all_ready()
    r.wait(lambda: [e for e in r.evs("channel.stats", channel="nums") if e["sent"] > 100],
           "records flowing")
    pause = os.path.join(r.dir, "pause")
    open(pause, "w").close()  # the sink stops receiving: the channel fills up
    r.wait(lambda: [e for e in r.evs("channel.stats", channel="nums") if e["depth"] == 64],
           "a full channel")

    def edit(c):
        c["channels"][0]["capacity"] = 256  # a new shape: producer and consumer stop
    rewrite(r, edit)
    rc, out, err = r.ctl("reload", "--json")
    check(rc == 0 and sorted(json.loads(out)["restart"]) == ["sink", "source"] and
          json.loads(out)["rebuild"] == ["nums"], "plan: %s %s" % (out, err))
    r.wait_event("supervisor.reloaded")
    os.unlink(pause)
    carried = r.wait_event("channel.rebuild", channel="nums")[0]["records"]
    # (the sink may take one more record it was already about to receive)
    check(carried > 0, "no records carried into the new channel")
    r.all_ready()
    r.wait(lambda: [e for e in r.evs("channel.stats", channel="nums")
                    if e["capacity"] == 256 and e["sent"] > 100], "records flowing again")
    r.stop()
    produced, consumed = total(r, "produced.0"), total(r, "consumed.0")
    check(produced > 0 and produced == consumed,
          "records lost across the rebuild: produced %d, consumed %d (carried %s)" %
          (produced, consumed, r.evs("channel.rebuild")))


def case_reload_producer():
    # Only the producer changes; it closes its output when stopped (as the stock
    # stages do), so the channel is rebuilt and its consumer restarted with it.
    r = Run("pipeline.json")
    r.all_ready()
    r.wait(lambda: [e for e in r.evs("channel.stats", channel="nums") if e["sent"] > 100],
           "records flowing")
    rewrite(r, lambda c: c["workers"][0].update(env={"V": "2"}))
    rc, out, err = r.ctl("reload", "--json")
    check(rc == 0 and json.loads(out)["restart"] == ["source"], "plan: %s %s" % (out, err))
    r.wait_event("reload.cascade", channel="nums", restart=["sink"])
    r.wait_event("supervisor.reloaded")
    n = len(r.evs())
    r.all_ready()
    r.wait(lambda: [e for e in r.evs()[n:] if e.get("event") == "channel.stats" and
                    e["sent"] > 100 and not e["closed"]], "records flowing again")
    r.stop()
    produced, consumed = total(r, "produced.0"), total(r, "consumed.0")
    check(produced > 0 and produced == consumed, "produced %d, consumed %d" % (produced, consumed))


# ------------------------------------------------------------------ metrics, events, top

METRIC = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$')


def parse_prometheus(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = METRIC.match(line)
        check(m, "not a Prometheus sample line: %r" % line)
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(3) or "")))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def case_metrics():
    if not shutil.which("curl"):
        skip("curl is not installed")

    def edit(c):
        c["metrics_listen"] = "127.0.0.1:0"  # any free port; the event says which
        c["stats_interval_ms"] = 0
    r = Run("pipeline.json", edit)
    r.all_ready()
    addr = r.wait_event("metrics.listen")[0]["address"]
    url = "http://%s/metrics" % addr
    res = subprocess.run(["curl", "-sS", "-f", url], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=WAIT)
    check(res.returncode == 0, "curl %s: %s" % (url, res.stderr.decode()))
    m = parse_prometheus(res.stdout.decode())
    up = m.get(("warren_worker_up", (("replica", "0"), ("worker", "source"))))
    check(up == 1, "warren_worker_up for source: %s" % up)
    for name in ("warren_worker_restarts_total", "warren_worker_reclaimed_bytes_total"):
        check((name, (("replica", "0"), ("worker", "sink"))) in m, "no %s for sink" % name)
    for name in ("warren_channel_depth", "warren_channel_records_total",
                 "warren_channel_full_waits_total"):
        check((name, (("channel", "nums"), ("lane", "0"))) in m, "no %s{channel=nums}" % name)
    check(m[("warren_heap_bytes_in_use", ())] > 0, "heap bytes")
    check(m[("warren_heap_check_ok", ())] == 1, "heap check")
    res = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                          "http://%s/nothing" % addr], stdout=subprocess.PIPE, timeout=WAIT)
    check(res.stdout == b"404", "an unknown path answered %s" % res.stdout)
    # the same exposition through the control socket
    rc, out, err = r.ctl("stats", "--prometheus")
    check(rc == 0, "stats --prometheus: %s" % err)
    m2 = parse_prometheus(out)
    check(m2[("warren_channel_records_total", (("channel", "nums"), ("lane", "0")))] >=
          m[("warren_channel_records_total", (("channel", "nums"), ("lane", "0")))],
          "records_total went back")
    r.stop()


def case_metrics_off_by_default():
    r = Run("sleepers.json")
    r.all_ready()
    check(not r.evs("metrics.listen"), "a listener without metrics_listen")
    r.stop()
    d = mkdtemp()
    bad = os.path.join(d, "bad.json")
    with open(bad, "w") as f:
        json.dump({"metrics_listen": "0.0.0.0:9464",
                   "workers": [{"name": "a", "exec": ["/bin/true"]}]}, f)
    res = subprocess.run([WARREN, "check", bad], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(res.returncode == 2 and b"metrics_listen" in res.stderr, "non-loopback accepted")


def case_events():
    r = Run("strategy.json")
    r.all_ready()
    ev = subprocess.Popen([WARREN, "events", "--json", "--socket", r.sock], env=r.env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    txt = subprocess.Popen([WARREN, "events", "--socket", r.sock], env=r.env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # subscribed once the supervisor logs something to them: poke until we see it
    time.sleep(0.2)
    kill(r.workers()["b"]["pid"], signal.SIGKILL)
    r.wait(lambda: r.workers()["b"]["state"] == "ready" and r.workers()["b"]["incarnation"] == 2,
           "b restarted")
    r.stop()
    out = ev.communicate(timeout=WAIT)[0].decode().splitlines()
    evs = [json.loads(x) for x in out]
    names = [(e["event"], e.get("worker")) for e in evs]
    for want in (("worker.exit", "b"), ("heap.reclaim", "b"), ("worker.restart", "b"),
                 ("worker.state", "b"), ("worker.ready", "b")):
        check(want in names, "events --json lacks %s: %s" % (want, names))
    check(ev.returncode == 0, "events exited %d" % ev.returncode)
    t = txt.communicate(timeout=WAIT)[0].decode()
    check(re.search(r"heap.reclaim worker=b ", t), "text events: %s" % t)


def case_top():
    if not shutil.which("tmux"):
        skip("tmux is not installed")
    r = Run("pipeline.json")
    r.all_ready()
    tsock = os.path.join(r.dir, "tmux.sock")
    tm = ["tmux", "-S", tsock]
    cmd = "%s top --socket %s; echo top-exited-$?; sleep 30" % (WARREN, r.sock)
    subprocess.run(tm + ["new-session", "-d", "-s", "top", "-x", "120", "-y", "30", cmd],
                   check=True, env=r.env)
    try:
        def screen():
            return subprocess.run(tm + ["capture-pane", "-p", "-t", "top"],
                                  stdout=subprocess.PIPE).stdout.decode()
        # two frames: the rate needs a previous sample
        r.wait(lambda: re.search(r"source\s+ready", screen()) and
               re.search(r"nums\s+0\s+[1-9]\d*\s", screen()), "top shows workers and a rate")
        s = screen()
        check("sink" in s and "heap:" in s and "CPU%" in s, s)
        subprocess.run(tm + ["send-keys", "-t", "top", "q"])
        r.wait(lambda: "top-exited-0" in screen(), "top quit on q")
    finally:
        subprocess.run(tm + ["kill-server"], stderr=subprocess.DEVNULL)
    r.stop()


# ------------------------------------------------------------------ logs, hooks, limits

def case_log_files():
    long_line = "x" * 20000
    script = ("i=0; while [ $i -lt 120 ]; do echo \"line $i of the first batch\"; "
              "i=$((i+1)); done; echo %s; echo after-the-long-line; "
              "while :; do echo tick; sleep 0.05; done" % long_line)

    def edit(c):
        c["log_dir"] = "logs"
        c["log_max_bytes"] = 1024
        c["log_files"] = 2
        c["workers"][0]["exec"] = ["/bin/sh", "-c", script]
    r = Run("sleepers.json", edit)
    r.all_ready()
    logs = os.path.join(r.dir, "logs")
    base = os.path.join(logs, "a.log")

    def read(p):
        with open(p) as f:
            return f.read()
    r.wait(lambda: os.path.exists(base) and "tick" in read(base), "ticks in a.log")
    names = sorted(os.listdir(logs))
    check(names == ["a.log", "a.log.1", "a.log.2"], "rotated files: %s" % names)
    # the long line went to a file of its own size: 8 KiB and the marker
    rotated = read(base + ".1") + read(base + ".2") + read(base)
    cut = [l for l in rotated.splitlines() if l.startswith("xxx")]
    check(len(cut) == 1 and len(cut[0]) < 8300 and cut[0].startswith("x" * 8192) and
          cut[0].endswith("cut: line longer than 8 KiB]"), "cut line %s" % [len(c) for c in cut])
    check("after-the-long-line" in rotated, "the line after the long one is lost")
    for p in (base + ".1",):
        check(os.path.getsize(p) <= 1024 or any(len(l) > 1024 for l in read(p).splitlines()),
              "%s is %d bytes" % (p, os.path.getsize(p)))
    check(not r.evs("worker.output", worker="a"), "a's lines also went to stdout")
    # SIGUSR2 reopens: after a logrotate moved the file away, a new one appears
    os.rename(base, base + ".moved")
    os.kill(r.p.pid, signal.SIGUSR2)
    r.wait_event("log.reopen")
    r.wait(lambda: os.path.exists(base) and "tick" in read(base), "a.log reopened")
    r.stop()


def case_hooks():
    def edit(c):
        w = c["workers"][0]
        w["on_exit"] = ["/bin/sh", "-c", "echo $WARREN_HOOK $WARREN_WORKER $WARREN_EXIT_CODE "
                        "$WARREN_RESTARTS >> hooks.out"]
        w["on_give_up"] = ["/bin/sh", "-c", "echo $WARREN_HOOK $WARREN_WORKER >> hooks.out"]
        w["cwd"] = "."
    r = Run("crashloop.json", edit)
    r.wait_event("worker.crashloop")
    r.wait_event("hook.exit", hook="on_give_up")
    r.wait_event("hook.exit", 3, hook="on_exit")
    r.stop()
    with open(os.path.join(r.dir, "hooks.out")) as f:
        lines = f.read().splitlines()
    check("on_exit flaky 3 0" in lines and "on_exit flaky 3 1" in lines, "on_exit: %s" % lines)
    check(lines.count("on_give_up flaky") == 1, "on_give_up ran %d times: %s" %
          (lines.count("on_give_up flaky"), lines))


def limits(pid):
    out = {}
    with open("/proc/%d/limits" % pid) as f:
        for line in f.readlines()[1:]:
            parts = re.split(r"\s{2,}", line.strip())
            out[parts[0]] = (parts[1], parts[2])
    return out


def nobody_can_run(path):
    """Whether user nobody can reach and execute path (a checkout under a
    0700 directory, as mktemp -d makes, cannot be)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os._exit(0 if os.access(path, os.X_OK) else 1)
        except BaseException:
            os._exit(2)
    return os.waitpid(pid, 0)[1] == 0


def case_rlimits():
    d = mkdtemp()
    as_nobody = os.geteuid() == 0 and nobody_can_run(WORKER)
    if os.geteuid() == 0 and not as_nobody:
        print("note: user nobody cannot run %s here: the user switch is not tested" % WORKER)

    def edit(c):
        a = c["workers"][0]
        a["rlimits"] = {"nofile": [100, 200], "core": 0, "cpu": "unlimited", "as": "4GiB"}
        a["umask"] = "027"
        a["nice"] = 7
        # a libwarren worker gets them too (through the shim, before its exec)
        b = c["workers"][1]
        b["exec"] = ["warren-test-worker", "ready"]
        b["ready"] = "notify"
        b["rlimits"] = {"nofile": 64}
        if as_nobody:
            b["user"] = "nobody"
    r = Run("sleepers.json", edit)
    r.all_ready()
    w = r.workers()
    lim = limits(w["a"]["pid"])
    check(lim["Max open files"] == ("100", "200"), "nofile %s" % (lim["Max open files"],))
    check(lim["Max core file size"] == ("0", "0"), "core %s" % (lim["Max core file size"],))
    check(lim["Max cpu time"] == ("unlimited", "unlimited"), "cpu %s" % (lim["Max cpu time"],))
    check(lim["Max address space"] == (str(4 << 30), str(4 << 30)), "as %s" %
          (lim["Max address space"],))
    with open("/proc/%d/status" % w["a"]["pid"]) as f:
        status = f.read()
    check("Umask:\t0027" in status, "umask: %s" % status)
    with open("/proc/%d/stat" % w["a"]["pid"]) as f:
        nice = int(f.read().rsplit(")", 1)[1].split()[16])
    check(nice == 7, "nice %d" % nice)
    lb = limits(w["b"]["pid"])
    check(lb["Max open files"] == ("64", "64"), "b nofile %s" % (lb["Max open files"],))
    if as_nobody:
        with open("/proc/%d/status" % w["b"]["pid"]) as f:
            status = f.read().splitlines()
        uid = [l for l in status if l.startswith("Uid:")][0].split()[1:]
        check(uid == ["65534"] * 4, "b runs as %s" % uid)
        # the supplementary groups are nobody's own, as initgroups sets them
        groups = sorted(int(g) for g in [l for l in status if l.startswith("Groups:")][0].split()[1:])
        want = sorted(set(os.getgrouplist("nobody", pwd.getpwnam("nobody").pw_gid)))
        check(groups == want, "b's groups %s, nobody's %s" % (groups, want))
    r.stop()


# ------------------------------------------------------------------ systemd, PID 1

def case_sdnotify():
    d = mkdtemp()
    path = os.path.join(d, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(WAIT)
    os.environ["NOTIFY_SOCKET"] = path
    try:
        r = Run("strategy.json")
    finally:
        del os.environ["NOTIFY_SOCKET"]
    msg = s.recv(4096).decode()
    check(msg.startswith("READY=1"), "first notification %r" % msg)
    check(r.status()[0] == 0, "READY=1 before every worker was ready")
    env = environ(r.workers()["a"]["pid"])
    check(env.get(b"NOTIFY_SOCKET") != path.encode(), "a worker inherited warren's NOTIFY_SOCKET")
    r.ctl("reload", "--json")
    check(s.recv(4096).decode().startswith("RELOADING=1"), "no RELOADING=1")
    check(s.recv(4096).decode().startswith("READY=1"), "no READY=1 after the reload")
    r.stop()
    check(s.recv(4096).decode() == "STOPPING=1", "no STOPPING=1")


def case_sdnotify_watchdog():
    """warren under systemd with WatchdogSec: it pings WATCHDOG=1 on its own
    NOTIFY_SOCKET, and systemd's WATCHDOG_* never reach a worker."""
    d = mkdtemp()
    path = os.path.join(d, "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(WAIT)
    os.environ.update(NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
    try:
        r = Run("sleepers.json")
    finally:
        del os.environ["NOTIFY_SOCKET"], os.environ["WATCHDOG_USEC"]
    pings = 0
    while pings < 3:
        msg = s.recv(4096).decode()
        pings += msg == "WATCHDOG=1"
    r.all_ready()
    env = environ(r.workers()["a"]["pid"])
    check(not [k for k in env if k.startswith(b"WATCHDOG_")], "a worker inherited %s" %
          [k for k in env if k.startswith(b"WATCHDOG_")])
    r.stop()


def case_pid1():
    probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if probe.returncode != 0:
        skip("unshare --pid --fork --mount-proc is not permitted here")
    d = mkdtemp()
    cfg = {
        "name": "pid1",
        "workers": [
            # its background child is orphaned at once and must be reaped by PID 1
            {"name": "orphaner", "exec": ["/bin/sh", "-c", "(sleep 0.2 &); exec sleep 1000"]},
            {"name": "parent", "exec": ["warren-test-worker", "fork-child", "child.pid"],
             "ready": "notify"},
        ],
        "stats_interval_ms": 0,
    }
    path = os.path.join(d, "pid1.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    sock = os.path.join(d, "ctl.sock")
    env = dict(os.environ, XDG_RUNTIME_DIR=d)
    env["PATH"] = os.path.dirname(WORKER) + ":" + env.get("PATH", "")
    p = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", WARREN, "--log-format",
                          "json", "run", path, "--socket", sock], cwd=d, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def status():
        r = subprocess.run([WARREN, "status", "--json", "--socket", sock],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return json.loads(r.stdout) if r.returncode == 0 else None
    end = time.monotonic() + WAIT
    st = None
    while time.monotonic() < end and not st:
        st = status()
        time.sleep(0.05)
    check(st and st["pid"] == 1, "warren is not PID 1: %s" % st)
    # Processes come and go meanwhile (the orphaner's `sleep 0.2`): one that
    # exits between the listing and the read is skipped.
    def comm(c):
        try:
            with open("/proc/%d/comm" % c) as f:
                return f.read().strip()
        except OSError:
            return None

    def ppid(c):
        try:
            with open("/proc/%d/stat" % c) as f:
                return int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            return None
    # warren's pid outside the namespace: the child of unshare
    sup = [c for c in descendants(p.pid) if comm(c) == "warren"][0]
    # the worker "parent" dies; its child is orphaned to PID 1
    wpid = [c for c in descendants(sup) if ppid(c) == sup and comm(c) == "warren-test-wor"][0]
    kill(wpid, signal.SIGKILL)

    def zombies():
        out = []
        for c in descendants(sup):
            try:
                with open("/proc/%d/stat" % c) as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        out.append(c)
            except FileNotFoundError:
                pass
        return out
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        st = status()
        w = {x["name"]: x for x in st["workers"]} if st else {}
        if w.get("parent", {}).get("incarnation") == 2 and w["parent"]["state"] == "ready" \
                and not zombies():
            break
        time.sleep(0.05)
    check(not zombies(), "zombies under PID 1: %s" % zombies())
    n_before = len(descendants(sup))
    kill(sup, signal.SIGTERM)  # PID 1 has a handler: a graceful stop
    out = p.communicate(timeout=WAIT)[0].decode()
    check(p.returncode == 0, "warren as PID 1 exited %d:\n%s" % (p.returncode, out[-3000:]))
    check('"supervisor.stop"' in out and n_before >= 3, "no clean stop:\n%s" % out[-2000:])


if __name__ == "__main__":
    CASES = {k[5:]: v for k, v in globals().items() if k.startswith("case_")}
    if CASE not in CASES:
        fail("unknown case %s (have: %s)" % (CASE, ", ".join(CASES)))
    CASES[CASE]()
    print("ok", CASE)
