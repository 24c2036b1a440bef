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

from conftest import (TRACED_BIN, call_forest, load_trace, named,
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
