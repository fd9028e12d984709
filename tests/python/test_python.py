#!/usr/bin/env python3
"""test_python.py: the Python binding (bindings/python/warren), unittest.

    WARREN=<build>/src/supervisor/warren python3 test_python.py

meson runs it twice (tests/meson.build): with the C extension and with
PYWARREN_NO_EXT=1 (pure ctypes). Channel tests fork a real producer
process on an arena this process creates; the Worker tests run Python
workers (pyworker.py) under the real `warren`, one of them SIGKILLed
mid-stream. Assertions are on behaviour, never on time; timeouts only
bound the waiting.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import warren

HERE = os.path.dirname(os.path.abspath(__file__))
WAIT = 60.0


def fork(child):
    """Run child(arena_fd...) in a forked process; returns its pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child()
            code = 0
        except BaseException as e:  # report, never fall back into unittest
            print("child:", repr(e), file=sys.stderr)
        finally:
            os._exit(code)
    return pid


def reap(pid):
    assert pid > 1
    _, st = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(st)


class ChannelTests(unittest.TestCase):
    def setUp(self):
        self.a = warren.Arena.create(16 << 20)
        self.a.create_channel("c", capacity=64, slot_size=128)

    def tearDown(self):
        self.a.check()
        self.a.close()

    def producer(self, body):
        """A forked worker with its own slot sending through body(chan)."""
        def child():
            with warren.Arena.attach(self.a.fd) as b:
                b.claim()
                with b.producer("c") as p:
                    body(p)
                    p.close()
        return fork(child)

    def test_send_recv(self):
        pid = self.producer(lambda p: [p.send(b"rec %d" % i) for i in range(500)])
        c = self.a.consumer("c")
        got = [c.recv() for _ in range(500)]
        self.assertEqual(got, [b"rec %d" % i for i in range(500)])
        self.assertEqual(reap(pid), 0)
        with self.assertRaises(warren.EndOfStream):
            c.recv()
        st = self.a.channel_stats("c")[0]
        self.assertEqual((st["sent"], st["received"], st["depth"]), (500, 500, 0))
        self.assertTrue(st["closed"])

    def test_bytes_like_and_empty(self):
        pid = self.producer(lambda p: [p.send(x) for x in
                                       (bytearray(b"ba"), memoryview(b"mv"), b"", b"x" * 128)])
        c = self.a.consumer("c")
        self.assertEqual([c.recv() for _ in range(4)], [b"ba", b"mv", b"", b"x" * 128])
        self.assertEqual(reap(pid), 0)

    def test_batch(self):
        recs = [b"%d" % i * (i % 7 + 1) for i in range(1000)]
        pid = self.producer(lambda p: self.assertEqual(p.send_batch(recs), 1000))
        c = self.a.consumer("c")
        got = []
        for batch in c.batches(100):
            self.assertTrue(1 <= len(batch) <= 100)
            got += batch
        self.assertEqual(got, recs)
        self.assertEqual(reap(pid), 0)

    def test_zero_copy(self):
        pid = self.producer(lambda p: p.send_batch([bytes([i]) * 100 for i in range(10)]))
        c = self.a.consumer("c")
        seen = []
        while len(seen) < 10:
            with c.peek_batch(4) as b:
                views = list(b)
                for v in views:
                    self.assertIsInstance(v, memoryview)
                    self.assertTrue(v.readonly)
                    seen.append(bytes(v))
            for v in views:  # released with the batch: no read of a reused slot
                with self.assertRaises(ValueError):
                    v[0]
        self.assertEqual(seen, [bytes([i]) * 100 for i in range(10)])
        self.assertEqual(reap(pid), 0)
        self.assertEqual(self.a.channel_stats("c")[0]["received"], 10)

    def test_peek_unreleased_is_redelivered(self):
        pid = self.producer(lambda p: p.send_batch([b"a", b"b"]))
        self.assertEqual(reap(pid), 0)
        c = self.a.consumer("c")
        b = c.peek()
        self.assertEqual(bytes(b[0]), b"a")
        c.detach()  # gave up the side without releasing: the record stays
        with self.assertRaises(ValueError):
            b.release()  # its handle is gone: refused, nothing touched
        c = self.a.consumer("c")
        self.assertEqual(list(c), [b"a", b"b"])

    def test_eof_iteration(self):
        pid = self.producer(lambda p: [p.send(b"%d" % i) for i in range(100)])
        c = self.a.consumer("c")
        self.assertEqual(list(c), [b"%d" % i for i in range(100)])
        self.assertEqual(list(c), [])  # still end of stream
        self.assertEqual(reap(pid), 0)

    def test_errors(self):
        c = self.a.consumer("c")
        with self.assertRaises(warren.WouldBlock) as e:
            c.recv(timeout=0)
        self.assertIn("try again", str(e.exception))
        self.assertIsInstance(e.exception, BlockingIOError)
        with self.assertRaises(warren.Timeout):
            c.recv(timeout=0.01)
        with self.assertRaises(warren.NotFound) as e:
            self.a.consumer("nope")
        self.assertIn("no object is bound to that name", str(e.exception))
        self.assertIn("nope", str(e.exception))
        with self.assertRaises(warren.Exists):
            self.a.create_channel("c")
        with self.assertRaises(warren.WouldBlock):  # a live worker holds that side
            self.a.consumer("c")
        p = self.a.producer("c")
        with self.assertRaises(warren.MessageTooLarge) as e:
            p.send(b"x" * 129)
        self.assertEqual(e.exception.name, "WR_EMSGSIZE")
        self.assertIsInstance(e.exception, warren.WarrenError)
        with self.assertRaises(warren.InvalidArgument):
            p.recv()  # a producer cannot receive
        p.close()
        with self.assertRaises(warren.ChannelClosed):
            p.send(b"late")
        p.detach()
        with self.assertRaises(ValueError):
            p.send(b"detached")
        with self.assertRaises(warren.EndOfStream):
            c.recv()
        with self.assertRaises(warren.NotUnderWarren):
            saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("WARREN_")}
            try:
                warren.Worker()
            finally:
                os.environ.update(saved)

    def test_blocking_recv_wakes(self):
        pid = self.producer(lambda p: (time.sleep(0.05), p.send(b"late")))
        c = self.a.consumer("c")
        self.assertEqual(c.recv(timeout=WAIT), b"late")
        self.assertEqual(reap(pid), 0)

    def test_context_managers_and_stats(self):
        with warren.Arena.create(8 << 20) as a:
            a.create_channel("s", capacity=8, slot_size=16, consumers=2)
            with a.producer("s") as p:
                self.assertEqual(p.send_batch([b"1", b"2", b"3", b"4"]), 4)
            lanes = a.channel_stats("s")
            self.assertEqual(len(lanes), 2)
            self.assertEqual(sum(st["sent"] for st in lanes), 4)
            self.assertGreater(a.heap_stats()["pages_in_use"], 0)
            self.assertEqual(a.check()["worker_bytes"], 0)


