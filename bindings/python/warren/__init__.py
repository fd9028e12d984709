"""warren: Python binding of libwarren, warren's shared-memory IPC library.

    import warren
    with warren.Worker() as w:                 # started by `warren run`
        out = w.output(0)
        w.ready()
        for rec in w.input(0):                 # bytes, until end of stream
            out.send(rec.upper())

Objects: Worker (attach from the supervisor's environment), Arena (create
or attach one yourself: tests, benchmarks, embedders), Channel (send/recv,
batches, zero-copy peek), Semaphore, Mutex, MVar, Map,
and the exceptions in warren.errors (WarrenError and one subclass a code).
The per-record calls use the C extension _warren when it is built
(`warren.FAST` is True), else pure ctypes.
"""
import ctypes
import os
import weakref

from . import _lib
from ._lib import byref, lib
from .channel import CONSUMER, PRODUCER, Batch, Channel
from .errors import *  # noqa: F401,F403 (the exception classes are part of the API)
from .errors import WarrenError
from .sync import MVar, Map, Mutex, Semaphore

__all__ = ["Arena", "Worker", "Channel", "Batch", "PRODUCER", "CONSUMER", "FAST", "version",
           "WarrenError", "strerror", "set_spin", "Semaphore", "Mutex", "MVar", "Map"]
FAST = _lib.ext is not None


def version():
    return lib.wr_version().decode()


def set_spin(seconds):
    """How long a wait polls (without the GIL) before it sleeps on the
    futex: 50e-6 by default; 0 sleeps at once. Returns the previous value.
    Per process; the pure-ctypes path has only the library's own spin."""
    if _lib.ext is None:
        return 0.0
    return _lib.ext.set_spin_ns(int(seconds * 1e9)) / 1e9


def strerror(code):
    return lib.wr_strerror(code).decode()


def _enc(name):
    return name.encode() if isinstance(name, str) else name


