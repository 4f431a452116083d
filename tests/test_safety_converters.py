"""Converters under hostile Python code (issue 18, items 6, 7, 9, 14, 15).

A converter runs Python code: fileno(), __index__, __buffer__ (3.12),
__fspath__, a sequence's iteration.  That code may change what the
converter read before it ran (clear or grow a list being walked, resize a
bytearray already measured, close the ring, register something on it,
open another ring under the same fd number).  These tests play each such
trick on each converter and ask for a clear exception or the right result,
never a crash nor a silently wrong one.  Anything that crashed the
interpreter runs in a child process, so that a regression fails the test
instead of killing pytest.

They also check the memory the kernel is given: madvise only on writable
whole pages of the buffer, futex words of the size their flags give, and
ints that refuse to be truncated.
"""

import asyncio
import ctypes
import mmap
import os
import socket
import struct
import subprocess
import sys
import textwrap

import pytest

import py_io_uring
from py_io_uring import AsyncRing, IoUring
from uring_helpers import prep, recv_fds, wait_one

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.environ.get(
    "PY_IO_URING_BUILD", os.path.join(os.path.dirname(TESTS_DIR), "build")))
PAGE = mmap.PAGESIZE
PY312 = sys.version_info >= (3, 12)
needs_buffer_dunder = pytest.mark.skipif(not PY312, reason="__buffer__ is 3.12+")


def run_child(code, timeout=60):
    """Run code in a fresh interpreter on the build under test; return its
    stdout, failing the test on a crash or a non-zero exit."""
    env = dict(os.environ, PY_IO_URING_BUILD=BUILD)
    prelude = "import sys; sys.path[:0] = [%r, %r]\n" % (BUILD, TESTS_DIR)
    p = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                       capture_output=True, text=True, timeout=timeout, env=env)
    assert p.returncode == 0, "child exited with %d:\n%s\n%s" % (
        p.returncode, p.stdout, p.stderr[-3000:])
    return p.stdout


def need(ring, *ops):
    missing = [op for op in ops if op not in ring.probe()]
    if missing:
        pytest.skip("kernel lacks " + ", ".join(missing))


# --------------------------------------------------------------------------
# 6: a converter that clears the list being walked

# The fd list holds the clearing object first, then many plain fds: the
# list's storage is freed under the walk.  Each case prints what it did.
FD_LIST_CASES = {
    "register_files": """
        ring.register_files(lst)
        print(ring.register_files_update(0, [-1]))          # the table exists
    """,
    "register_files_update": """
        ring.register_files_sparse(1001)
        print(ring.register_files_update(0, lst))
    """,
    "Sqe.prep_files_update": """
        ring.register_files_sparse(1001)
        ring.get_sqe().prep_files_update(lst)
        ring.submit()
        print(ring.wait_cqe().res())
    """,
    "IoUring.prep_files_update": """
        ring.register_files_sparse(1001)
        ring.prep_files_update(lst, user_data="u")
        ring.submit()
        print(ring.wait_cqe().res())
    """,
    "prep_many": """
        ring.register_files_sparse(1001)
        ring.prep_many("files_update", [(lst,)])
        ring.submit()
        print(ring.wait_cqe().res())
    """,
}


@pytest.mark.parametrize("case", sorted(FD_LIST_CASES))
def test_fileno_clearing_the_fd_list(case):
    out = run_child(textwrap.dedent("""
        import os
        from py_io_uring import IoUring
        ring = IoUring(8)
        r, w = os.pipe()
        lst = []
        class F:
            def fileno(self):
                lst.clear()
                return r
        lst[:] = [F()] + [r] * 1000
    """) + textwrap.dedent(FD_LIST_CASES[case]))
    # every one of the 1001 fds went in, as given before the clear
    assert out.split() == (["1"] if case == "register_files" else ["1001"])


