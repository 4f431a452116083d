"""pip builds the same package as make: the sdist carries the definitions,
the generator and the sources but no generated C; installed into a fresh
venv it imports and runs a NOP; its test extra is what `make deps-test`
installs."""

import os
import re
import sys
import tarfile

import pytest

from pkg_helpers import clean_env, copy_sources, run
from uring_helpers import REPO


def _extra_test_deps():
    with open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8") as f:
        m = re.search(r"^test = \[(.*)\]$", f.read(), re.M)
    return sorted(d.strip().strip('"') for d in m.group(1).split(","))


def test_test_extra_matches_makefile():
    with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
        m = re.search(r"^TEST_DEPS = (.*)$", f.read(), re.M)
    assert m, "the Makefile has no TEST_DEPS line"
    assert sorted(m.group(1).replace("'", "").split()) == _extra_test_deps()


def test_setup_py_compiles_with_the_makefiles_warnings():
    # both paths must reject the same code: the Makefile's WARN is setup.py's
    with open(os.path.join(REPO, "Makefile"), encoding="utf-8") as f:
        make_warn = re.search(r"^WARN = (.*)$", f.read(), re.M).group(1).split()
    with open(os.path.join(REPO, "setup.py"), encoding="utf-8") as f:
        setup_warn = re.findall(r'"([^"]+)"', re.search(r"^WARN = \[(.*)\]$", f.read(), re.M).group(1))
    assert setup_warn == make_warn
    assert "-Werror" in make_warn


def _need_build_tools():
    for mod in ("build", "setuptools"):
        try:
            __import__(mod)
        except ImportError:
            pytest.skip("%s is not installed for %s (make deps-test installs it)" % (mod, sys.executable))


INSTALLED_CHECK = r"""
import os, sys
import py_io_uring
from py_io_uring import IoUring
pkg = os.path.dirname(os.path.abspath(py_io_uring.__file__))
assert pkg.startswith(os.path.abspath(sys.prefix)), (pkg, sys.prefix)
assert os.path.exists(os.path.join(pkg, "py.typed")), os.listdir(pkg)
assert os.path.exists(os.path.join(pkg, "__init__.pyi")), os.listdir(pkg)
with IoUring(4) as ring:
    sqe = ring.get_sqe()
    sqe.prep_nop()
    sqe.set_data("nop")
    assert ring.submit() == 1
    cqe = ring.wait_cqe(timeout=5)
    ring.cqe_seen(cqe)
    print(cqe.get_data(), cqe.res(), py_io_uring.__version__)
"""


@pytest.mark.no_leakcheck
def test_sdist_installs_into_a_fresh_venv_and_runs_a_nop(tmp_path):
    _need_build_tools()
    src = copy_sources(str(tmp_path / "src"))
    env = clean_env()
    # no isolation: the build uses this interpreter's setuptools, offline
    proc = run([sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir",
                str(tmp_path / "dist"), src], 300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (sdist,) = os.listdir(str(tmp_path / "dist"))
    with tarfile.open(str(tmp_path / "dist" / sdist)) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for needed in ("ops.def", "gen/generate.py", "src/module.c", "src/methods.def",
                   "src/py_io_uring/__init__.py", "src/py_io_uring/py.typed", "setup.py",
                   "pyproject.toml", "tests/conftest.py"):
        assert needed in names, needed
    generated = [n for n in names if n.endswith((".so", ".o", ".pyi")) or "ops_gen" in n]
    assert generated == [], "the sdist carries generated files: %s" % generated

    venv = tmp_path / "venv"
    proc = run([sys.executable, "-m", "venv", "--without-pip", str(venv)], 120)
    assert proc.returncode == 0, proc.stderr
    py = str(venv / "bin" / "python")
    # The venv borrows this interpreter's pip and setuptools through a .pth
    # file, after its own site-packages, so it builds offline and imports
    # what it installed.  (--system-site-packages would give the base
    # interpreter's, when this one is itself a venv.)
    proc = run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], 60)
    outer = [p for p in sys.path if p.endswith("-packages") and os.path.isdir(p)]
    with open(os.path.join(proc.stdout.strip(), "outer.pth"), "w") as f:
        f.write("\n".join(outer) + "\n")
    proc = run([py, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", "--no-index",
                str(tmp_path / "dist" / sdist)], 600, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = run([py, "-c", INSTALLED_CHECK], 60, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.split()[:2] == ["nop", "0"]
    proc = run([py, "-m", "py_io_uring"], 60, env=env, cwd=str(tmp_path))
    assert proc.returncode == 0 and "IORING_OP_NOP" in proc.stdout, proc.stdout + proc.stderr
