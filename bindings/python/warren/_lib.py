"""warren._lib: loading libwarren.so with ctypes, and the prototypes used.

Where the library comes from, first match wins: $WARREN_LIB; the copy the C
extension _warren is linked with (so both paths share one library, one
process-wide state); the build tree (<build>/lib/ seen from
<build>/bindings/python/warren/); the system's (ldconfig).
"""
import ctypes
import ctypes.util
import os

from . import errors

try:  # PYWARREN_NO_EXT=1: ctypes only (the tests run both ways)
    if os.environ.get("PYWARREN_NO_EXT") == "1":
        raise ImportError
    from . import _warren as ext
except ImportError:  # the source tree: pure ctypes
    ext = None


def _find():
    env = os.environ.get("WARREN_LIB")
    if env:
        return env
    if ext is not None and ext.lib_path():
        return ext.lib_path()
    here = os.path.dirname(os.path.abspath(__file__))
    for rel in ("../../../lib/libwarren.so", "../../../build/lib/libwarren.so"):
        p = os.path.normpath(os.path.join(here, rel))
        if os.path.exists(p):
            return p
    p = ctypes.util.find_library("warren")
    if p:
        return p
    raise ImportError("libwarren.so not found: build warren (make) or set WARREN_LIB")


lib = ctypes.CDLL(_find())

c_int, c_uint32, c_uint64, c_int64, c_size_t = (
    ctypes.c_int, ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int64, ctypes.c_size_t)
c_void_p, c_char_p, POINTER, byref = ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER, ctypes.byref


class Rec(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("len", c_uint32), ("flags", c_uint32), ("key", c_uint64),
                ("seq", c_uint64), ("lane", c_uint32), ("pad", c_uint32)]


class Msg(ctypes.Structure):
    _fields_ = [("data", c_void_p), ("len", c_uint32), ("pad", c_uint32), ("key", c_uint64)]


class ChanOpts(ctypes.Structure):
    _fields_ = [("capacity", c_uint32), ("slot_size", c_uint32), ("producers", c_uint32),
                ("consumers", c_uint32), ("flags", c_uint32)]


class ArenaOpts(ctypes.Structure):
    _fields_ = [("size", c_uint64), ("backend", c_int), ("path", c_char_p), ("flags", c_uint32)]


class LaneStats(ctypes.Structure):
    _fields_ = [("producer", c_uint32), ("consumer", c_uint32), ("capacity", c_uint32),
                ("slot_size", c_uint32), ("sent", c_uint64), ("received", c_uint64),
                ("bytes", c_uint64), ("depth", c_uint64), ("hwm", c_uint64),
                ("full_waits", c_uint64), ("empty_waits", c_uint64), ("redelivered", c_uint64),
                ("producer_tag", c_uint32), ("consumer_tag", c_uint32), ("closed", c_uint32),
                ("pad", c_uint32)]


class HeapStats(ctypes.Structure):
    _fields_ = [(n, c_uint64) for n in (
        "heap_bytes", "page_size", "pages_total", "pages_in_use", "pages_hwm", "allocs", "frees",
        "reclaims", "reclaimed_blocks", "reclaimed_bytes")]


class HeapUsage(ctypes.Structure):
    _fields_ = [(n, c_uint64) for n in (
        "blocks", "bytes", "worker_bytes", "lane_bytes", "name_bytes", "pending_bytes",
        "free_page_bytes", "spans", "orphan_spans")]


class ReclaimReport(ctypes.Structure):
    _fields_ = [(n, c_uint64) for n in ("blocks", "bytes", "spans", "orphaned")]


class SlotInfo(ctypes.Structure):
    _fields_ = [("slot", c_uint32), ("incarnation", c_uint32), ("state", c_uint32),
                ("pid", ctypes.c_int32), ("tag", c_uint32), ("pad", c_uint32),
                ("heartbeat", c_uint64)]


