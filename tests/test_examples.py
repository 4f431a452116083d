"""The examples run: each is started as the README says, as a subprocess
with bounded time, against files in tmp_path or servers on 127.0.0.1, and
its output is checked byte for byte."""

import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading

import pytest

from conftest import BUILD, REPO

EXAMPLES = os.path.join(REPO, "examples")
# subprocesses only: nothing here can leak in this process
pytestmark = pytest.mark.no_leakcheck


def _env():
    return dict(os.environ, PY_IO_URING_BUILD=BUILD)


def _example(name, *args, timeout=60):
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, name)] + [str(a) for a in args],
                          capture_output=True, timeout=timeout, env=_env())


def _payload(n, seed):
    return random.Random(seed).getrandbits(8 * n).to_bytes(n, "little") if n else b""


# ---------------------------------------------------------------- files

def test_cat_concatenates_files(tmp_path):
    files = []
    for i, size in enumerate([3 * 1024 * 1024 + 17, 0, 5, 64 * 1024]):
        p = tmp_path / ("f%d" % i)
        p.write_bytes(_payload(size, i))
        files.append(p)
    proc = _example("cat.py", *files)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"".join(p.read_bytes() for p in files)


def test_cat_missing_file_fails(tmp_path):
    proc = _example("cat.py", tmp_path / "missing")
    assert proc.returncode != 0
    assert b"FileNotFoundError" in proc.stderr


@pytest.mark.parametrize("size", [0, 1, 128 * 1024, 5 * 1024 * 1024 + 3])
def test_cp_copies_byte_for_byte(tmp_path, size):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(_payload(size, size))
    os.chmod(str(src), 0o640)
    proc = _example("cp.py", src, dst)
    assert proc.returncode == 0, proc.stderr
    assert dst.read_bytes() == src.read_bytes()
    assert os.stat(str(dst)).st_mode & 0o777 == 0o640
    assert proc.stderr == b""          # no progress bar for a small file


def test_cptree_copies_a_tree(tmp_path):
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "top").write_bytes(_payload(3 << 20, 1))
    (src / "a" / "b" / "deep").write_bytes(_payload(1000, 2))
    os.chmod(str(src / "a" / "b" / "deep"), 0o600)
    os.symlink("top", str(src / "link"))
    proc = _example("cptree.py", "--progress", src, tmp_path / "dst")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "dst" / "top").read_bytes() == (src / "top").read_bytes()
    assert (tmp_path / "dst" / "a" / "b" / "deep").read_bytes() == _payload(1000, 2)
    assert os.stat(str(tmp_path / "dst" / "a" / "b" / "deep")).st_mode & 0o777 == 0o600
    assert os.readlink(str(tmp_path / "dst" / "link")) == "top"
    assert proc.stderr.rstrip().endswith(b"%d/%d bytes" % ((3 << 20) + 1000, (3 << 20) + 1000))
    # dst exists now: shutil's FileExistsError, a traceback, exit 1
    proc = _example("cptree.py", src, tmp_path / "dst")
    assert proc.returncode == 1 and b"FileExistsError" in proc.stderr


def test_cp_progress_bar_on_stderr(tmp_path):
    size = 3 * 1024 * 1024
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(_payload(size, 7))
    dst.write_bytes(b"x" * (2 * size))  # longer: must be truncated
    proc = _example("cp.py", "--progress", src, dst)
    assert proc.returncode == 0, proc.stderr
    assert dst.read_bytes() == src.read_bytes()
    assert proc.stdout == b""
    last = proc.stderr.decode().split("\r")[-1]
    assert last == "[%s] 100%% %d/%d bytes\n" % ("#" * 40, size, size), repr(last)


# ---------------------------------------------------------------- servers

