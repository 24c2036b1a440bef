#!/usr/bin/env python3
"""bench.py: traced's benchmark suite, side by side with its peers, in one
run (docs/benchmarks.md says what each figure means).

    scripts/bench.py            the per-workload suite (`make bench`)
    scripts/bench.py --daemon   the daemon figures (`make bench-daemon`)

Per-workload suite: every workload in bench/ runs under every tool --
untraced, the empty C profile hook, cProfile, VizTracer, traced -- one
after the other in each of BENCH_ROUNDS rounds (A B C A B C ...), so slow
drifts of a shared machine hit every tool alike.  Medians and min-max
over the rounds are printed as a table and written, with every raw run,
to build/bench/results.json.  Ratios between tools are computed within
each round and then summarised.

Daemon figures: events/s ingested and written, and the daemon's CPU, for
P = 1, 2, 4, 8, 16 native producer processes, each in the lossless
default and in the drop mode; a Python program of P processes x T
threads untraced and traced both ways (is every call in the file, at what
cost); daemon RSS over a long trace; and the time from the last
producer's exit to the file being complete; written to
build/bench/daemon-results.json.

Environment (all optional):
  BENCH_ROUNDS          rounds (default 5; 2 with BENCH_QUICK)
  BENCH_QUICK=1         small workloads and 2 rounds, for trying the suite
  BENCH_WORKLOADS       comma-separated subset of: fib,mixed,methods,
                        generators,threads,joblib
  BENCH_TOOLS           comma-separated subset of: none,emptyhook,emptymon,
                        emptymonc,cprofile,viztracer,traced,traced-noc,
                        traced-args,viz-args (emptymon: the empty
                        sys.monitoring callback on PY_START and PY_RETURN,
                        3.12+ only; emptymonc: on CALL, C_RETURN and
                        C_RAISE too)
  BENCH_VENV            the venv whose Python is measured (default .venv;
                        `make bench BENCH_PYTHON=3.12` passes .venv-3.12)
  BENCH_EMPTYHOOK_PATH  where _emptyhook is built (default build/bench)
  BENCH_TIMEOUT         seconds allowed to one run (default 900)
  BENCH_OUT             results file (default build/bench/results.json or
                        build/bench/daemon-results.json; with BENCH_QUICK
                        results-quick.json, daemon-results-quick.json)
  BENCH_TRACED_NOC_ARGS `traced run` options that ignore C functions, once
                        traced has them (default: found in `traced run
                        --help`, else the tool is reported as n/a)
  BENCH_FIB_N, BENCH_MIXED_N, BENCH_METHODS_N, BENCH_GEN_N,
  BENCH_THREADS_N, BENCH_JOBLIB_TASKS   workload sizes (see bench/wl_*.py)
  BENCH_DAEMON_EVENTS   events in the long daemon trace (default 10M;
                        `make bench-daemon` passes 100M)
  BENCH_DAEMON_TPUT_EVENTS  events per throughput run (default 10M)
  BENCH_DAEMON_FORMAT   the daemon figures' trace format: json (default),
                        json.gz or perfetto
  BENCH_DAEMON_PARTS    comma-separated subset of:
                        producers,python,long,formats
  BENCH_DAEMON_FORMATS  the formats part's formats (default
                        json,json.gz,perfetto): events per daemon CPU-s
                        for native and Python-shaped events in each
  BENCH_DAEMON_FORMAT_PROCS  native producers in the formats part (2)
  BENCH_DAEMON_BASELINE another build's traced binary: the formats part
                        runs its daemon too, alternately, with ratios
  BENCH_DAEMON_PROCS    producer counts (default 1,2,4,8,16)
  BENCH_DAEMON_MODES    subset of: lossless,drop
  BENCH_DAEMON_THREADS  `traced serve --threads N` (default: the daemon's
                        own, one drain worker per CPU)
  BENCH_MP_PROCS, BENCH_MP_THREADS, BENCH_MP_N, BENCH_MP_REPS
                        the Python daemon workload's sizes (bench/wl_mp.py)
  TRACED_BIN            the traced binary (default build/bin/traced)
"""
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "bench")
BUILD_BENCH = os.path.join(ROOT, "build", "bench")
# The interpreter measured: the venv `make bench` passes as BENCH_VENV
# (.venv-3.12 for BENCH_PYTHON=3.12), with its own VizTracer and cProfile.
VENV = os.path.join(ROOT, os.environ.get("BENCH_VENV") or ".venv")
PYTHON = os.path.join(VENV, "bin", "python")
VIZTRACER = os.path.join(VENV, "bin", "viztracer")
TRACED = os.environ.get("TRACED_BIN") or os.path.join(ROOT, "build", "bin",
                                                      "traced")
EMPTYHOOK_PATH = os.environ.get("BENCH_EMPTYHOOK_PATH") or BUILD_BENCH
PRODUCER = os.path.join(BUILD_BENCH, "producer")
RUSAGE = os.path.join(BUILD_BENCH, "rusage")

QUICK = os.environ.get("BENCH_QUICK") == "1"
# The daemon figures' trace file, named so that its extension picks the
# format (docs/formats.md).
DAEMON_TRACE = {"json": "trace.json", "json.gz": "trace.json.gz",
                "perfetto": "trace.pftrace"}[
                    os.environ.get("BENCH_DAEMON_FORMAT") or "json"]
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or (2 if QUICK else 5))
TIMEOUT = float(os.environ.get("BENCH_TIMEOUT") or 900)

WORKLOADS = ["fib", "mixed", "methods", "generators", "threads", "joblib"]
TOOLS = ["none", "emptyhook", "emptymon", "emptymonc", "cprofile",
         "viztracer", "traced", "traced-noc", "traced-args", "viz-args"]
# Sizes with BENCH_QUICK=1 (a variable set explicitly still wins).
QUICK_SIZES = {"BENCH_FIB_N": "22", "BENCH_MIXED_N": "1500",
               "BENCH_METHODS_N": "10000", "BENCH_GEN_N": "30000",
               "BENCH_THREADS_N": "8000", "BENCH_JOBLIB_TASKS": "40",
               "BENCH_MP_REPS": "4"}
# Flags a future `traced run` might use to leave C functions out; the
# first one its --help mentions is used (BENCH_TRACED_NOC_ARGS overrides).
NOC_FLAG_CANDIDATES = ["--ignore-c-functions", "--ignore-c", "--no-c-calls",
                       "--no-c"]
# Per workload, a byte string whose occurrences in a trace count the calls
# every complete trace must hold: joblib's task() calls, made in the
# workers (names start `"task (` in traced's and VizTracer's files).
MARKERS = {"joblib": b'"task ('}
# What a tool leaves out of a workload, printed beside its figures.
CAVEATS = {
    "threads": {"cprofile": "main thread only"},
    "joblib": {"emptyhook": "parent only", "cprofile": "parent only"},
}
# Session variables that must never leak into a run from our environment.
TRACED_VARS = ["TRACED_SESSION", "TRACED_OUTPUT", "TRACED_SOCKET",
               "TRACED_ROOT_PID"]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

class RunResult:
    def __init__(self, status, wall_s, maxrss_kb, stderr, timed_out,
                 end_ns=None):
        self.status = status  # exit code (128+N: killed by signal N)
        self.end_ns = end_ns  # CLOCK_MONOTONIC when the command was reaped
        self.wall_s = wall_s
        self.maxrss_kb = maxrss_kb  # largest process in the waited tree
        self.stderr = stderr
        self.timed_out = timed_out

    @property
    def ok(self):
        return self.status == 0 and not self.timed_out


