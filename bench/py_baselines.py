"""py_baselines.py: the transports bench_python.py compares warren with.

Each transport is a class with setup() in the parent before fork, then
producer side send(rec)/send_many(recs)/finish() and consumer side recv()/
recv_many() in the two processes. All are what a Python programmer would
write without warren: multiprocessing.Queue and Pipe, a length-prefixed
os.pipe, and a minimal single-producer/single-consumer ring over
multiprocessing.shared_memory in pure Python (spins with sched_yield when
full or empty: no futex from pure Python).
"""
import multiprocessing as mp
import os
import struct
from multiprocessing import shared_memory

_ctx = mp.get_context("fork")


class MPQueue:
    name = "multiprocessing.Queue"

    def setup(self):
        self.q = _ctx.Queue(maxsize=4096)

    def send(self, rec):
        self.q.put(rec)

    def send_many(self, recs):
        self.q.put(recs)

    def recv(self):
        return self.q.get()

    def recv_many(self):
        return self.q.get()

    def finish(self):
        self.q.close()
        self.q.join_thread()


class MPPipe:
    name = "multiprocessing.Pipe"

    def setup(self):
        self.r, self.w = _ctx.Pipe(duplex=False)

    def send(self, rec):
        self.w.send_bytes(rec)

    def recv(self):
        return self.r.recv_bytes()

    def finish(self):
        pass


class FramedPipe:
    """os.pipe with a 4-byte length before each record."""
    name = "framed os.pipe"
    _h = struct.Struct("<I")

    def setup(self):
        self.r, self.w = os.pipe()

    def send(self, rec):
        os.write(self.w, self._h.pack(len(rec)) + rec)

    def _read(self, n):
        b = os.read(self.r, n)
        while len(b) < n:
            b += os.read(self.r, n - len(b))
        return b

    def recv(self):
        (n,) = self._h.unpack(self._read(4))
        return self._read(n)

    def finish(self):
        pass


class ShmRing:
    """SPSC ring: head at 0, tail at 64 (own cache lines), then `cap` slots
    of (u32 length, payload). Indices are free-running u64."""
    name = "pure-Python shm ring"

    def __init__(self, slot=1024, cap=1024):
        self.slot, self.cap = slot + 4, cap

    def setup(self):
        self.shm = shared_memory.SharedMemory(create=True, size=128 + self.slot * self.cap)
        self.buf = self.shm.buf
        struct.pack_into("<Q", self.buf, 0, 0)
        struct.pack_into("<Q", self.buf, 64, 0)
        self.pos = self.other = 0

    def send(self, rec, _q=struct.Struct("<Q"), _i=struct.Struct("<I"), _y=os.sched_yield):
        buf, pos = self.buf, self.pos
        while pos - self.other >= self.cap:
            self.other = _q.unpack_from(buf, 0)[0]
            if pos - self.other >= self.cap:
                _y()
        o = 128 + (pos % self.cap) * self.slot
        _i.pack_into(buf, o, len(rec))
        buf[o + 4:o + 4 + len(rec)] = rec
        self.pos = pos + 1
        _q.pack_into(buf, 64, pos + 1)

    def recv(self, _q=struct.Struct("<Q"), _i=struct.Struct("<I"), _y=os.sched_yield):
        buf, pos = self.buf, self.pos
        while self.other <= pos:
            self.other = _q.unpack_from(buf, 64)[0]
            if self.other <= pos:
                _y()
        o = 128 + (pos % self.cap) * self.slot
        n = _i.unpack_from(buf, o)[0]
        rec = bytes(buf[o + 4:o + 4 + n])
        self.pos = pos + 1
        _q.pack_into(buf, 0, pos + 1)
        return rec

    def finish(self):
        pass

    def close(self):
        self.buf = None
        self.shm.close()
        self.shm.unlink()


class ShmSpin:
    """Pure-Python spinning ping-pong over one shared_memory line."""

    def setup(self):
        self.shm = shared_memory.SharedMemory(create=True, size=128)
        self.buf = self.shm.buf
        struct.pack_into("<QQ", self.buf, 0, 0, 0)

    def ping(self, i, _q=struct.Struct("<Q")):
        buf = self.buf
        _q.pack_into(buf, 0, i)
        while _q.unpack_from(buf, 64)[0] != i:
            pass

    def pong(self, i, _q=struct.Struct("<Q")):
        buf = self.buf
        while _q.unpack_from(buf, 0)[0] != i:
            pass
        _q.pack_into(buf, 64, i)

    def close(self):
        self.buf = None
        self.shm.close()
        self.shm.unlink()
