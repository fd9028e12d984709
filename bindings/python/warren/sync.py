"""warren.sync: semaphores, robust mutexes, MVars and the shared map.

Each object is named in the arena (create it once, open it from any
process: Semaphore.create(arena, "disk", 2), then Semaphore(arena, "disk")).
Whatever a worker holds when it dies (permits, a lock, a taken MVar value)
the supervisor gives back. These calls are not per-record hot paths, so
they are plain ctypes. Timeouts as for channels: None forever, 0 try once,
seconds otherwise.
"""
import ctypes

from . import _lib
from ._lib import byref, c_char_p, c_int, c_int64, c_size_t, c_uint32, c_void_p, lib
from .channel import _ns

_lib_protos = {
    "wr_sem_create": (c_int, [c_void_p, c_char_p, c_uint32]),
    "wr_sem_open": (c_int, [c_void_p, c_char_p, _lib.PP]),
    "wr_sem_close": (None, [c_void_p]),
    "wr_sem_acquire": (c_int, [c_void_p, c_uint32, c_int64]),
    "wr_sem_release": (c_int, [c_void_p, c_uint32]),
    "wr_sem_value": (c_int, [c_void_p]),
    "wr_sem_held": (c_int, [c_void_p]),
    "wr_mutex_create": (c_int, [c_void_p, c_char_p]),
    "wr_mutex_open": (c_int, [c_void_p, c_char_p, _lib.PP]),
    "wr_mutex_close": (None, [c_void_p]),
    "wr_mutex_lock": (c_int, [c_void_p, c_int64]),
    "wr_mutex_unlock": (c_int, [c_void_p]),
    "wr_mutex_consistent": (c_int, [c_void_p]),
    "wr_mvar_create": (c_int, [c_void_p, c_char_p, c_uint32, c_char_p, c_size_t]),
    "wr_mvar_open": (c_int, [c_void_p, c_char_p, _lib.PP]),
    "wr_mvar_close": (None, [c_void_p]),
    "wr_mvar_take": (c_int, [c_void_p, c_void_p, c_size_t, c_int64]),
    "wr_mvar_put": (c_int, [c_void_p, c_char_p, c_size_t, c_int64]),
    "wr_map_open": (c_int, [c_void_p, c_char_p, _lib.PP]),
    "wr_map_close": (None, [c_void_p]),
    "wr_map_put": (c_int, [c_void_p, c_char_p, c_size_t, c_char_p, c_size_t]),
    "wr_map_get": (c_int, [c_void_p, c_char_p, c_size_t, c_void_p, c_size_t]),
    "wr_map_del": (c_int, [c_void_p, c_char_p, c_size_t]),
    "wr_map_count": (ctypes.c_int64, [c_void_p]),
}
for _n, (_r, _a) in _lib_protos.items():
    _f = getattr(lib, _n)
    _f.restype, _f.argtypes = _r, _a


class MapOpts(ctypes.Structure):
    _fields_ = [("capacity", c_uint32), ("key_max", c_uint32), ("value_max", c_uint32),
                ("stripes", c_uint32)]


lib.wr_map_create.restype = c_int
lib.wr_map_create.argtypes = [c_void_p, c_char_p, ctypes.POINTER(MapOpts)]


def _b(x):
    return x.encode() if isinstance(x, str) else bytes(x)


class _Named:
    _open = _close = None
    kind = "object"

    def __init__(self, arena, name):
        h = ctypes.c_void_p()
        _lib.check(self._open(arena._h, _b(name), byref(h)), f"open {self.kind} {name!r}")
        self._h, self.name, self._arena = h.value, name, arena
        arena._objs.add(self)

    def __repr__(self):
        return f"<warren.{type(self).__name__} {self.name!r}>"

    def detach(self):
        if self._h:
            type(self)._close(self._h)
        self._h = None

    close = detach

    def __del__(self):
        if getattr(self, "_h", None) and self._arena._h:
            self.detach()


class Semaphore(_Named):
    """A counting semaphore; `with sem:` takes and gives back one permit."""
    _open, _close, kind = lib.wr_sem_open, lib.wr_sem_close, "semaphore"

    @classmethod
    def create(cls, arena, name, value=1):
        _lib.check(lib.wr_sem_create(arena._h, _b(name), value), f"create semaphore {name!r}")
        return cls(arena, name)

    def acquire(self, n=1, timeout=None):
        _lib.check(lib.wr_sem_acquire(self._h, n, _ns(timeout)), f"acquire {self.name!r}")

    def release(self, n=1):
        _lib.check(lib.wr_sem_release(self._h, n), f"release {self.name!r}")

    @property
    def value(self):
        return lib.wr_sem_value(self._h)

    @property
    def held(self):
        return lib.wr_sem_held(self._h)

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


