"""TCP echo on 127.0.0.1: bench/echo_load.c (epoll, keep-alive connections,
1 KiB messages, each waits for its whole echo before the next) drives one
server at a time, swept over the number of connections.

A server is (name, command): a script in bench/echo/ run with this
interpreter (see bench/echo/common.py for what it must do), or a C program
from --bin ("@name").  Each py_io_uring server in ECHO_PY_SERVERS is
compared with every server in ECHO_BASELINES; a new server is one more line
in one of the lists."""

import contextlib
import os
import statistics
import subprocess
import sys

from runner import ROOT, Case, Unavailable, human

DESCRIBE = (
    "TCP echo on 127.0.0.1: `bench/echo_load.c` (epoll, N keep-alive connections, each "
    "sends a 1 KiB message and waits for the whole echo, checked byte for byte, before the "
    "next; %s per repetition) against one server at a time, each a plain script on this "
    "interpreter (`bench/echo/`, every one with reusable receive buffers where its API allows: "
    "asyncio streams and `Protocol.data_received` get new bytes per read, `BufferedProtocol` "
    "reuses one buffer) or the C epoll server `bench/echo_server.c`. The py_io_uring server "
    "uses the synchronous `IoUring` API: a multishot accept, a `recv` into the connection's "
    "own buffer and a `send` of what arrived, `submit_and_wait(1)` and the ready completions "
    "handled in a batch. \"py_io_uring loop\" rows are asyncio servers on py_io_uring's "
    "`EventLoop` as it comes (its completion transports); \"selector transports\" ones use "
    "asyncio's transports over the ring's polls instead. The second echo row is the same runs divided by the CPU time the server "
    "process used (from /proc), which the 2-core machine's cap on throughput does not hide. "
    "Swept over N (%s); the table shows N = 64, and a second size, 64 KiB messages at 64 "
    "connections.")


def connection_counts(quick):
    return (64,) if quick else (1, 8, 64)


def seconds_for(conns, quick):
    """Seconds of load per run: 2 s at 64 connections, the point the table
    shows, 0.75 s at the others (ten servers, five repetitions: this is
    most of a full run's time)."""
    if quick:
        return 0.3
    return 2.0 if conns == 64 else 0.75


ECHO_PY_SERVERS = [
    ("py_io_uring (sync IoUring)", ["bench/echo/ring_sync.py"]),
    ("AsyncRing on asyncio", ["bench/echo/asyncring.py"]),
    ("AsyncRing on uvloop", ["bench/echo/asyncring.py", "--uvloop"]),
    # py_io_uring's EventLoop as it comes (its completion transports), then
    # with asyncio's selector transports over the ring's polls
    ("py_io_uring loop streams",
     ["bench/echo/asyncio_streams.py", "--py-io-uring", "--uring-transport"]),
    ("py_io_uring loop Protocol",
     ["bench/echo/asyncio_protocol.py", "--py-io-uring", "--uring-transport"]),
    ("py_io_uring loop BufferedProtocol",
     ["bench/echo/asyncio_protocol.py", "--py-io-uring", "--buffered", "--uring-transport"]),
    ("py_io_uring loop streams, selector transports",
     ["bench/echo/asyncio_streams.py", "--py-io-uring"]),
    ("py_io_uring loop Protocol, selector transports",
     ["bench/echo/asyncio_protocol.py", "--py-io-uring"]),
    ("py_io_uring loop BufferedProtocol, selector transports",
     ["bench/echo/asyncio_protocol.py", "--py-io-uring", "--buffered"]),
]
ECHO_BASELINES = [
    ("C epoll server", ["@echo_server"]),
    ("asyncio streams", ["bench/echo/asyncio_streams.py"]),
    ("asyncio Protocol", ["bench/echo/asyncio_protocol.py"]),
    ("asyncio BufferedProtocol", ["bench/echo/asyncio_protocol.py", "--buffered"]),
    ("uvloop streams", ["bench/echo/asyncio_streams.py", "--uvloop"]),
    ("uvloop Protocol", ["bench/echo/asyncio_protocol.py", "--uvloop"]),
    ("uvloop BufferedProtocol", ["bench/echo/asyncio_protocol.py", "--uvloop", "--buffered"]),
]


# the figure leaves out asyncio Protocol (as fast as asyncio streams) and
# uvloop BufferedProtocol (between uvloop's Protocol and streams), so that
# eight lines stay readable; the table has every server
NOT_PLOTTED = {"asyncio Protocol", "uvloop BufferedProtocol"}


def load_note(servers, load_cpu, conns):
    """Who was busy during the echo runs: the load generator's and the
    server's CPU time over the run's wall time (1.0 = one core)."""
    parts = []
    for name, _ in servers:
        got = load_cpu.get(name)
        if got:
            parts.append("%s: load generator %.2f, server %.2f" % (
                name, statistics.median(g for g, _ in got), statistics.median(sv for _, sv in got)))
    return ("CPU use during the echo runs with %d connections (CPU-seconds per second of the run, "
            "median; 1.00 is one core of the two): " % conns + "; ".join(parts) + ".") if parts else None


def server_command(spec, build, binp):
    """The argv that starts a server given as in ECHO_PY_SERVERS."""
    first, rest = spec[0], list(spec[1:])
    if first.startswith("@"):
        return [os.path.join(binp, first[1:])] + rest
    return [sys.executable, os.path.join(ROOT, first)] + rest + ["--build", build]


