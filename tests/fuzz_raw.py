"""atheris fuzzing of raw SQE field values, for `make fuzz` (fuzz build only).

Each input makes a ring and a set of fds the fuzzer owns (a pipe with data
in it, a temporary file, a connected socketpair, -1, a number just closed
and one never opened), then runs a random program: acquire entries and fill
every field with random values through ``Sqe._fuzz_prep_raw`` (which exists
only in the fuzz build, src/fuzz/fuzz_raw.c: pointer fields land in a scratch
block the record owns, so the kernel can only touch that), submit, wait,
peek, mark seen, cancel by user_data, tear down.  Throughout and at the end
it checks what the runtime promises:

* every completion carries the token of an entry of ours and that entry's
  user_data; none arrives after the entry's final one;
* after cancelling everything, ``in_flight()`` returns to 0 and every entry
  is done, each with exactly one final completion, or none only where the
  kernel posts none (IOSQE_CQE_SKIP_SUCCESS, or cancelled with its link
  chain);
* ``queue_exit()`` with entries in flight leaves every entry done;
* under the fuzz build's ASan and UBSan, nothing reads or writes memory it
  should not.

    make fuzz-ci     # or by hand, see the Makefile's FUZZ_ENV
"""

import atexit
import os
import resource
import shutil
import socket
import sys
import tempfile
import time

import atheris

sys.path.insert(0, os.environ.get("PY_IO_URING_BUILD",
                                  os.path.join(os.path.dirname(__file__), "..", "build-fuzz")))
import py_io_uring  # noqa: E402
from py_io_uring import IoUring, SubmissionQueueFull  # noqa: E402

if not hasattr(py_io_uring.Sqe, "_fuzz_prep_raw"):
    sys.exit("fuzz_raw.py needs the fuzz build (make fuzz builds build-fuzz/)")

LINK = py_io_uring.IOSQE_IO_LINK | py_io_uring.IOSQE_IO_HARDLINK
SKIP = py_io_uring.IOSQE_CQE_SKIP_SUCCESS
F_MORE = py_io_uring.IORING_CQE_F_MORE
CANCEL_EVERYTHING = py_io_uring.IORING_ASYNC_CANCEL_ANY | py_io_uring.IORING_ASYNC_CANCEL_ALL
# the opcodes src/fuzz/fuzz_raw.c prepares (it refuses the rest with ValueError)
OPCODES = [o for o in range(64) if o not in (19, 25, 31, 35, 36, 37, 38, 39,
                                               42, 44, 45, 46, 50, 54, 58, 62)]
FD_MAKERS = (13, 18, 28)   # accept, openat, openat2: a result >= 0 is an fd
INTERESTING = [0, 1, 2, 7, 8, 0x7f, 0x80, 0xff, 0x100, 0xfff, 0x1000, 0x7fff,
               0xffff, 0x10000, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63,
               2**64 - 1, 2**64 - 4096]
HIGH_FD = resource.getrlimit(resource.RLIMIT_NOFILE)[0] - 1
TMPDIR = tempfile.mkdtemp(prefix="pu-fuzz-raw-")
atexit.register(shutil.rmtree, TMPDIR, True)
TMPFILE = os.path.join(TMPDIR, "file")
TRACE = os.environ.get("PU_FUZZ_RAW_TRACE")   # replaying a crash: print the program


class Rec:
    __slots__ = ("sqe", "token", "ud", "flags", "opcode", "finals", "may_be_silent")

    def __init__(self, sqe, opcode):
        self.sqe = sqe
        self.token = object()
        sqe.set_data(self.token)
        self.ud = sqe.user_data()
        self.flags = 0
        self.opcode = opcode
        self.finals = 0
        self.may_be_silent = False


def num(fdp, nbytes):
    k = fdp.ConsumeIntInRange(0, 3)
    if k == 0:
        return fdp.ConsumeIntInRange(0, 8)
    if k == 1:
        return fdp.PickValueInList(INTERESTING)
    return fdp.ConsumeUInt(nbytes)


