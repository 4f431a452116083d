"""What every echo server of bench/run.py shares.

A server is a script run as ``python3 SCRIPT [--build BUILD]``: it listens
on 127.0.0.1 (a free port), prints ``PORT <n>`` on stdout once it accepts
connections, echoes everything each connection sends, and exits when its
stdin reaches EOF (the echo workload closes the pipe) or on SIGTERM.  To add a server,
write such a script and list it in ECHO_PY_SERVERS or ECHO_BASELINES in
bench/workloads/tcp_echo.py.
"""

import argparse
import os
import socket
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUF = 65536   # each connection's reusable receive buffer

# --uring-transport (with --py-io-uring): py_io_uring's loop with its
# completion transports (docs/loop.md; the loop's default, the bench's
# "py_io_uring loop" rows); without it asyncio's selector transports on that
# loop (the "selector transports" rows), whatever the environment says
if "--uring-transport" in sys.argv:
    sys.argv.remove("--uring-transport")
    os.environ["PY_IO_URING_TRANSPORT"] = "uring"
else:
    os.environ["PY_IO_URING_TRANSPORT"] = "selector"


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build", help="folder of the built py_io_uring module")
    return ap.parse_args()


def build_arg():
    """--build's value, for a script that passes its own run function."""
    return parse_args().build


def load_py_io_uring(build):
    sys.path.insert(0, os.path.join(ROOT, os.environ.get("PY_IO_URING_BUILD", build)))
    import py_io_uring
    return py_io_uring


def listener(backlog=1024):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(backlog)
    return s


def ready(sock):
    """Say the port, then exit the whole process when stdin closes."""
    def watch():
        try:
            while os.read(0, 256):
                pass
        finally:
            os._exit(0)
    threading.Thread(target=watch, daemon=True).start()
    print("PORT %d" % sock.getsockname()[1], flush=True)
