"""The generator (gen/generate.py): docs/api.md is what it produces from the
spec files, its output is deterministic, a malformed ops.def is reported at
the offending line, and a new operation needs nothing but an ops.def entry.

These tests do not import py_io_uring in this process."""

import filecmp
import os
import re
import shutil
import subprocess
import sys

import pytest

from uring_helpers import METHODS_DEF, OPS_DEF, REPO, parse_methods, parse_ops

GENERATE = os.path.join(REPO, "gen", "generate.py")
API_MD = os.path.join(REPO, "docs", "api.md")


def generate(ops, out, api=None, env_extra=None):
    """Run the generator on `ops` into the folder `out`; CompletedProcess."""
    env = dict(os.environ)
    if env_extra:
        env.update(env_extra)
    cmd = [sys.executable, GENERATE, "--ops", str(ops), "--methods", METHODS_DEF, "--out", str(out)]
    cmd += ["--api", str(api if api is not None else os.path.join(str(out), "api.md"))]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO, env=env)


def _has_signature(text, name, params):
    """Whether `text` shows name(...) with these parameters in this order,
    whatever the annotations and defaults look like."""
    for m in re.finditer(r"\b%s\(([^()]*)\)" % re.escape(name), text):
        inner = m.group(1)
        while re.search(r"\[[^\[\]]*\]", inner):  # drop Union[...] and the like
            inner = re.sub(r"\[[^\[\]]*\]", "", inner)
        names = []
        for piece in inner.split(","):
            ident = re.match(r"\s*\**(\w+)", piece)
            if ident and ident.group(1) != "self":
                names.append(ident.group(1))
        if names == params:
            return True
    return False


