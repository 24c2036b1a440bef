"""Arguments and return values (--log-args, --log-return): bounded repr()
of each argument and of the return value in a Python call's slice, never
raising into the program or changing what it does."""

import sys
import textwrap

import pytest

from conftest import (TRACED_BIN, call_forest, line_of, named, run,
                      write_program)
from test_filters import VIAS, run_with

SHAPES = """
    def shapes(a, b=2, *rest, k=None, **kw):
        return a + b


    def greet(name):
        return "hi " + name


    def nothing():
        pass


    def main():
        shapes(1)
        shapes(1, 5, 6, 7, k="x", extra=[1, 2])
        greet("é")
        nothing()
"""


@pytest.mark.parametrize("via", VIAS)
def test_arguments_and_return_values(daemon, tmp_path, via):
    r = run_with(daemon, tmp_path, SHAPES, via,
                 {"log_args": True, "log_return": True})
    calls = sorted(named(r.events, r.name("shapes")), key=lambda e: e["ts"])
    assert [e["args"] for e in calls] == [
        {"a": "1", "b": "2", "k": "None", "rest": "()", "kw": "{}",
         "return_value": "3"},
        {"a": "1", "b": "5", "k": "'x'", "rest": "(6, 7)",
         "kw": "{'extra': [1, 2]}", "return_value": "6"},
    ]
    (greet,) = named(r.events, r.name("greet"))
    assert greet["args"] == {"name": "'é'", "return_value": "'hi é'"}
    (nothing,) = named(r.events, r.name("nothing"))
    assert nothing["args"] == {"return_value": "None"}
    (main,) = named(r.events, r.name("main"))
    assert main["args"] == {"return_value": "None"}


@pytest.mark.parametrize("option,expected", [
    ("log_args", {"a": "1", "b": "2", "k": "None", "rest": "()",
                  "kw": "{}"}),
    ("log_return", {"return_value": "3"}),
])
def test_arguments_and_return_values_are_separate_options(
        daemon, tmp_path, option, expected):
    r = run_with(daemon, tmp_path, SHAPES, "flag", {option: True})
    first = min(named(r.events, r.name("shapes")), key=lambda e: e["ts"])
    assert first["args"] == expected


def test_nothing_is_recorded_without_the_options(daemon, tmp_path):
    r = run_with(daemon, tmp_path, SHAPES, "flag", {})
    for e in r.events:
        if e.get("ph") == "X":
            assert "args" not in e, e


HOSTILE = """
    import sys

    import traced


    class Raising:
        def __repr__(self):
            raise ValueError("no repr")


    class NotStr:
        def __repr__(self):
            return 42


    class CallsBack:
        def __repr__(self):
            helper()
            traced.instant("from_repr")
            return "<calls back>"


    def helper():
        return 1


    def take(x):
        return x


    def main():
        take(Raising())
        take(NotStr())
        for _ in range(5):
            take(CallsBack())
        for _ in range(3):
            helper()
        take("x" * 100000)
        take("é" * 1000)
        print("done", take(7))
        sys.stdout.flush()
"""


@pytest.mark.parametrize("via", VIAS)
def test_hostile_reprs(daemon, tmp_path, via):
    r = run_with(daemon, tmp_path, HOSTILE, via,
                 {"log_args": True, "log_return": True, "repr_limit": 20})
    assert r.result.stdout == b"done 7\n"
    takes = sorted(named(r.events, r.name("take")), key=lambda e: e["ts"])
    assert [e["args"] for e in takes] == [
        {"x": "<repr failed: ValueError>",
         "return_value": "<repr failed: ValueError>"},
        {"x": "<repr failed: TypeError>",
         "return_value": "<repr failed: TypeError>"},
    ] + [{"x": "<calls back>", "return_value": "<calls back>"}] * 5 + [
        # 20 bytes: the quote, 16 characters and the 3-byte ellipsis.
        {"x": "'" + "x" * 16 + "\u2026", "return_value": "'" + "x" * 16 +
         "\u2026"},
        # A 2-byte character is never cut in half: 1 + 8 * 2 + 3 = 20.
        {"x": "'" + "é" * 8 + "\u2026", "return_value": "'" + "é" * 8 +
         "\u2026"},
        {"x": "7", "return_value": "7"},
    ]
    # What repr() called is not recorded: only main's own three calls.
    assert r.count("helper") == 3
    assert not [e for e in r.events if e.get("name") == "from_repr"]
    assert not [e for e in r.events if e.get("ph") == "X" and
                "__repr__" in e.get("name", "")]


