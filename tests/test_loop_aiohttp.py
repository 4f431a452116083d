"""A real server running unchanged on py_io_uring's loop (issue 16): an
aiohttp application served on EventLoop with each transport, asked by
aiohttp's own client on the same loop, by a raw-socket HTTP/1.1 client
(keep-alive, pipelined) in a thread, and by wrk; responses checked byte for
byte, the server shut down with no fd left open and no warning."""

import asyncio
import gc
import json
import os
import re
import shutil
import socket
import subprocess
import warnings

import pytest

from py_io_uring.loop import EventLoop

aiohttp = pytest.importorskip("aiohttp", reason="aiohttp is not installed (make deps-test installs it)")
from aiohttp import web  # noqa: E402

KINDS = ["selector", "uring"]
JSON = {"loop": "py_io_uring", "n": [1, 2, 3], "ok": True}
BIG = os.urandom(1 << 20)
CHUNKS = [b"chunk %d\n" % i * (i + 1) for i in range(20)]


def _fds():
    return len(os.listdir("/proc/self/fd"))


def make_app(counter):
    async def text(request):
        counter[0] += 1
        return web.Response(text="hello, world\n")

    async def as_json(request):
        return web.json_response(JSON)

    async def echo(request):
        return web.Response(body=await request.read(), content_type="application/octet-stream")

    async def stream(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        for c in CHUNKS:
            await resp.write(c)
            await asyncio.sleep(0)
        await resp.write_eof()
        return resp

    app = web.Application(client_max_size=4 << 20)
    app.router.add_get("/text", text)
    app.router.add_get("/json", as_json)
    app.router.add_post("/echo", echo)
    app.router.add_get("/stream", stream)
    return app


def _serve(kind, client, counter=None):
    """Run the app on EventLoop(transport=kind) at 127.0.0.1:0, await
    client(loop, port), shut down; return the client's result."""
    async def main():
        runner = web.AppRunner(make_app(counter if counter is not None else [0]))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            return await client(asyncio.get_running_loop(), port)
        finally:
            await runner.cleanup()

    loop = EventLoop(transport=kind)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)
        if hasattr(loop, "shutdown_default_executor"):     # 3.9 and later
            loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def _checked(kind, client, counter=None):
    """_serve, asserting no fd left open and no warning raised."""
    gc.collect()
    before = _fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = _serve(kind, client, counter)
        gc.collect()
    assert [str(w.message) for w in caught] == []
    assert _fds() == before
    return got


@pytest.mark.parametrize("kind", KINDS)
def test_aiohttp_client_on_the_same_loop(kind):
    async def client(loop, port):
        base = "http://127.0.0.1:%d" % port
        out = {}
        async with aiohttp.ClientSession() as s:
            for i in range(3):                  # one pooled keep-alive connection
                async with s.get(base + "/text") as r:
                    out["text%d" % i] = (r.status, r.headers["Content-Type"], await r.read())
            async with s.get(base + "/json") as r:
                out["json"] = (r.status, r.headers["Content-Type"], await r.json())
            async with s.post(base + "/echo", data=BIG) as r:
                out["echo"] = (r.status, int(r.headers["Content-Length"]), await r.read())
            async with s.get(base + "/stream") as r:
                out["stream"] = (r.status, r.headers.get("Transfer-Encoding"), await r.read())
            async with s.get(base + "/nowhere") as r:
                out["404"] = (r.status, await r.text())
        return out

    counter = [0]
    out = _checked(kind, client, counter)
    for i in range(3):
        assert out["text%d" % i] == (200, "text/plain; charset=utf-8", b"hello, world\n")
    assert counter == [3]
    assert out["json"] == (200, "application/json; charset=utf-8", JSON)
    assert out["echo"] == (200, len(BIG), BIG)
    assert out["stream"] == (200, "chunked", b"".join(CHUNKS))
    assert out["404"] == (404, "404: Not Found")


