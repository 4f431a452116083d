"""Measuring workloads: a Case is one workload at one point of its sweep (a
batch size, a queue depth), with py_io_uring variants and the baselines they
are compared with; measure() runs every case's variants round-robin inside
each repetition, so each ratio pairs figures taken side by side on the same
(noisy) machine.  The ratio is the median of the per-repetition ratios
py_io_uring / baseline (above 1: py_io_uring is faster).  Nothing here
asserts a time.
"""

import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BLOCK = 4096


def load_module(build):
    sys.path.insert(0, os.path.join(ROOT, os.environ.get("PY_IO_URING_BUILD", build)))
    import py_io_uring
    return py_io_uring


def parse_size(text):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().rstrip("ib").rstrip("b") if text[-1:].lower() == "b" else text.strip().lower()
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def human(n):
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= div:
            return "%g %s" % (n / div, unit)
    return "%d B" % n


class Setup:
    """What every workload needs to build its cases: the module, where the C
    programs and the test files are, how big a run this is, and a list for
    notes the report prints (a workload skipped, say)."""

    def __init__(self, m, build, binp, workdir, quick, size, seed=1234):
        self.m = m
        self.build = build
        self.binp = binp
        self.workdir = workdir
        self.quick = quick
        self.size = size
        self.seed = seed
        self.notes = []


class Unavailable(Exception):
    """A variant that cannot run here (not built, not installed): a note in
    the report, not a failure."""


class Case:
    """One workload at one point: variants measured together.

    panel and x place the case in the figures (the panel is (title, x-axis
    label), x the batch size or queue depth; figure=False keeps the panel
    out of the figure, in the sweep tables only); headline cases also go into
    the main table, one line per py_io_uring variant and baseline.  Each
    variant has a series name, its line in the figure (None: table only).
    reference names the baseline the sweep tables divide by."""

    def __init__(self, workload, unit, panel=None, x=None, headline=True, warmup=False, reference=None,
                 figure=True):
        self.workload = workload
        self.figure = figure
        self.unit = unit
        self.panel = panel
        self.x = x
        self.headline = headline
        self.warmup = warmup
        self.reference = reference
        self.fns = []          # (name, fn) in the order they first run
        self.series = {}       # name -> label of its line in the figure, or None
        self.kind = {}         # name -> "py" or "baseline"
        self.pairs = []        # (py_io_uring name, [baseline names]) for the table
        self.samples = {}
        self.notes = {}
        self.filled_by = None

    def baseline(self, name, fn, series=None):
        self._add(name, fn, "baseline", series)

    def variant(self, name, fn, series=None, against=None):
        """A py_io_uring variant, compared with `against` (default: every
        baseline added so far)."""
        self._add(name, fn, "py", series)
        if against is None:
            against = [n for n, _ in self.fns if self.kind[n] == "baseline"]
        self.pairs.append((name, list(against)))

    def _add(self, name, fn, kind, series):
        self.fns.append((name, fn))
        self.kind[name] = kind
        self.series[name] = series
        self.samples[name] = []

    def derived(self, workload, unit, panel, sinks):
        """A case whose samples are another measure of this one's runs (the
        echo servers' messages per CPU-second): the same names and pairs,
        samples taken from sinks[name] once this case has run."""
        d = Case(workload, unit, panel, self.x, self.headline, reference=self.reference)
        for name, _ in self.fns:
            d._add(name, None, self.kind[name], self.series[name])
        d.pairs = [(p, list(b)) for p, b in self.pairs]
        d.filled_by = (self, sinks)
        return d

    def run(self, repeat):
        order = list(self.fns)
        if self.warmup:
            # one untimed run of each first: what a first run pays once
            # (the kernel's worker threads, page-cache pages the host VM has
            # not backed yet) is nobody's per-copy cost
            for name, fn in order:
                try:
                    fn()
                except Exception:   # reported by the timed runs below
                    pass
        for _ in range(repeat):
            for name, fn in order:
                if name in self.notes:
                    continue
                try:
                    self.samples[name].append(fn())
                except Unavailable as exc:
                    self.notes[name] = str(exc)
                except Exception as exc:  # a baseline failing is reported, not fatal
                    self.notes[name] = "failed: %s" % (exc,)
            order = order[1:] + order[:1]   # rotate: nobody always goes first

    def fill(self):
        src, sinks = self.filled_by
        self.notes = dict(src.notes)
        for name, _ in self.fns:
            self.samples[name] = list(sinks.get(name, [])) if src.samples[name] else []

    def stats(self, name):
        """(median, min, max) of a variant's samples, or None."""
        s = self.samples.get(name)
        if name in self.notes or not s:
            return None
        return statistics.median(s), min(s), max(s)

    def ratio(self, name, baseline):
        """(median, min, max) of the per-repetition ratios name / baseline."""
        a, b = self.samples.get(name), self.samples.get(baseline)
        if name in self.notes or baseline in self.notes or not a or not b:
            return None
        rs = [x / y for x, y in zip(a, b) if y]
        if not rs:
            return None
        return statistics.median(rs), min(rs), max(rs)


def measure(cases, repeat):
    t0 = time.time()
    for case in cases:
        if case.filled_by:
            continue
        print("... [%3.0f s] %s" % (time.time() - t0, case.workload), file=sys.stderr, flush=True)
        case.run(repeat)
    for case in cases:
        if case.filled_by:
            case.fill()


def c_prog(binary, *args):
    """A C baseline: run the program, read the `ops_per_sec` line it prints."""
    def run():
        if not os.path.exists(binary):
            raise Unavailable("not built (make bench)")
        out = subprocess.run([binary] + [str(a) for a in args], check=True,
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            key, _, val = line.partition(" ")
            if key == "ops_per_sec":
                return float(val)
        raise RuntimeError("no ops_per_sec in %r" % out)
    return run
