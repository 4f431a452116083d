"""The package is typed: stubtest finds nothing between the generated stub
and the module, and mypy uses the stub for a program that imports the
package (py.typed), catching a wrong argument type."""

import os
import sys

import pytest

from conftest import BUILD
from pkg_helpers import run

try:
    import mypy  # noqa: F401
except ImportError:
    mypy = None

pytestmark = [
    pytest.mark.skipif(mypy is None, reason="mypy is not installed for this interpreter "
                       "(make deps-test installs it; .ci/run always has it)"),
    pytest.mark.no_leakcheck,
]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = BUILD
    env["MYPYPATH"] = BUILD
    return env


def test_stubtest_reports_nothing(tmp_path):
    proc = run([sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", os.devnull,
                "py_io_uring"], 300, env=_env(), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout, proc.stdout


PROGRAM = '''
import py_io_uring
from py_io_uring import IoUring

ring = IoUring(8)
sqe = ring.get_sqe()
sqe.prep_read(0, 16)
cqe = ring.wait_cqe()
n: int = ring.submit()
feats: int = ring.features()
ops = [name for name, _opcode_name, _opcode, _kernel in py_io_uring.OPERATIONS]
sqe.prep_read("zero", 16)
'''


def test_mypy_uses_the_stub(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM, encoding="utf-8")
    proc = run([sys.executable, "-m", "mypy", "--config-file", os.devnull, "--no-incremental",
                "--strict", "--python-executable", sys.executable, str(prog)],
               300, env=_env(), cwd=str(tmp_path))
    # exactly one error: the str given for the fd, on the last line
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1, out
    assert "prog.py:12:" in errors[0] and "prep_read" in errors[0] and '"str"' in errors[0], out