def test_help():
    proc = subprocess.run([sys.executable, GENERATE, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for option in ("--ops", "--methods", "--out", "--api"):
        assert option in proc.stdout


def test_api_md_is_up_to_date(tmp_path):
    out = tmp_path / "out"
    proc = generate(OPS_DEF, out, tmp_path / "api.md")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(API_MD, "rb") as f:
        committed = f.read()
    assert (tmp_path / "api.md").read_bytes() == committed, (
        "docs/api.md is stale: regenerate it with gen/generate.py"
    )


def test_api_md_documents_every_operation_and_method():
    with open(API_MD, encoding="utf-8") as f:
        text = f.read()
    ops, _ = parse_ops()
    for op in ops:
        assert "prep_" + op.name in text, op.name
        assert re.search(r"prep_%s\(" % op.name, text), op.name
    for m in parse_methods():
        assert (m.name or m.cls) in text, m
    assert _has_signature(text, "prep_read", ["fd", "buf", "offset"])


def test_output_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    pa = generate(OPS_DEF, a, env_extra={"PYTHONHASHSEED": "1"})
    pb = generate(OPS_DEF, b, env_extra={"PYTHONHASHSEED": "2"})
    assert pa.returncode == 0 and pb.returncode == 0, pa.stderr + pb.stderr
    names = sorted(os.listdir(a))
    assert names == sorted(os.listdir(b))
    assert len(names) >= 2  # at least the C glue and api.md
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    filecmp.clear_cache()   # its cache would hold these paths forever
    assert not mismatch and not errors, mismatch + errors


def test_generator_writes_nothing_outside_out(tmp_path):
    before = {p: os.stat(p).st_mtime_ns for p in (OPS_DEF, METHODS_DEF, API_MD)}
    proc = generate(OPS_DEF, tmp_path / "out", tmp_path / "api.md")
    assert proc.returncode == 0, proc.stderr
    assert {p: os.stat(p).st_mtime_ns for p in before} == before


# --------------------------------------------------------------------------
# Malformed ops.def


ENTRY = """
op bogus
    opcode  IORING_OP_NOP
    kernel  5.1
{args}
    call    io_uring_prep_nop(sqe);
    returns 0
    man     io_uring_prep_nop
    doc     A test entry.
"""

# name -> (text appended to the real ops.def, the offending line's text)
MALFORMED = {
    "unknown argument kind": (ENTRY.format(args="    arg     fd      nosuchkind"), "nosuchkind"),
    "argument without kind": (ENTRY.format(args="    arg     fd"), "arg     fd"),
    "default not a literal (name)": (ENTRY.format(args="    arg     flags   u32 = not_a_literal"), "not_a_literal"),
    "default not a literal (syntax)": (ENTRY.format(args="    arg     flags   u32 = 1 +"), "= 1 +"),
    "default not a literal (call)": (ENTRY.format(args="    arg     flags   u32 = int('3')"), "int('3')"),
    "missing name": (ENTRY.replace("op bogus", "op").format(args=""), "op"),
    "duplicate op": (ENTRY.replace("op bogus", "op nop").format(args=""), "op nop"),
    "op name taken by IoUring.prep_many": (ENTRY.replace("op bogus", "op many").format(args=""), "op many"),
    "kernel not a version": (ENTRY.replace("kernel  5.1", "kernel  soon").format(args=""), "kernel  soon"),
    "opcode number out of range": (ENTRY.replace("IORING_OP_NOP", "IORING_OP_NEW = 300").format(args=""), "IORING_OP_NEW = 300"),
    "bits without constants": (ENTRY.format(args="    arg     flags   bits = 0"), "bits = 0"),
    "bits with a non-constant": (ENTRY.format(args="    arg     flags   bits(A|1x) = 0"), "bits(A|1x)"),
    "bits default not 0": (ENTRY.format(args="    arg     flags   bits(A) = 4"), "bits(A) = 4"),
    "object default not None": (ENTRY.format(args="    arg     data    object = 1"), "object = 1"),
    "complete not a C name": (ENTRY.replace("    returns 0", "    complete not-a-name\n    returns 0").format(args=""), "complete not-a-name"),
    # the result's type (the stub's): a type expression over the names the
    # stub defines; none for a buffer_out op; given for a result maker; int or
    # bytes without one
    "type not an expression": (ENTRY.replace("    returns 0", "    returns 0\n    type    Tuple[int,").format(args=""), "Tuple[int,"),
    "type with an unknown name": (ENTRY.replace("    returns 0", "    returns 0\n    type    Tuple[int, Any]").format(args=""), "Tuple[int, Any]"),
    "type with a call": (ENTRY.replace("    returns 0", "    returns 0\n    type    int()").format(args=""), "int()"),
    "type of a buffer_out op": (ENTRY.replace("    returns 0", "    returns 0\n    type    bytes").format(args="    arg     buf     buffer_out"), "type    bytes"),
    "type not int or bytes without a result maker": (ENTRY.replace("    returns 0", "    returns 0\n    type    os.stat_result").format(args=""), "os.stat_result"),
    "result maker without a type": (ENTRY.replace("    returns 0", "    returns 0\n    result  pu_result_statx").format(args=""), "op bogus"),
}


def _offending_line(text, marker):
    """1-based number of the last line of `text` whose stripped form starts
    with or contains `marker` (the appended entry comes last)."""
    found = None
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s == marker or (marker != "op" and marker in s):
            found = n
    assert found is not None
    return found


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_ops_def_is_reported_at_its_line(tmp_path, case):
    appended, marker = MALFORMED[case]
    with open(OPS_DEF, encoding="utf-8") as f:
        text = f.read()
    if not text.endswith("\n"):
        text += "\n"
    text += appended
    ops = tmp_path / "ops.def"
    ops.write_text(text, encoding="utf-8")
    lineno = _offending_line(text, marker)

    proc = generate(ops, tmp_path / "out")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, "the generator accepted a malformed ops.def (%s)" % case
    assert "ops.def:%d:" % lineno in output, output
    assert "Traceback" not in output, "the generator crashed instead of reporting:\n" + output


def test_valid_extra_entry_is_accepted(tmp_path):
    # Control for the cases above: the same entry, well-formed, is fine.
    with open(OPS_DEF, encoding="utf-8") as f:
        text = f.read().rstrip("\n") + "\n"
    text += ENTRY.format(args="    arg     fd      fd\n    arg     flags   u32 = 0")
    ops = tmp_path / "ops.def"
    ops.write_text(text, encoding="utf-8")
    proc = generate(ops, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    api = (tmp_path / "out" / "api.md").read_text(encoding="utf-8")
    assert _has_signature(api, "prep_bogus", ["fd", "flags"])


# --------------------------------------------------------------------------
# Adding an operation by editing ops.def alone


# an op that ops.def itself does not have (fsync with IORING_FSYNC_DATASYNC)
FSYNC = """
op fdatasync
    opcode  IORING_OP_FSYNC
    kernel  5.1
    arg     fd      fd          -- file descriptor, or an object with fileno()
    arg     flags   u32 = 0     -- more IORING_FSYNC_* flags
    call    io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC | flags);
    returns 0
    man     io_uring_prep_fsync
    doc     Issue the equivalent of an fdatasync(2) system call.
"""

FSYNC_CHECK = r"""
import errno, fcntl, inspect, os, sys
build, path = sys.argv[1], sys.argv[2]
sys.path.insert(0, build)
import py_io_uring
assert os.path.dirname(os.path.abspath(py_io_uring.__file__)) == os.path.join(os.path.abspath(build), "py_io_uring"), py_io_uring.__file__

sig = inspect.signature(py_io_uring.Sqe.prep_fdatasync)
assert list(sig.parameters) == ["self", "fd", "flags"], sig
assert sig.parameters["flags"].default == 0, sig
assert "fdatasync(2)" in py_io_uring.Sqe.prep_fdatasync.__doc__

def closed_fd():
    fd = 1000
    while True:
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
        except OSError:
            return fd
        fd += 1

ring = py_io_uring.IoUring(8)
assert "fdatasync" in ring.probe()
fd = os.open(path, os.O_WRONLY)
os.write(fd, b"data")
f = open(path, "rb")
cases = [((fd,), {}, 0), ((fd,), {"flags": 1}, 0), ((), {"fd": f, "flags": 0}, 0),
         ((closed_fd(),), {}, -errno.EBADF)]
for args, kwargs, expected in cases:
    s = ring.get_sqe()
    s.prep_fdatasync(*args, **kwargs)
    assert ring.submit() == 1
    c = ring.wait_cqe(timeout=5)
    assert c is not None
    ring.cqe_seen(c)
    assert c.res() == expected, (args, kwargs, c.res())
try:
    ring.get_sqe().prep_fdatasync(-1)
except ValueError:
    pass
else:
    raise AssertionError("negative fd accepted")
ring.queue_exit()
os.close(fd)
f.close()
print("OK")
"""


def test_new_op_from_ops_def_alone_generates_docs(tmp_path):
    with open(OPS_DEF, encoding="utf-8") as f:
        text = f.read().rstrip("\n") + "\n" + FSYNC
    ops = tmp_path / "ops.def"
    ops.write_text(text, encoding="utf-8")
    proc = generate(ops, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    api = (tmp_path / "out" / "api.md").read_text(encoding="utf-8")
    assert _has_signature(api, "prep_fdatasync", ["fd", "flags"])
    assert "io_uring_prep_fsync" in api


@pytest.mark.skipif(not (shutil.which("make") and shutil.which("gcc")), reason="make and gcc are needed")
def test_new_op_from_ops_def_alone_builds_and_runs(tmp_path):
    with open(OPS_DEF, encoding="utf-8") as f:
        text = f.read().rstrip("\n") + "\n" + FSYNC
    ops = tmp_path / "ops.def"
    ops.write_text(text, encoding="utf-8")
    build = tmp_path / "build"
    with open(API_MD, "rb") as f:
        api_before = f.read()

    # make and gcc need no sanitizer runtime preloaded, and this build must
    # not pick up the settings of a make that may be running this suite.
    drop = {"LD_PRELOAD", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    proc = subprocess.run(
        # PYTHON: build for the interpreter running the tests.
        ["make", "-C", REPO, "BUILD=%s" % build, "OPS=%s" % ops, "PYTHON=%s" % sys.executable],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(API_MD, "rb") as f:
        assert f.read() == api_before, "building with another OPS rewrote the repository's docs/api.md"

    target = tmp_path / "fsync-me"
    target.write_bytes(b"")
    env = dict(os.environ)
    env["PY_IO_URING_BUILD"] = str(build)
    proc = subprocess.run(
        [sys.executable, "-c", FSYNC_CHECK, str(build), str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "OK"