def _read_response(f):
    """One HTTP/1.1 response from the file f: (status line, headers dict
    with lower-case names, body); Content-Length or chunked."""
    status = f.readline().rstrip(b"\r\n")
    headers = {}
    while True:
        line = f.readline()
        assert line.endswith(b"\r\n"), line
        if line == b"\r\n":
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = bytearray()
        while True:
            size = int(f.readline().split(b";")[0], 16)
            chunk = f.read(size + 2)
            assert chunk[size:] == b"\r\n"
            if size == 0:
                break
            body += chunk[:size]
        return status, headers, bytes(body)
    return status, headers, f.read(int(headers["content-length"]))


def _raw_client(port):
    """Blocking HTTP/1.1 on one connection: pipelined requests sent in one
    write, then more, each answered in order on the same socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        f = s.makefile("rb")
        try:
            host = "Host: 127.0.0.1:%d\r\n" % port
            s.sendall(("GET /text HTTP/1.1\r\n%s\r\n" % host
                       + "GET /json HTTP/1.1\r\n%s\r\n" % host
                       + "GET /nowhere HTTP/1.1\r\n%s\r\n" % host
                       + "GET /stream HTTP/1.1\r\n%s\r\n" % host).encode())
            out = [_read_response(f) for _ in range(4)]
            s.sendall(("POST /echo HTTP/1.1\r\n%sContent-Length: %d\r\n"
                       "Content-Type: application/octet-stream\r\n\r\n" % (host, len(BIG))).encode()
                      + BIG + ("GET /text HTTP/1.1\r\n%sConnection: close\r\n\r\n" % host).encode())
            out += [_read_response(f) for _ in range(2)]
            out.append(f.read())                # the server closes after the last
            return out
        finally:
            f.close()


@pytest.mark.parametrize("kind", KINDS)
def test_raw_keep_alive_pipelined_client(kind):
    async def client(loop, port):
        return await loop.run_in_executor(None, _raw_client, port)

    counter = [0]
    text, js, missing, stream, echo, last, rest = _checked(kind, client, counter)
    assert counter == [2]
    for status, headers, body in (text, last):
        assert status == b"HTTP/1.1 200 OK"
        assert headers["content-type"] == "text/plain; charset=utf-8"
        assert headers["content-length"] == "13" and body == b"hello, world\n"
        assert "server" in headers and "date" in headers
    assert "connection" not in text[1]         # keep-alive is HTTP/1.1's default
    assert last[1]["connection"] == "close"
    assert js[0] == b"HTTP/1.1 200 OK" and json.loads(js[2]) == JSON
    assert js[1]["content-type"] == "application/json; charset=utf-8"
    assert missing[0] == b"HTTP/1.1 404 Not Found" and missing[2] == b"404: Not Found"
    assert stream[0] == b"HTTP/1.1 200 OK" and stream[1]["transfer-encoding"] == "chunked"
    assert stream[2] == b"".join(CHUNKS)
    assert echo[0] == b"HTTP/1.1 200 OK" and echo[1]["content-length"] == str(len(BIG))
    assert echo[2] == BIG
    assert rest == b""


WRK_LINE = re.compile(r"(\d+) requests in ")


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
@pytest.mark.parametrize("kind", KINDS)
def test_aiohttp_under_wrk(kind):
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}

    async def client(loop, port):
        return await loop.run_in_executor(None, lambda: subprocess.run(
            ["wrk", "-t1", "-c8", "-d1s", "http://127.0.0.1:%d/text" % port],
            capture_output=True, text=True, timeout=60, env=env))

    counter = [0]
    proc = _checked(kind, client, counter)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    m = WRK_LINE.search(proc.stdout)
    assert m and int(m.group(1)) > 0, proc.stdout
    # wrk prints these lines only when there were such errors
    assert "Socket errors" not in proc.stdout and "Non-2xx" not in proc.stdout, proc.stdout
    # every response wrk counted was the handler's (it may have answered a
    # few more that wrk stopped waiting for)
    assert counter[0] >= int(m.group(1)), (counter, proc.stdout)
