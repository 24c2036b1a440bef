#!/usr/bin/env python3
"""bench_gz.py: issue 12's `.json.gz` target, measured on a real program:
"`.json.gz` costs the traced program no more than `.json` (the
scikit-learn search: <= 1.3x untraced, 0 dropped)".

    scripts/bench_gz.py            (`make bench-gz`)

Runs bench/wl_sklearn.py (GridSearchCV(n_jobs=2): a parent and two loky
workers) once untraced as a warm-up, then BENCH_ROUNDS rounds of: untraced,
`traced run -o trace.json`, `-o trace.json.gz`, `-o trace.pftrace`, one
after the other, with default settings (lossless), all on one private
`traced serve` started here.  Prints per mode the wall time (fork to
exit; for traced runs until the file is complete), its ratio to the
untraced run of the same round, the .json.gz / .json ratio per round, the
summary's events and dropped, the file's size, the daemon's CPU seconds
(user + system, /proc/PID/stat, all its threads) and the program's
(every process the command waited for, getrusage(RUSAGE_CHILDREN)), with
the machine's core count and load average.  Every run must print the same
result checksum as the warm-up (tracing never changes the program) and
every traced run must drop nothing: otherwise the run is reported with
FAIL and the script exits 1.  Results: build/bench/gz-results.json.

Environment (all optional):
  BENCH_ROUNDS          rounds (default 5)
  BENCH_GZ_MODES        subset of untraced,json,json.gz,pftrace (untraced
                        is always run: every ratio is relative to it)
  BENCH_GZ_DAEMONS      NAME=PATH[,NAME=PATH...]: another build's traced
                        binary (e.g. one built with another gzip level,
                        docs/benchmarks.md); each adds a mode `json.gz
                        NAME` whose runs go to a private daemon of that
                        binary, in the same rounds (the client, `traced
                        run`, is this build's)
  BENCH_SKLEARN_ALPHAS, BENCH_SKLEARN_ITER   the search's size
                        (bench/wl_sklearn.py)
  BENCH_TIMEOUT         seconds allowed to one run (default 900)
  BENCH_OUT             results file
  TRACED_BIN            the traced binary (default build/bin/traced)
"""
import json
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as B  # noqa: E402  (the suite's process and statistics helpers)

WORKLOAD = os.path.join(B.BENCH_DIR, "wl_sklearn.py")
TRACE_NAMES = {"json": "trace.json", "json.gz": "trace.json.gz",
               "pftrace": "trace.pftrace"}
OUT = os.environ.get("BENCH_OUT") or os.path.join(B.BUILD_BENCH,
                                                  "gz-results.json")


def parse_daemons(spec):
    """BENCH_GZ_DAEMONS: [(name, binary)]."""
    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name or not os.access(path, os.X_OK):
            sys.exit(f"bench-gz: BENCH_GZ_DAEMONS: {item!r} is not "
                     "NAME=PATH of an executable traced")
        out.append((name, os.path.abspath(path)))
    return out


