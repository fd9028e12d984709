"""pyworker.py: Python workers that tests/test_python.py runs under `warren`.

    pyworker.py describe OUT          write who it is (json) to OUT (and whether alive()
                                      moved its heartbeat), then wait for stop
    pyworker.py source N              send records b"0".."N-1" (in batches), close, exit 0
    pyworker.py relay MARKER K        forward records; the first incarnation (no MARKER
                                      file yet) SIGKILLs itself after peeking record K,
                                      before releasing it
    pyworker.py sink OUT              collect records until end of stream, write OUT
"""
import json
import os
import signal
import sys

import warren

mode = sys.argv[1]
with warren.Worker() as w:
    if mode == "describe":
        beat = w.arena.slot_info()["heartbeat"]
        w.alive()
        with open(sys.argv[2] + ".tmp", "w") as f:
            json.dump({"name": w.name, "replica": w.replica, "inputs": w.inputs,
                       "outputs": w.outputs, "fast": warren.FAST,
                       "alive": w.arena.slot_info()["heartbeat"] != beat}, f)
        os.rename(sys.argv[2] + ".tmp", sys.argv[2])
        w.ready()
        signal.sigwait([signal.SIGTERM])
    elif mode == "source":
        out = w.output(0)
        w.ready()
        n = int(sys.argv[2])
        for i in range(0, n, 50):
            out.send_batch([str(j).encode() for j in range(i, min(n, i + 50))])
        out.close()
    elif mode == "relay":
        inp, out = w.input(0), w.output(0)
        w.ready()
        crash = not os.path.exists(sys.argv[2])
        k = int(sys.argv[3])
        while True:
            try:
                b = inp.peek()
            except warren.EndOfStream:
                break
            rec = bytes(b[0])
            out.send(rec)
            if crash and rec == str(k).encode():
                open(sys.argv[2], "w").close()
                os.kill(os.getpid(), signal.SIGKILL)  # own pid: never 0 or -1
            b.release()
        out.close()
    elif mode == "sink":
        inp = w.input(0)
        w.ready()
        got = [r.decode() for r in inp]
        with open(sys.argv[2] + ".tmp", "w") as f:
            json.dump(got, f)
        os.rename(sys.argv[2] + ".tmp", sys.argv[2])