class SyncTests(unittest.TestCase):
    def setUp(self):
        self.a = warren.Arena.create(16 << 20)

    def tearDown(self):
        self.a.check()
        self.a.close()

    def child(self, body):
        """Fork a worker with its own slot; returns (pid, slot, incarnation)."""
        r, w = os.pipe()

        def run():
            with warren.Arena.attach(self.a.fd) as b:
                b.claim()
                i = b.slot_info()
                os.write(w, b"%d %d" % (i["slot"], i["incarnation"]))
                body(b)
        pid = fork(run)
        os.close(w)
        slot, inc = map(int, os.read(r, 64).split())
        os.close(r)
        return pid, slot, inc

    def test_semaphore_permits_come_back(self):
        s = warren.Semaphore.create(self.a, "gpu", 3)
        self.assertEqual(s.value, 3)
        with s:
            self.assertEqual((s.value, s.held), (2, 1))
        self.assertEqual(s.value, 3)

        def hold(b):
            b.semaphore("gpu").acquire(2)
            os.kill(os.getpid(), signal.SIGKILL)
        pid, slot, inc = self.child(hold)
        self.assertEqual(reap(pid), -signal.SIGKILL)
        self.assertEqual(s.value, 1)
        self.assertEqual(self.a.reclaim(slot, inc)["permits"], 2)
        self.assertEqual(s.value, 3)
        with self.assertRaises(warren.WouldBlock):
            s.acquire(4, timeout=0)

    def test_mvar(self):
        m = warren.MVar.create(self.a, "box", 64)
        with self.assertRaises(warren.WouldBlock):
            m.take(timeout=0)
        pid, _, _ = self.child(lambda b: b.mvar("box").put(b"hello"))
        self.assertEqual(m.take(timeout=WAIT), b"hello")
        self.assertEqual(reap(pid), 0)
        m.put("x" * 64)
        with self.assertRaises(warren.Timeout):
            m.put(b"full", timeout=0.01)
        with self.assertRaises(warren.InvalidArgument):  # initial value > size
            warren.MVar.create(self.a, "small", 2, b"abc")
        self.assertEqual(m.take(), b"x" * 64)

    def test_mutex(self):
        mu = warren.Mutex.create(self.a, "lock")
        with mu:
            with self.assertRaises(warren.Deadlock):
                mu.lock()
        with self.assertRaises(warren.NotOwner):
            mu.unlock()

    def test_map(self):
        m = warren.Map.create(self.a, "kv", capacity=64, key_max=16, value_max=32)
        m["a"] = b"1"
        m[b"b"] = "two"
        pid, _, _ = self.child(lambda b: b.map("kv").__setitem__("c", b"3" * 32))
        self.assertEqual(reap(pid), 0)
        self.assertEqual((m["a"], m["b"], m["c"], len(m)), (b"1", b"two", b"3" * 32, 3))
        self.assertIn("a", m)
        del m["a"]
        self.assertNotIn("a", m)
        self.assertIsNone(m.get("a"))
        with self.assertRaises(KeyError):
            m["a"]
        with self.assertRaises(warren.MessageTooLarge):
            m["k"] = b"v" * 33
        with self.assertRaises(warren.KindMismatch):
            warren.Semaphore(self.a, "kv")