PP = POINTER(c_void_p)
_PROTOS = {
    # name: (restype, argtypes)
    "wr_version": (c_char_p, []),
    "wr_strerror": (c_char_p, [c_int]),
    "wr_err_name": (c_char_p, [c_int]),
    "wr_arena_create": (c_int, [POINTER(ArenaOpts), PP]),
    "wr_arena_attach_fd": (c_int, [c_int, PP]),
    "wr_arena_detach": (None, [c_void_p]),
    "wr_arena_fd": (c_int, [c_void_p]),
    "wr_arena_size": (c_uint64, [c_void_p]),
    "wr_ptr": (c_void_p, [c_void_p, c_uint64]),
    "wr_off": (c_uint64, [c_void_p, c_void_p]),
    "wr_slot_claim": (c_int, [c_void_p, POINTER(c_uint32)]),
    "wr_slot_mark_dead": (c_int, [c_void_p, c_uint32, c_uint32]),
    "wr_slot_release": (c_int, [c_void_p, c_uint32, c_uint32]),
    "wr_self_tag": (c_uint32, [c_void_p]),
    "wr_slot_info_get": (c_int, [c_void_p, c_uint32, POINTER(SlotInfo)]),
    "wr_self_slot": (c_uint32, [c_void_p]),
    "wr_alloc": (c_int, [c_void_p, c_size_t, PP]),
    "wr_free": (c_int, [c_void_p, c_void_p]),
    "wr_heap_reclaim": (c_int, [c_void_p, c_uint32, c_uint32, POINTER(ReclaimReport)]),
    "wr_heap_check": (c_int, [c_void_p, POINTER(HeapUsage), c_char_p, c_size_t]),
    "wr_heap_stats_get": (c_int, [c_void_p, POINTER(HeapStats)]),
    "wr_heap_flush": (None, [c_void_p]),
    "wr_name_lookup": (c_int, [c_void_p, c_char_p, POINTER(c_int), POINTER(c_uint64)]),
    "wr_name_unique": (c_int, [c_void_p, c_char_p, c_char_p, c_size_t]),
    "wr_chan_create": (c_int, [c_void_p, c_char_p, POINTER(ChanOpts)]),
    "wr_chan_destroy": (c_int, [c_void_p, c_char_p]),
    "wr_chan_open": (c_int, [c_void_p, c_char_p, c_int, c_uint32, PP]),
    "wr_chan_detach": (None, [c_void_p]),
    "wr_chan_send": (c_int, [c_void_p, c_char_p, c_size_t, c_int64]),
    "wr_chan_send_batch": (c_int, [c_void_p, POINTER(Msg), c_size_t, c_int64]),
    "wr_chan_peek_batch": (c_int, [c_void_p, POINTER(Rec), c_size_t, c_int64]),
    "wr_chan_release": (c_int, [c_void_p, POINTER(Rec)]),
    "wr_chan_close": (c_int, [c_void_p]),
    "wr_chan_reclaim": (c_int, [c_void_p, c_uint32, c_uint32, POINTER(c_uint64)]),
    "wr_chan_check": (c_int, [c_void_p, c_char_p, c_size_t]),
    "wr_chan_stats": (c_int, [c_void_p, c_char_p, POINTER(LaneStats), c_size_t]),
    "wr_interrupt": (None, []),
    "wr_sync_reclaim": (c_int, [c_void_p, c_uint32, c_uint32, POINTER(c_uint64)]),
    "wr_worker_attach": (c_int, [PP]),
    "wr_worker_arena": (c_void_p, [c_void_p]),
    "wr_worker_name": (c_char_p, [c_void_p]),
    "wr_worker_replica": (c_uint32, [c_void_p]),
    "wr_worker_nin": (c_uint32, [c_void_p]),
    "wr_worker_nout": (c_uint32, [c_void_p]),
    "wr_worker_in": (c_int, [c_void_p, c_uint32, PP]),
    "wr_worker_out": (c_int, [c_void_p, c_uint32, PP]),
    "wr_worker_ready": (c_int, [c_void_p]),
    "wr_worker_alive": (None, [c_void_p]),
    "wr_worker_detach": (None, [c_void_p]),
}
for _name, (_res, _args) in _PROTOS.items():
    _f = getattr(lib, _name, None)
    if _f is not None:  # a build without some module (sync) lacks its calls
        _f.restype, _f.argtypes = _res, _args


def has(name):
    return getattr(lib, name, None) is not None


def error(code, what=None):
    """The exception for libwarren code `code` (negative), with its text."""
    cls = errors.error_class(code)
    return cls(code, lib.wr_strerror(code).decode(), lib.wr_err_name(code).decode(), what)


def check(rc, what=None):
    """Raise the exception for a negative rc; return rc otherwise."""
    if rc < 0:
        raise error(rc, what)
    return rc


if ext is not None:
    ext.set_error_factory(error)
