"""Python and C function calls become exact, well-nested X slices."""

import pytest

from conftest import (call_forest, named, parent_names, pyname, run_traced,
                      slices)

VIAS = ["cli", "env"]

CALLS_1000 = """
    def f():
        return 1


    def g():
        for _ in range(1000):
            f()


    g()
"""


@pytest.mark.parametrize("via", VIAS)
def test_1000_calls_of_f_nested_in_g(daemon, tmp_path, via):
    t = run_traced(daemon, CALLS_1000, tmp_path, via=via)
    assert t.returncode == 0, t.result.describe()
    f_name = pyname(t.script, "f")
    g_name = pyname(t.script, "g")
    assert f_name == "f (%s:1)" % t.script

    fs = slices(t.events, "f (")
    assert len(fs) == 1000
    assert all(e["name"] == f_name for e in fs)
    assert all(str(t.script) in e["name"] for e in fs)
    gs = named(t.events, g_name)
    assert len(gs) == 1
    g = gs[0]
    for f in fs:
        assert (f["pid"], f["tid"]) == (g["pid"], g["tid"])
        assert g["ts"] <= f["ts"] + 0.001, (g, f)
        assert f["ts"] + f["dur"] <= g["ts"] + g["dur"] + 0.001, (g, f)
    # Nothing is recorded between g and its f calls.
    nodes = call_forest(t.events)
    assert parent_names(nodes, f_name) == {g_name: 1000}
    assert all(e["cat"] == "python" for e in fs + gs)


EXCEPTIONS_AND_GENERATORS = """
    def boom(i):
        raise ValueError(i)


    def catcher(n):
        caught = 0
        for i in range(n):
            try:
                boom(i)
            except ValueError:
                caught += 1
        return caught


    def inner():
        raise KeyError("k")


    def middle():
        inner()


    def outer(n):
        for _ in range(n):
            try:
                middle()
            except KeyError:
                pass


    def c_raiser(n):
        d = {}
        for i in range(n):
            try:
                d.pop(i)
            except KeyError:
                pass


    def gen(k):
        for i in range(k):
            yield i


    def consume(k):
        total = 0
        for v in gen(k):
            total += v
        return total


    def failing_gen():
        yield 1
        yield 2
        raise RuntimeError("gen failed")


    def consume_failing():
        seen = []
        try:
            for v in failing_gen():
                seen.append(v)
        except RuntimeError:
            pass
        return seen


    def main():
        assert catcher(50) == 50
        outer(20)
        c_raiser(15)
        assert consume(30) == sum(range(30))
        assert consume_failing() == [1, 2]
        print("ok")


    main()
"""


@pytest.mark.parametrize("via", VIAS)
def test_exceptions_and_generators_are_well_nested(daemon, tmp_path, via):
    t = run_traced(daemon, EXCEPTIONS_AND_GENERATORS, tmp_path, via=via)
    assert t.returncode == 0, t.result.describe()
    assert t.stdout == b"ok\n"
    # Asserts that every thread's slices form a tree.
    nodes = call_forest(t.events)

    def n(func):
        return pyname(t.script, func)

    main = n("main")
    expected = {
        # name: {parent: count}
        n("boom"): {n("catcher"): 50},
        n("catcher"): {main: 1},
        n("inner"): {n("middle"): 20},
        n("middle"): {n("outer"): 20},
        n("outer"): {main: 1},
        "dict.pop": {n("c_raiser"): 15},
        n("c_raiser"): {main: 1},
        # One slice per resume: 30 values, then the resume that finishes.
        n("gen"): {n("consume"): 31},
        n("consume"): {main: 1},
        # Two values, then the resume that raises.
        n("failing_gen"): {n("consume_failing"): 3},
        n("consume_failing"): {main: 1},
    }
    for name, parents in expected.items():
        if name == "dict.pop":
            # Other code may pop from dicts; count the ones under c_raiser.
            got = {p: c for p, c in parent_names(nodes, name).items()
                   if p == n("c_raiser")}
        else:
            got = parent_names(nodes, name)
        assert got == parents, name
    assert len(named(t.events, main)) == 1
    for e in named(t.events, "dict.pop"):
        assert e["cat"] == "c"
    # No slice of this program is left unfinished.
    script = str(t.script)
    for e in t.events:
        if e.get("ph") == "X" and script in e["name"]:
            assert not (e.get("args") or {}).get("unfinished"), e


C_CALLS = """
    def cfuncs(n):
        x = []
        for i in range(n):
            len(x)
            x.append(i)
        return x


    cfuncs(25)
"""


@pytest.mark.parametrize("via", VIAS)
def test_c_function_names(daemon, tmp_path, via):
    t = run_traced(daemon, C_CALLS, tmp_path, via=via)
    assert t.returncode == 0, t.result.describe()
    nodes = call_forest(t.events)
    cf = pyname(t.script, "cfuncs")
    assert parent_names(nodes, cf) == {"<module> (%s:1)" % t.script: 1}
    by_name = {}
    for node in nodes:
        if node.parent is not None and node.parent.name == cf:
            by_name[node.name] = by_name.get(node.name, 0) + 1
            assert node.event["cat"] == "c", node.event
    assert by_name == {"builtins.len": 25, "list.append": 25}
    assert named(t.events, cf)[0]["cat"] == "python"