def test_index_clearing_the_ancdata_list():
    out = run_child("""
        import os, socket, struct
        from py_io_uring import IoUring
        ring = IoUring(8)
        a, b = socket.socketpair()
        r, w = os.pipe()
        anc = []
        class Level:
            def __index__(self):
                anc.clear()
                return socket.SOL_SOCKET
        anc[:] = [(Level(), socket.SCM_RIGHTS, struct.pack("i", r))] + [
            (socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", w))] * 3
        ring.get_sqe().prep_sendmsg(a, [b"x"], anc)
        ring.submit()
        print(ring.wait_cqe().res())
        msg, anc, flags, addr = b.recvmsg(1, socket.CMSG_LEN(8 * 4))
        print(msg, sum(len(d) // 4 for _, _, d in anc))
    """)
    assert out.split() == ["1", "b'x'", "4"]


def test_index_clearing_the_futexv_list():
    # val and flags take __index__ like every int argument
    out = run_child("""
        import mmap
        from py_io_uring import IoUring
        ring = IoUring(8)
        m = mmap.mmap(-1, mmap.PAGESIZE)
        words = [memoryview(m)[k * 8:k * 8 + 4] for k in range(100)]
        lst = []
        class Val:
            def __index__(self):
                lst.clear()
                return 7            # the word holds 0: EAGAIN at once
        lst[:] = [(words[0], Val())] + [(w, 7, 2) for w in words[1:]]
        ring.get_sqe().prep_futex_waitv(lst)
        ring.submit()
        print(ring.wait_cqe().res())
    """)
    assert out.split() == ["-11"]   # -EAGAIN: the values were compared


BUFFER_LIST_CASES = {
    "prep_writev": ("ring.get_sqe().prep_writev(w, lst, -1)", "writev"),
    "prep_readv": ("os.write(w, bytes(range(40)) * 25)\n"
                   "ring.get_sqe().prep_readv(r, lst, -1)", "readv"),
    "prep_sendmsg": ("ring.get_sqe().prep_sendmsg(a, lst)", "sendmsg"),
    "register_buffers": ("ring.register_buffers(lst)", None),
    # the words: the same 4 bytes of shared memory, value 0 (EAGAIN at once)
    "prep_futex_waitv": ("import mmap; m = mmap.mmap(-1, 4096); B.data = memoryview(m)[:4]\n"
                         "lst[:] = [(B(), 1)] + [(B.data, 1)] * 99\n"
                         "ring.get_sqe().prep_futex_waitv(lst)", "futex_waitv"),
}


@needs_buffer_dunder
@pytest.mark.parametrize("case", sorted(BUFFER_LIST_CASES))
def test_buffer_dunder_clearing_the_buffer_list(case):
    call, op = BUFFER_LIST_CASES[case]
    out = run_child(textwrap.dedent("""
        import os, socket
        from py_io_uring import IoUring
        ring = IoUring(8)
        r, w = os.pipe()
        a, b = socket.socketpair()
        lst = []
        class B:
            data = bytearray(b"z")
            def __buffer__(self, flags):
                lst.clear()
                return memoryview(self.data)
        lst[:] = [B()] + [bytearray(1) for _ in range(999)]
        CALL
        if OP:
            ring.submit()
            print(ring.wait_cqe().res())
        else:
            print("registered")
    """).replace("CALL", call).replace("OP", repr(op)))
    expected = {None: "registered", "futex_waitv": "-11"}.get(op, "1000")
    assert out.split() == [expected]


# --------------------------------------------------------------------------
# 7: sendmsg's ancillary data


def test_ancdata_growing_while_level_converts_does_not_overflow():
    # The reproducer of issue 18: data grows by 100000 bytes after it was
    # measured.  Now it is measured once pinned: the control buffer holds
    # all of it, and the kernel refuses so many fds.
    out = run_child("""
        import socket
        from py_io_uring import IoUring
        ring = IoUring(8)
        a, b = socket.socketpair()
        data = bytearray(4)
        class Lvl:
            def __index__(self):
                data.extend(b"A" * 100000)
                return socket.SOL_SOCKET
        ring.prep_sendmsg(a, [b"x"], [(Lvl(), socket.SCM_RIGHTS, data)])
        ring.submit()
        print(ring.wait_cqe().res() < 0)
    """)
    assert out.split() == ["True"]


