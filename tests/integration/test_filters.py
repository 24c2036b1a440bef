"""Filters shape what is recorded exactly as docs/options.md says, given as
`traced run` flags, as TRACED_* environment variables or as keyword
arguments of traced.session(): include/exclude files, maximum depth,
ignoring C functions, minimum duration; and invalid values are refused
(flags, API) or ignored with one warning (environment)."""

import json
import os
import sys
import textwrap

import pytest

from conftest import (TRACED_BIN, call_forest, clean_env, load_trace, named,
                      parent_names, pyname, run, slices, write_program)

VIAS = ["flag", "env", "api"]

# Every test program defines main(); run as "api" it traces main() inside
# traced.session(output, **options), otherwise the whole program is traced
# by `traced run`.
FOOTER = """

if __name__ == "__main__":
    import json
    import sys
    if sys.argv[1] == "api":
        import traced
        with traced.session(output=sys.argv[2], **json.loads(sys.argv[3])):
            main()
    else:
        main()
"""


def flag_args(options):
    out = []
    for kwarg, value in options.items():
        flag = "--" + kwarg.replace("_", "-")
        if value is True:
            out.append(flag)
        elif isinstance(value, (list, tuple)):
            for v in value:
                out += [flag, str(v)]
        else:
            out += [flag, str(value)]
    return out


def env_vars(options):
    out = {}
    for kwarg, value in options.items():
        name = "TRACED_" + kwarg.upper()
        if value is True:
            out[name] = "1"
        elif isinstance(value, (list, tuple)):
            out[name] = os.pathsep.join(str(v) for v in value)
        else:
            out[name] = str(value)
    return out


class Run:
    def __init__(self, result, script, events):
        self.result = result
        self.script = script
        self.events = events

    def count(self, func, qualname=None):
        return len(named(self.events, pyname(self.script, func, qualname)))

    def name(self, func, qualname=None):
        return pyname(self.script, func, qualname)


def run_with(daemon, tmp_path, body, via, options, files=None, env=None):
    """Runs the program `body` (+ FOOTER) traced with `options` given the
    `via` way; `files` are more modules written next to it.  Returns a
    Run with the loaded trace; the program must exit 0."""
    for name, text in (files or {}).items():
        write_program(tmp_path, text, name)
    script = write_program(tmp_path, textwrap.dedent(body) + FOOTER)
    output = tmp_path / "trace.json"
    extra_env = dict(env or {})
    if via == "flag":
        cmd = [TRACED_BIN, "run", "-o", output] + flag_args(options) + \
            ["--", sys.executable, script, "cli"]
    elif via == "env":
        cmd = [TRACED_BIN, "run", "-o", output, "--", sys.executable, script,
               "cli"]
        extra_env.update(env_vars(options))
    elif via == "api":
        cmd = [sys.executable, script, "api", output, json.dumps(options)]
    else:
        raise ValueError(via)
    result = run(cmd, env=dict(daemon.env, **extra_env), cwd=tmp_path)
    assert result.returncode == 0, result.describe()
    return Run(result, script, load_trace(output))


# ---- ignore C functions ------------------------------------------------------

LEAVES = """
    def leaf(x):
        return len(x)


    def work(n):
        for i in range(n):
            leaf([i])
        return sorted([3, 1, 2])


    def main():
        work(100)
"""


@pytest.mark.parametrize("via", VIAS)
def test_ignore_c_functions_records_no_c_call(daemon, tmp_path, via):
    r = run_with(daemon, tmp_path, LEAVES, via, {"ignore_c_functions": True})
    assert r.count("leaf") == 100
    assert r.count("work") == 1
    assert [e for e in r.events if e.get("cat") == "c"] == []
    nodes = call_forest(r.events)
    assert parent_names(nodes, r.name("leaf")) == {r.name("work"): 100}


@pytest.mark.parametrize("via", VIAS)
def test_c_functions_are_recorded_by_default(daemon, tmp_path, via):
    r = run_with(daemon, tmp_path, LEAVES, via, {})
    assert r.count("leaf") == 100
    nodes = call_forest(r.events)
    assert parent_names(nodes, "builtins.len")[r.name("leaf")] == 100
    assert parent_names(nodes, "builtins.sorted")[r.name("work")] == 1


