"""The four forms of one operation, so that a behaviour is written once and
runs through each of them (the `form` fixture of conftest.py):

  sqe    liburing's own shape: ring.get_sqe(); sqe.prep_NAME(...);
         sqe.set_data(ud); ring.submit(); ring.wait_cqe(); ring.cqe_seen()
  fast   ring.prep_NAME(..., user_data=ud); ring.submit(); ring.reap()
  many   ring.prep_many("NAME", [(...)], user_data=[ud]); ring.submit();
         ring.reap(columns=True)
  async  await AsyncRing().NAME(...) on a fresh asyncio loop

Form.run(ring, op, *args, **kwargs) queues the one operation, submits it,
waits (bounded) for its completion and returns (result, flags) as the fast
form's reap() gives them: the value Cqe.getresult() makes on success (bytes,
an int, a stat_result, ...), the negative errno as an int on failure.  The
sqe form also checks that getresult() raises the OSError of that errno; the
three ring forms check that the completion carries the user data given.
AsyncRing gives no flags: its flags are None (Form.noflags is what a
completion without flags looks like in the form, 0 or None).  An AsyncRing
op of `async peer` mode gives (fd, address), as AsyncRing does.

The op's arguments are ops.def's, read through the generator's own model
(gen/model.py), which also says which ops AsyncRing has (`async` mode): a
form that does not apply skips with the reason (Form.skip_unless).
"""

import asyncio
import errno
import os
import sys
import time

import pytest

from uring_helpers import REPO, WAIT

FORMS = ("sqe", "fast", "many", "async")

# the keyword-only arguments every form takes besides the op's (the fast
# forms' user_data is Form.run's own)
COMMON_KW = ("sqe_flags", "buf_group", "personality")


def _load_model():
    """ops.def through gen/model.py (the generator's parser and checks)."""
    gen = os.path.join(REPO, "gen")
    sys.path.insert(0, gen)
    try:
        import model  # gen/ is not a package: its modules import each other by name
    finally:
        sys.path.remove(gen)
    return model.load(os.path.join(REPO, "ops.def"), os.path.join(REPO, "src", "methods.def"))


MODEL = _load_model()
OPS = {op.name: op for op in MODEL.ops}
# interned method names: fresh strings per call would look like a leak to
# make leaks (the type attribute cache keeps them)
_PREP = {name: sys.intern("prep_" + name) for name in OPS}
_AIO = {name: sys.intern(name) for name in OPS}


def positional(op, args, kwargs):
    """The op's arguments as one positional tuple (prep_many takes tuples):
    kwargs placed by ops.def's order, skipped optional ones by default."""
    spec = OPS[op].args
    out = list(args)
    if not kwargs:
        return tuple(out)
    kwargs = dict(kwargs)
    for a in spec[len(args):]:
        if not kwargs:
            break
        if a.name in kwargs:
            out.append(kwargs.pop(a.name))
        elif a.required:
            raise TypeError("%s: missing %s" % (op, a.name))
        else:
            out.append(a.default)
    if kwargs:
        raise TypeError("%s: unknown arguments %r" % (op, sorted(kwargs)))
    return tuple(out)


def _errno_of(exc):
    assert isinstance(exc, OSError), repr(exc)
    assert exc.errno, repr(exc)
    return -exc.errno


class Form:
    name = None
    noflags = 0
    raises = OSError

    def __repr__(self):
        return "<form %s>" % self.name

    def skip_unless(self, op):
        """Skip the test when this form has no way to run op."""

    def run(self, ring, op, *args, user_data="ud", setup=None, after_submit=None, raises=OSError,
            **kwargs):
        """Queue op(*args, **kwargs) (common keywords sqe_flags, buf_group,
        personality included), submit, wait; return (result, flags).
        setup(r) runs first on the IoUring the form uses (registrations);
        after_submit(r) once the operation reached the kernel.  A failure
        must raise `raises` (an OSError subclass) where the form raises:
        Cqe.getresult() in the sqe form, the await in the async form."""
        self.skip_unless(op)
        common = {k: kwargs.pop(k) for k in COMMON_KW if k in kwargs}
        self.raises = raises
        return self._run(ring, op, args, kwargs, common, user_data, setup, after_submit)

    def next(self, ring):
        """(result, flags) of the next completion of the ring (a multishot
        op's next one, a zero-copy send's notification), reaped in the
        form's own way; bounded."""
        _wait_unseen(ring, time.monotonic() + WAIT)
        return self._next(ring)


