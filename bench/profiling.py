"""Where the time of the NOP loop goes: the loop timed step by step
(breakdown), user-space instructions per op from callgrind and user/kernel
CPU per op from getrusage (gap_measure), and perf's share of samples per
binary (nop_profiles).  Named profiling, not profile: bench/ is first on
sys.path and `profile` would shadow the standard library's module."""

import os
import re
import shutil
import subprocess
import sys
import time

from runner import ROOT
from workloads.nop import NOP_APIS


def breakdown(m, n):
    """Nanoseconds per call of each step of the NOP round trip (batch 64)."""
    ring = m.IoUring(256)
    res = {}
    batch = 64
    rounds = max(1, n // batch)
    t_prep = t_sub = t_wait = t_cqe = 0.0
    pc = time.perf_counter
    for _ in range(rounds):
        t0 = pc()
        for i in range(batch):
            sqe = ring.get_sqe()
            sqe.prep_nop()
            sqe.set_data(i)
        t1 = pc()
        ring.submit()
        t2 = pc()
        cqes = ring.wait_cqe_nr(batch)
        t3 = pc()
        for c in cqes:
            c.res()
            c.get_data()
            ring.cqe_seen(c)
        t4 = pc()
        t_prep += t1 - t0
        t_sub += t2 - t1
        t_wait += t3 - t2
        t_cqe += t4 - t3
    ops = rounds * batch
    res["get_sqe + prep_nop + set_data"] = t_prep / ops * 1e9
    res["submit (per op, 64 a call)"] = t_sub / ops * 1e9
    res["wait_cqe_nr (per op, 64 a call)"] = t_wait / ops * 1e9
    res["res + get_data + cqe_seen"] = t_cqe / ops * 1e9
    # the interpreter's own floor: one iteration of an empty for loop
    t0 = pc()
    for i in range(ops):
        pass
    res["(empty Python loop iteration)"] = (pc() - t0) / ops * 1e9
    ring.queue_exit()
    return res


def callgrind_functions(path):
    """[(Ir, function, object basename)] of a callgrind output, self cost."""
    out = subprocess.run(["callgrind_annotate", "--auto=no", "--inclusive=no", "--threshold=100", path],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    rows, home = [], {}
    for line in out.splitlines():
        mm = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S.*?)(?: \[(.*)\])?$", line)
        if not mm or "PROGRAM TOTALS" in line:
            continue
        fn = mm.group(2).rsplit(":", 1)[-1].split("'")[0]
        obj = os.path.basename(mm.group(3)) if mm.group(3) else None
        if obj:
            home.setdefault(fn, obj)
        rows.append((int(mm.group(1).replace(",", "")), fn, obj))
    # callgrind_annotate leaves the binary out for code inlined from a header:
    # it belongs to the binary of the function of that name seen elsewhere
    return [(ir, fn, obj or home.get(fn, "other")) for ir, fn, obj in rows]


def _objects_ir(path):
    """Instructions per object file in a callgrind output: {basename: Ir}."""
    per = {}
    for ir, _, obj in callgrind_functions(path):
        per[obj] = per.get(obj, 0) + ir
    return per


def callgrind_per_op(make_cmd, n, workdir):
    """User-space instructions per op, per object file: make_cmd(ops) runs the
    loop; run with n and 2n ops under callgrind, the difference over n is
    the per-op cost without start-up.  Returns {object: Ir/op} or a string."""
    if not shutil.which("valgrind") or not shutil.which("callgrind_annotate"):
        return "valgrind is not installed"
    runs = []
    for ops in (n, 2 * n):
        path = os.path.join(workdir, "callgrind.%d" % ops)
        try:
            r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + path] + make_cmd(ops),
                               capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return "callgrind failed: %s" % exc
        if r.returncode != 0:
            return "callgrind failed: %s" % r.stderr.strip()[-200:]
        runs.append(_objects_ir(path))
        os.unlink(path)
    a, b = runs
    return {k: (b[k] - a.get(k, 0)) / n for k in b if abs(b[k] - a.get(k, 0)) / n >= 0.5}


def rusage_per_op(make_cmd, n):
    """(user ns, system ns) of CPU per op: the child's rusage with n and 2n ops,
    the difference over n."""
    import resource
    t = []
    for ops in (n, 2 * n):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(make_cmd(ops), check=True, capture_output=True, timeout=600)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t.append((r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime))
    return ((t[1][0] - t[0][0]) / n * 1e9, (t[1][1] - t[0][1]) / n * 1e9)


def nop_loop_cmd(api, ops, build, floor=False):
    """The argv of bench/nop_loop.py: one NOP loop alone, batch 64; with
    floor, on bench/ideal_ring.c instead of py_io_uring."""
    return [sys.executable, os.path.join(ROOT, "bench", "nop_loop.py"), str(ops), "--api", api,
            "--build", build] + (["--floor"] if floor else [])


def gap_measure(build, binp, workdir, quick):
    """Per NOP round trip at batch 64: callgrind instructions per object and
    user/system CPU time, for C and for each Python loop in NOP_APIS; in a
    full run, each loop also on bench/ideal_ring.c (when built), the floor
    any module with these call shapes costs."""
    def py_cmd(api, floor=False):
        return lambda ops: nop_loop_cmd(api, ops, build, floor)
    cmds = [("C liburing", lambda ops: [os.path.join(binp, "nop"), "64", str(ops)])]
    label = {"wait_cqe_nr": "cqe_seen per op", "batch": "Sqe/Cqe objects, cq_advance",
             "fast": "fast forms, reap()", "many": "prep_many(), reap(columns=True)"}
    floor = not quick and any(f.startswith("ideal_ring.") for f in os.listdir(binp))
    for api in NOP_APIS:
        cmds.append(("py_io_uring, %s" % label[api], py_cmd(api)))
        if floor:
            cmds.append(("floor (bench/ideal_ring.c), %s" % label[api], py_cmd(api, True)))
    res = {}
    for name, make in cmds:
        print("... callgrind and rusage: %s" % name, file=sys.stderr, flush=True)
        cg = callgrind_per_op(make, 6400 if quick else 32000, workdir)
        n = 64000 if quick else 2560000
        ru = rusage_per_op(make, n * 5 if name.startswith("C") else n)   # C: long enough for the tick
        res[name] = (cg, ru)
    return res


def perf_profile(cmd, workdir):
    """Share of CPU samples per binary (`perf record` + `perf report --sort dso`)
    for cmd, or a string saying why there is none."""
    if not shutil.which("perf"):
        return "perf is not installed"
    data = os.path.join(workdir, "perf.data")
    try:
        rec = subprocess.run(["perf", "record", "-q", "-o", data, "--"] + cmd,
                             capture_output=True, text=True, timeout=120)
        if rec.returncode != 0:
            return "perf record failed: %s" % rec.stderr.strip()[-200:]
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "dso",
                              "-q", "--stdio"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "perf failed: %s" % exc
    shares = []
    for line in rep.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and parts[0].endswith("%"):
            shares.append((parts[1].strip(), float(parts[0][:-1])))
    return shares[:6] or "perf report gave nothing"


def nop_profiles(build, binp, workdir):
    """perf's share of samples per binary for the NOP loop at batch 64,
    py_io_uring's (cqe_seen per op) and C's."""
    print("... perf profile of the NOP loop", file=sys.stderr, flush=True)
    return {
        "py_io_uring": perf_profile(nop_loop_cmd("wait_cqe_nr", 2560000, build), workdir),
        "C liburing": perf_profile([os.path.join(binp, "nop"), "64", "12800000"], workdir),
    }
