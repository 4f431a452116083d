"""The leak hunt behind `make leaks`: a pytest plugin, loaded by conftest.py
when PY_IO_URING_LEAKS=1, that runs every test five times under a debug
interpreter and fails the session when, between the middle repetitions,
the total reference count grows every time, the number of allocated blocks
grows every time by more than BLOCK_NOISE, or the number of open file
descriptors grows at all.

The first run warms caches (interned strings, imported modules, the
module's method tables); a real leak grows on every repetition.
"""

import array
import gc
import os
import sys

import pytest
from _pytest.runner import runtestprotocol

RUNS = max(5, int(os.environ.get("PY_IO_URING_LEAK_RUNS", "5")))
# CPython 3.11 itself keeps a few dozen blocks per run when a test looks up
# attributes by freshly built names (with the reference count unchanged);
# references and fds are exact, blocks get this much slack per run.
BLOCK_NOISE = 64
_leaks = []


def _snapshot(snaps, n):
    """Store the counts in a preallocated array: keeping them as Python ints
    would itself add references between snapshots."""
    gc.collect()
    gc.collect()
    snaps[3 * n] = sys.gettotalrefcount()
    snaps[3 * n + 1] = sys.getallocatedblocks()
    snaps[3 * n + 2] = len(os.listdir("/proc/self/fd"))


def _growth(snaps, n, k):
    return [snaps[3 * (j + 1) + k] - snaps[3 * j + k] for j in range(n - 1)]


def _freeze_survivors():
    """Move every object alive now into the collector's permanent
    generation. The two full collections per snapshot otherwise walk the
    whole heap of pytest, hypothesis and every imported module each time
    (27 ms a collection under the debug interpreter: 80% of the leak run);
    frozen objects are still counted by the totals, and what a test makes
    after this is collected as before."""
    gc.collect()
    gc.freeze()


def pytest_collection_finish(session):
    _freeze_survivors()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    if item.get_closest_marker("no_leakcheck"):
        return None
    # what earlier tests left alive (caches, module-scoped fixtures) joins
    # the frozen heap, so each collection walks this test's objects only
    _freeze_survivors()
    item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    snaps = array.array("q", [0] * (3 * RUNS))
    taken = 0
    for run in range(RUNS):
        # nextitem=None tears every fixture down, so each run starts afresh;
        # only the last run is reported
        last = run == RUNS - 1
        reports = runtestprotocol(item, nextitem=nextitem if last else None, log=last)
        if any(r.failed or r.skipped for r in reports):
            if not last:   # show what happened
                runtestprotocol(item, nextitem=nextitem, log=True)
            break
        if run >= 1 and not last:   # the first run warms caches up
            _snapshot(snaps, taken)
            taken += 1
    if taken == RUNS - 2:
        refs, blocks, fds = (_growth(snaps, taken, k) for k in range(3))
        if (all(d > 0 for d in refs) or all(d > BLOCK_NOISE for d in blocks)
                or any(d > 0 for d in fds)):
            _leaks.append("%s: references %s, blocks %s, fds %s"
                          % (item.nodeid, refs, blocks, fds))
    item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True


def pytest_terminal_summary(terminalreporter):
    if _leaks:
        terminalreporter.section("leaks (growth between repetitions)")
        for line in _leaks:
            terminalreporter.write_line(line)
    else:
        terminalreporter.write_line("leak check: no growth in references, blocks "
                                    "or fds over %d runs of each test" % RUNS)


def pytest_sessionfinish(session, exitstatus):
    if _leaks:
        session.exitstatus = 1