# ---- file filters and depth ---------------------------------------------------

# main -> outer -> helper.mid -> helper.inner -> leaf -> builtins.len, ten
# times; helper.inner also calls builtins.abs (a C call made by a function
# of the helper file).
CHAIN = """
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "lib"))
    import helper


    def leaf(x):
        return len([x])


    def outer(n):
        for i in range(n):
            helper.mid(i, leaf)


    def main():
        outer(10)
"""

HELPER = """
    def mid(i, cb):
        return inner(i, cb)


    def inner(i, cb):
        return cb(abs(i))
"""


def run_chain(daemon, tmp_path, via, options):
    (tmp_path / "lib").mkdir(exist_ok=True)
    r = run_with(daemon, tmp_path, CHAIN, via, options,
                 files={"lib/helper.py": HELPER})
    helper = tmp_path / "lib" / "helper.py"
    r.helper = lambda f: pyname(helper, f)
    r.nodes = call_forest(r.events)
    return r


def program_counts(r):
    return {f: r.count(f) for f in ("main", "outer", "leaf")} | {
        f: len(named(r.events, r.helper(f))) for f in ("mid", "inner")}


def c_children(r, parent_name, c_name):
    return parent_names(r.nodes, c_name).get(parent_name, 0)


@pytest.mark.parametrize("via", VIAS)
def test_no_filter_records_the_whole_chain(daemon, tmp_path, via):
    r = run_chain(daemon, tmp_path, via, {})
    assert program_counts(r) == {"main": 1, "outer": 1, "mid": 10,
                                 "inner": 10, "leaf": 10}
    assert parent_names(r.nodes, r.name("leaf")) == {r.helper("inner"): 10}
    assert c_children(r, r.helper("inner"), "builtins.abs") == 10
    assert c_children(r, r.name("leaf"), "builtins.len") == 10


@pytest.mark.parametrize("via", VIAS)
def test_exclude_files_leaves_out_their_functions_not_their_callees(
        daemon, tmp_path, via):
    r = run_chain(daemon, tmp_path, via,
                  {"exclude_files": [str(tmp_path / "lib")]})
    assert program_counts(r) == {"main": 1, "outer": 1, "mid": 0,
                                 "inner": 0, "leaf": 10}
    # The callee of an excluded function nests in the nearest recorded
    # caller; C functions the excluded code called are left out with it.
    assert parent_names(r.nodes, r.name("leaf")) == {r.name("outer"): 10}
    assert c_children(r, r.name("outer"), "builtins.abs") == 0
    assert c_children(r, r.name("leaf"), "builtins.len") == 10
    assert not [e for e in slices(r.events) if "/lib/helper.py" in e["name"]]


@pytest.mark.parametrize("via", VIAS)
def test_include_files_records_only_those_files(daemon, tmp_path, via):
    script = tmp_path / "prog.py"
    r = run_chain(daemon, tmp_path, via, {"include_files": [str(script)]})
    assert program_counts(r) == {"main": 1, "outer": 1, "mid": 0,
                                 "inner": 0, "leaf": 10}
    python = [e for e in slices(r.events) if e["cat"] == "python"]
    assert python and all(str(script) in e["name"] for e in python), \
        sorted({e["name"] for e in python if str(script) not in e["name"]})
    # Every C call left is one a function of prog.py made.
    by_id = {id(n.event): n for n in r.nodes}
    for n in r.nodes:
        if n.event["cat"] == "c":
            assert n.parent is not None and str(script) in n.parent.name, \
                n.event
    assert c_children(r, r.name("leaf"), "builtins.len") == 10
    assert not [n for n in by_id.values() if n.name == "builtins.abs"]


@pytest.mark.parametrize("via", ["flag", "api"])
def test_include_and_exclude_combine(daemon, tmp_path, via):
    # Everything under tmp_path, except lib/.
    r = run_chain(daemon, tmp_path, via,
                  {"include_files": [str(tmp_path)],
                   "exclude_files": [str(tmp_path / "lib")]})
    assert program_counts(r) == {"main": 1, "outer": 1, "mid": 0,
                                 "inner": 0, "leaf": 10}