class Server:
    """An example server started with --port 0; its address from the line
    it prints; stopped with SIGINT, which must end it cleanly."""

    def __init__(self, script):
        self.proc = subprocess.Popen([sys.executable, os.path.join(EXAMPLES, script), "--port", "0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().decode() if ready else ""
        m = re.search(r"listening on (?:http://)?127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            pytest.fail("the server did not start: %r %r" % (line, err))
        self.port = int(m.group(1))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise AssertionError("the server did not stop on SIGINT")
        return self.proc.returncode, err


@pytest.fixture
def server(request):
    servers = []

    def start(script):
        servers.append(Server(script))
        return servers[-1]

    yield start
    for s in servers:
        code, err = s.stop()
        assert code == 0, err


def _recv_exactly(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(1 << 20, n - len(buf)))
        assert chunk, "connection closed after %d of %d bytes" % (len(buf), n)
        buf += chunk
    return bytes(buf)


def test_echo_server_echoes_several_clients(server):
    srv = server("echo_server.py")
    payloads = [_payload(n, n) for n in (1, 1000, 2 * 1024 * 1024 + 5)]
    results = [None] * len(payloads)

    def client(i):
        with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
            # send from another thread so neither side's buffers fill up
            t = threading.Thread(target=s.sendall, args=(payloads[i],))
            t.start()
            results[i] = _recv_exactly(s, len(payloads[i]))
            t.join()
            s.shutdown(socket.SHUT_WR)
            assert s.recv(1) == b""     # the server closes when we do

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(payloads))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == payloads


def _read_response(sock, buf):
    """One HTTP response from sock; (status line, headers, body, rest)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        assert chunk, "closed before a response"
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    n = int(headers["content-length"])
    while len(buf) < n:
        chunk = sock.recv(65536)
        assert chunk, "closed inside a body"
        buf += chunk
    return lines[0], headers, buf[:n], buf[n:]


def test_http_server_keep_alive(server):
    srv = server("http_server.py")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
        rest = b""
        for _ in range(3):      # three requests, one after another, one connection
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body, rest = _read_response(s, rest)
            assert status == "HTTP/1.1 200 OK"
            assert headers["connection"] == "keep-alive"
            assert body == b"Hello from io_uring\n"
        # pipelined: two requests in one segment, answered in order
        s.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\nHEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body, rest = _read_response(s, rest)
        assert (status, body) == ("HTTP/1.1 404 Not Found", b"not found\n")
        # HEAD: the length of the body it would send, and no body
        while b"\r\n\r\n" not in rest:
            rest += s.recv(65536)
        head, rest = rest.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Content-Length: 20" in head
        assert rest == b""
        # Connection: close is honoured: the response, then the end
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body, rest = _read_response(s, rest)
        assert headers["connection"] == "close" and body == b"Hello from io_uring\n"
        assert rest == b"" and s.recv(1) == b""


def test_http_server_refuses_a_bad_request_and_closes(server):
    srv = server("http_server.py")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
        s.sendall(b"GET / HTTP/1.1\r\nContent-Length: lots\r\n\r\n")
        status, headers, body, rest = _read_response(s, b"")
        assert status == "HTTP/1.1 400 Bad Request" and headers["connection"] == "close"
        assert rest == b"" and s.recv(1) == b""
    # and it goes on serving others
    with socket.create_connection(("127.0.0.1", srv.port), timeout=20) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")      # HTTP/1.0: closed after one
        status, headers, body, rest = _read_response(s, b"")
        assert (status, body) == ("HTTP/1.1 200 OK", b"Hello from io_uring\n")
        assert headers["connection"] == "close" and s.recv(1) == b""


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_http_server_under_wrk(server):
    srv = server("http_server.py")
    proc = subprocess.run(["wrk", "-t1", "-c8", "-d1s", "http://127.0.0.1:%d/" % srv.port],
                          capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = re.search(r"(\d+) requests in", proc.stdout)
    assert m and int(m.group(1)) > 0, proc.stdout
    assert "Socket errors" not in proc.stdout and "Non-2xx" not in proc.stdout, proc.stdout
