"""python -m py_io_uring: the report names the version, liburing, the
kernel, the ring's features and every operation with the kernel's support,
and --json says the same as data."""

import json
import os
import sys

import pytest

import py_io_uring
from conftest import BUILD
from uring_helpers import parse_ops


def _run(run_py, *args):
    proc = run_py("import runpy, sys; sys.argv = ['py_io_uring'] + %r; "
                  "runpy.run_module('py_io_uring', run_name='__main__')" % (list(args),))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def report():
    import subprocess

    env = dict(os.environ, PYTHONPATH=BUILD)
    proc = subprocess.run([sys.executable, "-m", "py_io_uring", "--json"], capture_output=True,
                          text=True, timeout=60, env=env, cwd="/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def test_json_versions(report):
    assert report["version"] == py_io_uring.__version__
    assert report["kernel"]["release"] == os.uname().release
    assert report["python"] == "%d.%d.%d" % sys.version_info[:3]
    lib = report["liburing"]
    assert lib["library"] and "liburing.so" in lib["library"]
    expected = py_io_uring.LIBURING_VERSION
    assert lib["headers"] == (None if expected is None else "%d.%d" % expected)


def test_json_features_are_the_rings(report, ring):
    assert report["ring_error"] is None
    bits = ring.features()
    assert report["features"] == bits
    names = report["feature_names"]
    assert len(names) == bin(bits).count("1")
    for name in names:
        if not name.startswith("bit "):
            assert getattr(py_io_uring, name) & bits, name
    # every kernel since 5.4 sets these two
    assert "IORING_FEAT_SINGLE_MMAP" in names and "IORING_FEAT_NODROP" in names


def test_json_operations_are_ops_def_with_the_probe(report, ring):
    ops, _ = parse_ops()
    got = report["operations"]
    assert [o["name"] for o in got] == [op.name for op in ops]
    supported = ring.probe()
    codes = {name: code for name, _, code, _ in py_io_uring.OPERATIONS}
    for o in got:
        assert o["supported"] is (o["name"] in supported), o
        assert o["opcode"] == codes[o["name"]], o
    nop = got[0]
    assert (nop["name"], nop["opcode_name"], nop["opcode"], nop["kernel"]) == ("nop", "IORING_OP_NOP", 0, "5.1")


def test_operations_attribute_matches_ops_def():
    ops, _ = parse_ops()
    # ops.def writes "IORING_OP_X = N" where liburing 2.3's headers lack the name
    expected = [(op.name, op.opcode.split("=")[0].strip()) for op in ops]
    assert [(name, opname) for name, opname, _, _ in py_io_uring.OPERATIONS] == expected
    for (_, _, code, _), op in zip(py_io_uring.OPERATIONS, ops):
        if "=" in op.opcode:
            assert code == int(op.opcode.split("=")[1]), op
    assert all(isinstance(code, int) and 0 <= code < 256 for _, _, code, _ in py_io_uring.OPERATIONS)


def test_text_report(run_py, ring):
    out = _run(run_py)
    lines = out.splitlines()
    assert lines[0] == "py_io_uring %s on Python %d.%d.%d" % ((py_io_uring.__version__,) + sys.version_info[:3])
    assert os.uname().release in out
    assert "features:   0x%x" % ring.features() in out
    supported = ring.probe()
    rows = {line.split()[0]: line.split() for line in lines if line.startswith("  ") and len(line.split()) == 5}
    for name, opname, code, kernel in py_io_uring.OPERATIONS:
        assert rows[name] == [name, opname, str(code), kernel, "yes" if name in supported else "no"]
    assert "%d of %d supported" % (len(supported), len(py_io_uring.OPERATIONS)) in out


def test_ring_unavailable_is_reported_not_raised(run_py):
    # io_uring refused (as a seccomp profile or the sysctl would): the report
    # still lists the operations, with support unknown
    code = (
        "import errno, json, sys, py_io_uring, py_io_uring.__main__ as m\n"
        "def refuse(*a, **k):\n"
        "    raise PermissionError(errno.EPERM, 'io_uring is disabled')\n"
        "m.py_io_uring = type(sys)('fake')\n"
        "m.py_io_uring.__dict__.update(vars(py_io_uring))\n"
        "m.py_io_uring.IoUring = refuse\n"
        "info = m.collect()\n"
        "print(json.dumps(info))\n"
        "print(m.render(info))\n")
    proc = run_py(code)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, text = proc.stdout.split("\n", 1)
    info = json.loads(first)
    assert info["ring_error"].startswith("PermissionError")
    assert info["features"] is None
    assert all(o["supported"] is None for o in info["operations"])
    assert "features:   unknown" in text and "support unknown" in text


@pytest.mark.parametrize("args", [["--json"], []])
def test_reader_gone_ends_quietly(args):
    # `python -m py_io_uring --json | head -1`: the reader goes before the
    # report is written; the report ends with SIGPIPE's status and no
    # BrokenPipeError traceback, as a Unix tool does
    import subprocess

    env = dict(os.environ, PYTHONPATH=BUILD)
    r, w = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "py_io_uring"] + args, stdout=w,
                                stderr=subprocess.PIPE, env=env, cwd="/")
    finally:
        os.close(w)
        os.close(r)   # no reader left: every write the child makes fails with EPIPE
    _, err = proc.communicate(timeout=60)
    assert err.decode() == ""
    assert proc.returncode == 141