def test_prefixes_match_whole_path_components(daemon, tmp_path):
    # ".../pro" is not a prefix of ".../prog.py"; ".../lib/" and ".../lib"
    # both cover lib/helper.py.
    r = run_chain(daemon, tmp_path, "flag",
                  {"include_files": [str(tmp_path / "pro"),
                                     str(tmp_path / "lib") + "/"]})
    assert program_counts(r) == {"main": 0, "outer": 0, "mid": 10,
                                 "inner": 10, "leaf": 0}


def depth_base(via):
    """Recorded levels above main(): the script's <module> under `traced
    run`; nothing when main() is called inside traced.session()."""
    return 0 if via == "api" else 1


@pytest.mark.parametrize("via", VIAS)
def test_max_depth_counts_recorded_levels(daemon, tmp_path, via):
    base = depth_base(via)
    r = run_chain(daemon, tmp_path, via, {"max_depth": base + 3})
    assert program_counts(r) == {"main": 1, "outer": 1, "mid": 10,
                                 "inner": 0, "leaf": 0}
    assert c_children(r, r.helper("mid"), "builtins.abs") == 0
    assert not named(r.events, "builtins.len") or \
        c_children(r, r.name("leaf"), "builtins.len") == 0
    r = run_chain(daemon, tmp_path, via, {"max_depth": base + 1})
    assert program_counts(r) == {"main": 1, "outer": 0, "mid": 0,
                                 "inner": 0, "leaf": 0}


@pytest.mark.parametrize("via", VIAS)
def test_max_depth_skips_filtered_levels(daemon, tmp_path, via):
    # Excluded functions are not levels: leaf is the third recorded level
    # under main (main, outer, leaf) once helper's two are left out.
    base = depth_base(via)
    r = run_chain(daemon, tmp_path, via,
                  {"max_depth": base + 3,
                   "exclude_files": [str(tmp_path / "lib")]})
    assert program_counts(r) == {"main": 1, "outer": 1, "mid": 0,
                                 "inner": 0, "leaf": 10}
    assert c_children(r, r.name("leaf"), "builtins.len") == 0


@pytest.mark.parametrize("via", VIAS)
def test_max_depth_and_ignore_c_functions(daemon, tmp_path, via):
    base = depth_base(via)
    r = run_chain(daemon, tmp_path, via,
                  {"max_depth": base + 5, "ignore_c_functions": True})
    assert program_counts(r) == {"main": 1, "outer": 1, "mid": 10,
                                 "inner": 10, "leaf": 10}
    assert [e for e in r.events if e.get("cat") == "c"] == []


# ---- minimum duration -----------------------------------------------------------

def raw_min_duration_session(path, min_duration_ns):
    """A hand-made producer session with min_duration_ns whose calls have
    exact durations; returns (summary, events)."""
    import rawproto as rp

    arena = rp.Arena()
    ring = rp.Ring(tid=os.getpid() + 2000000)
    out = rp.memfd(0, seal=False, name="min-duration-output")
    try:
        with rp.Conn(path) as c:
            t, _ = c.hello("producer", arena)
            assert t == rp.WELCOME
            payload = {"path": "md.json", "format": "json"}
            if min_duration_ns is not None:
                payload["min_duration_ns"] = min_duration_ns
            t, p = c.request(rp.SESSION_CREATE, payload, [out])
            assert t == rp.SESSION_CREATED, p
            c.add_ring(ring)
            assert c.sync()[0] == rp.SESSION_JOINED
            ids = {n: arena.intern(n) for n in
                   ("d500", "d999", "d1000", "d5000", "child400",
                    "child2000", "span100", "open")}
            ts = __import__("time").monotonic_ns()

            def call(name, start, dur, kind=rp.PY_CALL):
                ring.put(ts + start, ids[name], kind)
                ring.put(ts + start + dur, ids[name], kind + 1)

            call("d500", 0, 500)
            call("d999", 1000, 999)
            call("d1000", 3000, 1000, rp.C_CALL)
            # A long call with a short and a long child: each is judged
            # on its own duration.
            ring.put(ts + 10000, ids["d5000"], rp.PY_CALL)
            call("child400", 10100, 400)
            call("child2000", 11000, 2000)
            ring.put(ts + 15000, ids["d5000"], rp.PY_RETURN)
            call("span100", 20000, 100, rp.BEGIN)
            # Still open when the session ends: kept, marked unfinished.
            ring.put(ts + 30000, ids["open"], rp.PY_CALL)
            ring.put(ts + 30050, arena.unknown, rp.INSTANT)
            ring.publish()
            t, summary = c.request(rp.SESSION_END, {})
            assert t == rp.SESSION_SUMMARY
        size = os.fstat(out).st_size
        data = json.loads(os.pread(out, size, 0).decode())
        return summary, data["traceEvents"]
    finally:
        arena.close()
        ring.close()
        os.close(out)