def test_ancdata_grown_by_index_is_sent_whole(ring, unix_pair):
    # data grows from one fd to three while `level` converts: the three go
    a, b = unix_pair
    r, w = os.pipe()
    try:
        data = bytearray(struct.pack("i", r))

        class Level:
            def __index__(self):
                data.extend(struct.pack("ii", w, r))
                return socket.SOL_SOCKET

        prep(ring, "sendmsg", a, [b"x"], [(Level(), socket.SCM_RIGHTS, data)])
        ring.submit()
        assert wait_one(ring).getresult() == 1
        msg, fds, _, _ = recv_fds(b, 1, 8)
        assert msg == b"x" and len(fds) == 3
        os.write(fds[1], b"!")
        assert os.read(fds[0], 1) == b"!"
        for fd in fds:
            os.close(fd)
        data.extend(b"1234")   # no longer pinned
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("item", [
    (2 ** 32 + socket.SOL_SOCKET, socket.SCM_RIGHTS),
    (socket.SOL_SOCKET, 2 ** 32 + socket.SCM_RIGHTS),
    (2 ** 31, socket.SCM_RIGHTS),
    (-(2 ** 31) - 1, socket.SCM_RIGHTS),
], ids=["level", "type", "level-2**31", "level-below"])
def test_ancdata_level_and_type_are_not_truncated(ring, unix_pair, item):
    a, _ = unix_pair
    field = "level" if item[0] != socket.SOL_SOCKET else "type"
    with pytest.raises(OverflowError, match=r"prep_sendmsg\(\) argument 'ancdata' "
                                            r"item 0 %s is out of range" % field):
        ring.get_sqe().prep_sendmsg(a, [b"x"], [item + (struct.pack("i", 0),)])
    queued = ring.sq_ready()
    with pytest.raises(OverflowError, match="prep_sendmsg"):
        ring.prep_sendmsg(a, [b"x"], [item + (struct.pack("i", 0),)])
    assert ring.sq_ready() == queued


def test_ancdata_bad_items_name_the_method(ring, unix_pair):
    a, _ = unix_pair
    s = ring.get_sqe()
    with pytest.raises(TypeError, match=r"prep_sendmsg\(\) argument 'ancdata' item 1 "
                                        r"must be a \(level, type, data\) tuple"):
        s.prep_sendmsg(a, [b"x"], [(1, 1, b""), [1, 1, b""]])
    with pytest.raises(TypeError, match=r"prep_sendmsg\(\) argument 'ancdata' item 0 "
                                        r"level must be int, not float"):
        s.prep_sendmsg(a, [b"x"], [(1.0, 1, b"")])
    with pytest.raises(TypeError, match=r"item 0 data must be a bytes-like object"):
        s.prep_sendmsg(a, [b"x"], [(1, 1, "text")])
    with pytest.raises(TypeError, match=r"prep_sendmsg\(\) argument 'ancdata' must be"):
        s.prep_sendmsg(a, [b"x"], 5)


# --------------------------------------------------------------------------
# 9: madvise acts on whole pages: they must be the buffer's own, writable


def madvise_forms():
    """Every way to prepare a madvise: (name, call(buf, advice))."""
    def sqe_form(ring, buf, advice):
        ring.get_sqe().prep_madvise(buf, advice)

    def fast_form(ring, buf, advice):
        ring.prep_madvise(buf, advice, user_data="m")

    def many_form(ring, buf, advice):
        ring.prep_many("madvise", [(buf, advice)])

    def async_form(ring, buf, advice):
        async def main():
            async with AsyncRing(8) as aring:
                aring.madvise(buf, advice)
        asyncio.run(main())

    return [("Sqe", sqe_form), ("IoUring", fast_form), ("prep_many", many_form),
            ("AsyncRing", async_form)]


