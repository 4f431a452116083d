"""The binary wheel as users get it (.ci/wheel, `make wheel`): built from a
copy of the sources with liburing linked in, repaired and tagged manylinux
by auditwheel, its extension needing no liburing.so, and installed into a
fresh venv of this interpreter where, with every liburing shared library of
the machine hidden, it reads a file, does a socket round trip and `python -m
py_io_uring` names the liburing inside it (.ci/wheel_check.py).  The sdist's
one-line error where liburing's headers are missing is checked here too."""

import os
import shutil
import subprocess
import sys

import pytest

from pkg_helpers import clean_env, copy_sources, run

pytestmark = pytest.mark.no_leakcheck


def _skip_unless_plain_build():
    # the variant builds (sanitizers, another liburing, the debug
    # interpreter) test the module; the wheel is built from the sources
    for var in ("PY_IO_URING_ASAN", "PY_IO_URING_LEAKS", "LIBURING"):
        if os.environ.get(var):
            pytest.skip("%s is set: the wheel is checked by the plain runs" % var)
    try:
        import auditwheel  # noqa: F401
    except ImportError:
        pytest.skip("auditwheel is not installed for %s (make deps-test)" % sys.executable)
    if shutil.which("readelf") is None:
        pytest.skip("readelf (binutils) is not installed")
    if not any(os.path.exists(p) for p in (
            "/usr/lib/x86_64-linux-gnu/liburing.a", "/usr/lib/aarch64-linux-gnu/liburing.a")):
        pytest.skip("no static liburing (liburing-dev) to link")


def test_wheel_links_liburing_in_and_runs_without_it(tmp_path):
    _skip_unless_plain_build()
    src = copy_sources(str(tmp_path / "src"))
    proc = run(["bash", os.path.join(src, ".ci", "wheel"), sys.executable], 900,
               env=clean_env(), cwd=src)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert 'consistent with the following platform tag: "manylinux' in " ".join(out.split()), \
        out[-4000:]
    # .ci/wheel_check.py holds the extension's DT_NEEDED to the manylinux
    # policy's libraries (libc, the dynamic loader for thread-locals, ...)
    (needs,) = [line for line in out.splitlines() if " needs only " in line]
    assert "libc.so.6" in needs and "liburing" not in needs, needs
    assert "smoke ok" in out and "linked into the extension" in out, out[-4000:]
    (wheel,) = os.listdir(os.path.join(src, "dist"))
    assert "manylinux" in wheel and "cp%d%d" % sys.version_info[:2] in wheel


def test_source_build_without_liburing_headers_says_what_to_install(tmp_path):
    _skip_unless_plain_build()
    src = copy_sources(str(tmp_path / "src"))
    # an include folder whose liburing.h fails: as if the header were absent
    fake = tmp_path / "inc"
    fake.mkdir()
    (fake / "liburing.h").write_text("#error liburing.h is not installed\n")
    env = clean_env(CFLAGS="-I%s" % fake)
    proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-temp",
                           str(tmp_path / "tmp"), "--build-lib", str(tmp_path / "lib")],
                          capture_output=True, text=True, env=env, cwd=src, timeout=300)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("py_io_uring needs liburing's headers to build from source: "
                           "install liburing-dev"), proc.stderr[-2000:]
