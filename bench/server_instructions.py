"""User-space instructions per HTTP request of the bench's servers, from
callgrind, each loop's server beside uvloop's same server:

    python3 bench/server_instructions.py [--build build] [--seconds 8]
                                         [--row protocol --row aiohttp --row churn]
                                         [--functions 20]

The server runs under `valgrind --tool=callgrind` with instrumentation off;
wrk warms it for 2 s, then instrumentation is switched on for `--seconds`
of `wrk -t1 -c8` (the churn row: `Connection: close`, a new connection per
request) and the dump is divided by the requests wrk saw answered.  Under
callgrind the server is the bottleneck, so each loop iteration serves all
eight connections on every loop alike.  The count does not depend on the
machine's load, where the CPU-second rows of `make bench` do; it leaves
out the kernel (see `perf` for that).  --functions prints, per request,
the functions whose counts differ most between uvloop's server and ours.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runner import ROOT  # noqa: E402
from workloads.http import HEADERS, HTTP_SERVERS  # noqa: E402

# the servers compared: uvloop's and the loop as it comes, per row
COMPARED = ("uvloop", "py_io_uring loop")


def run_server(cmd, secs, headers, out):
    """Serve under callgrind; (requests answered, dump file)."""
    vg = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
          "--callgrind-out-file=" + out]
    srv = subprocess.Popen(vg + cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        line = srv.stdout.readline()   # bounded: the server prints or dies
        if not line.startswith("PORT "):
            raise RuntimeError("server gave no port: %r" % line)
        url = "http://127.0.0.1:%s/" % line.split()[1]
        wrk = ["wrk", "-t1", "-c8"] + list(headers)
        subprocess.run(wrk + ["-d2s", url], capture_output=True, timeout=60, check=True)
        ctl = ["callgrind_control"]
        subprocess.run(ctl + ["-i", "on", str(srv.pid)], capture_output=True, check=True)
        text = subprocess.run(wrk + ["-d%ds" % secs, url], capture_output=True, text=True,
                              timeout=secs + 60, check=True).stdout
        subprocess.run(ctl + ["-i", "off", str(srv.pid)], capture_output=True, check=True)
        subprocess.run(ctl + ["-d", str(srv.pid)], capture_output=True, check=True)
        m = re.search(r"(\d+) requests in", text)
        if not m or "Socket errors" in text or "Non-2xx" in text:
            raise RuntimeError("wrk failed: %s" % text[-300:])
        time.sleep(0.5)
        return int(m.group(1)), out + ".1"
    finally:
        # valgrind runs one thread at a time and may not see the server's
        # stdin EOF while its loop waits in io_uring_enter: killed
        srv.kill()
        srv.wait(timeout=30)
        srv.stdout.close()


def total_ir(path):
    with open(path) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError("no totals in %s" % path)


def functions(path):
    """{function: self instructions} from callgrind_annotate"""
    text = subprocess.run(["callgrind_annotate", "--threshold=100", path],
                          capture_output=True, text=True, check=True).stdout
    out = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S+)", line)
        if m and ":" in m.group(2):
            fn = m.group(2).split(":", 1)[1].split("'")[0]
            out[fn] = out.get(fn, 0) + int(m.group(1).replace(",", ""))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--row", action="append", choices=["protocol", "aiohttp", "churn"])
    ap.add_argument("--functions", type=int, default=0)
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            sys.exit("%s is not installed" % tool)
    build = os.path.abspath(args.build)
    print("| row | uvloop, Ir/request | py_io_uring loop, Ir/request | ratio |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for row in args.row or ["protocol", "aiohttp", "churn"]:
            got = {}
            for name, spec, r in HTTP_SERVERS:
                if r != row or name not in COMPARED:
                    continue
                cmd = [sys.executable, os.path.join(ROOT, spec[0])] + spec[1:] + ["--build", build]
                n, dump = run_server(cmd, args.seconds, HEADERS.get(row, ()),
                                     os.path.join(tmp, "%s-%d.out" % (row, len(got))))
                got[name] = (n, dump)
            ir = {k: total_ir(d) / n for k, (n, d) in got.items()}
            print("| %s | %.0f | %.0f | %.2f |" % (row, ir[COMPARED[0]], ir[COMPARED[1]],
                                                  ir[COMPARED[1]] / ir[COMPARED[0]]))
            if args.functions:
                a, b = ({f: v / got[k][0] for f, v in functions(got[k][1]).items()}
                        for k in COMPARED)
                for f in sorted(set(a) | set(b), key=lambda f: -abs(b.get(f, 0) - a.get(f, 0)))[
                        :args.functions]:
                    print("|   %s | %.0f | %.0f | %+.0f |" % (f, a.get(f, 0), b.get(f, 0),
                                                           b.get(f, 0) - a.get(f, 0)))


if __name__ == "__main__":
    main()
