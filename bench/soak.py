#!/usr/bin/env python3
"""soak.py: the long soak (tests/test_reliability.py's soak is the short one).

    bench/soak.py [BUILD] [COUNT] [RATE] [CHAOS]     (make soak)

Five stages with replicas (tests/configs/soak.json) move COUNT records
(default 1,000,000) at RATE a second (default 20,000) while chaos SIGKILLs a
random worker CHAOS times a second (default 8: every 62-187 ms). Fails on a
lost record, a leaked heap byte or a lost permit. Baseline in the same run:
the same pipeline without chaos; the ratio is throughput under chaos to
throughput without.
"""
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000000
rate = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
chaos = float(sys.argv[4]) if len(sys.argv) > 4 else 8
warren = os.path.join(build, "src", "supervisor", "warren")
sys.argv = [sys.argv[0], warren, warren, "soak"]  # test_supervisor.py's argv
sys.path.insert(0, os.path.join(here, "..", "tests"))
import test_reliability as tr  # noqa: E402

t0 = time.monotonic()
clean = tr.soak(count, rate, 0.001)  # a first kill after ~500 s: none in practice
t1 = time.monotonic()
fig = tr.soak(count, rate, chaos)
t2 = time.monotonic()
print("soak: %d records, %d kills, %d restarts, %d duplicates, %d lost, %d bytes leaked, "
      "%d permits lost" % (fig["records"], fig["kills"], fig["restarts"], fig["duplicates"],
                           fig["lost"], fig["leaked_bytes"], fig["lost_permits"]))
print("soak: supervisor RSS %d KiB after start, %d KiB max, %d KiB at the end" %
      (fig["rss_kib_first"], fig["rss_kib_max"], fig["rss_kib_last"]))
print("soak: %.0f records/s under chaos, %.0f without: ratio %.2f" %
      (count / (t2 - t1), count / (t1 - t0), (t1 - t0) / (t2 - t1)))
