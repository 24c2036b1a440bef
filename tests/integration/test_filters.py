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
