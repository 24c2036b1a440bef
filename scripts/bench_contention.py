"""bench_contention.py: issue 12's 2-core target, "the one-worker-at-a-time
program, three runs back to back while busy loops compete for every core
and another process writes a multi-GB file: 0 dropped in every run".

    python scripts/bench_contention.py [--runs 3] [--write-gb 4]

Starts one busy loop per CPU and a writer that rewrites a --write-gb file
(fsync'd) in the output directory for as long as the runs last, then runs
`traced run -o T.pftrace -- python bench/wl_serial.py` --runs times with
default settings (a private daemon per run), and prints per run the wall
time, the summary's events and dropped, and the calls of step() counted
in the trace (traced report) against the calls the program made.  Exits 1 when a run
dropped or lost a call.  The trace is Perfetto (the smallest format) and
is deleted after counting.  Environment: BENCH_SERIAL_WORKERS,
BENCH_SERIAL_CALLS (bench/wl_serial.py), TRACED_BIN."""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRACED = os.environ.get("TRACED_BIN") or os.path.join(REPO, "build/bin/traced")
SUMMARY = re.compile(rb"traced: (\d+) processes, (\d+) threads, (\d+) events"
                     rb", (\d+) dropped")

BUSY = "while True: pass"
WRITER = """
import os, sys
path, gb = sys.argv[1], int(sys.argv[2])
block = b"\\0" * (1 << 20)
while True:
    with open(path, "wb") as f:
        for _ in range(gb * 1024):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--write-gb", type=int, default=4)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="traced-contention-",
                           dir=os.environ.get("BENCH_DIR") or "/tmp")
    load = [subprocess.Popen([sys.executable, "-c", BUSY])
            for _ in range(os.cpu_count() or 1)]
    load.append(subprocess.Popen([sys.executable, "-c", WRITER,
                                  os.path.join(tmp, "big"), str(a.write_gb)]))
    failed = False
    print("cpus=%d busy_loops=%d writer=%d GB (fsync'd, rewritten) load=%s"
          % (os.cpu_count(), len(load) - 1, a.write_gb,
             os.getloadavg()[0]))
    try:
        time.sleep(2)  # the writer fills the page cache first
        for run in range(a.runs):
            out = os.path.join(tmp, "t%d.pftrace" % run)
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith("TRACED_")}
            env["TRACED_SOCKET"] = os.path.join(tmp, "d%d.sock" % run)
            t0 = time.perf_counter()
            r = subprocess.run([TRACED, "run", "-o", out, "--",
                                sys.executable,
                                os.path.join(REPO, "bench/wl_serial.py")],
                               env=env, capture_output=True)
            wall = time.perf_counter() - t0
            m = SUMMARY.search(r.stderr)
            prog = json.loads(r.stdout.decode().strip().splitlines()[-1])
            rep = subprocess.run([TRACED, "report", "--json", "--sort",
                                  "calls", "--top", "3", out],
                                 capture_output=True)
            doc = json.loads(rep.stdout) if rep.returncode == 0 else {}
            calls = sum(row.get("calls", 0) for row in doc.get("overall", [])
                        if row.get("name", "").startswith("step ("))
            os.unlink(out)
            dropped = int(m.group(4)) if m else -1
            ok = (r.returncode == 0 and m is not None and dropped == 0
                  and calls == prog["expected_calls"])
            failed |= not ok
            print("run %d: wall %.2f s (program %.2f s), events %s, "
                  "dropped %s, step() calls in trace %d of %d%s"
                  % (run + 1, wall, prog["wall_s"],
                     m.group(3).decode() if m else "?", dropped, calls,
                     prog["expected_calls"], "" if ok else "  <-- LOSS"))
            sys.stdout.flush()
    finally:
        for p in load:
            p.kill()
            p.wait()
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