def test_default_repr_limit_is_128_bytes(daemon, tmp_path):
    r = run_with(daemon, tmp_path, HOSTILE, "flag", {"log_args": True})
    long = [e for e in named(r.events, r.name("take"))
            if e["args"]["x"].startswith("'xxx")]
    assert [e["args"]["x"] for e in long] == ["'" + "x" * 124 + "\u2026"]


GENERATORS = """
    import asyncio


    def gen(n):
        for i in range(n):
            yield i * 10


    async def co(x):
        await asyncio.sleep(0)
        return x + 1


    def boom(x):
        raise ValueError(x)


    def main():
        assert list(gen(3)) == [0, 10, 20]
        assert asyncio.run(co(4)) == 5
        try:
            boom(5)
        except ValueError:
            pass
"""


@pytest.mark.parametrize("via", VIAS)
def test_generators_coroutines_and_exceptions(daemon, tmp_path, via):
    r = run_with(daemon, tmp_path, GENERATORS, via,
                 {"log_args": True, "log_return": True})
    # Each resumption of a generator is a slice with the arguments' values
    # and what it yielded; the last one returns None.
    gens = sorted(named(r.events, r.name("gen")), key=lambda e: e["ts"])
    assert [e["args"] for e in gens] == [
        {"n": "3", "return_value": v} for v in ("0", "10", "20", "None")]
    co = "co (%s:%d)" % (r.script, line_of(r.script, "async def co("))
    cos = sorted(named(r.events, co), key=lambda e: e["ts"])
    assert [e["args"] for e in cos] == [
        {"x": "4", "return_value": "None"}, {"x": "4", "return_value": "5"}]
    # A call that ends by an exception has no return value.
    (boom,) = named(r.events, r.name("boom"))
    assert boom["args"] == {"x": "5"}
    call_forest(r.events)


IN_FLIGHT = """
    import sys


    class Raising:
        def __repr__(self):
            raise KeyError("from repr")


    def probe(x):
        return x


    def cleanup(x):
        # Called while ValueError propagates out of a `with` block.
        return probe(x)


    class Guard:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            cleanup(Raising())
            assert sys.exc_info()[0] is ValueError
            return False


    def main():
        try:
            raise ValueError("outer")
        except ValueError as e:
            probe(Raising())
            probe(1)
            # The exception being handled is still the program's own.
            assert sys.exc_info()[1] is e, sys.exc_info()
            assert e.__context__ is None
        try:
            with Guard():
                raise ValueError("inside")
        except ValueError as e:
            assert str(e) == "inside" and e.__context__ is None
        print("ok")
"""


@pytest.mark.parametrize("via", VIAS)
def test_exception_in_flight_survives_the_hooks_reprs(daemon, tmp_path, via):
    r = run_with(daemon, tmp_path, IN_FLIGHT, via,
                 {"log_args": True, "log_return": True})
    assert r.result.stdout == b"ok\n"
    probes = sorted(named(r.events, r.name("probe")), key=lambda e: e["ts"])
    assert [e["args"] for e in probes] == [
        {"x": "<repr failed: KeyError>",
         "return_value": "<repr failed: KeyError>"},
        {"x": "1", "return_value": "1"},
        {"x": "<repr failed: KeyError>",
         "return_value": "<repr failed: KeyError>"},
    ]


EXIT_STATUS = """
    import sys


    def f(x):
        print("f", x)
        return x


    def main():
        f([1, 2])
        sys.stderr.write("err\\n")
        sys.exit(3)
"""


def test_output_and_exit_status_unchanged(daemon, tmp_path):
    script = write_program(
        tmp_path, textwrap.dedent(EXIT_STATUS) + "\n\nmain()\n", "plain.py")
    plain = run([sys.executable, script], env=daemon.env, cwd=tmp_path)
    r = run([TRACED_BIN, "run", "-q", "-o", tmp_path / "t.json",
             "--log-args", "--log-return", "--", sys.executable, script],
            env=daemon.env, cwd=tmp_path)
    assert plain.returncode == r.returncode == 3
    assert plain.stdout == r.stdout == b"f [1, 2]\n"
    assert plain.stderr == r.stderr == b"err\n"


@pytest.mark.parametrize("flag,value", [
    ("--repr-limit", "7"), ("--repr-limit", "4001"), ("--repr-limit", "x"),
    ("--repr-limit", "-1"),
])
def test_invalid_repr_limit_flag(tmp_path, flag, value):
    r = run([TRACED_BIN, "run", flag, value, "--", "true"], env={},
            cwd=tmp_path)
    assert r.returncode == 2, r.describe()
    assert b"--repr-limit" in r.stderr and b"usage: traced run" in r.stderr
