"""Argument kinds: one converter class per kind of Python argument.

Each kind knows the C variables it declares, the runtime converter
(src/ops/convert.c, src/ops/convert_struct.c) that fills them, what it pins into the operation's record,
its type in the .pyi stub and how it reads in the docs.  An ops.def entry
names a kind per argument; a new operation whose arguments fit existing
kinds needs no C at all.
"""

import ast
from typing import Dict, List, Optional

INT_RANGES = {
    "u32": (0, 2**32 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "u64": (0, 2**64 - 1),
    "msg_data": (0, 2**63 - 1),
    "offset": (-1, 2**63 - 1),
}


class Kind:
    name = ""
    pyi = "object"
    text = ""              # for the docs: what the argument accepts
    ctype = ""             # the main C variable's type
    length = False         # also declares NAME_len (unsigned or socklen_t)
    len_type = "unsigned"
    pins = False           # converter takes the record (pins into it)
    param_kind: Optional[str] = None  # kind of the named argument
    param_later = False    # the named argument comes later: c_check() runs
                           # after every converter, on the converted values
    allow_default = False

    def __init__(self, param: Optional[str] = None) -> None:
        self.param = param

    # C variables -----------------------------------------------------
    def cname(self, arg: str) -> str:
        return arg

    def c_names(self, arg: str) -> List[str]:
        names = [self.cname(arg)]
        if self.length:
            names.append(arg + "_len")
        return names

    def c_decls(self, arg: str, default: object) -> List[str]:
        sep = "" if self.ctype.endswith("*") else " "
        decls = ["%s%s%s = %s;" % (self.ctype, sep, self.cname(arg),
                                   self.c_default(default))]
        if self.length:
            decls.append("%s %s_len = 0;" % (self.len_type, arg))
        return decls

    def c_default(self, default: object) -> str:
        return "NULL" if self.ctype.endswith("*") else "0"

    def c_convert(self, spec: str, index: int, arg: str,
                  param_cname: Optional[str]) -> str:
        out = ["&" + self.cname(arg)]
        if self.length:
            out.append("&%s_len" % arg)
        lead = "&%s, %d, " % (spec, index)
        if self.pins:
            lead += "rec, "
        extra = (", " + param_cname) if param_cname else ""
        return "pu_conv_%s(%sargv[%d]%s, %s)" % (
            self.name, lead, index, extra, ", ".join(out))

    def c_check(self, spec: str, index: int, arg: str, param_cname: str) -> str:
        """For param_later kinds: the C call checking arg against its param."""
        raise NotImplementedError

    # defaults ----------------------------------------------------------
    def check_default(self, value: object) -> Optional[str]:
        """None when value is an acceptable default, else the reason."""
        if not self.allow_default:
            return "kind '%s' takes no default" % self.name
        return None


class IntKind(Kind):
    allow_default = True
    pyi = "int"

    def check_default(self, value: object) -> Optional[str]:
        lo, hi = INT_RANGES[self.name]
        if type(value) is not int:
            return "default of kind '%s' must be an int" % self.name
        if not lo <= value <= hi:
            return "default %r is out of range for kind '%s'" % (value, self.name)
        return None

    def c_default(self, default: object) -> str:
        if default is None:
            return "0"
        if self.name in ("u64", "msg_data", "offset"):
            return "(__u64)%dLL" % default
        return "%d" % default


class U32(IntKind):
    name = "u32"
    ctype = "unsigned"
    text = "int, 0 to 2**32-1"


class I32(IntKind):
    name = "i32"
    ctype = "int"
    text = "int, -2**31 to 2**31-1"


class U64(IntKind):
    name = "u64"
    ctype = "__u64"
    text = "int, 0 to 2**64-1"


class Bits(IntKind):
    """Flags from a fixed set: bits(A|B) takes any of A and B, and refuses
    the other bits with ValueError (the kernel would read them as
    something else: IORING_RECV_MULTISHOT in a one-shot recv's ioprio)."""
    name = "bits"
    ctype = "unsigned"
    param_kind = "constants"

    def check_default(self, value: object) -> Optional[str]:
        return None if value == 0 else "a bits default can only be 0"

    def c_convert(self, spec: str, index: int, arg: str,
                  param_cname: Optional[str]) -> str:
        return 'pu_conv_bits(&%s, %d, argv[%d], (%s), "%s", &%s)' % (
            spec, index, index, self.param, self.param.replace("|", " | "),
            self.cname(arg))

    @property
    def text(self) -> str:  # type: ignore[override]
        return "0 or any of %s" % ", ".join(self.param.split("|"))


class MsgData(IntKind):
    """The user_data a message posts on another ring: the top bit is the
    library's own (records carry it), so no message can end a record."""
    name = "msg_data"
    ctype = "__u64"
    text = ("int, 0 to 2**63-1 (user_data with the top bit set names this "
            "library's own operations)")


class Offset(IntKind):
    name = "offset"
    ctype = "__u64"
    text = "file offset, int >= 0, or -1 for the current position"


class Fd(Kind):
    name = "fd"
    ctype = "int"
    pyi = "_FileDescriptorLike"
    text = "file descriptor: int >= 0, or an object with fileno()"

    def c_default(self, default: object) -> str:
        return "-1"


class DirFd(Fd):
    name = "dirfd"
    text = "directory file descriptor: int, AT_FDCWD, or an object with fileno()"


class BufferIn(Kind):
    name = "buffer_in"
    ctype = "const void *"
    length = True
    pins = True
    pyi = "_ReadableBuffer"
    text = ("C-contiguous bytes-like object, pinned (kept alive and unresizable) "
            "until the completion")



class BufferOut(Kind):
    name = "buffer_out"
    ctype = "void *"
    length = True
    pins = True
    pyi = "Union[int, _WritableBuffer]"
    text = ("int n (the module allocates n bytes; the result is the bytes read) "
            "or a writable bytes-like object, filled in place and pinned until "
            "the completion")



class Path(Kind):
    name = "path"
    ctype = "const char *"
    pins = True
    pyi = "_StrOrBytesPath"
    text = "str, bytes or os.PathLike; kept until the completion"

    @staticmethod
    def is_filename(arg: str) -> bool:
        """Does a failed completion's OSError name this argument, as the os
        function does (os.open: filename; os.rename, os.link, os.symlink:
        filename and filename2, in argument order)?  An extended
        attribute's name travels as a path but is no file: os.getxattr()
        names the file, not the attribute."""
        return arg != "name"



class Object(Kind):
    """Any Python object, borrowed for the prep: a call line that needs it
    later keeps it in the record (poll_update's new user data)."""
    name = "object"
    ctype = "PyObject *"
    pyi = "object"
    text = "any object"
    allow_default = True

    def check_default(self, value: object) -> Optional[str]:
        return None if value is None else "an object default can only be None"

    def c_convert(self, spec: str, index: int, arg: str,
                  param_cname: Optional[str]) -> str:
        # nothing to convert: a comma expression that is 0
        return "(%s = argv[%d], 0)" % (self.cname(arg), index)


class Timespec(Kind):
    name = "timespec"
    ctype = "struct __kernel_timespec *"
    pins = True
    pyi = "float"
    text = "seconds, int or float >= 0; the timespec lives in the record"
    allow_default = True

    def check_default(self, value: object) -> Optional[str]:
        if value is not None:
            return "a timespec default can only be None"
        return None



class Target(Kind):
    """Another operation of the same ring, named by its user_data (NAME_ud):
    given as its Sqe, or as the user_data object a fast form queued it
    with (IoUring.prep_NAME(user_data=...), which has no Sqe)."""
    name = "target"
    ctype = "__u64"
    pins = True
    pyi = "object"          # an Sqe, or any user data object
    text = ("an Sqe of the same ring, or the user_data of an operation in flight on it "
            "(the same object, or an equal int or str; one whose completion was "
            "already handed out is an error, one completed but not yet seen gives -ENOENT)")

    def cname(self, arg: str) -> str:
        return arg + "_ud"



class SockAddr(Kind):
    """A socket address, in the form of the family of the fd named in
    parentheses: sockaddr(fd)."""
    name = "sockaddr"
    ctype = "const struct sockaddr *"
    len_type = "socklen_t"
    pins = True
    length = True
    param_kind = "fd"
    pyi = "_SockAddrIn"
    text = ("address as socket.connect() takes it for the socket's family: "
            "(host, port) for AF_INET, (host, port[, flowinfo[, scope_id]]) "
            "for AF_INET6, a path for AF_UNIX")



class SockAddrOpt(SockAddr):
    """As sockaddr(FD), or None for no address (default None)."""
    name = "sockaddr_opt"
    pyi = "Optional[_SockAddrIn]"
    allow_default = True
    text = SockAddr.text + "; None for none"

    def check_default(self, value: object) -> Optional[str]:
        return None if value is None else "a sockaddr_opt default can only be None"


class IovecsIn(Kind):
    """A list of bytes-like objects: an iovec array in the record, every
    buffer pinned.  NAME is the array, NAME_len the count."""
    name = "iovecs_in"
    ctype = "struct iovec *"
    pins = True
    length = True
    pyi = "Sequence[_ReadableBuffer]"
    text = "list or tuple of bytes-like objects, each pinned until the completion"



class IovecsOut(IovecsIn):
    name = "iovecs_out"
    pyi = "Sequence[_WritableBuffer]"
    text = ("list or tuple of writable bytes-like objects, filled in place and "
            "pinned until the completion")


class FdList(Kind):
    """A sequence of fds (or -1): an int array in the record."""
    name = "fd_list"
    ctype = "int *"
    pins = True
    length = True
    pyi = "Sequence[_FileDescriptorLike]"
    text = "sequence of file descriptors (ints or objects with fileno()), -1 for none"



class Provided(Kind):
    """Memory handed to the kernel's provided-buffer pool: pinned by the
    ring, not the op, until the kernel has handed out or given back every
    buffer cut from it (src/register/register.c)."""
    name = "provided"
    ctype = "void *"
    pins = True
    length = True
    pyi = "_WritableBuffer"
    text = ("writable bytes-like object, split into nr equal buffers; pinned by "
            "the ring until every buffer was used by a reaped completion or removed "
            "(or queue_exit()), since receives use it later")



class Pages(Kind):
    """Memory madvise(2) acts on: writable, whole pages (src/ops/convert.c)."""
    name = "pages"
    ctype = "void *"
    length = True
    len_type = "__u64"     # madvise64 takes lengths past 4 GiB
    pins = True
    pyi = "_WritableBuffer"
    text = ("writable bytes-like object (an mmap, say) that starts on a page "
            "boundary and is a whole number of pages long (the kernel acts on "
            "whole pages); pinned until the completion")


class Futex(Kind):
    """A futex word, futex(FLAGS): a bytes-like object holding the word of
    the size FLAGS (a later u32 argument, FUTEX2_SIZE_* in its low bits)
    gives, aligned to it.  NAME is the address, NAME_len its length."""
    name = "futex"
    ctype = "const void *"
    length = True
    pins = True
    param_kind = "u32"
    param_later = True
    pyi = "_ReadableBuffer"
    text = ("the futex word: a bytes-like object (e.g. a slice of shared memory) "
            "holding the word of the size the flags give (4 bytes for "
            "FUTEX2_SIZE_U32), aligned to that size; pinned until the completion")

    def c_check(self, spec: str, index: int, arg: str, param_cname: str) -> str:
        return "pu_check_futex(&%s, %d, %s, %s_len, %s)" % (
            spec, index, arg, arg, param_cname)


class Futexv(Kind):
    """futex_waitv's futexes: (futex word, expected value[, FUTEX2_* flags])
    items, as a struct futex_waitv array in the record (src/ops/convert_struct.c)."""
    name = "futexv"
    ctype = "void *"
    pins = True
    length = True
    pyi = "Sequence[Union[Tuple[_ReadableBuffer, int], Tuple[_ReadableBuffer, int, int]]]"
    text = ("sequence of (futex word, expected value[, FUTEX2_* flags]) tuples; each "
            "word a bytes-like object holding the size its flags give (4 bytes, "
            "FUTEX2_SIZE_U32, without flags), aligned to it, pinned until the completion")


class Ancdata(Kind):
    """socket.sendmsg()'s ancillary data: (level, type, data) items, as a
    control buffer in the record (src/ops/convert_struct.c)."""
    name = "ancdata"
    ctype = "void *"
    pins = True
    length = True
    allow_default = True
    pyi = "Sequence[Tuple[int, int, _ReadableBuffer]]"
    text = "sequence of (level, type, data) tuples, as socket.sendmsg() takes"

    def check_default(self, value: object) -> Optional[str]:
        return None if value == () else "an ancdata default can only be ()"


# every kind, by the name ops.def uses, in the order defined above: the
# integers, descriptors, buffers, paths and times, addresses, vectors, then
# the kinds that serve one family of ops each
KINDS: Dict[str, type] = {k.name: k for k in (
    U32, I32, U64, Bits, MsgData, Offset, Fd, DirFd, BufferIn, BufferOut, Path,
    Object, Timespec, Target, SockAddr, SockAddrOpt, IovecsIn, IovecsOut, FdList,
    Provided, Pages, Futex, Futexv, Ancdata)}


def parse_literal(text: str) -> object:
    """A default as written in ops.def: a Python literal (raises ValueError)."""
    return ast.literal_eval(text)
