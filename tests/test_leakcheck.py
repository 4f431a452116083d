"""The leak checker behind `make leaks` (tests/leakcheck.py) catches what it
promises to: a reference kept, a file descriptor left open, a ring kept
alive; and stays quiet about cyclic garbage and clean tests. It runs only
where the interpreter counts references (the debug interpreter of `make
leaks`)."""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = [
    pytest.mark.no_leakcheck,
    pytest.mark.skipif(not hasattr(sys, "gettotalrefcount"),
                       reason="needs a debug interpreter (make leaks)"),
]

LEAKY = textwrap.dedent("""
    import os
    import py_io_uring

    keep = []

    class Node:
        pass

    def test_keeps_a_reference():
        keep.append(object())

    def test_leaves_an_fd_open():
        keep.append(os.open(os.devnull, os.O_RDONLY))

    def test_keeps_a_ring():
        keep.append(py_io_uring.IoUring(4))

    def test_makes_cyclic_garbage():
        node = Node()
        node.me = node

    def test_clean_ring():
        ring = py_io_uring.IoUring(4)
        ring.prep_nop(user_data=1)
        assert ring.reap(1, submit=True) == [(1, 0, 0)]
        ring.queue_exit()
""")


def test_leak_checker_flags_exactly_the_leaky_tests(tmp_path):
    (tmp_path / "test_leaky.py").write_text(LEAKY)
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [here] + [p for p in sys.path if p]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "leakcheck", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "5 passed" in out, out     # the leaks fail the session, not a test
    flagged = {line.split("::")[1].split(":")[0]
               for line in out.splitlines() if "test_leaky.py::" in line}
    assert flagged == {"test_keeps_a_reference", "test_leaves_an_fd_open",
                       "test_keeps_a_ring"}, out
