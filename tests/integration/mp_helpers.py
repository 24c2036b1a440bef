"""Shared helpers for the multi-process tests (test_mp_*.py): a prelude
that makes a test program count its own calls, readers for those counts,
and checks of the trace's per-process metadata."""

import collections
import re
import textwrap
from pathlib import Path

from conftest import line_of, pyname, thread_names

# Test programs start with this.  Every call of a function is noted by the
# program itself in calls.log next to the script (one O_APPEND write per
# line, so lines of concurrent processes never mix):
#   main PID              the program's main process
#   call FUNC PID         one call of FUNC in process PID
#   proc PID PPID NAME    a task ran in PID (parent PPID), whose
#                         multiprocessing name was NAME
#   pid WHAT PID          some other pid the test needs (e.g. a sleeper)
PRELUDE = '''
import multiprocessing
import os
import sys

LOG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calls.log")


def note(*fields):
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (" ".join(str(f) for f in fields) + "\\n").encode())
    finally:
        os.close(fd)
'''

# A function `work` that notes each of its calls, and a task that calls it
# `n` times in whatever process runs the task.
WORK = '''

def work(i):
    note("call", "work", os.getpid())
    return i


def task(n):
    note("proc", os.getpid(), os.getppid(),
         multiprocessing.current_process().name)
    for i in range(n):
        work(i)
    return os.getpid()
'''


def program(body, with_work=True):
    """PRELUDE (+ WORK) + the dedented body: the text of a test program."""
    text = PRELUDE + (WORK if with_work else "") + "\n\n" + \
        textwrap.dedent(body).lstrip("\n")
    return text


class CallLog:
    """What a program noted in calls.log."""

    def __init__(self, path):
        self.path = Path(path)
        self.calls = collections.defaultdict(collections.Counter)
        self.procs = {}       # pid -> (ppid, multiprocessing name)
        self.tasks = collections.Counter()   # pid -> tasks run
        self.mains = []
        self.pids = collections.defaultdict(list)
        text = self.path.read_text() if self.path.exists() else ""
        for line in text.splitlines():
            f = line.split(" ")
            if f[0] == "main":
                self.mains.append(int(f[1]))
            elif f[0] == "call":
                self.calls[f[1]][int(f[2])] += 1
            elif f[0] == "proc":
                pid = int(f[1])
                self.procs[pid] = (int(f[2]), " ".join(f[3:]))
                self.tasks[pid] += 1
            elif f[0] == "pid":
                self.pids[f[1]].append(int(f[2]))
            else:
                raise AssertionError("bad line in %s: %r" % (path, line))

    @property
    def main(self):
        assert len(self.mains) == 1, "main noted %r in %s" % (self.mains,
                                                             self.path)
        return self.mains[0]

    def counts(self, func="work"):
        """{pid: calls of func}."""
        return dict(self.calls[func])


def read_log(script):
    return CallLog(Path(script).parent / "calls.log")


def func_names(script, func="work"):
    """The trace names a function `def func(` of `script` can have: its
    usual `func (path:line)`, and `func (<dynamic-code>:line)` when
    cloudpickle shipped it by value (loky/joblib do that for functions of
    __main__; cloudpickle replaces co_filename)."""
    line = line_of(script, "def %s(" % func)
    return {pyname(script, func), "%s (<dynamic-code>:%d)" % (func, line)}


def func_counts(events, script, func="work"):
    """{pid: number of X slices of `func` of `script`}."""
    names = func_names(script, func)
    c = collections.Counter(e["pid"] for e in events
                            if e.get("ph") == "X" and e.get("name") in names)
    return dict(c)


def func_unfinished(events, script, func="work"):
    names = func_names(script, func)
    return [e for e in events
            if e.get("ph") == "X" and e.get("name") in names
            and (e.get("args") or {}).get("unfinished")]


_META = ("process_name", "process_sort_index", "process_labels")
_META_KEY = {"process_name": "name", "process_sort_index": "sort_index",
             "process_labels": "labels"}


def process_meta(events):
    """{pid: {"process_name": [...], "process_sort_index": [...],
    "process_labels": [...]}} (every value the trace gives, in order)."""
    out = collections.defaultdict(lambda: {k: [] for k in _META})
    for e in events:
        if e.get("ph") == "M" and e.get("name") in _META:
            out[e["pid"]][e["name"]].append(e["args"][_META_KEY[e["name"]]])
    return dict(out)


def ppid_of(labels):
    """The N of 'ppid N' in a process_labels string ('ppid N[, ...]')."""
    m = re.match(r"ppid (\d+)(,|$)", labels)
    assert m, "process_labels %r does not start with 'ppid N'" % labels
    return int(m.group(1))


class Procs:
    """The trace's view of its processes: one name, sort index and parent
    per pid (asserted)."""

    def __init__(self, events):
        self.events = events
        self.meta = process_meta(events)
        self.pids = {e["pid"] for e in events if "pid" in e}

    def _one(self, pid, key):
        assert pid in self.meta, (
            "pid %d has no process metadata; processes in the trace: %s" %
            (pid, self.describe()))
        values = self.meta[pid][key]
        assert len(values) == 1, "pid %d has %d %s events: %r (%s)" % (
            pid, len(values), key, values, self.describe())
        return values[0]

    def name(self, pid):
        return self._one(pid, "process_name")

    def sort_index(self, pid):
        return self._one(pid, "process_sort_index")

    def ppid(self, pid):
        return ppid_of(self._one(pid, "process_labels"))

    def named(self, pattern):
        """pids whose (single) process_name fully matches the regex."""
        return sorted(p for p, m in self.meta.items()
                      if any(re.fullmatch(pattern, n)
                             for n in m["process_name"]))

    def describe(self):
        return "; ".join(
            "%d: %s" % (p, {k: v for k, v in m.items()})
            for p, m in sorted(self.meta.items()))

    def check_well_formed(self, main_pid):
        """Every pid that appears in the trace has exactly one name, sort
        index and ppid label; sort indexes are distinct; the main process is
        "MainProcess" with sort index 1; every thread with slices has one
        thread_name; every process sorts after its parent when the parent
        is in the trace."""
        for pid in sorted(self.pids):
            for key in _META:
                self._one(pid, key)
        indexes = [self.sort_index(p) for p in self.pids]
        assert len(set(indexes)) == len(indexes), (
            "duplicate sort indexes: %s" % self.describe())
        assert self.name(main_pid) == "MainProcess", self.describe()
        assert self.sort_index(main_pid) == 1, self.describe()
        threads = {(e["pid"], e["tid"]) for e in self.events
                   if e.get("ph") == "X"}
        names = thread_names(self.events)
        for key in sorted(threads):
            assert len(names.get(key, [])) == 1, (
                "thread %r has thread_name events %r" %
                (key, names.get(key)))
        for pid in self.pids:
            parent = self.ppid(pid)
            if parent in self.pids:
                assert self.sort_index(parent) < self.sort_index(pid), (
                    "pid %d sorts before its parent %d: %s" %
                    (pid, parent, self.describe()))


def alive(pid):
    """The process exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def tree(root):
    """Relative paths of every file and directory under root."""
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))
