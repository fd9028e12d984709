"""warren.errors: one exception class a libwarren error code.

libwarren returns 0 or a negative code (-WR_E... or -errno). `error(code)`
builds the exception for a code: the class comes from the table below (each
also derives from the built-in exception a Python user would catch: a
timeout is a TimeoutError, an unknown name a LookupError, ...) and the
message is libwarren's own text (wr_strerror), with the symbolic name.
"""
import errno as _errno


class WarrenError(OSError):
    """A libwarren call failed. .code is the negative code, .name its symbol."""

    def __init__(self, code, text, name, what=None):
        msg = f"{what}: {text} ({name})" if what else f"{text} ({name})"
        super().__init__(-code if code < 0 and -code < 1000 else code, msg)
        self.code, self.name, self.text = code, name, text

    def __str__(self):
        return self.args[1]


class InvalidArgument(WarrenError, ValueError): pass
class OutOfMemory(WarrenError, MemoryError): pass
class WouldBlock(WarrenError, BlockingIOError): pass
class Timeout(WarrenError, TimeoutError): pass
class Interrupted(WarrenError, InterruptedError): pass
class NotFound(WarrenError, LookupError): pass
class Exists(WarrenError, FileExistsError): pass
class NameTooLong(WarrenError, ValueError): pass
class MessageTooLarge(WarrenError, ValueError): pass
class OwnerDead(WarrenError): pass
class BadArena(WarrenError): pass
class ChannelClosed(WarrenError, BrokenPipeError): pass
class EndOfStream(WarrenError, EOFError): pass
class KindMismatch(WarrenError, TypeError): pass
class NoSlot(WarrenError): pass
class Corrupt(WarrenError): pass
class NotUnderWarren(WarrenError, RuntimeError): pass
class NotOwner(WarrenError, PermissionError): pass
class Overflow(WarrenError, OverflowError): pass
class Deadlock(WarrenError, RuntimeError): pass


# WR_ERRNO_MAP's codes (warren.h) -> class. Codes that are errno values share
# them, so -errno from a system call maps the same way.
_CLASSES = {
    _errno.EINVAL: InvalidArgument, _errno.ENOMEM: OutOfMemory, _errno.EAGAIN: WouldBlock,
    _errno.ETIMEDOUT: Timeout, _errno.EINTR: Interrupted, _errno.ENOENT: NotFound,
    _errno.EEXIST: Exists, _errno.ENAMETOOLONG: NameTooLong, _errno.EMSGSIZE: MessageTooLarge,
    _errno.EOWNERDEAD: OwnerDead, 1001: BadArena, 1002: BadArena, 1003: BadArena,
    1004: ChannelClosed, 1005: EndOfStream, 1006: KindMismatch, 1007: NoSlot, 1008: Corrupt,
    1009: NotUnderWarren, 1010: NotOwner, _errno.EOVERFLOW: Overflow, _errno.EDEADLK: Deadlock,
}


def error_class(code):
    return _CLASSES.get(abs(code), WarrenError)
