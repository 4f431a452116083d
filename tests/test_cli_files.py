"""`python -m py_io_uring cp SRC DST` and `cat FILE...` (src/py_io_uring/
cli.py): data byte for byte, errors with the path and status 1, a
progress bar on stderr only when it is a terminal (plain without tqdm),
and cli.stream() leaving no descriptor open or read in flight on any
way out."""

import io
import os
import pty
import select
import subprocess
import sys

import pytest

from py_io_uring import WorkQueue, cli

from conftest import BUILD


def package_env():
    return dict(os.environ, PYTHONPATH=BUILD)


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "py_io_uring"] + [str(a) for a in args],
                          capture_output=True, timeout=120, env=package_env(), **kw)


def open_fds():
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def fds():
    before = open_fds()
    yield
    assert open_fds() == before


SIZES = [0, 1, cli.BLOCK - 1, cli.BLOCK, cli.BLOCK + 1, 3 * (1 << 20) + 17]


def test_cat_byte_for_byte(tmp_path):
    files = []
    for i, n in enumerate(SIZES):
        p = tmp_path / ("f%d" % i)
        p.write_bytes(os.urandom(n))
        files.append(p)
    proc = run("cat", *(files + ["/proc/version"]))
    assert proc.returncode == 0, proc.stderr
    with open("/proc/version", "rb") as f:
        version = f.read()
    assert proc.stdout == b"".join(p.read_bytes() for p in files) + version
    assert proc.stderr == b""           # not a terminal: no bar


def test_cat_missing_file_status_1_with_path(tmp_path):
    a = tmp_path / "a"
    a.write_bytes(b"first\n")
    missing = tmp_path / "missing"
    b = tmp_path / "b"
    b.write_bytes(b"last\n")
    # as cat: the error is reported and the next file follows; status 1
    proc = run("cat", a, missing, tmp_path, b)
    assert proc.returncode == 1
    assert proc.stdout == b"first\nlast\n"
    assert proc.stderr.decode() == (
        "cat: [Errno 2] No such file or directory: %r\n"
        "cat: [Errno 21] Is a directory: %r\n" % (str(missing), str(tmp_path)))


def test_cp_file_into_folder_and_tree(tmp_path):
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "top").write_bytes(os.urandom(300000))
    (src / "a" / "deep").write_bytes(os.urandom(10))
    os.chmod(str(src / "top"), 0o640)
    os.symlink("top", str(src / "link"))
    proc = run("cp", src / "top", tmp_path / "copy")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "copy").read_bytes() == (src / "top").read_bytes()
    assert os.stat(str(tmp_path / "copy")).st_mode & 0o777 == 0o640
    (tmp_path / "into").mkdir()
    assert run("cp", src / "top", tmp_path / "into").returncode == 0
    assert (tmp_path / "into" / "top").read_bytes() == (src / "top").read_bytes()
    proc = run("cp", src, tmp_path / "tree")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    assert (tmp_path / "tree" / "a" / "deep").read_bytes() == (src / "a" / "deep").read_bytes()
    assert os.readlink(str(tmp_path / "tree" / "link")) == "top"
    # a folder into a folder that exists, as cp -r: DST/SRC's name
    proc = run("cp", str(src) + "/", tmp_path / "tree")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "tree" / "src" / "a" / "deep").read_bytes() == (src / "a" / "deep").read_bytes()
    proc = run("cp", src, tmp_path / "tree")          # tree/src exists now
    assert proc.returncode == 1 and b"File exists" in proc.stderr


def test_cp_errors(tmp_path):
    missing = tmp_path / "missing"
    proc = run("cp", missing, tmp_path / "x")
    assert proc.returncode == 1
    assert proc.stderr.decode() == "cp: [Errno 2] No such file or directory: %r\n" % str(missing)
    assert not (tmp_path / "x").exists()
    proc = run("cp")
    assert proc.returncode == 2 and b"usage" in proc.stderr


def _on_a_terminal(args, no_tqdm):
    """Run the command with stderr on a pty; (status, what the pty got)."""
    master, slave = pty.openpty()
    code = ("import sys\n"
            + ("sys.modules['tqdm'] = None\n" if no_tqdm else "")
            + "from py_io_uring.__main__ import main\n"
            + "sys.exit(main(%r))\n" % [str(a) for a in args])
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=slave, env=package_env())
    os.close(slave)
    out = b""
    while True:
        r, _, _ = select.select([master], [], [], 60)
        if not r:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:         # EIO: the other side closed
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(60), out.decode("utf-8", "replace")


def test_plain_bar_on_a_terminal(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(os.urandom(3 << 20))
    status, text = _on_a_terminal(["cp", src, tmp_path / "dst"], no_tqdm=True)
    assert status == 0, text
    assert (tmp_path / "dst").read_bytes() == src.read_bytes()
    last = text.replace("\r\n", "\n").split("\r")[-1]
    assert last == "[%s] 100%% 3.0/3.0 MiB\n" % ("#" * 30), repr(text)
    status, text = _on_a_terminal(["cat", src], no_tqdm=True)
    assert status == 0
    assert text.replace("\r\n", "\n").split("\r")[-1] == "[%s] 100%% 3.0/3.0 MiB\n" % ("#" * 30)


def test_tree_bar_counts_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / ("f%d" % i)).write_bytes(b"x" * 1048576)
    status, text = _on_a_terminal(["cp", src, tmp_path / "dst"], no_tqdm=True)
    assert status == 0, text
    assert text.replace("\r\n", "\n").split("\r")[-1] == \
        "[%s] 100%% 5.0/5.0 MiB 5/5 files\n" % ("#" * 30)


def test_make_bar_choices():
    assert isinstance(cli.make_bar(10, io.StringIO()), cli.NoBar)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    bar = cli.make_bar(2 << 20, Tty())
    try:
        import tqdm  # noqa: F401
        assert isinstance(bar, cli.TqdmBar)
    except ImportError:
        assert isinstance(bar, cli.PlainBar)
        bar.update(1 << 20, (1, 2), final=True)
        bar.close()
        assert bar.out.getvalue() == "\r[%s%s]  50%% 1.0/2.0 MiB 1/2 files\r[%s%s]  50%% 1.0/2.0 MiB 1/2 files\n" % (
            "#" * 15, " " * 15, "#" * 15, " " * 15)


def test_stream_closed_early_and_errors_leave_nothing(tmp_path, fds):
    p = tmp_path / "big"
    data = os.urandom(5 * cli.BLOCK + 3)
    p.write_bytes(data)
    with WorkQueue(depth=8) as q:
        assert b"".join(cli.stream(q, str(p))) == data
        assert q.in_flight == 0
        g = cli.stream(q, str(p))
        assert next(g) == data[:cli.BLOCK]
        assert q.in_flight > 0
        g.close()
        assert q.in_flight == 0
        with pytest.raises(IsADirectoryError) as ei:
            list(cli.stream(q, str(tmp_path)))
        assert ei.value.filename == str(tmp_path)
        assert q.in_flight == 0
        with pytest.raises(FileNotFoundError) as ei:
            list(cli.stream(q, str(tmp_path / "nope")))
        assert ei.value.filename == str(tmp_path / "nope")
        # the queue still works
        assert b"".join(cli.stream(q, str(p), block=4096)) == data
