#!/usr/bin/env python3
"""crash_matrix.py: the crash-point matrix of the whole library, as one test.

Runs each module's crash-matrix binary (test_heap_crash, test_chan_crash,
...), gathers the rows they print through tests/crash_row.h
("crash-row POINT KILLS LEAKED PERMITS RECORDS"), and prints one table:
point, kills, leaked bytes, lost permits, lost records. Fails when a binary
fails, when a cell other than kills is not 0, when a covered point was
never killed, or when fewer than --min points are covered. Points the
library has that no matrix covers are listed (not a failure: a module
may land before its matrix prints rows).
Usage: crash_matrix.py [--min N] BINARY...
"""
import subprocess
import sys


def main(argv):
    need = 30
    if len(argv) > 2 and argv[1] == "--min":
        need = int(argv[2])
        argv = argv[2:]
    rows, known, failed, skipped = {}, set(), [], 0
    for exe in argv[1:]:
        p = subprocess.run([exe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace", timeout=900)
        if p.returncode == 77:
            skipped += 1
            continue
        if p.returncode != 0:
            failed.append(exe)
            sys.stdout.write(p.stdout)
        for line in p.stdout.splitlines():
            f = line.split()
            if len(f) == 6 and f[0] == "crash-row":
                r = rows.setdefault(f[1], [0, 0, 0, 0])
                for i in range(4):
                    r[i] += int(f[2 + i])
            elif len(f) == 2 and f[0] == "crash-point":
                known.add(f[1])
    if skipped == len(argv) - 1:
        print("built without crash points: skipped")
        return 77
    print(f"{'crash point':34} {'kills':>6} {'leaked':>8} {'permits':>8} {'records':>8}")
    bad = []
    for point in sorted(rows):
        k, leaked, permits, records = rows[point]
        print(f"{point:34} {k:6} {leaked:8} {permits:8} {records:8}")
        if k == 0 or leaked or permits or records:
            bad.append(point)
    kills = sum(r[0] for r in rows.values())
    print(f"{len(rows)} crash points, {kills} kills, "
          f"{sum(r[1] for r in rows.values())} bytes leaked, "
          f"{sum(r[2] for r in rows.values())} permits lost, "
          f"{sum(r[3] for r in rows.values())} records lost")
    missing = sorted(known - set(rows))
    if missing:
        print("not covered by any matrix: " + " ".join(missing))
    if failed:
        print("FAILED binaries: " + " ".join(failed))
    if bad:
        print("FAILED rows (no kill, or something lost): " + " ".join(bad))
    if len(rows) < need:
        print(f"FAILED: {len(rows)} points covered, want >= {need}")
    return 1 if failed or bad or len(rows) < need else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
