#!/usr/bin/env python3
"""bad_configs.py: every config in tests/configs/bad/ is refused.

expected.txt lists each file with the JSON path its error must name; for
each, `warren check FILE` must exit 2 and print a line "FILE: PATH: reason"
(it may name other paths too). Every .json in the directory must be listed,
and there must be at least 100.
Usage: bad_configs.py WARREN BAD_DIR
"""
import os
import subprocess
import sys


def main(warren, bad):
    listed, failures = {}, []
    for line in open(os.path.join(bad, "expected.txt")):
        if line.startswith("#") or not line.strip():
            continue
        name, path = line.rstrip("\n").split("\t")
        listed[name] = path
    on_disk = {f for f in os.listdir(bad) if f.endswith(".json")}
    for f in sorted(on_disk - set(listed)):
        failures.append(f"{f}: not in expected.txt")
    for name, path in sorted(listed.items()):
        file = os.path.join(bad, name)
        p = subprocess.run([warren, "check", file], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, errors="replace", timeout=60)
        want = f"{file}: {path}: "
        if p.returncode != 2 or not any(l.startswith(want) for l in p.stdout.splitlines()):
            failures.append(f"{name}: exit {p.returncode}, want 2 and '{path}':\n{p.stdout}")
    print(f"{len(listed)} bad configs, {len(listed) - len(failures)} refused as expected")
    for f in failures:
        print("FAIL " + f)
    if len(listed) < 100:
        print(f"FAIL: only {len(listed)} bad configs, want >= 100")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
