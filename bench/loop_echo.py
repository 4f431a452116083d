"""In-process echo ping-pong on one event loop (docs/loop.md): one client
and one Protocol server on the same loop, 1 KiB messages, CPU time per
round trip; asyncio's loop, uvloop, and py_io_uring's loop with each of its
transports.  --profile KIND: cProfile of one of them instead.

    python3 bench/loop_echo.py [--build build] [--profile uring]"""

import asyncio
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUNDS = 20000
MSG = b"x" * 1024


class Echo(asyncio.Protocol):
    def connection_made(self, t):
        self.t = t

    def data_received(self, data):
        self.t.write(data)


class Client(asyncio.Protocol):
    def __init__(self, done):
        self.done, self.n, self.got = done, 0, 0

    def connection_made(self, t):
        self.t = t
        t.write(MSG)

    def data_received(self, data):
        self.got += len(data)
        if self.got >= len(MSG):
            self.got -= len(MSG)
            self.n += 1
            if self.n == ROUNDS:
                self.done.set_result(None)
            else:
                self.t.write(MSG)


async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    done = loop.create_future()
    t, _ = await loop.create_connection(lambda: Client(done),
                                        *server.sockets[0].getsockname())
    c0 = time.process_time()
    await done
    c1 = time.process_time()
    t.close()
    server.close()
    await server.wait_closed()
    return (c1 - c0) / ROUNDS * 1e6


def loops():
    sys.path.insert(0, os.path.join(ROOT, "build"))
    import py_io_uring.loop as pl
    out = [("asyncio", asyncio.new_event_loop)]
    try:
        import uvloop
        out.append(("uvloop", uvloop.new_event_loop))
    except ImportError:
        pass
    out.append(("py_io_uring selector", lambda: pl.EventLoop(transport="selector")))
    out.append(("py_io_uring uring", lambda: pl.EventLoop(transport="uring")))
    return out


def run(factory):
    loop = factory()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


if __name__ == "__main__":
    if "--build" in sys.argv:
        i = sys.argv.index("--build")
        os.environ["PY_IO_URING_BUILD"] = sys.argv[i + 1]
    table = dict(loops())
    if "--profile" in sys.argv:
        import cProfile
        import pstats
        kind = sys.argv[sys.argv.index("--profile") + 1]
        factory = table["py_io_uring " + kind]
        cProfile.run("run(factory)", "/tmp/loop_echo.prof")
        pstats.Stats("/tmp/loop_echo.prof").sort_stats("tottime").print_stats(14)
        sys.exit(0)
    res = {name: [] for name in table}
    for _ in range(3):
        for name, factory in table.items():
            res[name].append(run(factory))
    for name, v in res.items():
        print("%-22s %6.1f us per round trip (median of 3; %s)" % (
            name, statistics.median(v), ", ".join("%.1f" % x for x in v)))