def test_min_duration_in_the_daemon_exactly(daemon):
    summary, events = raw_min_duration_session(daemon.socket, 1000)
    written = sorted(e["name"] for e in events if e.get("ph") == "X")
    assert written == ["child2000", "d1000", "d5000", "open", "span100"]
    assert summary["filtered"] == 3
    (unfinished,) = named(events, "open")
    assert unfinished["args"] == {"unfinished": True}
    # Without the option every call is written and none is counted.
    summary, events = raw_min_duration_session(daemon.socket, None)
    assert len(slices(events)) == 8 and summary["filtered"] == 0


SLOW_FAST = """
    import json
    import sys
    import time

    import traced


    def slow():
        time.sleep(0.05)


    def fast():
        return 1


    def main():
        for _ in range(3):
            slow()
        for _ in range(200):
            fast()
"""


@pytest.mark.parametrize("via,value", [("flag", "20ms"), ("env", "20000"),
                                       ("api", "0.02s")])
def test_min_duration_real_program(daemon, tmp_path, via, value):
    r = run_with(daemon, tmp_path, SLOW_FAST, via, {"min_duration": value})
    # Sleeping 50 ms takes at least 50 ms: those three are always there;
    # whatever else was written lasted at least 20 ms.
    assert r.count("slow") == 3
    calls = [e for e in slices(r.events) if e["cat"] in ("python", "c")]
    assert all(e["dur"] >= 20000 for e in calls), \
        [e for e in calls if e["dur"] < 20000]
    if via != "api":
        line = r.result.stderr.decode().strip().splitlines()[-1]
        m = __import__("re").search(
            r"\((\d+) calls shorter than --min-duration left out\)$", line)
        assert m, line
        # Each fast() call is either written or counted as filtered.
        assert int(m.group(1)) >= 200 - r.count("fast")


def test_duration_syntax(tmp_path):
    prog = write_program(tmp_path, """
        from traced import _traced
        for text in ("500ns", "10us", "2ms", "1s", "1.5ms", "7", "0.25",
                     "0"):
            print(_traced.parse_option("TRACED_MIN_DURATION", text))
        for text in ("", "ms", "5x", "-1", "1e3", "1.5.2", "2 ms", "90000s"):
            try:
                _traced.parse_option("TRACED_MIN_DURATION", text)
            except ValueError:
                print("invalid")
    """)
    r = run([sys.executable, prog], env=clean_env(), cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert r.stdout.decode().split() == [
        "500", "10000", "2000000", "1000000000", "1500000", "7000", "250",
        "0"] + ["invalid"] * 8


# ---- invalid values ---------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--max-depth", "0"], ["--max-depth", "x"], ["--max-depth", "1048577"],
    ["--min-duration", "5parsecs"], ["--min-duration", "-1"],
    ["--include-files", ""], ["--exclude-files", ":"],
    ["--log-args=1"], ["--repr-limit"],
])
def test_invalid_flags_print_usage_and_exit_2(tmp_path, args):
    r = run([TRACED_BIN, "run"] + args + ["--", "true"], env=clean_env(),
            cwd=tmp_path)
    assert r.returncode == 2, r.describe()
    assert b"usage: traced run" in r.stderr, r.describe()


DEEP = """
    import multiprocessing


    def deep(n):
        return deep(n - 1) if n else 0


    def child():
        deep(5)


    def main():
        deep(5)
        p = multiprocessing.get_context("spawn").Process(target=child)
        p.start()
        p.join()
"""