class Arena:
    """A process's handle of one warren arena (shared mapping).

    Arena.create(size) makes a new one (this process becomes slot 0, the
    creator, as a supervisor); Arena.attach(fd) attaches to an inherited or
    received fd, then claim() takes a worker slot. Close with close() or
    `with`. Objects opened through an arena are closed with it."""

    def __init__(self, handle, owned=True):
        self._h, self._owned = handle, owned
        self._objs = weakref.WeakSet()

    @classmethod
    def create(cls, size=64 << 20):
        h = ctypes.c_void_p()
        opts = _lib.ArenaOpts(size=size)
        _lib.check(lib.wr_arena_create(byref(opts), byref(h)), "create arena")
        return cls(h.value)

    @classmethod
    def attach(cls, fd):
        h = ctypes.c_void_p()
        _lib.check(lib.wr_arena_attach_fd(fd, byref(h)), "attach arena")
        return cls(h.value)

    @property
    def fd(self):
        return lib.wr_arena_fd(self._h)

    @property
    def size(self):
        return lib.wr_arena_size(self._h)

    @property
    def slot(self):
        return lib.wr_self_slot(self._h)

    @property
    def tag(self):
        return lib.wr_self_tag(self._h)

    def claim(self):
        """Take a free worker slot (a process warren did not start). Returns it."""
        s = ctypes.c_uint32()
        _lib.check(lib.wr_slot_claim(self._h, byref(s)), "claim slot")
        return s.value

    def slot_info(self, slot=None):
        """{slot, incarnation, state, pid, tag, heartbeat} of a slot (default: this one's)."""
        i = _lib.SlotInfo()
        _lib.check(lib.wr_slot_info_get(self._h, self.slot if slot is None else slot, byref(i)))
        return {n: getattr(i, n) for n, _ in i._fields_ if n != "pad"}

    # ---------------------------------------------------------------- channels
    def create_channel(self, name, capacity=1024, slot_size=256, producers=1, consumers=1,
                       keyed=False):
        o = _lib.ChanOpts(capacity, slot_size, producers, consumers, 1 if keyed else 0)
        _lib.check(lib.wr_chan_create(self._h, _enc(name), byref(o)), f"create channel {name!r}")

    def destroy_channel(self, name):
        _lib.check(lib.wr_chan_destroy(self._h, _enc(name)), f"destroy channel {name!r}")

    def open_channel(self, name, role, index=0):
        c = Channel.open(self, name, role, index)
        self._objs.add(c)
        return c

    def producer(self, name, index=0):
        return self.open_channel(name, PRODUCER, index)

    def consumer(self, name, index=0):
        return self.open_channel(name, CONSUMER, index)

    # ---------------------------------------------------------------- sync objects
    def semaphore(self, name):
        return Semaphore(self, name)

    def mutex(self, name):
        return Mutex(self, name)

    def mvar(self, name):
        return MVar(self, name)

    def map(self, name):
        return Map(self, name)

    # ---------------------------------------------------------------- supervision
    def reclaim(self, slot, incarnation):
        """Supervisor side, for a dead worker: mark it dead, roll back its
        channel operations (returns records to redeliver), free its heap
        blocks, release the slot. Returns a dict of what was reclaimed."""
        _lib.check(lib.wr_slot_mark_dead(self._h, slot, incarnation), "mark dead")
        red = ctypes.c_uint64()
        _lib.check(lib.wr_chan_reclaim(self._h, slot, incarnation, byref(red)), "chan reclaim")
        out = {"redelivered": red.value}
        p = ctypes.c_uint64()
        _lib.check(lib.wr_sync_reclaim(self._h, slot, incarnation, byref(p)), "sync reclaim")
        out["permits"] = p.value
        rep = _lib.ReclaimReport()
        _lib.check(lib.wr_heap_reclaim(self._h, slot, incarnation, byref(rep)), "heap reclaim")
        _lib.check(lib.wr_slot_release(self._h, slot, incarnation), "release slot")
        out.update(blocks=rep.blocks, bytes=rep.bytes)
        return out

    def check(self):
        """Run the heap and channel checkers; raise Corrupt with the reason.
        Returns the heap usage (a dict)."""
        why = ctypes.create_string_buffer(256)
        u = _lib.HeapUsage()
        rc = lib.wr_chan_check(self._h, why, 256)
        if rc == 0:
            rc = lib.wr_heap_check(self._h, byref(u), why, 256)
        if rc < 0:
            raise _lib.error(rc, why.value.decode(errors="replace"))
        return {n: getattr(u, n) for n, _ in u._fields_}

    # ---------------------------------------------------------------- stats
    def heap_stats(self):
        st = _lib.HeapStats()
        _lib.check(lib.wr_heap_stats_get(self._h, byref(st)), "heap stats")
        return {n: getattr(st, n) for n, _ in st._fields_}

    def channel_stats(self, name):
        """Per-lane counters of channel `name`: a list of dicts."""
        arr = (_lib.LaneStats * 64)()
        n = _lib.check(lib.wr_chan_stats(self._h, _enc(name), arr, 64), f"stats {name!r}")
        if n > 64:
            arr = (_lib.LaneStats * n)()
            n = min(n, _lib.check(lib.wr_chan_stats(self._h, _enc(name), arr, n)))
        return [{k: getattr(arr[i], k) for k, _ in arr[i]._fields_ if k != "pad"}
                for i in range(n)]

    # ---------------------------------------------------------------- lifetime
    def close(self):
        for o in list(self._objs):
            o.detach()
        if self._h and self._owned:
            lib.wr_arena_detach(self._h)
        self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Worker:
    """This process as the worker `warren run` started: its name, replica,
    inputs and outputs (channel names, as configured). Raises
    NotUnderWarren when the environment has no WARREN_* variables."""

    def __init__(self):
        h = ctypes.c_void_p()
        _lib.check(lib.wr_worker_attach(byref(h)), "attach to warren")
        self._h = h.value
        self.arena = Arena(lib.wr_worker_arena(self._h), owned=False)
        self.name = lib.wr_worker_name(self._h).decode()
        self.replica = lib.wr_worker_replica(self._h)
        self.replicas = int(os.environ.get("WARREN_REPLICAS", "1"))
        self.inputs = [c.split("@")[0] for c in os.environ.get("WARREN_IN", "").split(",") if c]
        self.outputs = [c.split("@")[0] for c in os.environ.get("WARREN_OUT", "").split(",") if c]
        self._chans = {}

    def __repr__(self):
        return f"<warren.Worker {self.name}[{self.replica}] in={self.inputs} out={self.outputs}>"

    def _chan(self, which, key, names, fn, role):
        i = names.index(key) if isinstance(key, str) and key in names else key
        if isinstance(i, str):
            raise _lib.error(-2, f"{self.name} has no {which} named {key!r} (it has {names})")
        if (role, i) not in self._chans:
            h = ctypes.c_void_p()
            _lib.check(fn(self._h, i, byref(h)), f"{which} {key!r}")
            self._chans[(role, i)] = Channel(h.value, names[i], role, self)
        return self._chans[(role, i)]

    def input(self, key=0):
        """Input channel (consumer side) by index or name; the same object each call."""
        return self._chan("input", key, self.inputs, lib.wr_worker_in, CONSUMER)

    def output(self, key=0):
        """Output channel (producer side) by index or name."""
        return self._chan("output", key, self.outputs, lib.wr_worker_out, PRODUCER)

    def ready(self):
        """Tell the supervisor this worker is ready (it then starts dependents)."""
        _lib.check(lib.wr_worker_ready(self._h), "ready")

    def alive(self):
        """Heartbeat for the supervisor's watchdog (`watchdog_s`): call it
        during a long computation; sends, receives and waits beat by themselves."""
        lib.wr_worker_alive(self._h)

    def close(self):
        """Detach (the channels too). Blocks still owned stay owned until
        the supervisor reclaims this slot."""
        if self._h:
            for c in self._chans.values():
                c._h = None
            lib.wr_worker_detach(self._h)
        self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
