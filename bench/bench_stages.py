#!/usr/bin/env python3
"""bench_stages: whole pipelines of stock stages against their plain baselines,
measured in the same run (wall time, best of 3), printed as ratios.

  S1  word count: file-source -> map split-words lower (2) -> count -> top
      against  tr | tr | grep | sort | uniq -c | sort | head  on the same file
  S2  exec: file-source -> exec tr a-z A-Z -> file-sink  against  tr < in > out
  S3  large records: gen 256 KiB records -> null, zero-copy (256-byte slots)
      against the same records copied inline (256 KiB slots)

Each includes starting and stopping the run (a few ms). Input: the licence
texts of /usr/share/common-licenses, repeated to about 8 MB.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(sys.argv[0]))
WARREN = os.path.join(HERE, "..", "src", "supervisor", "warren")


def best(fn, n=3):
    t = []
    for _ in range(n):
        t0 = time.monotonic()
        fn()
        t.append(time.monotonic() - t0)
    return min(t)


def run(dir, cfg):
    path = os.path.join(dir, "b.json")
    with open(path, "w") as f:
        json.dump(dict(cfg, name="bench", stats_interval_ms=0), f)
    p = subprocess.run([WARREN, "run", path], cwd=dir, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=dict(os.environ, XDG_RUNTIME_DIR=dir))
    if p.returncode != 0:
        sys.exit("warren run failed:\n" + p.stdout.decode(errors="replace")[-2000:])


def chain(*stages, slot=256, cap=1024, heap="128MiB"):
    ws, cs = [], []
    for i, (name, argv, reps) in enumerate(stages):
        w = {"name": name, "exec": ["warren-worker"] + argv, "replicas": reps}
        if i:
            w["in"] = ["c%d" % (i - 1)]
        if i < len(stages) - 1:
            w["out"] = ["c%d" % i]
            cs.append({"name": "c%d" % i, "capacity": cap, "slot_size": slot})
        ws.append(w)
    return {"heap": {"size": heap}, "channels": cs, "workers": ws}


def main():
    files = sorted(glob.glob("/usr/share/common-licenses/*"))
    if not files or not os.access(WARREN, os.X_OK):
        print("bench_stages: needs /usr/share/common-licenses and a built warren; skipped")
        return
    d = tempfile.mkdtemp(prefix="warren-bench-")
    text = b"".join(open(f, "rb").read() for f in files)
    data = os.path.join(d, "in.txt")
    with open(data, "wb") as f:
        f.write(text * max(1, (8 << 20) // len(text)))
    mb = os.path.getsize(data) / 1e6
    env = dict(os.environ, LC_ALL="C")

    sh = ("tr -cs 'A-Za-z' '\\n' < %s | tr A-Z a-z | grep -v '^$' | sort | uniq -c "
          "| sort -k1,1nr -k2,2 | head > /dev/null" % data)
    t_sh = best(lambda: subprocess.run(["sh", "-c", sh], env=env, check=True))
    cfg = chain(("read", ["file-source", data], 1), ("split", ["map", "split-words", "lower"], 2),
                ("count", ["count"], 1), ("top", ["top"], 1))
    t_w = best(lambda: run(d, cfg))
    print("S1 word count, %.1f MB: warren %.3f s, shell pipeline %.3f s, ratio %.2f"
          % (mb, t_w, t_sh, t_w / t_sh))

    out = os.path.join(d, "out.txt")
    t_tr = best(lambda: subprocess.run("tr a-z A-Z < %s > %s" % (data, out), shell=True,
                                       check=True))
    cfg = chain(("read", ["file-source", data], 1), ("tr", ["exec", "--", "tr", "a-z", "A-Z"], 1),
                ("write", ["file-sink", out], 1))
    t_w = best(lambda: run(d, cfg))
    print("S2 exec tr, %.1f MB: warren %.3f s, plain tr %.3f s, ratio %.2f"
          % (mb, t_w, t_tr, t_w / t_tr))

    n, size = 2000, 256 << 10
    zc = chain(("gen", ["gen", "--count", str(n), "--size", "256KiB"], 1), ("sink", ["null"], 1),
               slot=256, cap=16)
    cp = chain(("gen", ["gen", "--count", str(n), "--size", "256KiB"], 1), ("sink", ["null"], 1),
               slot=size, cap=16)
    t_zc = best(lambda: run(d, zc))
    t_cp = best(lambda: run(d, cp))
    gb = n * size / 1e9
    print("S3 %d x 256 KiB records: zero-copy %.3f s (%.2f GB/s), inline copy %.3f s "
          "(%.2f GB/s), ratio copy/zero-copy %.2f" % (n, t_zc, gb / t_zc, t_cp, gb / t_cp,
                                                     t_cp / t_zc))


if __name__ == "__main__":
    main()
