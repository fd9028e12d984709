"""warren.channel: one side of a warren channel.

A Channel is a producer or a consumer side (libwarren's wr_chan handle). The
per-record calls go through the C extension _warren when it is built
(a ctypes call costs as much as the whole record), else through ctypes.

Timeouts, everywhere: None waits forever, 0 tries once (WouldBlock when it
would wait), a number of seconds waits at most that long (Timeout). Waits
sleep on a futex and wake up for Ctrl-C.
"""
import ctypes

from . import _lib
from ._lib import byref, ext, lib
from .errors import EndOfStream

PRODUCER, CONSUMER = 1, 2


def _ns(timeout):
    if timeout is None:
        return -1
    return max(0, int(timeout * 1e9))


class Batch:
    """ctypes twin of _warren.Batch: peeked records as memoryviews, valid
    until release() (then using a view raises ValueError)."""

    def __init__(self, chan, recs, n):
        self._chan, self._last = chan, Rec_copy(recs[n - 1])
        self._views = [_view(r.data, r.len) for r in recs[:n]]

    def __len__(self):
        return len(self._views) if self._views is not None else 0

    def __getitem__(self, i):
        if self._views is None:
            raise ValueError("the batch was released")
        return self._views[i]

    key = property(lambda self: self._last.key)
    seq = property(lambda self: self._last.seq)

    def release(self):
        if self._views is None:
            return
        for v in self._views:
            v.release()
        self._views = None
        _lib.check(lib.wr_chan_release(self._chan._handle(), byref(self._last)), "release")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _view(addr, n):
    if not n:
        return memoryview(b"")
    return memoryview((ctypes.c_char * n).from_address(addr)).cast("B").toreadonly()


def Rec_copy(r):
    c = _lib.Rec()
    ctypes.pointer(c)[0] = r
    return c


class Channel:
    """One side of channel `name`. Get one from Worker.input()/output(), or
    Channel.open(arena, name, PRODUCER|CONSUMER, index). Close with close()
    (producer: end of stream for the consumer) and detach() (or `with`)."""

    def __init__(self, handle, name, role, owner=None):
        self._h, self.name, self.role = handle, name, role
        self._owner = owner  # the Arena/Worker that must outlive the handle
        self._owned = owner is None or not hasattr(owner, "_chans")

    @classmethod
    def open(cls, arena, name, role, index=0):
        h = ctypes.c_void_p()
        _lib.check(lib.wr_chan_open(arena._h, name.encode(), role, index, byref(h)),
                   f"open channel {name!r}")
        return cls(h.value, name, role, arena)

    def __repr__(self):
        side = "producer" if self.role == PRODUCER else "consumer"
        return f"<warren.Channel {self.name!r} {side}{'' if self._h else ' detached'}>"

    def _handle(self):
        if not self._h:
            raise ValueError(f"channel {self.name!r} is detached")
        return self._h

    # ---------------------------------------------------------------- send
    def send(self, data, timeout=None):
        """Copy one record (bytes-like, <= the slot size) into the channel.
        Blocks while it is full. Raises ChannelClosed, MessageTooLarge, ..."""
        data = bytes(data)
        _lib.check(lib.wr_chan_send(self._handle(), data, len(data), _ns(timeout)), "send")

    def send_batch(self, records, timeout=None):
        """Send a sequence of bytes records, publishing once a run; returns
        how many were sent (all, unless an exception is raised)."""
        records = list(records)
        msgs = (_lib.Msg * len(records))()
        bufs = [ctypes.create_string_buffer(bytes(r), len(r)) for r in records]
        for m, b, r in zip(msgs, bufs, records):
            m.data, m.len = ctypes.addressof(b), len(r)
        done = 0
        while done < len(records):
            first = ctypes.cast(ctypes.byref(msgs, done * ctypes.sizeof(_lib.Msg)),
                                ctypes.POINTER(_lib.Msg))
            rc = lib.wr_chan_send_batch(self._handle(), first, len(records) - done, _ns(timeout))
            _lib.check(rc, "send_batch")
            done += rc
        return done

    def close(self):
        """Producer: no more records; the consumer drains, then EndOfStream."""
        _lib.check(lib.wr_chan_close(self._handle()), "close")

    # ---------------------------------------------------------------- receive
    def recv(self, timeout=None):
        """The next record, as bytes (a copy). Raises EndOfStream when every
        producer closed and everything was received."""
        b = self.peek(timeout)
        data = bytes(b[0])
        b.release()
        return data

    def recv_batch(self, max=64, timeout=None):
        """1..max records (a list of bytes) from one lane; waits for the first."""
        b = self.peek_batch(max, timeout)
        out = [bytes(v) for v in b._views]
        b.release()
        return out

    def peek_batch(self, max=64, timeout=None):
        """Zero-copy: 1..max records as memoryviews into shared memory, valid
        until the batch is released (use `with`). Until then they are not
        consumed: if this process dies, the next holder gets them again."""
        recs = (_lib.Rec * max)()
        n = _lib.check(lib.wr_chan_peek_batch(self._handle(), recs, max, _ns(timeout)), "peek")
        return Batch(self, recs, n)

    def peek(self, timeout=None):
        """Zero-copy, one record: a batch of one (rec[0] is the memoryview)."""
        return self.peek_batch(1, timeout)

    def __iter__(self):
        """Records (bytes) until end of stream."""
        try:
            while True:
                yield self.recv()
        except EndOfStream:
            return

    def batches(self, max=64):
        """Lists of records (bytes) until end of stream."""
        try:
            while True:
                yield self.recv_batch(max)
        except EndOfStream:
            return

    # ---------------------------------------------------------------- lifetime
    def detach(self):
        """Give up this side (records peeked, not released, go to the next
        holder). Channels of a Worker are detached with it."""
        if self._h and self._owned:
            lib.wr_chan_detach(self._h)
        self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.detach()

    def __del__(self):
        if getattr(self, "_h", None) and self._owned:
            self.detach()


if ext is not None:  # the C extension's per-record path replaces the ctypes one
    _send, _send_batch, _recv, _recv_batch, _peek_batch = (
        ext.send, ext.send_batch, ext.recv, ext.recv_batch, ext.peek_batch)

    def send(self, data, timeout=None):
        _send(self._h or 0, data, -1 if timeout is None else _ns(timeout))

    def send_batch(self, records, timeout=None):
        return _send_batch(self._h or 0, records, -1 if timeout is None else _ns(timeout))

    def recv(self, timeout=None):
        return _recv(self._h or 0, -1 if timeout is None else _ns(timeout))

    def recv_batch(self, max=64, timeout=None):
        return _recv_batch(self._h or 0, max, -1 if timeout is None else _ns(timeout))

    def peek_batch(self, max=64, timeout=None):
        return _peek_batch(self._h or 0, self, max, -1 if timeout is None else _ns(timeout))

    for _f in (send, send_batch, recv, recv_batch, peek_batch):
        _f.__doc__ = getattr(Channel, _f.__name__).__doc__
        setattr(Channel, _f.__name__, _f)
