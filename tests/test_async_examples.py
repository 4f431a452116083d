"""examples/async_echo.py and examples/async_http.py, run as a user would
(a subprocess on 127.0.0.1), on the stock asyncio loop and on uvloop."""

import os
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import BUILD, REPO

pytestmark = pytest.mark.no_leakcheck   # subprocesses: nothing to count here


@pytest.fixture(params=["asyncio", "uvloop"])
def server(request):
    procs = []

    def start(name):
        if request.param == "uvloop":
            pytest.importorskip("uvloop")
        env = dict(os.environ, PYTHONPATH=BUILD)
        cmd = [sys.executable, os.path.join(REPO, "examples", name), "0"]
        if request.param == "uvloop":
            cmd.append("--uvloop")
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
        procs.append(p)
        line = p.stdout.readline()
        assert line.startswith("listening "), (line, p.stderr.read() if p.poll() is not None else "")
        return int(line.split()[1])

    yield start
    for p in procs:
        p.terminate()
        _, err = p.communicate(timeout=10)
        assert "Traceback" not in err, err


def test_echo_server(server):
    port = server("async_echo.py")
    clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(16)]
    for rnd in range(5):
        msgs = [os.urandom(1 + (i * 997 + rnd * 131) % 70000) for i in range(len(clients))]
        for c, m in zip(clients, msgs):
            c.sendall(m)
        for c, m in zip(clients, msgs):
            got = b""
            while len(got) < len(m):
                chunk = c.recv(len(m) - len(got))
                assert chunk, "the server closed early"
                got += chunk
            assert got == m
    for c in clients:
        c.shutdown(socket.SHUT_WR)
        assert c.recv(10) == b""                 # the server closes its side
        c.close()


def _read_response(c):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = c.recv(4096)
        assert chunk
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1])
    while len(rest) < length:
        rest += c.recv(4096)
    return head, rest[:length], rest[length:]


def test_http_server_keep_alive(server):
    port = server("async_http.py")
    c = socket.create_connection(("127.0.0.1", port), timeout=10)
    for _ in range(5):                               # one connection, many requests
        c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body, extra = _read_response(c)
        assert head.startswith(b"HTTP/1.1 200 OK") and body == b"Hello from io_uring\n"
        assert extra == b""
    c.sendall(b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n")   # pipelined
    data = b""
    while data.count(b"Hello from io_uring\n") < 2:
        data += c.recv(4096)
    c.sendall(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
    head, body, _ = _read_response(c)
    assert b"Connection: close" in head
    assert c.recv(10) == b""                         # and it closed
    c.close()


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_http_server_under_wrk(server):
    port = server("async_http.py")
    out = subprocess.run(["wrk", "-t1", "-c32", "-d1s", "http://127.0.0.1:%d/" % port],
                         capture_output=True, text=True, timeout=60).stdout
    assert "requests in" in out, out
    assert "Non-2xx" not in out and "Socket errors" not in out, out
    requests = int(out.split("requests in")[0].split()[-1])
    assert requests > 100, out