class Program:
    def __init__(self, fdp):
        self.fdp = fdp
        self.ring = IoUring(fdp.PickValueInList([2, 4, 8, 32]))
        r, w = os.pipe()
        os.write(w, b"x" * fdp.ConsumeIntInRange(0, 100))
        a, b = socket.socketpair()
        a.send(b"y" * fdp.ConsumeIntInRange(0, 100))
        f = os.open(TMPFILE, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(f, b"z" * 64)
        closed = os.dup(f)
        os.close(closed)   # opened after the ring: no ring takes the number
        self.socks = (a, b)
        self.owned = [r, w, f]
        self.fds = [r, w, f, a.fileno(), b.fileno(), -1, closed, HIGH_FD]
        self.recs = {}        # id(token) -> Rec
        self.order = []       # every Rec, in acquisition order
        self.batch = []       # acquired since the last submit

    # ---------------------------------------------------------------- acts
    def acquire(self, opcode):
        try:
            sqe = self.ring.get_sqe()
        except SubmissionQueueFull:
            self.submit()
            sqe = self.ring.get_sqe()
        rec = Rec(sqe, opcode)
        self.recs[id(rec.token)] = rec
        self.order.append(rec)
        self.batch.append(rec)
        return rec

    def raw(self):
        fdp = self.fdp
        opcode = fdp.PickValueInList(OPCODES) if fdp.ConsumeProbability() < 0.95 \
            else fdp.ConsumeIntInRange(0, 300)
        flags = fdp.ConsumeIntInRange(0, 0x7f) if fdp.ConsumeBool() else fdp.ConsumeIntInRange(0, 0xff)
        if fdp.ConsumeBool():
            flags &= LINK | SKIP   # chains are where the bookkeeping is subtle
        target = fdp.PickValueInList(self.order).ud if self.order and fdp.ConsumeBool() else None
        fields = [
            opcode,
            flags,
            num(fdp, 2),                                     # ioprio
            fdp.PickValueInList(self.fds),                   # fd
            num(fdp, 8),                                     # off
            target if target is not None else num(fdp, 8),   # addr
            num(fdp, 4),                                     # len
            num(fdp, 4),                                     # op_flags
            num(fdp, 2),                                     # buf_index
            num(fdp, 2) if fdp.ConsumeProbability() < 0.1 else 0,   # personality
            fdp.PickValueInList(self.fds) if fdp.ConsumeBool() else num(fdp, 4),
            num(fdp, 8),                                     # addr3
            fdp.ConsumeUInt(8),                              # seed of META
        ]
        rec = self.acquire(opcode)
        if TRACE:
            print("raw", rec.ud, fields, "fds", self.fds, file=sys.stderr)
        try:
            rec.sqe._fuzz_prep_raw(*fields)
        except ValueError:
            assert opcode not in OPCODES or opcode == 40, fields   # excluded, or msg_ring to itself
            return
        rec.flags = flags

    def cancel(self):
        if not self.order:
            return
        target = self.fdp.PickValueInList(self.order)
        how = self.fdp.PickValueInList([0, py_io_uring.IORING_ASYNC_CANCEL_ALL, CANCEL_EVERYTHING])
        self.acquire(-1).sqe.prep_cancel64(0 if how == CANCEL_EVERYTHING else target.ud, how)

    def submit(self):
        # a record may end without a completion of its own only when the
        # kernel posts none: it skips its success, or the entry before it
        # in the chain failed with its link chain cancelled
        prev = 0
        for rec in self.batch:
            rec.may_be_silent = bool(rec.flags & SKIP) or bool(prev & LINK)
            prev = rec.flags
        self.batch = []
        if TRACE:
            print("submit", file=sys.stderr)
        try:
            self.ring.submit()
        except OSError:
            pass   # io_uring_enter's own errors (EBUSY, EAGAIN): entries stay queued

    def handle(self, c):
        if TRACE:
            print("cqe", c.user_data(), c.res(), c.flags(), file=sys.stderr)
        token = c.get_data()
        rec = self.recs.get(id(token))
        assert rec is not None and rec.token is token, \
            "completion of no entry of ours: user_data=%#x res=%d flags=%#x" % (c.user_data(), c.res(), c.flags())
        assert c.user_data() == rec.ud, (c.user_data(), rec.ud)
        assert rec.finals == 0, "completion after the final one: op %d user_data=%#x res=%d flags=%#x" % (
            rec.opcode, rec.ud, c.res(), c.flags())
        if not c.flags() & F_MORE:
            rec.finals = 1
        if rec.opcode in FD_MAKERS and c.res() >= 0:
            os.close(c.res())
        self.ring.cqe_seen(c)

    def reap(self, wait):
        c = self.ring.wait_cqe(timeout=0.002) if wait else self.ring.peek_cqe()
        if c is not None:
            self.handle(c)

    # ---------------------------------------------------------------- ends
    def all_done(self, where):
        for rec in self.order:
            assert " done " in repr(rec.sqe), "%s: op %d left %r" % (where, rec.opcode, rec.sqe)

    def drain(self):
        ring = self.ring
        deadline = time.monotonic() + 10
        last_cancel = 0.0
        while ring.in_flight() > 0 or ring.cq_ready() > 0:
            now = time.monotonic()
            assert now < deadline, "in_flight() stays %d after cancelling everything: %r" % (
                ring.in_flight(), [r.sqe for r in self.order if " done " not in repr(r.sqe)])
            if now - last_cancel > 0.2 and ring.in_flight() > 0:
                self.acquire(-1).sqe.prep_cancel64(0, CANCEL_EVERYTHING)
                last_cancel = now
            self.submit()   # also entries the kernel left in the SQ
            self.reap(wait=True)
        self.all_done("after cancelling")
        for rec in self.order:
            assert rec.finals == 1 or rec.may_be_silent, \
                "op %d flags %#x: no final completion" % (rec.opcode, rec.flags)

    def close(self):
        self.ring.queue_exit()
        for fd in self.owned:
            os.close(fd)
        for s in self.socks:
            s.close()


@atheris.instrument_func
def one_input(data):
    fdp = atheris.FuzzedDataProvider(data)
    p = Program(fdp)
    try:
        for _ in range(fdp.ConsumeIntInRange(1, 24)):
            act = fdp.ConsumeIntInRange(0, 9)
            if act <= 3:
                p.raw()
            elif act == 4:
                p.cancel()
            elif act <= 6:
                p.submit()
            elif act == 7:
                p.reap(wait=True)
            elif act == 8:
                p.reap(wait=False)
            else:
                p.submit()
                p.ring.queue_exit()   # teardown with whatever is in flight
                p.all_done("after queue_exit")
                return
        p.submit()
        p.drain()
    finally:
        p.close()


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