def run(argv, env, tmpdir, timeout=None, stdout_path=None):
    """Runs argv under bench_rusage (bench/rusage.c) in its own process
    group and returns its wall time (fork to reaped, measured by the
    wrapper) and peak RSS.  On timeout the whole group is killed."""
    timeout = TIMEOUT if timeout is None else timeout
    err_path = os.path.join(tmpdir, "stderr.txt")
    ru_path = os.path.join(tmpdir, "rusage.txt")
    if os.path.exists(ru_path):
        os.remove(ru_path)
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    try:
        with open(err_path, "wb") as err:
            t0 = time.perf_counter()
            p = subprocess.Popen([RUSAGE, ru_path] + argv, env=env,
                                 cwd=tmpdir, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=err,
                                 start_new_session=True)
            try:
                p.wait(timeout=timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
            except BaseException:
                # ^C reaches only our process group: take the command's
                # down with us.
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                p.wait()
                raise
            # Whatever the group left behind (a timed-out command, or a
            # worker that outlived its parent) goes too.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait()
            t1 = time.perf_counter()
    finally:
        if stdout_path:
            out.close()
    with open(err_path, "rb") as f:
        stderr = f.read().decode("utf-8", "replace")
    wall_s, maxrss, end_ns = t1 - t0, None, None
    try:
        with open(ru_path) as f:
            fields = dict(kv.split("=") for kv in f.read().split())
        wall_s = int(fields["wall_ns"]) / 1e9
        end_ns = int(fields["end_ns"])
        maxrss = int(fields["maxrss_kb"])
    except (OSError, ValueError, KeyError):
        pass
    return RunResult(p.returncode, wall_s, maxrss, stderr, timed_out, end_ns)


def base_env():
    env = dict(os.environ)
    for k in TRACED_VARS:
        env.pop(k, None)
    if QUICK:
        for k, v in QUICK_SIZES.items():
            env.setdefault(k, v)
    return env


class Daemon:
    """A private `traced serve` on a socket in tmpdir, for this suite only.
    Its log (INFO level: one line per session) is appended to
    build/bench/traced-serve.log, which outlives the temporary directory."""

    def __init__(self, tmpdir, threads=None, binary=None):
        self.tmpdir = tmpdir
        self.threads = threads  # `--threads N`; None: the daemon's default
        self.binary = binary or TRACED  # `traced run` is always TRACED
        self.socket = os.path.join(tmpdir, "traced.sock")
        self.log_path = os.path.join(BUILD_BENCH, "traced-serve.log")
        self.proc = None
        self.deaths = []  # exit statuses of daemons that died under us

    def start(self):
        env = base_env()
        os.makedirs(BUILD_BENCH, exist_ok=True)
        self._log = open(self.log_path, "ab")
        argv = [self.binary, "serve", "--socket", self.socket]
        if self.threads:
            argv += ["--threads", str(self.threads)]
        self._log.write(f"== bench: {' '.join(argv[1:])} at "
                        f"{time.strftime('%H:%M:%S')}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(
            argv, env=env,
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
            start_new_session=True)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("traced serve did not start; see "
                                   + self.log_path)
            time.sleep(0.01)
        return self

    def ensure(self):
        """Restarts the daemon if it died (counted in `deaths`, with its
        exit status: -N is signal N).  Were it left dead, `traced run`
        would start a daemon of its own on our socket."""
        if self.alive():
            return
        status = self.proc.returncode if self.proc else None
        self.deaths.append(status)
        log(f"bench: WARNING: the private traced daemon died (status "
            f"{status}); restarting it; see {self.log_path}")
        self.stop()
        reap_strays(self.socket)
        if os.path.exists(self.socket):
            os.remove(self.socket)
        self.start()

    def status(self):
        """VmRSS and VmHWM in kB from /proc/<pid>/status."""
        out = {}
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith(("VmRSS:", "VmHWM:")):
                        out[line.split(":")[0]] = int(line.split()[1])
        except OSError:
            pass
        return out

    def cpu_s(self):
        """(user, system) CPU seconds so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._log.close()
        self.proc = None


def reap_strays(needle):
    """Kills, by pid, every process whose command line contains `needle`
    (our private socket's unique path): a daemon that `traced run`
    started by itself on our socket after ours died.  Nothing else can
    name that path."""
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if needle.encode() in cmd and b"serve" in cmd:
            log(f"bench: killing stray daemon {pid}: "
                f"{cmd.replace(bytes(1), b' ').decode(errors='replace')}")
            try:
                os.kill(int(pid), signal.SIGTERM)
            except OSError:
                pass


def count_events(path, marker=None):
    """Counts in a Chrome-trace JSON file, in one streaming pass (the files
    are hundreds of MB): events (not metadata), metadata events, processes
    named (process_name records) and occurrences of `marker` (bytes).
    Both traced's `"ph":"X"` and VizTracer's `"ph": "X"` spellings count."""
    pats = {"all": [b'"ph":"', b'"ph": "'],
            "meta": [b'"ph":"M"', b'"ph": "M"'],
            "procs": [b'"name":"process_name"', b'"name": "process_name"'],
            "marker": [marker] if marker else []}
    counts = dict.fromkeys(pats, 0)
    prev = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 24)
            if not chunk:
                break
            for k, ps in pats.items():
                for p in ps:
                    # The last len(p) - 1 bytes of the previous chunk find
                    # an occurrence split between the two chunks, and
                    # cannot hold a whole one counted before.
                    head = prev[len(prev) - len(p) + 1:] if prev else b""
                    counts[k] += (head + chunk).count(p)
            prev = chunk
    return {"events": counts["all"] - counts["meta"],
            "meta_events": counts["meta"], "processes": counts["procs"],
            "marker": counts["marker"] if marker else None}


SUMMARY_RE = re.compile(
    r"traced: (\d+) processes, (\d+) threads, (\d+) events, (\d+) dropped, "
    r"(\d+) bytes")


def traced_summary(stderr):
    m = SUMMARY_RE.search(stderr)
    if not m:
        return None
    keys = ["processes", "threads", "events", "dropped", "bytes"]
    return dict(zip(keys, map(int, m.groups())))


# ---------------------------------------------------------------- statistics

def summarise(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals),
            "max": max(vals), "n": len(vals)}


def fmt_num(v, digits=3):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.{digits}f}"


def fmt_count(v):
    """A count (events, calls): whole, with thousands separators."""
    return "-" if v is None else f"{round(v):,}"


def fmt_stat(s, scale=1.0):
    if s is None:
        return "n/a"
    return (f"{fmt_num(s['median'] * scale)} "
            f"[{fmt_num(s['min'] * scale)}-{fmt_num(s['max'] * scale)}]")


def machine_info():
    info = {"nproc": os.cpu_count(), "platform": platform.platform(),
            "python": sys.version.split()[0]}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_total_kb"] = int(f.readline().split()[1])
    except OSError:
        pass
    info["loadavg_start"] = os.getloadavg()
    info["traced_mtime"] = binaries_mtime()
    for name, argv in [("traced", [TRACED, "--version"]),
                       ("workload_python", [PYTHON, "-V"]),
                       ("git", ["git", "-C", ROOT, "describe", "--always",
                                "--dirty"])]:
        try:
            info[name] = subprocess.run(
                argv, capture_output=True, text=True,
                timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            info[name] = None
    try:
        info["viztracer"] = subprocess.run(
            [VIZTRACER, "--version"], capture_output=True, text=True,
            timeout=60).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        info["viztracer"] = None
    return info


def binaries_mtime():
    """Modification times of what the suite runs from the work tree; a
    change during a run (someone rebuilt) is reported with the results."""
    out = {}
    for path in (TRACED, os.path.join(ROOT, ".venv",
                                      ".traced-shim-installed")):
        try:
            out[os.path.relpath(path, ROOT)] = os.stat(path).st_mtime
        except OSError:
            out[os.path.relpath(path, ROOT)] = None
    return out


def rebuilt_warning(results):
    """Sets results["rebuilt_during_run"] and returns a warning line, or
    None when the binaries stayed the same."""
    before = results["machine"]["traced_mtime"]
    after = binaries_mtime()
    changed = [k for k in before if before[k] != after.get(k)]
    results["rebuilt_during_run"] = changed
    if not changed:
        return None
    return (f"WARNING: {', '.join(changed)} changed during the run (rebuilt "
            "by someone): runs before and after used different builds")


def write_json(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


# ---------------------------------------------------------------- the suite

def traced_noc_args():
    """`traced run` options that leave C functions out, or None while
    traced has none (the tool is then reported as n/a)."""
    override = os.environ.get("BENCH_TRACED_NOC_ARGS")
    if override:
        return override.split()
    try:
        help_text = subprocess.run([TRACED, "run", "--help"],
                                   capture_output=True, text=True,
                                   timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for flag in NOC_FLAG_CANDIDATES:
        if re.search(re.escape(flag) + r"\b", help_text):
            return [flag]
    return None


def tool_command(tool, script, result, trace, daemon, calls, noc_args):
    """(argv, extra env) running `script` writing its timing to `result`
    and its trace (if the tool writes one) to `trace`."""
    prog = [script, result]
    if tool == "none":
        return [PYTHON] + prog, {}
    if tool in ("emptyhook", "emptymon", "emptymonc"):
        extra = {"BENCH_EMPTYHOOK_PATH": EMPTYHOOK_PATH}
        if tool != "emptyhook":
            extra["BENCH_EMPTYHOOK_MODE"] = {
                "emptymon": "monitoring", "emptymonc": "monitoring-calls"}[tool]
        return ([PYTHON, os.path.join(BENCH_DIR, "emptyhook", "run.py")]
                + prog, extra)
    if tool == "cprofile":
        return [PYTHON, "-m", "cProfile", "-o", os.devnull] + prog, {}
    if tool == "viztracer":
        # Large enough to keep every call of the work and of start-up and
        # the harness around it; checked against the events afterwards.
        entries = max(1_000_000, int(calls * 1.25) + 500_000)
        return ([VIZTRACER, "--quiet", "--tracer_entries", str(entries),
                 "-o", trace, "--"] + prog, {})
    if tool == "traced":
        return ([TRACED, "run", "-o", trace, "--socket", daemon.socket, "--",
                 PYTHON] + prog, {})
    if tool == "traced-noc":
        return ([TRACED, "run", "-o", trace, "--socket", daemon.socket]
                + noc_args + ["--", PYTHON] + prog, {})
    # Arguments and return values recorded (repr() of each), side by side
    # with VizTracer doing the same.
    if tool == "traced-args":
        return ([TRACED, "run", "-o", trace, "--socket", daemon.socket,
                 "--log-args", "--log-return", "--", PYTHON] + prog, {})
    if tool == "viz-args":
        entries = max(1_000_000, int(calls * 1.25) + 500_000)
        return ([VIZTRACER, "--quiet", "--tracer_entries", str(entries),
                 "--log_func_args", "--log_func_retval", "-o", trace,
                 "--"] + prog, {})
    raise ValueError(tool)


def run_tool(tool, wl, calls, daemon, noc_args, tmpdir):
    """One run of one workload under one tool; returns its raw figures."""
    script = os.path.join(BENCH_DIR, f"wl_{wl}.py")
    result = os.path.join(tmpdir, "result.json")
    trace = os.path.join(tmpdir, "trace.json")
    for p in (result, trace):
        if os.path.exists(p):
            os.remove(p)
    argv, extra = tool_command(tool, script, result, trace, daemon, calls,
                               noc_args)
    env = base_env()
    env.update(extra)
    r = run(argv, env, tmpdir)
    rec = {"tool": tool, "status": r.status, "timed_out": r.timed_out,
           "wall_s": r.wall_s, "maxrss_kb": r.maxrss_kb}
    try:
        with open(result) as f:
            rec["work_s"] = json.load(f)["work_s"]
    except (OSError, ValueError, KeyError):
        rec["work_s"] = None
    if tool.startswith("traced"):
        rec["summary"] = traced_summary(r.stderr)
        if "warning" in r.stderr or rec["summary"] is None:
            rec["error"] = r.stderr.strip()[-2000:]
        rec["daemon"] = daemon.status()
    if os.path.exists(trace):
        rec["bytes"] = os.path.getsize(trace)
        counts = count_events(trace, MARKERS.get(wl))
        rec.update(counts)
        os.remove(trace)
    if not r.ok or rec["work_s"] is None:
        rec["error"] = (rec.get("error") or "") + r.stderr.strip()[-2000:]
    return rec


def calibrate(wl, tmpdir):
    """Counts the workload's calls (sys.setprofile, untraced run)."""
    script = os.path.join(BENCH_DIR, f"wl_{wl}.py")
    result = os.path.join(tmpdir, "calib.json")
    r = run([PYTHON, script, "--count-calls", result], base_env(), tmpdir)
    if not r.ok:
        raise RuntimeError(f"calibration of {wl} failed:\n{r.stderr}")
    with open(result) as f:
        data = json.load(f)
    os.remove(result)
    return data


def per_round(runs, tool, key):
    return [r.get(key) for r in runs[tool]]


def analyse(wl, calib, runs, tools):
    """Medians, min-max and same-round ratios for one workload."""
    calls = calib["py_calls"] + calib["c_calls"]
    # Workers' calls are not counted: a per-call figure means nothing there.
    per_call_ok = wl != "joblib"
    out = {"calls": calls, "py_calls": calib["py_calls"],
           "c_calls": calib["c_calls"], "params": calib["params"],
           "per_call_meaningful": per_call_ok, "tools": {}, "ratios": {}}
    base_work = per_round(runs, "none", "work_s")
    added = {}
    for tool in tools:
        rs = runs[tool]
        if not rs:
            out["tools"][tool] = None
            continue
        work = [r.get("work_s") for r in rs]
        add = []
        for w, b in zip(work, base_work):
            add.append((w - b) / calls * 1e9
                       if per_call_ok and w is not None and b is not None
                       else None)
        added[tool] = add
        events = [r.get("events") for r in rs]
        bpe = [r["bytes"] / r["events"] if r.get("events") else None
               for r in rs]
        t = {"work_s": summarise(work),
             "wall_s": summarise([r.get("wall_s") for r in rs]),
             "added_ns_per_call": summarise(add) if tool != "none" else None,
             "maxrss_kb": summarise([r.get("maxrss_kb") for r in rs]),
             "bytes": summarise([r.get("bytes") for r in rs]),
             "events": summarise(events),
             "bytes_per_event": summarise(bpe),
             "processes": summarise([r.get("processes") for r in rs]),
             "marker_calls": summarise([r.get("marker") for r in rs]),
             "failed_runs": sum(1 for r in rs if r.get("error"))}
        if tool.startswith("traced"):
            sums = [r.get("summary") or {} for r in rs]
            t["dropped"] = summarise([s.get("dropped") for s in sums])
            t["summary_events"] = summarise([s.get("events") for s in sums])
        if tool == "viztracer":
            # VizTracer also records start-up and the harness, so a full
            # trace has at least as many events as the work's calls.
            t["events_per_call"] = summarise(
                [e / calls if e else None for e in events])
        out["tools"][tool] = t

    def ratio(num_tool, den_tool, key=None):
        """num/den per round (added ns per call, or `key` of the runs)."""
        if num_tool not in runs or den_tool not in runs:
            return None
        if key:
            a = per_round(runs, num_tool, key)
            b = per_round(runs, den_tool, key)
        else:
            a, b = added.get(num_tool, []), added.get(den_tool, [])
        vals = [x / y if x is not None and y not in (None, 0) else None
                for x, y in zip(a, b)]
        return summarise(vals)

    for tool in ("traced", "traced-noc"):
        if not runs.get(tool):
            continue
        sfx = "" if tool == "traced" else "_noc"
        if per_call_ok:
            out["ratios"][f"traced{sfx}/viztracer per call"] = ratio(
                tool, "viztracer")
            out["ratios"][f"traced{sfx}/emptyhook per call"] = ratio(
                tool, "emptyhook")
            for floor in ("emptymon", "emptymonc"):
                if runs.get(floor):
                    out["ratios"][f"traced{sfx}/{floor} per call"] = ratio(
                        tool, floor)
        out["ratios"][f"traced{sfx}/viztracer file complete"] = ratio(
            tool, "viztracer", "wall_s")
        out["ratios"][f"traced{sfx}/emptyhook file complete"] = ratio(
            tool, "emptyhook", "wall_s")
        out["ratios"][f"traced{sfx}/untraced wall"] = ratio(
            tool, "none", "wall_s")
    if runs.get("viztracer"):
        out["ratios"]["viztracer/untraced wall"] = ratio(
            "viztracer", "none", "wall_s")
    if runs.get("traced-args") and runs.get("viz-args") and per_call_ok:
        out["ratios"]["traced_args/viz_args per call"] = ratio(
            "traced-args", "viz-args")
    return out


def print_workload(wl, a, tools, noc_args):
    p = a["params"]
    params = ", ".join(f"{k}={v}" for k, v in p.items())
    calls = (f"{a['calls']:,} calls ({a['py_calls']:,} Python + "
             f"{a['c_calls']:,} C)")
    if not a["per_call_meaningful"]:
        calls += " in the parent only; workers not counted"
    print(f"\n== {wl} ({params}): {calls}")
    hdr = (f"{'tool':<11} {'work s':<22} {'+ns/call':<20} "
           f"{'file complete s':<22} {'events':>10} {'B/event':>8} "
           f"{'prog RSS MB':>12}")
    print(hdr)
    print("-" * len(hdr))
    for tool in tools:
        t = a["tools"].get(tool)
        if tool == "traced-noc" and noc_args is None:
            print(f"{tool:<11} n/a (traced cannot ignore C functions yet)")
            continue
        if t is None:
            continue
        ev = t["events"]["median"] if t.get("events") else None
        bpe = t["bytes_per_event"]["median"] if t.get(
            "bytes_per_event") else None
        rss = t["maxrss_kb"]["median"] / 1024 if t.get("maxrss_kb") else None
        add = fmt_stat(t["added_ns_per_call"]) if tool != "none" else "-"
        if not a["per_call_meaningful"] and tool != "none":
            add = "n/a"
        wall = fmt_stat(t["wall_s"])
        line = (f"{tool:<11} {fmt_stat(t['work_s']):<22} {add:<20} "
                f"{wall:<22} {fmt_num(ev) if ev else '-':>10} "
                f"{fmt_num(bpe) if bpe else '-':>8} {fmt_num(rss):>12}")
        notes = []
        if t.get("failed_runs"):
            notes.append(f"{t['failed_runs']} failed runs")
        if t.get("dropped") and t["dropped"]["max"]:
            notes.append(f"dropped up to {t['dropped']['max']:,}")
        if t.get("events_per_call") and t["events_per_call"]["min"] < 1:
            notes.append("fewer events than calls: VizTracer dropped some")
        if tool == "viztracer" and t.get("bytes"):
            notes.append(f"file {t['bytes']['median'] / 1e6:.0f} MB")
        if t.get("marker_calls"):
            want = a["params"].get("tasks")
            notes.append(f"task() calls in file {t['marker_calls']['min']:,}"
                         f"-{t['marker_calls']['max']:,} of {want}, "
                         f"{t['processes']['median']:.0f} processes")
        if tool in CAVEATS.get(wl, {}):
            notes.append(CAVEATS[wl][tool])
        if notes:
            line += "  (" + "; ".join(notes) + ")"
        print(line)
    for name, s in a["ratios"].items():
        if s is not None:
            print(f"  {name:<36} {fmt_stat(s)}")
    d = a.get("daemon")
    if d:
        print(f"  daemon VmRSS {d.get('rss_before_kb', 0) / 1024:.1f} MB "
              f"before -> {d.get('rss_after_kb', 0) / 1024:.1f} MB after; "
              f"VmHWM {d.get('hwm_after_kb', 0) / 1024:.1f} MB "
              "(since the suite's daemon started)")


def suite():
    wls = os.environ.get("BENCH_WORKLOADS")
    wls = wls.split(",") if wls else WORKLOADS
    tools = os.environ.get("BENCH_TOOLS")
    tools = tools.split(",") if tools else TOOLS
    for name in wls:
        if name not in WORKLOADS:
            sys.exit(f"bench: unknown workload {name}")
    for name in tools:
        if name not in TOOLS:
            sys.exit(f"bench: unknown tool {name}")
    if "none" not in tools:
        tools = ["none"] + tools  # every figure is relative to it
    noc_args = traced_noc_args()
    old_python = subprocess.run(
        [PYTHON, "-c", "import sys; print(sys.version_info < (3, 12))"],
        capture_output=True, text=True).stdout.strip() == "True"
    active = [t for t in tools if (t != "traced-noc" or noc_args is not None)
              and (t not in ("emptymon", "emptymonc") or not old_python)]
    out_path = os.environ.get("BENCH_OUT") or os.path.join(
        BUILD_BENCH, "results-quick.json" if QUICK else "results.json")
    results = {"machine": machine_info(), "rounds": ROUNDS, "quick": QUICK,
               "tools": tools, "traced_noc_args": noc_args,
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
               "workloads": {}}
    t_start = time.monotonic()
    tmpdir = tempfile.mkdtemp(prefix="traced-bench-")
    daemon = Daemon(tmpdir)
    try:
        daemon.start()
        results["daemon_start"] = daemon.status()
        for wl in wls:
            log(f"bench: {wl}: calibrating")
            calib = calibrate(wl, tmpdir)
            calls = calib["py_calls"] + calib["c_calls"]
            # One untraced run first: .pyc files, page cache.
            run_tool("none", wl, calls, daemon, noc_args, tmpdir)
            runs = {t: [] for t in active}
            d_before = daemon.status()
            for rnd in range(ROUNDS):
                for tool in active:
                    if tool.startswith("traced"):
                        daemon.ensure()
                    rec = run_tool(tool, wl, calls, daemon, noc_args, tmpdir)
                    rec["round"] = rnd
                    if tool.startswith("traced") and not daemon.alive():
                        rec["error"] = ((rec.get("error") or "")
                                        + " the daemon died during this run")
                    runs[tool].append(rec)
                    log(f"bench: {wl} round {rnd + 1}/{ROUNDS} {tool}: "
                        f"work {fmt_num(rec.get('work_s'))} s, "
                        f"wall {fmt_num(rec['wall_s'])} s"
                        + (f" ERROR {rec['error'][-300:]}"
                           if rec.get("error") else ""))
            d_after = daemon.status()
            a = analyse(wl, calib, runs, active)
            a["daemon"] = {"rss_before_kb": d_before.get("VmRSS"),
                           "rss_after_kb": d_after.get("VmRSS"),
                           "hwm_after_kb": d_after.get("VmHWM")}
            a["runs"] = runs
            results["workloads"][wl] = a
            results["daemon_deaths"] = daemon.deaths
            write_json(out_path, results)  # partial results survive a crash
    finally:
        daemon.stop()
        reap_strays(daemon.socket)
        shutil.rmtree(tmpdir, ignore_errors=True)
    results["daemon_deaths"] = daemon.deaths
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["elapsed_s"] = time.monotonic() - t_start
    warning = rebuilt_warning(results)
    write_json(out_path, results)

    m = results["machine"]
    print(f"traced benchmark suite: {ROUNDS} rounds, tools run alternately "
          "in each round; median [min-max]")
    if warning:
        print(warning)
    print(f"machine: {m.get('cpu')}, {m['nproc']} cores, Python "
          f"{m['python']}, VizTracer {m.get('viztracer')}"
          f", traced {m.get('git')}; load average "
          f"{m['loadavg_start'][0]:.2f} at start, "
          f"{m['loadavg_end'][0]:.2f} at end")
    print("work = the program's own timed work; +ns/call = (tool - untraced "
          "work) / calls, same round; file complete = process start until "
          "the tool exited with its file written; prog RSS = peak of the "
          "largest traced process")
    if daemon.deaths:
        print(f"WARNING: the private traced daemon died {len(daemon.deaths)} "
              f"times (exit statuses {daemon.deaths}; -N is signal N) and was "
              f"restarted; its log: {daemon.log_path}")
    for wl in wls:
        print_workload(wl, results["workloads"][wl], tools, noc_args)
    print(f"\nelapsed {results['elapsed_s']:.0f} s; results in "
          f"{os.path.relpath(out_path, os.getcwd())}")


# ---------------------------------------------------------------- daemon

# The ring-full policies the daemon figures compare (docs/options.md, "A
# full ring"): the lossless default, where producers wait while the
# daemon makes progress, and the opt-in drop mode with its default wait.
DAEMON_MODES = {"lossless": {"TRACED_ON_FULL": "wait"},
                "drop": {"TRACED_ON_FULL": "drop",
                         "TRACED_FULL_WAIT_MS": "10"}}
# Options of ours that must not reach a run from the caller's environment.
FULL_VARS = ["TRACED_ON_FULL", "TRACED_FULL_WAIT_MS", "TRACED_STALL_MS"]
WL_MP = os.path.join(BENCH_DIR, "wl_mp.py")
# fib() slices in a Chrome-JSON trace of wl_mp.py.
FIB_MARKER = b'"name":"fib ('


def mode_env(mode):
    env = base_env()
    for k in FULL_VARS:
        env.pop(k, None)
    env.update(DAEMON_MODES[mode])
    return env


def env_list(name, default, conv=str):
    text = os.environ.get(name) or default
    return [conv(x) for x in text.replace(" ", ",").split(",") if x]


def producer_run(daemon, procs, spans, tmpdir, mode="lossless", sample=None,
                 trace_name=None):
    """`traced run -- bench_producer PROCS SPANS` on the private daemon, in
    one of DAEMON_MODES.  In the lossless default a producer whose ring is
    full waits while the daemon makes progress, so the daemon sets the
    pace; in the drop mode it drops after 10 ms and the producers set it."""
    trace = os.path.join(tmpdir, trace_name or DAEMON_TRACE)
    stdout = os.path.join(tmpdir, "producer.out")
    env = mode_env(mode)
    daemon.ensure()
    cpu0 = daemon.cpu_s()
    stop = threading.Event()
    samples = []
    if sample:
        def sampler():
            t0 = time.monotonic()
            while not stop.wait(sample):
                st = daemon.status()
                try:
                    size = os.path.getsize(trace)
                except OSError:
                    size = 0
                samples.append({"t_s": time.monotonic() - t0, "bytes": size,
                                "rss_kb": st.get("VmRSS"),
                                "hwm_kb": st.get("VmHWM")})
        th = threading.Thread(target=sampler, daemon=True)
        th.start()
    try:
        r = run([TRACED, "run", "-o", trace, "--socket", daemon.socket, "--",
                 PRODUCER, str(procs), str(spans)], env, tmpdir,
                stdout_path=stdout)
    finally:
        stop.set()
    cpu1 = daemon.cpu_s()
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    rec = {"procs": procs, "mode": mode, "spans_per_proc": spans,
           "emitted": procs * spans, "status": r.status,
           "timed_out": r.timed_out, "wall_s": r.wall_s,
           "daemon_cpu_s": user + system, "daemon_user_s": user,
           "daemon_sys_s": system, "summary": traced_summary(r.stderr),
           "daemon": daemon.status()}
    # How many cores' worth the daemon used over the run.
    rec["daemon_util"] = (user + system) / r.wall_s if r.wall_s else None
    try:
        with open(stdout) as f:
            text = f.read()
        exit_ns = int(re.search(r"exit_ns=(\d+)", text).group(1))
        # Both are CLOCK_MONOTONIC: the producer's last moment, and when
        # `traced run`, which returns once the file is complete, was reaped.
        rec["last_exit_to_complete_ms"] = (r.end_ns - exit_ns) / 1e6
        rec["emit_s"] = [float(x) for x in re.findall(r"emit_s=([\d.]+)",
                                                      text)]
    except (OSError, AttributeError, ValueError, TypeError):
        rec["last_exit_to_complete_ms"] = None
    if os.path.exists(trace):
        rec["bytes"] = os.path.getsize(trace)
        os.remove(trace)
    for p in (stdout,):
        if os.path.exists(p):
            os.remove(p)
    if samples:
        rec["samples"] = samples
    if not r.ok or rec["summary"] is None:
        rec["error"] = r.stderr.strip()[-2000:]
    summ = rec["summary"] or {}
    rec["dropped"] = summ.get("dropped")
    ev = summ.get("events")
    if ev:
        rec["events"] = ev
        # /proc counts CPU time in clock ticks (10 ms): below 10 of them
        # a rate would be mostly rounding.
        rec["events_per_cpu_s"] = (ev / rec["daemon_cpu_s"]
                                   if rec["daemon_cpu_s"] >= 0.1 else None)
        rec["events_per_wall_s"] = ev / r.wall_s
    return rec


def count_fib(trace, trace_name=None):
    """fib() slices in a trace of wl_mp.py and the file's misnested count
    (None where not read): JSON by one byte-counting pass; gzip and
    Perfetto through `traced report --json`, which reads every format."""
    if (trace_name or DAEMON_TRACE).endswith(".json"):
        return count_events(trace, FIB_MARKER)["marker"], None
    try:
        p = subprocess.run([TRACED, "report", "--json", trace],
                           capture_output=True, timeout=TIMEOUT)
        rep = json.loads(p.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None, None
    fib = sum(f["calls"] for f in rep.get("overall", [])
              if f["name"].startswith("fib ("))
    return fib, rep.get("misnested")


def mp_run(daemon, mode, tmpdir, trace_name=None, count=True):
    """bench/wl_mp.py untraced (mode "untraced") or under `traced run` in
    one of DAEMON_MODES; with the fib() calls its trace holds against
    the number the workload says a complete trace must hold (unless not
    `count`)."""
    trace = os.path.join(tmpdir, trace_name or DAEMON_TRACE)
    result = os.path.join(tmpdir, "wl_mp.json")
    for p in (trace, result):
        if os.path.exists(p):
            os.remove(p)
    wl = [PYTHON, WL_MP, result]
    if mode == "untraced":
        env, argv = base_env(), wl
    else:
        env = mode_env(mode)
        argv = [TRACED, "run", "-o", trace, "--socket", daemon.socket,
                "--"] + wl
        daemon.ensure()
    cpu0 = daemon.cpu_s()
    r = run(argv, env, tmpdir)
    cpu1 = daemon.cpu_s()
    rec = {"mode": mode, "status": r.status, "timed_out": r.timed_out,
           "wall_s": r.wall_s, "maxrss_kb": r.maxrss_kb,
           "daemon_cpu_s": sum(cpu1) - sum(cpu0)}
    rec["daemon_util"] = rec["daemon_cpu_s"] / r.wall_s if r.wall_s else None
    try:
        with open(result) as f:
            wl_res = json.load(f)
        rec.update({k: wl_res[k] for k in ("work_s", "map_s", "expected_fib",
                                            "workers_used", "params")})
    except (OSError, ValueError, KeyError):
        pass
    if mode != "untraced":
        rec["summary"] = traced_summary(r.stderr)
        summ = rec["summary"] or {}
        rec["events"], rec["dropped"] = summ.get("events"), summ.get("dropped")
        if os.path.exists(trace):
            rec["bytes"] = os.path.getsize(trace)
            if count:
                rec["fib_in_file"], rec["misnested"] = count_fib(trace,
                                                                 trace_name)
            os.remove(trace)
        if rec.get("events") and rec["daemon_cpu_s"] >= 0.1:
            rec["events_per_cpu_s"] = rec["events"] / rec["daemon_cpu_s"]
        if rec["summary"] is None:
            rec["error"] = r.stderr.strip()[-2000:]
    if not r.ok:
        rec["error"] = r.stderr.strip()[-2000:]
    return rec


def stat_of(recs, key):
    return summarise([r.get(key) for r in recs])


def producers_part(results, tmpdir, threads, tput_events):
    """Throughput and latency: each producer count in each mode, in turn
    in every round, then a tiny trace (latency with nothing queued), all
    on one daemon."""
    procs_list = env_list("BENCH_DAEMON_PROCS", "1,2,4,8,16", int)
    modes = env_list("BENCH_DAEMON_MODES", "lossless,drop")
    daemon = Daemon(tmpdir, threads).start()
    runs = {}
    try:
        for rnd in range(ROUNDS):
            for procs in procs_list:
                for mode in modes:
                    rec = producer_run(daemon, procs, tput_events // procs,
                                       tmpdir, mode)
                    runs.setdefault(f"{mode} {procs}", []).append(rec)
                    log(f"bench: daemon round {rnd + 1}/{ROUNDS} {mode} "
                        f"{procs} producers: {fmt_count(rec.get('events'))} "
                        f"events, {fmt_count(rec.get('dropped'))} dropped, "
                        f"{fmt_num(rec.get('events_per_cpu_s'))} "
                        f"events/CPU-s, wall {rec['wall_s']:.2f} s"
                        + (f" ERROR {rec['error']}" if rec.get("error")
                           else ""))
            rec = producer_run(daemon, 1, 1000, tmpdir)
            runs.setdefault("lossless 1 (tiny)", []).append(rec)
        results["threads_in_daemon"] = len(
            os.listdir(f"/proc/{daemon.proc.pid}/task"))
        results["daemon_deaths"] = daemon.deaths
    finally:
        daemon.stop()
    tput = {}
    for key, recs in runs.items():
        tput[key] = {
            "mode": recs[0]["mode"], "procs": recs[0]["procs"],
            "emitted": recs[0]["emitted"],
            "events": stat_of(recs, "events"),
            "dropped": stat_of(recs, "dropped"),
            "events_per_cpu_s": stat_of(recs, "events_per_cpu_s"),
            "events_per_wall_s": stat_of(recs, "events_per_wall_s"),
            "daemon_cpu_s": stat_of(recs, "daemon_cpu_s"),
            "daemon_util": stat_of(recs, "daemon_util"),
            "daemon_sys_s": stat_of(recs, "daemon_sys_s"),
            "wall_s": stat_of(recs, "wall_s"),
            "bytes_per_event": summarise(
                [r["bytes"] / r["events"] if r.get("events") and
                 r.get("bytes") else None for r in recs]),
            "last_exit_to_complete_ms": stat_of(recs,
                                                "last_exit_to_complete_ms"),
            # Runs whose file lacks events the producers emitted.
            "incomplete_runs": sum(1 for r in recs
                                   if r.get("events") != r["emitted"]),
            "errors": sum(1 for r in recs if r.get("error")),
            "runs": recs}
    results["throughput"] = tput


def python_part(results, tmpdir, threads):
    """bench/wl_mp.py untraced, traced lossless and traced in the drop
    mode, in turn in every round, on one daemon."""
    daemon = Daemon(tmpdir, threads).start()
    runs = {}
    try:
        for rnd in range(ROUNDS):
            for mode in ["untraced"] + list(DAEMON_MODES):
                rec = mp_run(daemon, mode, tmpdir)
                runs.setdefault(mode, []).append(rec)
                log(f"bench: python round {rnd + 1}/{ROUNDS} {mode}: wall "
                    f"{rec['wall_s']:.2f} s, fib in file "
                    f"{fmt_count(rec.get('fib_in_file'))} of "
                    f"{fmt_count(rec.get('expected_fib'))}, dropped "
                    f"{fmt_count(rec.get('dropped'))}"
                    + (f" ERROR {rec['error']}" if rec.get("error") else ""))
        results.setdefault("daemon_deaths", []).extend(daemon.deaths)
    finally:
        daemon.stop()
    base = runs["untraced"]
    out = {"params": next((r["params"] for r in base if r.get("params")),
                          None),
           "expected_fib": next((r["expected_fib"] for r in base
                                 if r.get("expected_fib")), None)}
    for mode, recs in runs.items():
        m = {"wall_s": stat_of(recs, "wall_s"),
             "work_s": stat_of(recs, "work_s"),
             "daemon_cpu_s": stat_of(recs, "daemon_cpu_s"),
             "daemon_util": stat_of(recs, "daemon_util"),
             "errors": sum(1 for r in recs if r.get("error")), "runs": recs}
        if mode != "untraced":
            # Per-round ratios: each traced run against the untraced run
            # of the same round.
            m["x_untraced_wall"] = summarise(
                [t["wall_s"] / u["wall_s"] for t, u in zip(recs, base)
                 if t.get("error") is None and u.get("error") is None])
            m["events"] = stat_of(recs, "events")
            m["dropped"] = stat_of(recs, "dropped")
            m["events_per_cpu_s"] = stat_of(recs, "events_per_cpu_s")
            m["fib_in_file"] = stat_of(recs, "fib_in_file")
            m["complete_runs"] = sum(
                1 for r in recs if r.get("fib_in_file") is not None
                and r.get("fib_in_file") == r.get("expected_fib"))
        out[mode] = m
    results["python"] = out


def long_part(results, tmpdir, threads, long_events):
    """One long lossless trace on a fresh daemon, its RSS sampled as the
    file grows."""
    log(f"bench: daemon long trace, {long_events:,} events")
    daemon = Daemon(tmpdir, threads).start()
    try:
        before = daemon.status()
        rec = producer_run(daemon, 1, long_events, tmpdir, sample=0.2)
        after = daemon.status()
    finally:
        daemon.stop()
    samples = rec.pop("samples", [])
    total = rec.get("bytes") or 1
    marks = {}
    for frac in (0.1, 0.25, 0.5, 0.75, 1.0):
        got = [s for s in samples if s["bytes"] >= frac * total * 0.999]
        if got:
            marks[f"{int(frac * 100)}%"] = got[0]["rss_kb"]
    rss_vals = [s["rss_kb"] for s in samples if s["rss_kb"]]
    after10 = [s["rss_kb"] for s in samples
               if s["bytes"] >= 0.1 * total and s["rss_kb"]]
    results["long_trace"] = {
        "events": rec.get("events"), "bytes": rec.get("bytes"),
        "dropped": rec.get("dropped"),
        "wall_s": rec["wall_s"], "daemon_cpu_s": rec["daemon_cpu_s"],
        "daemon_user_s": rec["daemon_user_s"],
        "daemon_sys_s": rec["daemon_sys_s"],
        "events_per_cpu_s": rec.get("events_per_cpu_s"),
        "last_exit_to_complete_ms": rec.get("last_exit_to_complete_ms"),
        "rss_before_kb": before.get("VmRSS"),
        "rss_after_kb": after.get("VmRSS"),
        "hwm_kb": after.get("VmHWM"),
        "rss_max_kb": max(rss_vals) if rss_vals else None,
        "rss_at_progress_kb": marks,
        "rss_growth_after_10pct_kb": (max(after10) - after10[0]
                                      if after10 else None),
        "samples": samples, "error": rec.get("error")}


FORMAT_TRACES = {"json": "trace.json", "json.gz": "trace.json.gz",
                 "perfetto": "trace.pftrace"}


def formats_part(results, tmpdir, threads, tput_events):
    """Events per daemon CPU-second in each output format, for native
    producers (BENCH_DAEMON_FORMAT_PROCS, default 2, sharing tput_events)
    and the Python workload, lossless, on this build's daemon and, with
    BENCH_DAEMON_BASELINE=<another build's traced>, on that one too:
    every configuration in turn in every round, so both daemons see the
    same load.  The clients (`traced run`, the shim) are this build's."""
    fmts = env_list("BENCH_DAEMON_FORMATS", ",".join(FORMAT_TRACES))
    bad = [f for f in fmts if f not in FORMAT_TRACES]
    if bad:
        sys.exit(f"bench: BENCH_DAEMON_FORMATS: unknown {bad}")
    procs = int(os.environ.get("BENCH_DAEMON_FORMAT_PROCS") or 2)
    baseline = os.environ.get("BENCH_DAEMON_BASELINE")
    bins = {"this": TRACED}
    if baseline:
        bins["baseline"] = baseline
    daemons = {}
    runs = {}
    try:
        for name, binary in bins.items():
            sub = os.path.join(tmpdir, name)
            os.makedirs(sub, exist_ok=True)
            daemons[name] = Daemon(sub, threads, binary).start()
        for rnd in range(ROUNDS):
            for fmt in fmts:
                trace = FORMAT_TRACES[fmt]
                for wl in ("native", "python"):
                    for name, d in daemons.items():
                        sub = os.path.join(tmpdir, name)
                        if wl == "native":
                            rec = producer_run(d, procs, tput_events // procs,
                                               sub, trace_name=trace)
                        else:
                            rec = mp_run(d, "lossless", sub, trace_name=trace,
                                         count=False)
                        if rec.get("events") and rec.get("bytes"):
                            rec["bytes_per_event"] = (rec["bytes"]
                                                      / rec["events"])
                        runs.setdefault(f"{fmt} {wl} {name}", []).append(rec)
                        log(f"bench: formats round {rnd + 1}/{ROUNDS} {fmt} "
                            f"{wl} {name}: {fmt_count(rec.get('events'))} "
                            f"events, dropped "
                            f"{fmt_count(rec.get('dropped'))}, daemon "
                            f"{rec['daemon_cpu_s']:.2f} CPU-s"
                            + (f" ERROR {rec['error']}"
                               if rec.get("error") else ""))
        hwm = {name: d.status().get("VmHWM") for name, d in daemons.items()}
        for d in daemons.values():
            results.setdefault("daemon_deaths", []).extend(d.deaths)
    finally:
        for d in daemons.values():
            d.stop()
            reap_strays(d.socket)
    table = []
    for fmt in fmts:
        for wl in ("native", "python"):
            row = {"format": fmt, "workload": wl}
            for name in bins:
                recs = runs.get(f"{fmt} {wl} {name}", [])
                row[name] = {
                    "events": stat_of(recs, "events"),
                    "dropped": stat_of(recs, "dropped"),
                    "wall_s": stat_of(recs, "wall_s"),
                    "daemon_cpu_s": stat_of(recs, "daemon_cpu_s"),
                    "events_per_cpu_s": stat_of(recs, "events_per_cpu_s"),
                    "bytes_per_event": stat_of(recs, "bytes_per_event"),
                    "errors": sum(1 for r in recs if r.get("error")),
                    "runs": recs}
            if baseline:
                # Per round: this build's rate over the baseline's in the
                # same round.
                a = runs.get(f"{fmt} {wl} this", [])
                b = runs.get(f"{fmt} {wl} baseline", [])
                row["ratio"] = summarise(
                    [x["events_per_cpu_s"] / y["events_per_cpu_s"]
                     for x, y in zip(a, b)
                     if x.get("events_per_cpu_s")
                     and y.get("events_per_cpu_s")])
            table.append(row)
    results["formats"] = {"procs": procs, "events": tput_events,
                          "baseline": baseline, "daemons": list(bins),
                          "hwm_kb": hwm, "table": table}


def print_formats(f):
    names = f["daemons"]
    print(f"\nevents per daemon CPU-second by format (lossless): native = "
          f"bench/producer, {f['procs']} processes sharing "
          f"{fmt_count(f['events'])} events; python = bench/wl_mp.py"
          + (f"; baseline = {f['baseline']}" if f["baseline"] else ""))
    hdr = (f"{'format':<9} {'workload':<8} {'events':>11} {'dropped':>8} "
           + " ".join(f"{n + ' ev/CPU-s':<24} {'B/ev':>6}" for n in names)
           + (f" {'this/baseline':<20}" if f["baseline"] else ""))
    print(hdr)
    print("-" * len(hdr))
    med = lambda s: s["median"] if s else None  # noqa: E731
    for row in f["table"]:
        this = row["this"]
        line = (f"{row['format']:<9} {row['workload']:<8} "
                f"{fmt_count(med(this['events'])):>11} "
                f"{fmt_count(med(this['dropped'])):>8} ")
        line += " ".join(
            f"{fmt_stat(row[n]['events_per_cpu_s'], 1e-6) + ' M':<24} "
            f"{fmt_num(med(row[n]['bytes_per_event'])):>6}" for n in names)
        if f["baseline"]:
            line += f" {fmt_stat(row['ratio']):<20}"
        errors = sum(row[n]["errors"] for n in names)
        if errors:
            line += f"  ERRORS in {errors} runs"
        print(line)
    print("daemon VmHWM after these runs: " + ", ".join(
        f"{n} {(kb or 0) / 1024:.1f} MB" for n, kb in f["hwm_kb"].items()))


DAEMON_PARTS = ["producers", "python", "long", "formats"]


def daemon_suite():
    if not os.access(PRODUCER, os.X_OK):
        sys.exit(f"bench: {PRODUCER} is missing: run `make bench-daemon`")
    parts = env_list("BENCH_DAEMON_PARTS", ",".join(DAEMON_PARTS))
    bad = [p for p in parts if p not in DAEMON_PARTS]
    if bad:
        sys.exit(f"bench: BENCH_DAEMON_PARTS: unknown {bad}; choose from "
                 f"{DAEMON_PARTS}")
    threads = int(os.environ.get("BENCH_DAEMON_THREADS") or 0) or None
    tput_events = int(os.environ.get("BENCH_DAEMON_TPUT_EVENTS")
                      or (1_000_000 if QUICK else 10_000_000))
    long_events = int(os.environ.get("BENCH_DAEMON_EVENTS")
                      or (2_000_000 if QUICK else 10_000_000))
    fmt = os.environ.get("BENCH_DAEMON_FORMAT") or "json"
    out_path = os.environ.get("BENCH_OUT") or os.path.join(
        BUILD_BENCH, "daemon-results" + ("-quick" if QUICK else "")
        + ("" if fmt == "json" else "-" + fmt.replace(".", "")) + ".json")
    results = {"machine": machine_info(), "rounds": ROUNDS, "quick": QUICK,
               "trace": DAEMON_TRACE, "parts": parts,
               # None: the daemon's default, one drain worker per CPU.
               "daemon_threads_option": threads,
               "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    t_start = time.monotonic()
    tmpdir = tempfile.mkdtemp(prefix="traced-bench-daemon-")
    try:
        if "producers" in parts:
            producers_part(results, tmpdir, threads, tput_events)
            write_json(out_path, results)
        if "python" in parts:
            python_part(results, tmpdir, threads)
            write_json(out_path, results)
        if "long" in parts:
            long_part(results, tmpdir, threads, long_events)
            write_json(out_path, results)
        if "formats" in parts:
            formats_part(results, tmpdir, threads, tput_events)
    finally:
        reap_strays(os.path.join(tmpdir, "traced.sock"))
        shutil.rmtree(tmpdir, ignore_errors=True)
    results["machine"]["loadavg_end"] = os.getloadavg()
    results["elapsed_s"] = time.monotonic() - t_start
    warning = rebuilt_warning(results)
    write_json(out_path, results)
    print_daemon(results, warning, out_path)


def print_daemon(results, warning, out_path):
    m = results["machine"]
    threads = results["daemon_threads_option"]
    print(f"traced daemon benchmarks: {results['rounds']} rounds, every "
          f"configuration in turn in each; median [min-max]; trace format "
          f"{results['trace']}")
    if warning:
        print(warning)
    print(f"machine: {m.get('cpu')}, {m['nproc']} cores, traced "
          f"{m.get('git')}; load average {m['loadavg_start'][0]:.2f} at "
          f"start, {m['loadavg_end'][0]:.2f} at end")
    print("daemon: --threads "
          + (f"{threads}" if threads else f"default (one per CPU: "
             f"{m['nproc']})")
          + (f"; {results['threads_in_daemon']} threads in the process "
             "between sessions"
             if results.get("threads_in_daemon") else ""))
    if results.get("daemon_deaths"):
        print(f"WARNING: the daemon died {len(results['daemon_deaths'])} "
              f"times (statuses {results['daemon_deaths']})")

    if "throughput" in results:
        print("\nnative producers (bench/producer, P processes x 1 thread); "
              "lossless: the default; drop: TRACED_ON_FULL=drop, "
              "TRACED_FULL_WAIT_MS=10")
        hdr = (f"{'mode':<8} {'P':>9} {'events':>11} {'dropped':>10} "
               f"{'wall s':<20} {'events/s (wall)':<22} "
               f"{'daemon CPU-s':<20} {'cores':>5} {'events/daemon CPU-s':<22} "
               f"{'sys':>4} {'B/ev':>5} {'exit->complete ms':<20}")
        print(hdr)
        print("-" * len(hdr))
        for key, t in results["throughput"].items():
            name = f"{t['procs']} (tiny)" if "tiny" in key else str(t["procs"])
            med = lambda s: s["median"] if s else None  # noqa: E731
            cpu, sys_s = t["daemon_cpu_s"], t["daemon_sys_s"]
            sys_share = (f"{sys_s['median'] / cpu['median']:.0%}"
                         if cpu and sys_s and cpu["median"] else "-")
            rate = (fmt_stat(t["events_per_cpu_s"], 1e-6) + " M"
                    if t["events_per_cpu_s"] else "- (too short)")
            line = (f"{t['mode']:<8} {name:>9} "
                    f"{fmt_count(med(t['events'])):>11} "
                    f"{fmt_count(med(t['dropped'])):>10} "
                    f"{fmt_stat(t['wall_s']):<20} "
                    f"{fmt_stat(t['events_per_wall_s'], 1e-6) + ' M':<22} "
                    f"{fmt_stat(t['daemon_cpu_s']):<20} "
                    f"{fmt_num(med(t['daemon_util']), 2):>5} {rate:<22} "
                    f"{sys_share:>4} "
                    f"{fmt_num(med(t['bytes_per_event'])):>5} "
                    f"{fmt_stat(t['last_exit_to_complete_ms']):<20}")
            if t["mode"] == "lossless" and t["incomplete_runs"]:
                line += (f"  INCOMPLETE in {t['incomplete_runs']} runs "
                         f"(emitted {t['emitted']:,} each)")
            if t["errors"]:
                line += f"  ERRORS in {t['errors']} runs"
            print(line)

    py = results.get("python")
    if py:
        p = py.get("params") or {}
        print(f"\nPython: bench/wl_mp.py, Pool({p.get('procs')}, spawn) x "
              f"{p.get('threads')} threads of fib({p.get('n')}) x "
              f"{p.get('reps')}: {fmt_num(py.get('expected_fib'))} fib() "
              "calls")
        hdr = (f"{'run':<9} {'wall s':<20} {'x untraced':<20} "
               f"{'pool s':<20} {'events':>11} {'dropped':>10} "
               f"{'fib() in file':>14} {'complete':>9} "
               f"{'daemon CPU-s':<20} {'cores':>5} "
               f"{'events/daemon CPU-s':<20}")
        print(hdr)
        print("-" * len(hdr))
        for mode in ["untraced"] + list(DAEMON_MODES):
            t = py.get(mode)
            if not t:
                continue
            n = len(t["runs"])
            if mode == "untraced":
                line = (f"{mode:<9} {fmt_stat(t['wall_s']):<20} {'1':<20} "
                        f"{fmt_stat(t['work_s']):<20}")
            else:
                med = lambda s: s["median"] if s else None  # noqa: E731
                rate = (fmt_stat(t["events_per_cpu_s"], 1e-6) + " M"
                        if t["events_per_cpu_s"] else "-")
                line = (f"{mode:<9} {fmt_stat(t['wall_s']):<20} "
                        f"{fmt_stat(t['x_untraced_wall']):<20} "
                        f"{fmt_stat(t['work_s']):<20} "
                        f"{fmt_count(med(t['events'])):>11} "
                        f"{fmt_count(med(t['dropped'])):>10} "
                        f"{fmt_count(med(t['fib_in_file'])):>14} "
                        f"{t['complete_runs']:>4} of {n:<2} "
                        f"{fmt_stat(t['daemon_cpu_s']):<20} "
                        f"{fmt_num(med(t['daemon_util']), 2):>5} "
                        f"{rate:<20}")
            if t["errors"]:
                line += f"  ERRORS in {t['errors']} runs"
            print(line)

    lt = results.get("long_trace")
    if lt:
        kb = 1024
        print(f"\nlong trace: {fmt_count(lt['events'])} events, "
              f"{(lt['bytes'] or 0) / 1e9:.2f} GB in {lt['wall_s']:.1f} s "
              f"({fmt_num((lt['events_per_cpu_s'] or 0) / 1e6)} M events per "
              f"daemon CPU-s, {lt['daemon_user_s']:.1f} s user + "
              f"{lt['daemon_sys_s']:.1f} s system), dropped {lt['dropped']}; "
              "last exit -> complete "
              f"{fmt_num(lt['last_exit_to_complete_ms'])} ms")
        marks = ", ".join(f"{k} {v / kb:.1f} MB"
                          for k, v in lt["rss_at_progress_kb"].items() if v)
        print(f"  daemon VmRSS: {(lt['rss_before_kb'] or 0) / kb:.1f} MB "
              f"before; at file progress {marks}; max "
              f"{(lt['rss_max_kb'] or 0) / kb:.1f} MB; VmHWM "
              f"{(lt['hwm_kb'] or 0) / kb:.1f} MB; growth after 10%: "
              f"{(lt['rss_growth_after_10pct_kb'] or 0) / kb:.1f} MB")
        if lt.get("error"):
            print(f"  ERROR: {lt['error']}")
    if results.get("formats"):
        print_formats(results["formats"])
    print(f"\nelapsed {results['elapsed_s']:.0f} s; results in "
          f"{os.path.relpath(out_path, os.getcwd())}")


def main():
    for path in (TRACED, PYTHON, RUSAGE):
        if not os.access(path, os.X_OK):
            sys.exit(f"bench: {path} is missing: run `make bench`")
    if len(sys.argv) > 1 and sys.argv[1] == "--daemon":
        daemon_suite()
    elif len(sys.argv) > 1:
        sys.exit(__doc__)
    else:
        suite()


if __name__ == "__main__":
    main()
