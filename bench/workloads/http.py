"""HTTP/1.1 keep-alive under wrk (one thread, CONNS connections, GET /)
against two servers, each on asyncio's loop, uvloop and py_io_uring's loop
with either transport: the minimal Protocol server bench/echo/http_protocol.py
and the aiohttp application bench/echo/http_aiohttp.py.  Requests per second
and per CPU-second of the server process (from /proc, as the echo rows)."""

import re
import shutil
import subprocess

from runner import Case, Unavailable
from workloads.tcp_echo import needs_module, proc_cpu, server_command, serving

CONNS = 32

DESCRIBE = (
    "HTTP/1.1 keep-alive on 127.0.0.1: `wrk -t1 -c%d -d%s` (GET /, a 14-byte text answer) "
    "against a minimal asyncio `Protocol` server (`bench/echo/http_protocol.py`: one response "
    "per request head, pipelined ones answered in one write) and an aiohttp application "
    "(`bench/echo/http_aiohttp.py`: `AppRunner`, one route, no access log), each on asyncio's "
    "loop, uvloop and py_io_uring's `EventLoop` (\"py_io_uring loop\": as it comes, with its "
    "completion transports; \"selector transports\": asyncio's over the ring's polls). The churn row sends `Connection: close` (`wrk -H`): the Protocol "
    "server answers and closes, so every request is a new connection (accept, transport, close). "
    "A run with socket errors or non-2xx answers fails. The second row "
    "of each is the same runs divided by the CPU time the server process used: wrk takes most of "
    "one of the two cores, which caps requests per second for the fast servers.")

HTTP_SERVERS = [
    # (name, command, its row)
    ("asyncio", ["bench/echo/http_protocol.py"], "protocol"),
    ("uvloop", ["bench/echo/http_protocol.py", "--uvloop"], "protocol"),
    ("py_io_uring loop",
     ["bench/echo/http_protocol.py", "--py-io-uring", "--uring-transport"], "protocol"),
    ("py_io_uring loop, selector transports",
     ["bench/echo/http_protocol.py", "--py-io-uring"], "protocol"),
    ("asyncio", ["bench/echo/http_aiohttp.py"], "aiohttp"),
    ("uvloop", ["bench/echo/http_aiohttp.py", "--uvloop"], "aiohttp"),
    ("py_io_uring loop",
     ["bench/echo/http_aiohttp.py", "--py-io-uring", "--uring-transport"], "aiohttp"),
    ("py_io_uring loop, selector transports",
     ["bench/echo/http_aiohttp.py", "--py-io-uring"], "aiohttp"),
]
# the churn row runs the Protocol rows' servers with a new connection per request
for _name, _cmd, _row in list(HTTP_SERVERS):
    if _row == "protocol":
        HTTP_SERVERS.append((_name, _cmd, "churn"))
ROWS = {"protocol": "HTTP, minimal Protocol server", "aiohttp": "HTTP, aiohttp app",
        "churn": "HTTP, minimal Protocol server, Connection: close"}
# what wrk adds to each request, per row
HEADERS = {"churn": ["-H", "Connection: close"]}


def seconds(quick):
    return 1 if quick else 2


def wrk_run(spec, build, binp, secs, cpu_sink, headers=()):
    def run():
        why = needs_module(spec)
        if why:
            raise Unavailable(why)
        if "http_aiohttp" in spec[0]:
            try:
                import aiohttp  # noqa: F401
            except ImportError:
                raise Unavailable("aiohttp is not installed (make deps-test installs it)")
        if shutil.which("wrk") is None:
            raise Unavailable("wrk is not installed (apt-get install wrk)")
        cmd = server_command(spec, build, binp)
        with serving(cmd) as (srv, port):
            cpu0 = proc_cpu(srv.pid)
            out = subprocess.run(["wrk", "-t1", "-c%d" % CONNS, "-d%ds" % secs] + list(headers)
                                 + ["http://127.0.0.1:%d/" % port],
                                 capture_output=True, text=True, timeout=secs + 60)
            cpu = proc_cpu(srv.pid) - cpu0
            text = out.stdout
            m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", text)
            rps = re.search(r"Requests/sec:\s*([\d.]+)", text)
            if out.returncode != 0 or not m or not rps:
                raise RuntimeError("wrk failed: %s" % (text + out.stderr)[-300:])
            # wrk prints these lines only when it saw such errors
            if "Socket errors" in text or "Non-2xx" in text:
                raise RuntimeError("wrk saw errors: %s" % text[-300:])
            cpu_sink.append(int(m.group(1)) / cpu if cpu > 0 else float("nan"))
            return float(rps.group(1))
    return run


def cases(setup):
    secs = seconds(setup.quick)
    out = []
    for row, title in ROWS.items():
        wl = "%s, wrk %d connections" % (title, CONNS)
        servers = [(n, s) for n, s, r in HTTP_SERVERS if r == row]
        effs = {name: [] for name, _ in servers}
        case = Case(wl, "req/s", None, CONNS, headline=True, reference="uvloop")
        for name, spec in servers:
            fn = wrk_run(spec, setup.build, setup.binp, secs, effs[name], HEADERS.get(row, ()))
            if name.startswith("py_io_uring"):
                case.variant(name, fn)
            else:
                case.baseline(name, fn)
        out += [case, case.derived(wl + ", per server CPU-second", "req/CPU-s", None, effs)]
    return out


def describe(quick):
    return DESCRIBE % (CONNS, "%ds" % seconds(quick))