@pytest.mark.parametrize("via", ["env", "output"])
def test_invalid_env_value_warns_once_and_is_ignored(daemon, tmp_path, via):
    env = {"TRACED_MAX_DEPTH": "deep", "TRACED_LOG_ARGS": "maybe"}
    if via == "env":
        r = run_with(daemon, tmp_path, DEEP, "env", {}, env=env)
    else:
        script = write_program(tmp_path, textwrap.dedent(DEEP) + FOOTER)
        out = tmp_path / "trace.json"
        res = run([sys.executable, script, "cli"],
                  env=dict(daemon.env, TRACED_OUTPUT=out, **env),
                  cwd=tmp_path)
        assert res.returncode == 0, res.describe()
        r = Run(res, script, load_trace(out))
    err = r.result.stderr.decode()
    # One warning per bad variable for the whole program, child included.
    assert err.count("TRACED_MAX_DEPTH=deep") == 1, err
    assert err.count("TRACED_LOG_ARGS=maybe") == 1, err
    assert err.count("warning") == 2, err
    # Ignored: every level of both processes is there, without arguments.
    deeps = named(r.events, r.name("deep"))
    assert len(deeps) == 12
    assert len({e["pid"] for e in deeps}) == 2
    assert all("args" not in e for e in deeps)


API_INVALID = """
    import os
    import sys

    import traced

    out = sys.argv[1]
    for kwargs, exc in (({"max_depth": 0}, ValueError),
                        ({"max_depth": True}, ValueError),
                        ({"min_duration": "5x"}, ValueError),
                        ({"min_duration": -1}, ValueError),
                        ({"repr_limit": 10 ** 6}, ValueError),
                        ({"include_files": 5}, ValueError),
                        ({"log_args": "yes"}, ValueError),
                        ({"no_such_option": 1}, TypeError)):
        for call in (lambda: traced.session(out, **kwargs),
                     lambda: traced.start(out, **kwargs)):
            try:
                call()
            except exc as e:
                assert "traced" in str(e)
            else:
                raise SystemExit("accepted %r" % (kwargs,))
    assert not os.path.exists(out), "a session was started"
    print("ok")
"""


def test_invalid_api_options_raise_before_starting(daemon, tmp_path):
    script = write_program(tmp_path, API_INVALID)
    r = run([sys.executable, script, tmp_path / "never.json"],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert r.stdout == b"ok\n" and r.stderr == b""


# ---- options per session --------------------------------------------------------

SESSIONS = """
    import os
    import sys
    import threading

    import traced

    go = threading.Event()
    done = threading.Event()
    stop = False


    def leaf(x):
        return len([x])


    def worker():
        while True:
            go.wait()
            go.clear()
            if stop:
                return
            for i in range(10):
                leaf(i)
            done.set()


    def round_trip():
        go.set()
        done.wait()
        done.clear()


    if __name__ == "__main__":
        t = threading.Thread(target=worker, name="long-lived")
        with traced.session(output=sys.argv[1]):
            t.start()
            round_trip()
        with traced.session(output=sys.argv[2], ignore_c_functions=True,
                            exclude_files=[os.path.abspath(__file__)]):
            round_trip()
        with traced.session(output=sys.argv[3], max_depth=1):
            round_trip()
        stop = True
        go.set()
        t.join()
"""


def test_each_session_has_its_own_options_in_running_threads(daemon,
                                                             tmp_path):
    script = write_program(tmp_path, SESSIONS)
    outs = [tmp_path / ("s%d.json" % i) for i in range(3)]
    r = run([sys.executable, script] + outs, env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    leaf = pyname(script, "leaf")
    first, second, third = (load_trace(o) for o in outs)
    assert len(named(first, leaf)) == 10
    assert parent_names(call_forest(first), "builtins.len")[leaf] == 10
    # The thread was already running: the new session's options reach it.
    assert named(second, leaf) == []
    assert [e for e in second if e.get("cat") == "c"] == []
    # worker() began before the session: leaf is the first recorded level.
    assert len(named(third, leaf)) == 10
    assert named(third, "builtins.len") == []
