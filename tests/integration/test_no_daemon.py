"""Without a reachable daemon a program runs untraced: same output, same
exit status, and exactly one warning line on stderr."""

import sys

import pytest

from conftest import (BOGUS_TOKEN, clean_env, processes_mentioning, run,
                      write_program)

PROGRAM = """
    import os
    import sys


    def work(n):
        return sum(i * i for i in range(n))


    def body():
        print("start")
        print("an error line", file=sys.stderr)
        print("work", work(1000))
        print("end")


    def main():
        api = os.environ.get("API", "none")
        if api == "session":
            import traced
            with traced.session(output=sys.argv[1]):
                body()
        elif api == "start_stop":
            import traced
            traced.start(output=sys.argv[1])
            body()
            traced.stop()
        else:
            body()
        print("after")
        sys.exit(3)


    main()
"""


def assert_one_warning(plain, traced):
    """traced ran like plain, plus exactly one stderr line mentioning
    traced."""
    assert plain.returncode == 3, plain.describe()
    assert traced.returncode == 3, traced.describe()
    assert traced.stdout == plain.stdout
    plain_lines = plain.stderr.splitlines(keepends=True)
    lines = traced.stderr.splitlines(keepends=True)
    assert len(lines) == len(plain_lines) + 1, traced.describe()
    extra = [i for i in range(len(lines))
             if lines[:i] + lines[i + 1:] == plain_lines
             and b"traced" in lines[i].lower()]
    assert extra, ("stderr is not the program's plus one warning line "
                   "mentioning traced:\n" + traced.describe())
    assert lines[extra[0]].endswith(b"\n")


def run_program(tmp_path, env):
    script = write_program(tmp_path, PROGRAM)
    return run([sys.executable, script, tmp_path / "trace.json"], env=env,
               cwd=tmp_path)


@pytest.mark.parametrize("attach", ["session", "output"])
def test_env_attach_without_daemon_warns_once(tmp_path, private_socket,
                                              attach):
    plain = run_program(tmp_path, clean_env())
    if attach == "session":
        # Joining a session: nothing to create, so nothing to start.
        env = clean_env(TRACED_SOCKET=private_socket,
                        TRACED_SESSION=BOGUS_TOKEN)
    else:
        env = clean_env(TRACED_SOCKET=private_socket,
                        TRACED_OUTPUT=tmp_path / "env-trace.json",
                        TRACED_NO_AUTOSTART=1)
    traced = run_program(tmp_path, env)
    assert_one_warning(plain, traced)
    assert processes_mentioning(private_socket) == []


@pytest.mark.parametrize("api", ["session", "start_stop"])
def test_inline_api_without_daemon_warns_once(tmp_path, private_socket, api):
    plain = run_program(tmp_path, clean_env())
    traced = run_program(tmp_path, clean_env(TRACED_SOCKET=private_socket,
                                             TRACED_NO_AUTOSTART=1, API=api))
    assert_one_warning(plain, traced)
    assert processes_mentioning(private_socket) == []
