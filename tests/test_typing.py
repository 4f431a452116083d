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



def _knows_deprecated():
    """Does this mypy's typeshed have typing_extensions.deprecated (PEP 702),
    which the stub marks deprecated methods with?  Debian's mypy 1.0.1 (the
    debug interpreter's, `make leaks`) predates it; pip's mypy (every other
    run of the suite) has it."""
    if mypy is None:
        return False
    stub = os.path.join(os.path.dirname(mypy.__file__), "typeshed", "stdlib",
                        "typing_extensions.pyi")
    try:
        with open(stub, encoding="utf-8") as f:
            return "deprecated" in f.read()
    except OSError:
        return False


pytestmark = [
    pytest.mark.skipif(mypy is None, reason="mypy is not installed for this interpreter "
                       "(make deps-test installs it; .ci/run always has it)"),
    pytest.mark.skipif(mypy is not None and not _knows_deprecated(),
                       reason="this mypy predates typing_extensions.deprecated (PEP 702), "
                       "which the stub uses; pip's mypy checks the stub in the other runs"),
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
from typing import Any, List, Tuple
import py_io_uring
from py_io_uring import IoUring

ring = IoUring(8)
sqe = ring.get_sqe()
sqe.prep_read(0, 16)
cqe = ring.wait_cqe()
n: int = ring.submit()
feats: int = ring.features()
ops = [name for name, _opcode_name, _opcode, _kernel in py_io_uring.OPERATIONS]
# reap()'s overloads: a list of tuples, or three lists with columns=True
items: List[Tuple[Any, Any, int]] = ring.reap(4)
uds, results, flags = ring.reap(4, columns=True)
total: int = sum(flags)
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
    line = PROGRAM.splitlines().index('sqe.prep_read("zero", 16)') + 1
    assert "prog.py:%d:" % line in errors[0] and "prep_read" in errors[0] and '"str"' in errors[0], out
