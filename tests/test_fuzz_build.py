"""The raw-SQE entry point exists in the fuzz build only, and confines.

Sqe._fuzz_prep_raw (src/fuzz/fuzz_raw.c) writes any field values into an SQE;
only -DPU_FUZZ_RAW compiles it in.  The build under test must not have it,
and a build with the flag must have it, keep every pointer inside the
record's scratch block and refuse the excluded opcodes.
"""

import os
import shutil
import subprocess
import sys

import pytest

import py_io_uring

pytestmark = pytest.mark.no_leakcheck   # one build: minutes if repeated

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHECK = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
import py_io_uring as P
ring = P.IoUring(8)
r, w = os.pipe()
os.write(w, b"hello")
s = ring.get_sqe()
# IORING_OP_READ with addr 2**64-1 and len 2**32-1: given as is, -EFAULT;
# confined to the scratch, the five bytes are read
s._fuzz_prep_raw(22, 0, 0, r, 0, 2**64 - 1, 2**32 - 1, 0, 0, 0, 0, 2**64 - 1, 1)
ring.submit()
c = ring.wait_cqe(timeout=5)
print(c.res())
ring.cqe_seen(c)
for opcode in (19, 25, 31, 46):   # close, madvise, provide_buffers, uring_cmd
    try:
        ring.get_sqe()._fuzz_prep_raw(opcode, 0, 0, r, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    except ValueError:
        print("refused", opcode)
ring.submit()
ring.queue_exit()
"""


def test_normal_build_has_no_raw_entry_point():
    assert not hasattr(py_io_uring.Sqe, "_fuzz_prep_raw")
    with py_io_uring.IoUring(2) as ring:
        assert "_fuzz_prep_raw" not in dir(ring.get_sqe())


@pytest.mark.skipif(not (shutil.which("make") and shutil.which("gcc")), reason="make and gcc are needed")
def test_fuzz_flag_adds_a_confining_raw_entry_point(tmp_path):
    build = tmp_path / "build"
    # no sanitizer runtime for make and the plain build, and none of the
    # settings of a make that may be running this suite
    drop = {"LD_PRELOAD", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    proc = subprocess.run(
        ["make", "-C", REPO, "BUILD=%s" % build, "PYTHON=%s" % sys.executable,
         "CC=gcc", "CFLAGS=-O0 -DPU_FUZZ_RAW"],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = subprocess.run([sys.executable, "-c", CHECK, str(build)],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split("\n")[:5] == ["5", "refused 19", "refused 25", "refused 31", "refused 46"]
