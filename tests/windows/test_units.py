"""What runs under Wine before the Windows transport lands: the proto/common
unit tests cross-built against tests/windows/include/check.h, and the
test helpers the traced.exe tests rely on (spawn, pipe_sd)."""

import re
import uuid

import pytest

from conftest import PIPE_SD, SPAWN, WIN_BUILD, WIN_UNITS, needs, wine


@pytest.mark.parametrize("unit", WIN_UNITS)
def test_unit_tests_pass_under_wine(unit, tmp_path):
    exe = WIN_BUILD / ("tests/check_%s.exe" % unit)
    assert exe.exists(), "make windows did not build %s" % exe
    r = wine([exe], cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    m = re.search(rb"100%: Checks: (\d+), Failures: 0, Errors: 0", r.stdout)
    assert m and int(m.group(1)) > 0, r.describe()


@needs(SPAWN)
def test_spawn_runs_every_copy_and_keeps_a_failing_status(tmp_path):
    # Three copies of spawn itself with too few arguments: each says its
    # usage and exits 2, and the outer spawn exits with that status.
    r = wine([SPAWN, 3, SPAWN, 1], cwd=tmp_path)
    assert r.returncode == 2, r.describe()
    assert r.stderr.count(b"usage: spawn") == 3, r.describe()


@needs(PIPE_SD)
def test_pipe_security_descriptor_reads_back(tmp_path):
    """pipe_sd reads a pipe's owner and DACL where it runs: the pipe it
    makes itself admitting only its user reads back as exactly that.  The
    traced.exe pipe test relies on this reading."""
    r = wine([PIPE_SD, "--demo"], cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    user, sd = r.lines()
    assert re.fullmatch(r"user=S-1-5-[-0-9]+", user), user
    sid = user[len("user="):]
    assert sd == "sd=O:%sD:P(A;;GA;;;%s)" % (sid, sid), r.describe()


WIN_TRANSPORT = WIN_BUILD / "tests/win_transport.exe"


@needs(WIN_TRANSPORT)
def test_transport_seam_under_wine(tmp_path):
    """Both Windows sides of the transport seam (tests/native/
    win_transport.c): a child connects through the client's transport,
    checks who serves the pipe, hands a section and an output file over
    in one frame; the listener pulls both handles, refuses the section at
    a wrong size, reads the section and writes through the file handle,
    and the child reads the pipe's DACL back (its user and SYSTEM only)."""
    pipe = "\\\\.\\pipe\\traced-test-%s" % uuid.uuid4().hex[:12]
    out = tmp_path / "out.txt"
    r = wine([WIN_TRANSPORT, pipe, "out.txt"], cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert out.read_text().strip() == "traced", r.describe()