def _wait_unseen(ring, deadline):
    """Wait (bounded) for a completion to be ready, leaving it unseen."""
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "no completion within %s s" % WAIT
        if ring.wait_cqe(timeout=left) is not None:
            return


class SqeForm(Form):
    name = "sqe"

    def _run(self, ring, op, args, kwargs, common, user_data, setup, after_submit):
        if setup is not None:
            setup(ring)
        sqe = ring.get_sqe()
        getattr(sqe, _PREP[op])(*args, **kwargs)
        sqe.set_data(user_data)
        if common.get("sqe_flags"):
            sqe.set_flags(common["sqe_flags"])
        if common.get("buf_group"):
            sqe.set_buf_group(common["buf_group"])
        if common.get("personality"):
            sqe.set_personality(common["personality"])
        del sqe
        assert ring.submit() == 1
        if after_submit is not None:
            after_submit(ring)
        _wait_unseen(ring, time.monotonic() + WAIT)
        return self._next(ring, user_data)

    def _next(self, ring, user_data=None):
        cqe = ring.wait_cqe(timeout=0)
        assert cqe is not None
        try:
            if user_data is not None:
                assert cqe.get_data() is user_data
            res, flags = cqe.res(), cqe.flags()
            if res >= 0:
                return cqe.getresult(), flags
            try:
                cqe.getresult()
            except OSError as e:
                assert isinstance(e, self.raises), (type(e), self.raises)
                assert e.errno == -res, (e.errno, res)
            else:
                pytest.fail("getresult() of res %d did not raise" % res)
            return res, flags
        finally:
            ring.cqe_seen(cqe)


class FastForm(Form):
    name = "fast"

    def _run(self, ring, op, args, kwargs, common, user_data, setup, after_submit):
        if setup is not None:
            setup(ring)
        getattr(ring, _PREP[op])(*args, user_data=user_data, **kwargs, **common)
        assert ring.submit() == 1
        if after_submit is not None:
            after_submit(ring)
        _wait_unseen(ring, time.monotonic() + WAIT)
        return self._next(ring, user_data)

    def _next(self, ring, user_data=None):
        [(ud, res, flags)] = ring.reap(1)
        if user_data is not None:
            assert ud is user_data
        return res, flags


class ManyForm(Form):
    name = "many"

    def _run(self, ring, op, args, kwargs, common, user_data, setup, after_submit):
        if setup is not None:
            setup(ring)
        assert ring.prep_many(op, [positional(op, args, kwargs)], user_data=[user_data], **common) == 1
        assert ring.submit() == 1
        if after_submit is not None:
            after_submit(ring)
        _wait_unseen(ring, time.monotonic() + WAIT)
        return self._next(ring, user_data)

    def _next(self, ring, user_data=None):
        uds, res, flags = ring.reap(1, columns=True)
        assert len(uds) == 1
        if user_data is not None:
            assert uds[0] is user_data
        return res[0], flags[0]


class AsyncForm(Form):
    name = "async"
    noflags = None

    def skip_unless(self, op):
        mode = OPS[op].aio
        if mode == "none":
            pytest.skip("AsyncRing has no %s: it names an Sqe or a user_data (async none)" % op)
        if mode == "iter":
            pytest.skip("AsyncRing gives %s as an async iterator of completions, "
                        "not one result (async iter)" % op)

    def next(self, ring):
        pytest.fail("AsyncRing hands out one result per await: no next completion")

    def _run(self, ring, op, args, kwargs, common, user_data, setup, after_submit):
        from py_io_uring import AsyncRing

        async def main():
            async with AsyncRing(8) as aring:
                if setup is not None:
                    setup(aring.get_ring())
                fut = asyncio.ensure_future(getattr(aring, _AIO[op])(*args, **kwargs, **common))
                try:
                    if after_submit is not None:
                        await asyncio.sleep(0)
                        aring.flush()
                        after_submit(aring.get_ring())
                    return await asyncio.wait_for(fut, WAIT)
                except OSError as e:
                    assert isinstance(e, self.raises), (type(e), self.raises)
                    return _errno_of(e)

        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(main()), None
        finally:
            loop.close()


_FORMS = {f.name: f for f in (SqeForm(), FastForm(), ManyForm(), AsyncForm())}


def get(name):
    return _FORMS[name]


def errno_name(res):
    """'-EBADF' for -9, for messages."""
    if isinstance(res, int) and res < 0:
        return "-" + errno.errorcode.get(-res, str(-res))
    return repr(res)