def warren_run(tmp, cfg):
    path = os.path.join(tmp, "run.json")
    with open(path, "w") as f:
        json.dump(cfg, f)
    env = dict(os.environ, XDG_RUNTIME_DIR=tmp)
    log = open(os.path.join(tmp, "log"), "w")
    p = subprocess.Popen([os.environ["WARREN"], "--log-format", "json", "run", path,
                          "--socket", os.path.join(tmp, "ctl.sock")],
                         cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()  # the child has its own copy
    return p


def wait_file(path, proc):
    end = time.monotonic() + WAIT
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > end:
            raise AssertionError(f"{path} never appeared (warren exit {proc.poll()})")
        time.sleep(0.02)
    with open(path) as f:
        return json.load(f)


def stop(proc):
    if proc.poll() is None and proc.pid > 1:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(WAIT)


def py(*args):
    return ["warren-python", os.path.join(HERE, "pyworker.py"), *args]


@unittest.skipUnless(os.environ.get("WARREN"), "WARREN (the supervisor binary) not set")
class WorkerTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="warren-py-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log(self):
        with open(os.path.join(self.tmp, "log")) as f:
            return [json.loads(line) for line in f if line.startswith("{")]

    def test_attach(self):
        p = warren_run(self.tmp, {
            "name": "pyattach", "channels": [{"name": "x"}, {"name": "y"}],
            "workers": [
                {"name": "src", "exec": py("source", "10"), "out": ["x"]},
                {"name": "mid", "exec": py("describe", "who.json"), "in": ["x"], "out": ["y"]},
                {"name": "snk", "exec": py("sink", "sink.json"), "in": ["y"]}],
            "stats_interval_ms": 0})
        who = wait_file(os.path.join(self.tmp, "who.json"), p)
        self.assertEqual(who, {"name": "mid", "replica": 0, "inputs": ["x"], "outputs": ["y"],
                               "fast": warren.FAST, "alive": True})
        self.assertEqual(stop(p), 0)

    def test_crash_restart_nothing_lost(self):
        n = 3000
        p = warren_run(self.tmp, {
            "name": "pycrash", "heap": {"size": "32MiB"},
            "channels": [{"name": "a", "capacity": 64}, {"name": "b", "capacity": 64}],
            "workers": [
                {"name": "src", "exec": py("source", str(n)), "out": ["a"]},
                {"name": "relay", "exec": py("relay", "crashed", "1234"), "in": ["a"],
                 "out": ["b"], "restart": "on-failure"},
                {"name": "snk", "exec": py("sink", "sink.json"), "in": ["b"]}],
            "restart": {"backoff_initial_ms": 10}, "stats_interval_ms": 0})
        got = wait_file(os.path.join(self.tmp, "sink.json"), p)
        self.assertEqual(stop(p), 0)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "crashed")))
        want = [str(i) for i in range(n)]
        self.assertEqual(sorted(set(got), key=int), want, "a record was lost")
        ev = self.log()
        exits = [e for e in ev if e.get("event") == "worker.exit" and e.get("worker") == "relay"]
        self.assertTrue(any("signal" in e for e in exits), exits)
        rec = [e for e in ev if e.get("event") == "heap.reclaim" and e.get("worker") == "relay"]
        self.assertTrue(rec, "no reclaim logged")
        dup = len(got) - n
        self.assertLessEqual(dup, sum(e.get("redelivered", 0) for e in rec))
        self.assertEqual(got[:1234], want[:1234])  # in order up to the crash
        heap = [e for e in ev if e.get("event") == "heap.stats"]
        self.assertTrue(heap and heap[-1].get("check") == "ok", heap[-1:])


if __name__ == "__main__":
    unittest.main(verbosity=2)
