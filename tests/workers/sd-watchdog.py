#!/usr/bin/env python3
"""sd-watchdog.py: a program written for systemd's watchdog; nothing of warren in it.

    sd-watchdog.py NAME BEATS

As sd_watchdog_enabled() decides, the watchdog is on when WATCHDOG_USEC is
set and WATCHDOG_PID (if set) is this process. Writes "USEC PID MYPID" to
NAME.seen, sends READY=1 to $NOTIFY_SOCKET, then WATCHDOG=1 every quarter
of WATCHDOG_USEC, BEATS times (-1: forever), then runs on without a word:
stuck, as far as a watchdog can tell. Exits 0 on SIGTERM.
"""
import os
import signal
import socket
import sys
import time

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
name, beats = sys.argv[1], int(sys.argv[2])
usec = int(os.environ.get("WATCHDOG_USEC", "0"))
wpid = int(os.environ.get("WATCHDOG_PID", "0"))
with open(name + ".seen", "w") as f:
    f.write("%d %d %d\n" % (usec, wpid, os.getpid()))
addr = os.environ["NOTIFY_SOCKET"]
if addr.startswith("@"):
    addr = "\0" + addr[1:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\nSTATUS=up", addr)
enabled = usec > 0 and wpid in (0, os.getpid())
n = 0
while enabled and n != beats:
    s.sendto(b"WATCHDOG=1", addr)
    n += 1
    time.sleep(usec / 4e6)
while True:
    time.sleep(1)