def needs_module(spec):
    """Why a server cannot run here (a module it imports is missing), or None."""
    if "--uvloop" in spec:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            return "uvloop is not installed (pip install uvloop failed or was not run)"
    return None


def proc_cpu(pid):
    """CPU seconds (user + system) the process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving(cmd):
    """Start a bench server (argv cmd), yield (process, port) once it has
    printed "PORT n", and stop it on the way out: stdin closed (the servers
    exit on EOF), killed if it has not exited within 5 s."""
    srv = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        line = srv.stdout.readline()   # bounded: the server prints or dies
        if not line.startswith("PORT "):
            srv.kill()
            raise RuntimeError("server gave no port: %r %s" % (line, srv.stderr.read()[-300:]))
        yield srv, int(line.split()[1])
    finally:
        if srv.poll() is None:
            srv.stdin.close()
            try:
                srv.wait(timeout=5)
            except subprocess.TimeoutExpired:
                srv.kill()
                srv.wait(timeout=5)
        for f in (srv.stdout, srv.stderr):
            f.close()


def echo_run(spec, build, binp, conns, msg, seconds, cpu_sink, load_sink):
    """Start the server, drive it with echo_load for `seconds`, stop it;
    return messages per second.  cpu_sink, a list, gets the messages per
    CPU-second the server itself used (its efficiency, which the load
    generator's own limit does not cap); load_sink the (load generator,
    server) CPU shares of the run."""
    def run():
        why = needs_module(spec)
        if why:
            raise Unavailable(why)
        load = os.path.join(binp, "echo_load")
        cmd = server_command(spec, build, binp)
        for path in (load, cmd[0]):
            if not os.path.exists(path):
                raise Unavailable("%s is not built (make bench)" % os.path.basename(path))
        with serving(cmd) as (srv, port):
            cpu0 = proc_cpu(srv.pid)
            out = subprocess.run([load, str(port), str(conns), str(msg), str(seconds)],
                                 capture_output=True, text=True, timeout=seconds + 60)
            if out.returncode != 0:
                raise RuntimeError("echo_load failed: %s" % out.stderr.strip()[-300:])
            cpu = proc_cpu(srv.pid) - cpu0
            vals = dict(line.split(" ", 1) for line in out.stdout.splitlines() if " " in line)
            cpu_sink.append(float(vals["messages"]) / cpu if cpu > 0 else float("nan"))
            load_sink.append((float(vals["cpu_seconds"]) / float(vals["seconds"]), cpu / float(vals["seconds"])))
            return float(vals["msgs_per_sec"])
    return run


def cases(setup):
    msg = 1024
    panel = ("TCP echo, 1 KiB messages, per server CPU-second", "connections")
    out = []
    for conns in connection_counts(setup.quick):
        secs = seconds_for(conns, setup.quick)
        wl = "TCP echo, %d connections, %s messages" % (conns, human(msg))
        effs = {name: [] for name, _ in ECHO_BASELINES + ECHO_PY_SERVERS}
        loads = {name: [] for name, _ in ECHO_BASELINES + ECHO_PY_SERVERS}
        # the figure shows the per-CPU-second panel: on two cores the
        # load generator caps messages per second for every fast server
        case = Case(wl, "msg/s", ("TCP echo, 1 KiB messages", "connections"), conns, headline=conns == 64,
                    reference="C epoll server", figure=False)

        def fn(name, spec):
            return echo_run(spec, setup.build, setup.binp, conns, msg, secs, effs[name], loads[name])

        def series(name):
            return None if name in NOT_PLOTTED else name

        for name, spec in ECHO_BASELINES:
            case.baseline(name, fn(name, spec), series(name))
        for name, spec in ECHO_PY_SERVERS:
            case.variant(name, fn(name, spec), series(name))
        # the same runs seen as the server's CPU cost: what the load
        # generator's share of the two cores does not cap
        per_cpu = case.derived(wl + ", per server CPU-second", "msg/CPU-s", panel, effs)
        out += [case, per_cpu]
        if conns == 64:
            setup.notes.append(lambda loads=loads, conns=conns:
                               load_note(ECHO_PY_SERVERS + ECHO_BASELINES, loads, conns))
    out += large_message_cases(setup)
    return out


def large_message_cases(setup, conns=64, msg=65536):
    """The same servers with 64 KiB messages at 64 connections (issue 16's
    second size): each message is many segments and several reads, so the
    receive and send paths count more than the per-message callbacks."""
    secs = seconds_for(conns, setup.quick)
    wl = "TCP echo, %d connections, %s messages" % (conns, human(msg))
    effs = {name: [] for name, _ in ECHO_BASELINES + ECHO_PY_SERVERS}
    loads = {name: [] for name, _ in ECHO_BASELINES + ECHO_PY_SERVERS}
    case = Case(wl, "msg/s", None, conns, headline=True, reference="C epoll server", figure=False)
    for name, spec in ECHO_BASELINES:
        case.baseline(name, echo_run(spec, setup.build, setup.binp, conns, msg, secs,
                                     effs[name], loads[name]))
    for name, spec in ECHO_PY_SERVERS:
        case.variant(name, echo_run(spec, setup.build, setup.binp, conns, msg, secs,
                                    effs[name], loads[name]))
    return [case, case.derived(wl + ", per server CPU-second", "msg/CPU-s", None, effs)]


def describe(quick):
    return DESCRIBE % ("0.3 s" if quick else "2 s at 64 connections, 0.75 s at fewer",
                       ", ".join(map(str, connection_counts(quick))))