def program_cpu_s():
    """User + system seconds of every child reaped so far (and of the
    descendants each of them waited for)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_once(mode, daemon, tmpdir):
    """One run of the workload: untraced when daemon is None, else traced
    to the format `mode` names (its first word) through daemon."""
    out_path = os.path.join(tmpdir, "stdout.txt")
    argv = [B.PYTHON, WORKLOAD]
    trace = None
    if daemon is not None:
        trace = os.path.join(tmpdir, TRACE_NAMES[mode.split()[0]])
        argv = [B.TRACED, "run", "-o", trace, "--socket", daemon.socket,
                "--"] + argv
        daemon.ensure()
        d0 = sum(daemon.cpu_s())
    p0 = program_cpu_s()
    r = B.run(argv, B.base_env(), tmpdir, stdout_path=out_path)
    rec = {"mode": mode, "status": r.status, "timed_out": r.timed_out,
           "wall_s": r.wall_s, "program_cpu_s": program_cpu_s() - p0,
           "load1": os.getloadavg()[0], "failures": []}
    if daemon is not None:
        rec["daemon_cpu_s"] = sum(daemon.cpu_s()) - d0
    # What the run asked of the machine's cores: on a busy machine the wall
    # time grows with it, whichever process spent it.
    rec["total_cpu_s"] = rec["program_cpu_s"] + rec.get("daemon_cpu_s", 0)
    try:
        with open(out_path) as f:
            res = json.loads(f.read().strip().splitlines()[-1])
        rec.update(checksum=res["checksum"], search_s=res["wall_s"],
                   fits=res["fits"])
    except (OSError, ValueError, KeyError, IndexError):
        rec["failures"].append("no result line on stdout")
    if not r.ok:
        rec["failures"].append(f"exit status {r.status}"
                               + (" (timed out)" if r.timed_out else ""))
    if trace is not None:
        summ = B.traced_summary(r.stderr)
        if summ is None:
            rec["failures"].append("no traced summary line on stderr")
        else:
            rec.update(events=summ["events"], dropped=summ["dropped"],
                       processes=summ["processes"])
            if summ["dropped"] != 0:
                rec["failures"].append(f"{summ['dropped']:,} events DROPPED "
                                       "in the default lossless mode")
        try:
            rec["file_bytes"] = os.path.getsize(trace)
            os.remove(trace)
        except OSError:
            rec["failures"].append("no trace file")
    return rec, r.stderr


def stat(runs, key):
    return B.summarise([r.get(key) for r in runs])


def round_ratios(runs, num, den, key="wall_s"):
    """Per round, num's key over den's, summarised."""
    by_round = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[r["mode"]] = r.get(key)
    return B.summarise([m[num] / m[den] for m in by_round.values()
                        if m.get(num) and m.get(den)])


def analyse(runs, modes):
    out = {}
    for mode in modes:
        rs = [r for r in runs if r["mode"] == mode]
        a = {k: stat(rs, k) for k in ("wall_s", "search_s", "events",
                                       "dropped", "file_bytes",
                                       "daemon_cpu_s", "program_cpu_s",
                                       "total_cpu_s")}
        a["x_untraced"] = round_ratios(runs, mode, "untraced")
        a["cpu_x_untraced"] = round_ratios(runs, mode, "untraced",
                                           "total_cpu_s")
        if mode.startswith("json.gz") and "json" in modes:
            a["x_json"] = round_ratios(runs, mode, "json")
        out[mode] = a
    return out


def row(cells, widths):
    """One line of the table: the mode left-aligned, figures right-aligned,
    a space between cells however wide a figure is."""
    return " ".join(c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(cells, widths)))


def print_table(results, modes):
    m = results["machine"]
    a = results["analysis"]
    print(f"traced .json.gz benchmark: bench/wl_sklearn.py "
          f"(GridSearchCV(n_jobs=2), {results['fits']} fits), "
          f"{results['rounds']} round(s), modes alternately in each round; "
          "median [min-max]")
    print(f"machine: {m.get('cpu')}, {m['nproc']} cores, Python "
          f"{m['python']}, traced {m.get('git')}; load average "
          f"{m['loadavg_start'][0]:.2f} at start, "
          f"{results['loadavg_end'][0]:.2f} at end "
          f"(after each run: {B.fmt_stat(results['load_runs'])})")
    print("wall = fork until exit (traced: the file complete); x untraced, "
          "x .json: per-round ratios of wall; CPU-s = user + system; "
          "CPU x untraced: (program + daemon CPU-s) / untraced program's, "
          "per round")
    cols = ["mode", "wall s", "x untraced", "x .json", "events", "dropped",
            "file MB", "daemon CPU-s", "program CPU-s", "CPU x untraced"]
    widths = [15, 18, 19, 19, 11, 8, 8, 19, 19, 19]
    line = row(cols, widths)
    print(line)
    print("-" * len(line))
    for mode in modes:
        s = a[mode]
        cells = [mode, B.fmt_stat(s["wall_s"]),
                 "-" if mode == "untraced" else B.fmt_stat(s["x_untraced"]),
                 B.fmt_stat(s["x_json"]) if "x_json" in s else "-",
                 B.fmt_count(s["events"]["median"]) if s["events"] else "-",
                 B.fmt_count(s["dropped"]["max"]) if s["dropped"] else "-",
                 B.fmt_num(s["file_bytes"]["median"] / 1e6)
                 if s["file_bytes"] else "-",
                 B.fmt_stat(s["daemon_cpu_s"]) if s["daemon_cpu_s"] else "-",
                 B.fmt_stat(s["program_cpu_s"]),
                 "-" if mode == "untraced"
                 else B.fmt_stat(s["cpu_x_untraced"])]
        print(row(cells, widths))
    gz = a.get("json.gz")
    if gz and gz["x_untraced"]:
        met = (gz["x_untraced"]["median"] <= 1.3
               and not results["failures"])
        print(f"target (issue 12): .json.gz <= 1.3x untraced, 0 dropped: "
              f"{B.fmt_stat(gz['x_untraced'])}x, dropped "
              f"{B.fmt_count(gz['dropped']['max']) if gz['dropped'] else '?'}"
              f": {'met' if met else 'NOT met'} (median)")
    if gz and "x_json" in gz and gz["x_json"]:
        print(f"target (issue 12): .json.gz costs no more than .json: "
              f"{B.fmt_stat(gz['x_json'])}x .json per round")


def main():
    for path in (B.TRACED, B.PYTHON, B.RUSAGE):
        if not os.access(path, os.X_OK):
            sys.exit(f"bench-gz: {path} is missing: run `make bench-gz`")
    asked = (os.environ.get("BENCH_GZ_MODES") or "json,json.gz,pftrace")
    modes = ["untraced"] + [m for m in ("json", "json.gz", "pftrace")
                            if m in asked.split(",")]
    extra = parse_daemons(os.environ.get("BENCH_GZ_DAEMONS") or "")
    modes += [f"json.gz {name}" for name, _ in extra]
    rounds = B.ROUNDS
    tmpdir = tempfile.mkdtemp(prefix="traced-bench-gz-")
    results = {"machine": B.machine_info(), "rounds": rounds, "modes": modes,
               "runs": [], "failures": []}
    daemons = {}
    t_start = time.monotonic()
    try:
        for name, binary in [("", B.TRACED)] + extra:
            d = os.path.join(tmpdir, "daemon-" + (name or "this"))
            os.mkdir(d)
            daemons[name] = B.Daemon(d, binary=binary).start()
        B.log(f"bench-gz: warm-up run (untraced), then {rounds} rounds of "
              f"{', '.join(modes)}")
        ref, _ = run_once("untraced", None, tmpdir)
        if ref["failures"]:
            sys.exit(f"bench-gz: the untraced warm-up failed: "
                     f"{'; '.join(ref['failures'])}")
        results["warmup"] = ref
        results["fits"] = ref["fits"]
        for rnd in range(rounds):
            for mode in modes:
                if mode == "untraced":
                    daemon = None
                else:
                    daemon = daemons[mode.split(" ", 1)[1]
                                     if " " in mode else ""]
                rec, stderr = run_once(mode, daemon, tmpdir)
                rec["round"] = rnd
                if rec.get("checksum", ref["checksum"]) != ref["checksum"]:
                    rec["failures"].append(
                        f"checksum {rec['checksum']} != {ref['checksum']} "
                        "(the untraced warm-up's)")
                results["runs"].append(rec)
                B.log(f"  round {rnd + 1} {mode:>13}: "
                      f"{rec['wall_s']:.2f} s, "
                      f"events {rec.get('events', '-')}, dropped "
                      f"{rec.get('dropped', '-')}, daemon CPU "
                      f"{rec.get('daemon_cpu_s', 0):.2f} s, load "
                      f"{rec['load1']:.2f}")
                for f in rec["failures"]:
                    msg = f"round {rnd + 1} {mode}: {f}"
                    results["failures"].append(msg)
                    B.log(f"bench-gz: FAIL: {msg}\n{stderr[-2000:]}")
    finally:
        for d in daemons.values():
            d.stop()
            B.reap_strays(d.socket)
        for root, dirs, files in os.walk(tmpdir, topdown=False):
            for f in files:
                os.remove(os.path.join(root, f))
            for d in dirs:
                os.rmdir(os.path.join(root, d))
        os.rmdir(tmpdir)
    results["loadavg_end"] = os.getloadavg()
    results["load_runs"] = stat(results["runs"], "load1")
    results["analysis"] = analyse(results["runs"], modes)
    results["daemon_deaths"] = {k or "this": d.deaths
                                for k, d in daemons.items()}
    warning = B.rebuilt_warning(results)
    B.write_json(OUT, results)
    print_table(results, modes)
    if warning:
        print(warning)
    for k, deaths in results["daemon_deaths"].items():
        if deaths:
            print(f"WARNING: daemon {k} died {len(deaths)} times: {deaths}")
    print(f"elapsed {time.monotonic() - t_start:.0f} s; results in "
          f"{os.path.relpath(OUT, B.ROOT)}")
    if results["failures"]:
        print(f"FAIL: {len(results['failures'])} runs failed:")
        for f in results["failures"]:
            print(f"  {f}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
