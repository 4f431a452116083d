"""The same behaviour on whichever liburing the module is built against.

- The module owns each SQE's contents: a build with ``-DPU_POISON_SQE``
  fills every entry it takes with 0xff bytes before its reset
  (``pu_get_sqe()``/``pu_sqe_reset()`` in src/core/ring.h), and the op tests
  (every op family) still pass against it; a build that also skips the reset
  (``-DPU_POISON_SKIP_RESET``) fails them, where liburing's
  ``io_uring_prep_rw()`` leaves fields alone (2.4 and later; 2.3's writes
  every field, so there the poison has nothing to show).
- ``ops.def``'s call lines are C against upstream liburing
  (src/ops/liburing_compat.h gives older headers upstream's helpers), and a
  compile error in one is reported at ``ops.def:LINE``.
- ``LIBURING_VERSION`` and ``python -m py_io_uring`` name the liburing the
  module was built with.

The variant builds use the liburing of the suite's own build: ``make
test-liburing LIBURING=DIR`` passes ``LIBURING`` down through the
environment.
"""

import glob
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

import py_io_uring

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
OPS_DEF = os.path.join(REPO, "ops.def")

needs_make = pytest.mark.skipif(not (shutil.which("make") and shutil.which("gcc")),
                                reason="make and gcc are needed")

# The op tests: every op of ops.def, by family.  (When they move into
# per-family files, this glob follows them as long as the names keep the
# test_ops prefix; test_subset_covers_every_op checks it still does.)
OP_TEST_FILES = sorted(glob.glob(os.path.join(TESTS, "test_ops*.py")))


def _make_variant(build, cflags):
    """Build the package into BUILD with CFLAGS (-O0: the quickest build)."""
    cmd = ["make", "-s", "-C", REPO, "all", "BUILD=%s" % build,
           "PYTHON=%s" % sys.executable, "CFLAGS=-O0 -g %s" % cflags]
    if os.environ.get("LIBURING"):
        cmd.append("LIBURING=%s" % os.environ["LIBURING"])
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:]


def _run_op_tests(build, *extra, timeout=300):
    env = dict(os.environ, PY_IO_URING_BUILD=str(build))
    env.pop("PY_IO_URING_LEAKS", None)   # the variant runs once, plainly
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         *extra, *OP_TEST_FILES],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        universal_newlines=True, timeout=timeout)


def test_subset_covers_every_op():
    """Each op of ops.def is exercised by name in the op test files."""
    assert OP_TEST_FILES, "no tests/test_ops*.py: update OP_TEST_FILES"
    text = "".join(pathlib.Path(p).read_text(encoding="utf-8") for p in OP_TEST_FILES)
    missing = [name for name, *_ in py_io_uring.OPERATIONS
               if not re.search(r"\b(prep_)?%s\b" % re.escape(name), text)]
    assert not missing, "ops no op test names: %s" % missing


@needs_make
@pytest.mark.no_leakcheck
def test_every_op_completes_from_a_poisoned_sqe(tmp_path):
    build = tmp_path / "poison"
    _make_variant(build, "-DPU_POISON_SQE")
    proc = _run_op_tests(build)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert re.search(r"\d+ passed", proc.stdout), proc.stdout[-2000:]


@needs_make
@pytest.mark.no_leakcheck
@pytest.mark.skipif(py_io_uring.LIBURING_VERSION is None,
                    reason="liburing 2.3's io_uring_prep_rw() writes every field of "
                           "the entry, so the poison cannot show there")
def test_the_poison_breaks_ops_without_the_reset(tmp_path):
    """The check above can fail: without the reset, ops fail from the poison."""
    build = tmp_path / "poison-no-reset"
    _make_variant(build, "-DPU_POISON_SQE -DPU_POISON_SKIP_RESET")
    proc = _run_op_tests(build, "-x")
    assert proc.returncode == 1, proc.stdout[-4000:]
    assert re.search(r"\b1 failed\b", proc.stdout), proc.stdout[-4000:]


def test_call_lines_use_upstream_helpers():
    """No call line sets an opcode by number through io_uring_prep_rw()."""
    with open(OPS_DEF, encoding="utf-8") as f:
        calls = [(n, line) for n, line in enumerate(f, 1)
                 if line.lstrip().startswith("call ")]
    bad = [(n, line.strip()) for n, line in calls
           if "io_uring_prep_rw(" in line or "PU_OPCODE_" in line]
    assert not bad, bad


@needs_make
def test_a_call_line_error_points_at_ops_def(tmp_path):
    with open(OPS_DEF, encoding="utf-8") as f:
        lines = f.read().split("\n")
    n = next(i for i, line in enumerate(lines)
             if "io_uring_prep_listen(sqe" in line)
    lines[n] = lines[n].replace("io_uring_prep_listen(", "io_uring_prep_lisen(")
    ops = tmp_path / "ops.def"
    ops.write_text("\n".join(lines), encoding="utf-8")
    out = tmp_path / "gen"
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "gen", "generate.py"), "--ops", str(ops),
         "--methods", os.path.join(REPO, "src", "methods.def"), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode == 0, proc.stdout
    cflags = ["-I", os.path.join(REPO, "src"), "-I", str(out),
              "-I", sysconfig.get_paths()["include"]]
    if os.environ.get("LIBURING"):
        cflags += ["-I", os.path.join(os.environ["LIBURING"], "include")]
    proc = subprocess.run(
        ["gcc", "-std=gnu11", "-Wall", "-Werror", "-fsyntax-only", *cflags,
         str(out / "ops_gen.c")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    assert proc.returncode != 0
    assert "%s:%d:" % (ops, n + 1) in proc.stdout, proc.stdout[-3000:]
    assert "io_uring_prep_lisen" in proc.stdout


def _headers_version():
    """(major, minor) of the liburing headers this build used, or None."""
    include = os.path.join(os.environ["LIBURING"], "include") \
        if os.environ.get("LIBURING") else "/usr/include"
    try:
        with open(os.path.join(include, "liburing", "io_uring_version.h")) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    major = re.search(r"IO_URING_VERSION_MAJOR\s+(\d+)", text)
    minor = re.search(r"IO_URING_VERSION_MINOR\s+(\d+)", text)
    return (int(major.group(1)), int(minor.group(1)))


def test_liburing_version_is_the_headers():
    assert py_io_uring.LIBURING_VERSION == _headers_version()


def test_main_names_the_liburing_it_uses():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(py_io_uring.__file__))
    proc = subprocess.run([sys.executable, "-m", "py_io_uring", "--json"], env=env,
                          stdout=subprocess.PIPE, universal_newlines=True, timeout=60)
    info = json.loads(proc.stdout)
    version = py_io_uring.LIBURING_VERSION
    assert info["liburing"]["headers"] == ("%d.%d" % version if version else None)
    library = info["liburing"]["library"]
    if os.environ.get("LIBURING"):
        assert library.startswith(os.path.realpath(os.environ["LIBURING"])), library
    if version is not None and library:
        assert library.endswith(".so.%d.%d" % version), library
