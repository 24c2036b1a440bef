"""A full string table loses names, not events: every call is still in the
trace (named "<unknown>"), and the process label says how many names were
lost."""

import re
import sys

from conftest import load_trace, run, slices, write_program

PROGRAM = """
    import sys
    import traced

    ns = {}
    exec("\\n".join(f"def f{i}(): return {i}" for i in range(3000)), ns)
    with traced.session(output=sys.argv[1]) as s:
        for i in range(3000):
            ns[f"f{i}"]()
    print(s.summary.events, s.summary.dropped)
"""


def test_full_string_table_loses_names_not_events(daemon, tmp_path):
    script = write_program(tmp_path, PROGRAM)
    out = tmp_path / "t.json"
    env = dict(daemon.env, TRACED_ARENA_SIZE="65536")  # the minimum
    r = run([sys.executable, script, out], env=env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    events = load_trace(out)
    named = [e for e in slices(events) if re.fullmatch(r"f\d+ \(<string>:\d+\)",
                                                       e["name"])]
    unknown = slices(events, "<unknown>")
    assert len(named) + len(unknown) == 3000
    assert len(unknown) > 0
    labels = [e["args"]["labels"] for e in events
              if e.get("ph") == "M" and e["name"] == "process_labels"]
    assert len(labels) == 1
    m = re.search(r"traced: (\d+) names lost \(string table full\)",
                  labels[0])
    assert m, labels
    # Each lost name is one function, called once.
    assert int(m.group(1)) == len(unknown)
    assert r.stdout.split() == [b"3000", b"0"]