class Mutex(_Named):
    """A robust mutex. lock() raises OwnerDead *with the lock held* when the
    previous owner died: repair the data, call consistent(), unlock()."""
    _open, _close, kind = lib.wr_mutex_open, lib.wr_mutex_close, "mutex"

    @classmethod
    def create(cls, arena, name):
        _lib.check(lib.wr_mutex_create(arena._h, _b(name)), f"create mutex {name!r}")
        return cls(arena, name)

    def lock(self, timeout=None):
        _lib.check(lib.wr_mutex_lock(self._h, _ns(timeout)), f"lock {self.name!r}")

    def unlock(self):
        _lib.check(lib.wr_mutex_unlock(self._h), f"unlock {self.name!r}")

    def consistent(self):
        _lib.check(lib.wr_mutex_consistent(self._h), f"consistent {self.name!r}")

    def __enter__(self):
        self.lock()
        return self

    def __exit__(self, *exc):
        self.unlock()


class MVar(_Named):
    """A one-value box of at most `size` bytes: take() waits while empty,
    put() while full. A value taken by a worker that dies goes back in."""
    _open, _close, kind = lib.wr_mvar_open, lib.wr_mvar_close, "MVar"

    @classmethod
    def create(cls, arena, name, size, value=None):
        v = None if value is None else _b(value)
        _lib.check(lib.wr_mvar_create(arena._h, _b(name), size, v, len(v) if v else 0),
                   f"create MVar {name!r}")
        return cls(arena, name)

    def __init__(self, arena, name):
        super().__init__(arena, name)
        self._buf = ctypes.create_string_buffer(1024)

    def take(self, timeout=None):
        while True:
            rc = lib.wr_mvar_take(self._h, self._buf, len(self._buf), _ns(timeout))
            if rc != -_lib.errors._errno.EMSGSIZE:
                break
            self._buf = ctypes.create_string_buffer(len(self._buf) * 4)
        _lib.check(rc, f"take {self.name!r}")
        return self._buf.raw[:rc]

    def put(self, value, timeout=None):
        v = _b(value)
        _lib.check(lib.wr_mvar_put(self._h, v, len(v), _ns(timeout)), f"put {self.name!r}")


class Map(_Named):
    """A shared hash map of bytes to bytes, dict-like (m[k] = v, m[k],
    del m[k], k in m, len(m), m.get(k)). str keys and values are UTF-8."""
    _open, _close, kind = lib.wr_map_open, lib.wr_map_close, "map"

    @classmethod
    def create(cls, arena, name, capacity=1024, key_max=64, value_max=256, stripes=0):
        o = MapOpts(capacity, key_max, value_max, stripes)
        _lib.check(lib.wr_map_create(arena._h, _b(name), byref(o)), f"create map {name!r}")
        return cls(arena, name)

    def __init__(self, arena, name):
        super().__init__(arena, name)
        self._buf = ctypes.create_string_buffer(256)

    def __setitem__(self, key, value):
        k, v = _b(key), _b(value)
        _lib.check(lib.wr_map_put(self._h, k, len(k), v, len(v)), f"map {self.name!r} put")

    def __getitem__(self, key):
        k = _b(key)
        while True:
            rc = lib.wr_map_get(self._h, k, len(k), self._buf, len(self._buf))
            if rc == -2:
                raise KeyError(key)
            _lib.check(rc, f"map {self.name!r} get")
            if rc <= len(self._buf):
                return self._buf.raw[:rc]
            self._buf = ctypes.create_string_buffer(rc)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key):
        k = _b(key)
        return lib.wr_map_get(self._h, k, len(k), None, 0) >= 0

    def __delitem__(self, key):
        k = _b(key)
        rc = lib.wr_map_del(self._h, k, len(k))
        if rc == -2:
            raise KeyError(key)
        _lib.check(rc, f"map {self.name!r} del")

    def __len__(self):
        return _lib.check(lib.wr_map_count(self._h), f"map {self.name!r} count")