@pytest.fixture
def anon():
    """Two pages of private anonymous memory, filled with 0x5a."""
    m = mmap.mmap(-1, 2 * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m[:] = b"\x5a" * (2 * PAGE)
    yield m
    m.close()


@pytest.mark.parametrize("form", madvise_forms(), ids=lambda f: f[0])
def test_madvise_part_of_a_page_is_refused(ring, anon, form):
    # MADV_DONTNEED on 1 byte drops the whole page: 4095 bytes not given
    need(ring, "madvise")
    view = memoryview(anon)[:1]
    try:
        # the error names the method called: AsyncRing.madvise(), else prep_madvise()
        name = "madvise" if form[0] == "AsyncRing" else "prep_madvise"
        with pytest.raises(ValueError, match=r"^%s\(\) argument 'buf' must "
                                             r"be whole pages" % name):
            form[1](ring, view, mmap.MADV_DONTNEED)
        ring.submit()
        while ring.in_flight():    # the Sqe form's entry, a NOP now
            wait_one(ring)
    finally:
        view.release()
    assert anon[:] == b"\x5a" * (2 * PAGE)   # nothing was dropped


def test_madvise_unaligned_or_partial_ranges_are_refused(ring, anon):
    need(ring, "madvise")
    mv = memoryview(anon)
    parts = [mv[1:PAGE + 1], mv[:PAGE + 1], mv[PAGE:PAGE + 100]]
    try:
        for part in parts:
            with pytest.raises(ValueError, match="whole pages"):
                ring.get_sqe().prep_madvise(part, mmap.MADV_DONTNEED)
        # whole pages are fine: the second one is dropped, the first kept
        whole = mv[PAGE:]
        parts.append(whole)
        prep(ring, "madvise", whole, mmap.MADV_DONTNEED)
        ring.submit()
        while ring.in_flight():
            c = wait_one(ring)
        assert c.res() == 0
        del c
        assert anon[:PAGE] == b"\x5a" * PAGE and anon[PAGE:] == bytes(PAGE)
    finally:
        for part in parts:
            part.release()
        mv.release()


def test_madvise_of_read_only_memory_is_refused(ring):
    # A 1-byte view of an immutable bytes object, at a page-aligned address:
    # MADV_DONTNEED zeroed the page of Python heap around it.
    need(ring, "madvise")
    blob = b"\x5a" * (3 * PAGE)
    addr = ctypes.cast(ctypes.c_char_p(blob), ctypes.c_void_p).value
    off = -addr % PAGE
    view = memoryview(blob)[off:off + PAGE]
    try:
        with pytest.raises(TypeError, match=r"prep_madvise\(\) argument 'buf' must be a "
                                            r"writable .*not a read-only memoryview"):
            ring.get_sqe().prep_madvise(view, mmap.MADV_DONTNEED)
        with pytest.raises(TypeError, match="prep_madvise"):
            ring.prep_madvise(blob, mmap.MADV_DONTNEED)
    finally:
        view.release()
    assert blob == b"\x5a" * (3 * PAGE)


# --------------------------------------------------------------------------
# 14: futex words hold the size their flags give


@pytest.fixture
def shared():
    m = mmap.mmap(-1, PAGE)
    mv = memoryview(m)
    views = []
    yield mv, views
    for v in views:
        v.release()
    mv.release()
    m.close()


@pytest.mark.parametrize("op", ["futex_wait", "futex_wake"])
@pytest.mark.parametrize("span,flags", [
    ((0, 0), 2), ((0, 3), 2), ((2, 6), 2), ((0, 4), 3), ((4, 12), 3), ((1, 3), 1),
], ids=["empty-u32", "3-bytes-u32", "misaligned-u32", "4-bytes-u64",
        "misaligned-u64", "misaligned-u16"])
def test_futex_word_too_small_or_misaligned_is_refused(ring, shared, op, span, flags):
    mv, views = shared
    word = mv[span[0]:span[1]]
    views.append(word)
    with pytest.raises(ValueError, match=r"prep_%s\(\) argument 'futex' must hold a "
                                         r"%d-byte futex word" % (op, 1 << flags)):
        getattr(ring.get_sqe(), "prep_" + op)(word, 0, flags=flags)
    queued = ring.sq_ready()
    with pytest.raises(ValueError, match="prep_" + op):
        getattr(ring, "prep_" + op)(word, 0, flags=flags)
    assert ring.sq_ready() == queued


def test_futex_wait_on_an_empty_slice_is_refused_not_read_past(ring, shared):
    # the kernel read the 4 bytes past a 0-length slice (EAGAIN: 0 != 5)
    need(ring, "futex_wait")
    mv, views = shared
    views.append(mv[8:8])
    with pytest.raises(ValueError, match="4-byte futex word"):
        ring.get_sqe().prep_futex_wait(views[-1], 5)


def test_futex_word_of_the_flags_size_is_accepted(ring, shared):
    need(ring, "futex_wait")
    mv, views = shared
    views.append(mv[4:8])      # FUTEX2_SIZE_U32: 4 bytes, 4-aligned
    prep(ring, "futex_wait", views[-1], 9)
    ring.submit()
    assert wait_one(ring).res() == -11   # the word holds 0, not 9: EAGAIN
    views.append(mv[8:16])     # a longer buffer: its first word is used
    prep(ring, "futex_wait", views[-1], 9)
    ring.submit()
    assert wait_one(ring).res() == -11


@pytest.mark.parametrize("item,exc,match", [
    (lambda w: (w[0:0], 0), ValueError, "item 0 must hold a 4-byte futex word"),
    (lambda w: (w[2:6], 0), ValueError, "item 0 must hold a 4-byte futex word"),
    (lambda w: (w[0:4], 0, 3), ValueError, "item 0 must hold a 8-byte futex word"),
    (lambda w: (w[0:4], 0, 2 ** 32 + 2), OverflowError, "item 0 flags is out of range"),
    (lambda w: (w[0:4], -1), OverflowError, "item 0 val is out of range"),
    (lambda w: (w[0:4], 2 ** 64), OverflowError, "item 0 val is out of range"),
    (lambda w: [w[0:4], 0], TypeError, r"item 0 must be a \(futex, val\[, flags\]\) tuple"),
    (lambda w: ("text", 0), TypeError, "item 0 futex must be a bytes-like object"),
], ids=["empty", "misaligned", "u64-in-4-bytes", "flags-2**32+2", "val-negative",
        "val-2**64", "list-item", "str-word"])
def test_futex_waitv_items_are_checked(ring, shared, item, exc, match):
    mv, views = shared
    it = item(mv)
    views.extend(x for x in it if isinstance(x, memoryview))
    with pytest.raises(exc, match=r"prep_futex_waitv\(\) argument 'futexes' " + match):
        ring.get_sqe().prep_futex_waitv([it])


# --------------------------------------------------------------------------
# 15: what is wrong with a refused buffer


def test_non_contiguous_writable_buffer_is_not_called_read_only(ring, pipe, unix_pair):
    strided = memoryview(bytearray(16))[::2]
    s = ring.get_sqe()
    for call, what in [
        (lambda: s.prep_read(pipe[0], strided, 0), r"prep_read\(\) argument 'buf'"),
        (lambda: s.prep_write(pipe[1], strided, 0), r"prep_write\(\) argument 'data'"),
        (lambda: s.prep_readv(pipe[0], [bytearray(1), strided], 0),
         r"prep_readv\(\) argument 'buffers' item 1"),
        (lambda: s.prep_provide_buffers(strided, 1, 1), r"prep_provide_buffers\(\) "
                                                        r"argument 'buf'"),
        (lambda: ring.register_buffers([strided]),
         r"register_buffers\(\) argument 'buffers' item 0"),
    ]:
        with pytest.raises(TypeError, match=what + r" must be .*C-contiguous.*not a "
                                                   r"non-contiguous memoryview"):
            call()
    readonly = memoryview(bytearray(16)).toreadonly()
    with pytest.raises(TypeError, match=r"prep_read\(\) argument 'buf' must be a "
                                        r"writable .*not a read-only memoryview"):
        s.prep_read(pipe[0], readonly, 0)
    with pytest.raises(TypeError, match=r"register_buffers\(\) argument 'buffers' "
                                        r"item 1 .*read-only bytes"):
        ring.register_buffers([bytearray(8), b"12345678"])


# --------------------------------------------------------------------------
# Beyond the list: code run by a converter that closes the ring, or
# registers on it, between the converter's read and the use of it


def test_fileno_closing_the_ring_mid_fd_list(run_py):
    # the fd array lived in the record, which the teardown freed under the
    # walk (AddressSanitizer: heap-use-after-free in pu_conv_fd_list)
    out = run_child("""
        import os
        from py_io_uring import IoUring
        ring = IoUring(8)
        ring.register_files_sparse(64)
        r, w = os.pipe()
        class F:
            def fileno(self):
                ring.queue_exit()
                return r
        sqe = ring.get_sqe()
        try:
            sqe.prep_files_update([r, F()] + [r] * 60)
        except RuntimeError as e:
            print("closed" if "ring was closed" in str(e) else e)
    """)
    assert out.split() == ["closed"]


REGISTER_CASES = {
    "register_files": "ring.register_files([F()])",
    "register_files_update": "ring.register_files_update(0, [F()])",
    "register_files_update-offset": "ring.register_files_update(Idx(0), [r])",
    "unregister_personality": "ring.unregister_personality(Idx(pid))",
    "setup_buf_ring": "ring.setup_buf_ring(Idx(3), 8, 64)",
}


@pytest.mark.parametrize("case", sorted(REGISTER_CASES))
def test_register_methods_check_the_ring_after_converting(case):
    # The argument's code closes the ring and opens another, which gets
    # the same fd number: the registration went to that other ring.
    out = run_child("""
        import os
        from py_io_uring import IoUring
        ring = IoUring(8)
        ring.register_files_sparse(4)
        r, w = os.pipe()
        other = None
        pid = None
        def swap():
            global other, pid
            if other is None:
                fd = ring.fileno()
                ring.queue_exit()
                other = IoUring(8)
                assert other.fileno() == fd
                other.register_files_sparse(4)
                pid = other.register_personality()
        class F:
            def fileno(self):
                swap()
                return r
        class Idx:
            def __init__(self, v):
                self.v = v
            def __index__(self):
                swap()
                return self.v if self.v is not None else pid
        if "personality" in %r:
            pid = ring.register_personality()
        try:
            %s
        except ValueError as e:
            print("refused" if "closed" in str(e) else e)
        else:
            print("done on the other ring")
        # the other ring is untouched: its slot 0 is still empty, its
        # personality still registered, its group 3 has no ring
        print(other.register_files_update(0, [-1]))
        other.unregister_personality(pid)
        other.setup_buf_ring(3, 8, 64)
        print("clean")
    """ % (case, REGISTER_CASES[case].replace("Idx(pid)", "Idx(None)")))
    assert out.split() == ["refused", "1", "clean"]


def test_provide_buffers_describes_its_own_memory(ring, unix_pair):
    # nr's __index__ provides other memory first: the outer call's receive
    # must still read the bytes from its own memory
    need(ring, "provide_buffers", "recv")
    a, b = unix_pair
    mine, other = bytearray(64), bytearray(b"-" * 64)

    class Nr:
        def __index__(self):
            ring.prep_provide_buffers(other, 1, 8, user_data="other")
            return 1

    ring.prep_provide_buffers(mine, Nr(), 7, user_data="mine")
    ring.submit()
    got = sorted(wait_one(ring).get_data() for _ in range(2))
    assert got == ["mine", "other"]
    a.sendall(b"hello")
    s = prep(ring, "recv", b, 64)
    s.set_flags(py_io_uring.IOSQE_BUFFER_SELECT)
    s.set_buf_group(7)
    ring.submit()
    c = wait_one(ring)
    assert c.res() == 5
    assert mine[:5] == b"hello"
    assert c.getresult() == b"hello"


@needs_buffer_dunder
def test_buffer_dunder_closing_the_ring_leaves_nothing_pinned():
    out = run_child("""
        from py_io_uring import IoUring
        ring = IoUring(8)
        pool = bytearray(64)
        class B:
            def __buffer__(self, flags):
                ring.queue_exit()
                return memoryview(pool)
        try:
            ring.prep_provide_buffers(B(), 1, 1)
        except (RuntimeError, ValueError) as e:
            print("refused")
        pool.extend(b"x")        # not pinned by a ring that is gone
        print(len(pool))
        ring2 = IoUring(8)
        iov = [bytearray(1) for _ in range(40)]
        class C:
            def __buffer__(self, flags):
                ring2.queue_exit()
                return memoryview(bytearray(1))
        try:
            ring2.get_sqe().prep_readv(0, iov + [C()] + iov, 0)
        except RuntimeError as e:
            print("refused")
    """)
    assert out.split() == ["refused", "65", "refused"]
