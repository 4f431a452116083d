"""The validated model: operations and constants from ops.def, classes and
methods from methods.def.  Emitters see only this model."""

import ast
import keyword
import re
from typing import List, NamedTuple, Optional, Tuple

from kinds import KINDS, Kind, parse_literal
from parse import Block, DefError, parse_blocks

IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
OPCODE = re.compile(r"^(?P<name>IORING_OP_[A-Z0-9_]+)(?:\s*=\s*(?P<value>\d+))?$")
KERNEL = re.compile(r"^\d+\.\d+$")
ARG = re.compile(r"^(?P<name>\S+)\s+(?P<kind>[a-z_0-9]+)(?:\((?P<param>[A-Za-z_0-9|]*)\))?"
                 r"(?:\s*=\s*(?P<default>.+?))?(?:\s+--\s+(?P<doc>.*))?$")
# C names the generated prep function uses itself
RESERVED_C = {"sqe", "rec", "args", "nargs", "kwnames", "argv"}
# keyword-only arguments the IoUring.prep_NAME and AsyncRing.NAME forms
# take (signature.COMMON_KW)
RESERVED_PY = {"user_data", "sqe_flags", "buf_group", "personality"}
# op names whose IoUring.prep_NAME a hand-written method already is
RESERVED_OPS = {"many"}


class Arg(NamedTuple):
    name: str
    kind: Kind
    default_text: Optional[str]     # as written, for signatures and docs
    default: object                 # its value
    doc: str
    lineno: int

    @property
    def required(self) -> bool:
        return self.default_text is None


class Op(NamedTuple):
    name: str
    opcode: str                     # IORING_OP_* name
    opcode_value: Optional[int]     # given when liburing 2.3's headers lack it
    args: List[Arg]
    calls: List[str]
    returns: str
    result: str                     # C function making the result, or ""
    kernel: str                     # the Linux version that added the op
    man: str
    doc: List[str]
    lineno: int
    aio: str = "await"              # AsyncRing form: await, iter or none
    aio_flags: Tuple[str, ...] = ()  # "fd", "peer"
    complete: str = ""              # C function run at the final completion
    path: str = ""                  # the ops file, for #line
    call_linenos: Tuple[int, ...] = ()   # each call line's line in it
    # the result's Python type (the stub's): what getresult() gives and
    # AsyncRing.NAME() awaits, or yields per completion; "" for an op with a
    # buffer_out argument, whose result is bytes or int by that argument
    pytype: str = "int"

    @property
    def sized_by(self) -> str:
        """The buffer_out argument whose form picks the result's type (a
        length: the bytes read; a buffer: how many), or ""."""
        for a in self.args:
            if a.kind.name == "buffer_out":
                return a.name
        return ""

    @property
    def opcode_c(self) -> str:
        """The opcode as C: the header's name, or the number it lacks."""
        return self.opcode if self.opcode_value is None else str(self.opcode_value)

    @property
    def method(self) -> str:
        return "prep_" + self.name

    @property
    def nreq(self) -> int:
        return sum(1 for a in self.args if a.required)


class Method(NamedTuple):
    cls: str
    name: str
    signature: str                  # Python syntax, with annotations
    returns: str
    doc: List[str]
    lineno: int
    # the stub's @overload variants, each (signature, returns); none: the
    # signature above is the stub's
    overloads: List[Tuple[str, str]] = []
    # why the name goes and what replaces it: the method warns with it
    # (DeprecationWarning), the stub marks it, the docs say it
    deprecated: str = ""
    # an attribute read without a call (a getset in C): no signature, the
    # stub's @property, "NAME -> TYPE" in the docs
    prop: bool = False


class Class(NamedTuple):
    name: str
    signature: Optional[str]        # the constructor's, or None
    doc: List[str]
    lineno: int


class Model(NamedTuple):
    ops: List[Op]
    consts: List[Tuple[str, Optional[int]]]   # name, value when not a macro

    @property
    def opcodes(self) -> List[Tuple[str, str]]:
        """Every op's IORING_OP_* name, once, with its value as C (the
        header's enum, or the number ops.def gives): exported as constants
        beside `consts`, for probe() answers and restrictions."""
        seen = {c for c, _ in self.consts}
        out = []  # type: List[Tuple[str, str]]
        for op in self.ops:
            if op.opcode not in seen:
                seen.add(op.opcode)
                out.append((op.opcode, op.opcode_c))
        return out
    classes: List[Class]
    methods: List[Method]


def _fields(path: str, block: Block, allowed: set) -> dict:
    fields = {}  # type: dict
    for item in block.items:
        if item.key not in allowed:
            raise DefError(path, item.lineno, "unknown field '%s' in %s '%s' "
                           "(expected one of: %s)" % (item.key, block.keyword,
                                                      block.head, ", ".join(sorted(allowed))))
        fields.setdefault(item.key, []).append(item)
    return fields


def _one(path: str, block: Block, fields: dict, key: str,
         required: bool = True) -> str:
    items = fields.get(key, [])
    if len(items) > 1:
        raise DefError(path, items[1].lineno, "'%s' given twice" % key)
    if not items:
        if required:
            raise DefError(path, block.lineno, "%s '%s' has no '%s'"
                           % (block.keyword, block.head, key))
        return ""
    if not items[0].value:
        raise DefError(path, items[0].lineno, "'%s' needs a value" % key)
    return items[0].value


def _arg(path: str, item, seen: dict) -> Arg:
    m = ARG.match(item.value)
    if m is None:
        raise DefError(path, item.lineno, "arg must read 'NAME KIND [= DEFAULT] "
                       "[-- text]', not %r" % item.value)
    name, kname = m.group("name"), m.group("kind")
    if not IDENT.match(name) or keyword.iskeyword(name):
        raise DefError(path, item.lineno, "argument name %r is not a Python "
                       "identifier" % name)
    if name in seen:
        raise DefError(path, item.lineno, "argument '%s' given twice" % name)
    if name in RESERVED_PY:
        raise DefError(path, item.lineno, "argument name '%s' is taken by the "
                       "keyword every IoUring.prep_NAME and AsyncRing.NAME "
                       "form shares" % name)
    if kname not in KINDS:
        raise DefError(path, item.lineno, "unknown argument kind '%s' (known: %s)"
                       % (kname, ", ".join(sorted(KINDS))))
    kcls = KINDS[kname]
    param = m.group("param")
    if kcls.param_kind == "constants":
        # bits(A|B): the flags the argument may hold, C constants
        if not param or not all(IDENT.match(c) for c in param.split("|")):
            raise DefError(path, item.lineno, "kind '%s' needs the constants it "
                           "allows in parentheses, joined by |" % kname)
    elif kcls.param_kind is not None:
        if not param:
            raise DefError(path, item.lineno, "kind '%s' needs the name of a "
                           "'%s' argument in parentheses" % (kname, kcls.param_kind))
        # a later argument is checked once all are known (_op)
        if not kcls.param_later and (param not in seen or
                                     seen[param].kind.name != kcls.param_kind):
            raise DefError(path, item.lineno, "'%s(%s)': %s is not an earlier '%s' "
                           "argument" % (kname, param, param, kcls.param_kind))
    elif param is not None:
        raise DefError(path, item.lineno, "kind '%s' takes no parameter" % kname)
    kind = kcls(param)
    clash = RESERVED_C.intersection(kind.c_names(name))
    if clash:
        raise DefError(path, item.lineno, "argument '%s' would clash with the "
                       "generated C name '%s'" % (name, clash.pop()))
    default_text, default = m.group("default"), None
    if default_text is not None:
        try:
            default = parse_literal(default_text)
        except (ValueError, SyntaxError):
            raise DefError(path, item.lineno, "default %r is not a Python literal"
                           % default_text) from None
        why = kind.check_default(default)
        if why:
            raise DefError(path, item.lineno, why)
    return Arg(name, kind, default_text, default, (m.group("doc") or "").strip(),
               item.lineno)


def _op(path: str, block: Block) -> Op:
    name = block.head
    if not IDENT.match(name) or name != name.lower():
        raise DefError(path, block.lineno, "op name %r must be a lower-case "
                       "identifier" % name)
    if name in RESERVED_OPS:
        raise DefError(path, block.lineno, "op name %r is taken: IoUring.prep_%s "
                       "is a method of its own" % (name, name))
    fields = _fields(path, block, {"opcode", "arg", "call", "returns", "result",
                                   "complete", "kernel", "man", "doc", "async",
                                   "type"})
    opm = OPCODE.match(_one(path, block, fields, "opcode"))
    if opm is None:
        raise DefError(path, fields["opcode"][0].lineno, "opcode must read "
                       "IORING_OP_NAME [= NUMBER]")
    opvalue = int(opm.group("value")) if opm.group("value") else None
    if opvalue is not None and opvalue > 255:
        raise DefError(path, fields["opcode"][0].lineno, "opcode number %d is "
                       "out of range (0-255)" % opvalue)
    kernel = _one(path, block, fields, "kernel")
    if not KERNEL.match(kernel):
        raise DefError(path, fields["kernel"][0].lineno, "kernel must read "
                       "MAJOR.MINOR, not %r" % kernel)
    result = _one(path, block, fields, "result", False)
    if result and not IDENT.match(result):
        raise DefError(path, fields["result"][0].lineno, "result must name a C "
                       "function")
    complete = _one(path, block, fields, "complete", False)
    if complete and not IDENT.match(complete):
        raise DefError(path, fields["complete"][0].lineno, "complete must name a C "
                       "function")
    args, seen = [], {}  # type: List[Arg], dict
    for item in fields.get("arg", []):
        a = _arg(path, item, seen)
        if a.required and args and not args[-1].required:
            raise DefError(path, item.lineno, "required argument '%s' follows an "
                           "optional one" % a.name)
        seen[a.name] = a
        args.append(a)
    for n, a in enumerate(args):
        k = a.kind
        if k.param_later and not any(b.name == k.param and b.kind.name == k.param_kind
                                     for b in args[n + 1:]):
            raise DefError(path, a.lineno, "'%s(%s)': %s is not a later '%s' "
                           "argument" % (k.name, k.param, k.param, k.param_kind))
    keeps = sum(1 for a in args if a.kind.name == "path")
    if keeps > 4:
        raise DefError(path, block.lineno, "at most 4 path arguments per op "
                       "(PU_MAX_KEEP)")
    calls = [i.value for i in fields.get("call", [])]
    if not calls:
        raise DefError(path, block.lineno, "op '%s' has no 'call'" % name)
    for i in fields.get("call", []):
        if not i.value.endswith(";") and not i.value.endswith("}"):
            raise DefError(path, i.lineno, "a call line is a C statement ending "
                           "with ';'")
    doc = [i.value for i in fields.get("doc", [])]
    if not doc or not doc[0]:
        raise DefError(path, block.lineno, "op '%s' has no 'doc'" % name)
    aio, aio_flags = _async(path, block, fields, args)
    pytype = _pytype(path, block, fields, args, result, aio_flags)
    return Op(name, opm.group("name"), opvalue, args, calls,
              _one(path, block, fields, "returns", False), result, kernel,
              _one(path, block, fields, "man", False), doc, block.lineno,
              aio, aio_flags, complete, path,
              tuple(i.lineno for i in fields.get("call", [])), pytype)


# The names an op's 'type' may use: typing's, builtins, and the aliases the
# stub's prelude defines (gen/emit_pyi.py) for a socket address and for
# socket.recvmsg()'s ancillary data
TYPE_NAMES = {"int", "bool", "bytes", "str", "None", "Tuple", "List", "Optional",
              "Union", "os.stat_result", "os.waitid_result", "_Address",
              "_OptAddress", "_AncData"}


def _type_names(node: ast.AST) -> List[str]:
    """The dotted names a type expression uses; ValueError for anything that
    is not a name, an attribute, a subscript, a tuple of them or None."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [n + "." + node.attr for n in _type_names(node.value)]
    if isinstance(node, ast.Subscript):
        inner = node.slice
        if type(inner).__name__ == "Index":     # Python 3.8's ast
            inner = inner.value  # type: ignore[attr-defined]
        return _type_names(node.value) + _type_names(inner)
    if isinstance(node, ast.Tuple):
        return [n for e in node.elts for n in _type_names(e)]
    if isinstance(node, ast.Constant) and node.value is None:
        return ["None"]
    raise ValueError(ast.dump(node))


def _pytype(path: str, block: Block, fields: dict, args: List[Arg], result: str,
            aio_flags: Tuple[str, ...]) -> str:
    """'type TYPE': the result's Python type.  Without a result maker the
    result is the CQE's res (int) or, from a picked provided buffer, the
    bytes received; a result maker's needs saying.  An op with a buffer_out
    argument gives bytes or int by that argument, so it takes no type."""
    text = _one(path, block, fields, "type", False)
    lineno = fields["type"][0].lineno if "type" in fields else block.lineno
    if any(a.kind.name == "buffer_out" for a in args):
        if text:
            raise DefError(path, lineno, "an op with a buffer_out argument takes no "
                           "'type': its result is bytes for a length, int for a buffer")
        return ""
    if not text:
        if result:
            raise DefError(path, lineno, "op '%s' has a result maker (%s): give its "
                           "Python type with 'type'" % (block.head, result))
        return "int"
    try:
        names = _type_names(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError):
        raise DefError(path, lineno, "type must be a type expression, not %r"
                       % text) from None
    unknown = [n for n in names if n not in TYPE_NAMES]
    if unknown:
        raise DefError(path, lineno, "type %r uses %s, which the stub does not "
                       "define (known: %s)" % (text, unknown[0], ", ".join(sorted(TYPE_NAMES))))
    if not result and text not in ("int", "bytes"):
        raise DefError(path, lineno, "without a result maker the result is int "
                       "(the CQE's res) or bytes (a provided buffer's), not %r" % text)
    if "peer" in aio_flags and text != "int":
        raise DefError(path, lineno, "'peer' pairs an int fd with its address: the "
                       "type must be int")
    return text


AIO_MODES = ("await", "iter", "none")
AIO_FLAGS = ("fd", "peer", "carry")


def _async(path: str, block: Block, fields: dict, args: List[Arg]):
    """'async MODE [fd] [peer] [carry]': the op's AsyncRing form (await by
    default).  carry: a receive whose bytes, got before its cancel reached
    the kernel, are kept for the socket's next read (src/async/recv.c); it
    needs the arguments fd, buf, flags."""
    text = _one(path, block, fields, "async", False) or "await"
    lineno = fields["async"][0].lineno if "async" in fields else block.lineno
    words = text.split()
    mode, flags = words[0], tuple(words[1:])
    if mode not in AIO_MODES:
        raise DefError(path, lineno, "async must read MODE [fd] [peer], MODE one "
                       "of %s, not %r" % (", ".join(AIO_MODES), mode))
    for f in flags:
        if f not in AIO_FLAGS or flags.count(f) > 1:
            raise DefError(path, lineno, "unknown or repeated async flag %r "
                           "(known: %s)" % (f, ", ".join(AIO_FLAGS)))
    if mode == "none" and flags:
        raise DefError(path, lineno, "'async none' takes no flags")
    if "carry" in flags and (mode != "await" or [a.name for a in args[:3]] != ["fd", "buf", "flags"]):
        raise DefError(path, lineno, "'carry' is for an awaited receive whose "
                       "arguments start fd, buf, flags")
    if "peer" in flags and "fd" not in flags:
        raise DefError(path, lineno, "'peer' pairs a new fd with its peer: it needs 'fd'")
    # AsyncRing hands out no Sqe objects, so an op that names one cannot be awaited
    if mode != "none" and any(a.kind.name == "target" for a in args):
        raise DefError(path, lineno, "op '%s' takes an Sqe target: it needs "
                       "'async none'" % block.head)
    return mode, flags


def load_ops(path: str, text: str):
    ops, consts, names = [], [], {}  # type: List[Op], List[str], dict
    for block in parse_blocks(path, text):
        if block.keyword == "op":
            if not block.head:
                raise DefError(path, block.lineno, "'op' needs a name")
            op = _op(path, block)
            if op.opcode in [o.opcode for o in ops if o.opcode_value is not None] \
                    and op.opcode_value is None:
                raise DefError(path, block.lineno, "%s was given a number before"
                               % op.opcode)
            if op.name in names:
                raise DefError(path, block.lineno, "op '%s' already defined at "
                               "line %d" % (op.name, names[op.name]))
            names[op.name] = block.lineno
            ops.append(op)
        elif block.keyword == "const":
            if block.items:
                raise DefError(path, block.items[0].lineno, "'const' takes no fields")
            for token in block.head.split():
                c, _, value = token.partition("=")
                if not IDENT.match(c) or (value and not re.match(r"^-?\d+$", value)):
                    raise DefError(path, block.lineno, "constant %r must read NAME "
                                   "or NAME=INTEGER" % token)
                if c in [k for k, _ in consts]:
                    raise DefError(path, block.lineno, "constant %s given twice" % c)
                consts.append((c, int(value) if value else None))
        else:
            raise DefError(path, block.lineno, "unknown entry '%s' (expected 'op' "
                           "or 'const')" % block.keyword)
    if not ops:
        raise DefError(path, 1, "no op defined")
    return ops, consts


HEAD = re.compile(r"^(?P<cls>[A-Za-z_]\w*)\.(?P<name>\w+)\((?P<sig>.*)\)\s*->\s*(?P<ret>.+)$")
OVERLOAD = re.compile(r"^\((?P<sig>.*)\)\s*->\s*(?P<ret>.+)$")
PROPERTY = re.compile(r"^(?P<cls>[A-Za-z_]\w*)\.(?P<name>\w+)\s*->\s*(?P<ret>.+)$")
CLASS = re.compile(r"^(?P<name>[A-Za-z_]\w*)(?:\((?P<sig>.*)\))?$")
FUNCTION = re.compile(r"^(?P<name>[A-Za-z_]\w*)\((?P<sig>.*)\)\s*->\s*(?P<ret>.+)$")


def _check_sig(path: str, lineno: int, sig: str) -> None:
    try:
        ast.parse("def f(%s): pass" % sig)
    except SyntaxError as e:
        raise DefError(path, lineno, "bad signature (%s): %s" % (e.msg, sig)) from None


def load_methods(path: str, text: str):
    classes, methods = [], []  # type: List[Class], List[Method]
    for block in parse_blocks(path, text):
        fields = _fields(path, block, {"doc"} if block.keyword in ("class", "property")
                         else {"doc", "overload", "deprecated"})
        doc = [i.value for i in fields.get("doc", [])]
        if not doc:
            raise DefError(path, block.lineno, "%s has no 'doc'" % block.head)
        if block.keyword == "class":
            m = CLASS.match(block.head)
            if m is None:
                raise DefError(path, block.lineno, "class must read NAME[(SIGNATURE)]")
            if m.group("sig") is not None:
                _check_sig(path, block.lineno, m.group("sig"))
            classes.append(Class(m.group("name"), m.group("sig"), doc, block.lineno))
        elif block.keyword == "method":
            m = HEAD.match(block.head)
            if m is None:
                raise DefError(path, block.lineno, "method must read "
                               "CLASS.NAME(SIGNATURE) -> TYPE")
            if m.group("cls") not in [c.name for c in classes]:
                raise DefError(path, block.lineno, "class %s is not defined above"
                               % m.group("cls"))
            _check_sig(path, block.lineno, m.group("sig"))
            if any(x.name == m.group("name") and x.cls == m.group("cls") for x in methods):
                raise DefError(path, block.lineno, "method %s.%s given twice"
                               % (m.group("cls"), m.group("name")))
            overloads = []
            for item in fields.get("overload", []):
                o = OVERLOAD.match(item.value)
                if o is None:
                    raise DefError(path, item.lineno, "overload must read (SIGNATURE) -> TYPE")
                _check_sig(path, item.lineno, o.group("sig"))
                overloads.append((o.group("sig"), o.group("ret").strip()))
            if len(overloads) == 1:
                raise DefError(path, fields["overload"][0].lineno,
                               "one overload is no overload: give two or more, or none")
            deprecated = _one(path, block, fields, "deprecated", required=False)
            methods.append(Method(m.group("cls"), m.group("name"), m.group("sig"),
                                  m.group("ret").strip(), doc, block.lineno,
                                  overloads, deprecated))
        elif block.keyword == "property":
            m = PROPERTY.match(block.head)
            if m is None:
                raise DefError(path, block.lineno, "property must read CLASS.NAME -> TYPE")
            if m.group("cls") not in [c.name for c in classes]:
                raise DefError(path, block.lineno, "class %s is not defined above"
                               % m.group("cls"))
            if any(x.name == m.group("name") and x.cls == m.group("cls") for x in methods):
                raise DefError(path, block.lineno, "%s.%s given twice"
                               % (m.group("cls"), m.group("name")))
            methods.append(Method(m.group("cls"), m.group("name"), "",
                                  m.group("ret").strip(), doc, block.lineno, prop=True))
        elif block.keyword == "function":
            # a module-level function: a Method whose cls is ""
            m = FUNCTION.match(block.head)
            if m is None:
                raise DefError(path, block.lineno, "function must read "
                               "NAME(SIGNATURE) -> TYPE")
            _check_sig(path, block.lineno, m.group("sig"))
            if any(x.name == m.group("name") and x.cls == "" for x in methods):
                raise DefError(path, block.lineno, "function %s given twice"
                               % m.group("name"))
            methods.append(Method("", m.group("name"), m.group("sig"),
                                  m.group("ret").strip(), doc, block.lineno))
        else:
            raise DefError(path, block.lineno, "unknown entry '%s' (expected "
                           "'class', 'method', 'property' or 'function')" % block.keyword)
    return classes, methods


def load(ops_path: str, methods_path: str) -> Model:
    with open(ops_path, encoding="utf-8") as f:
        ops, consts = load_ops(ops_path, f.read())
    with open(methods_path, encoding="utf-8") as f:
        classes, methods = load_methods(methods_path, f.read())
    # AsyncRing's methods share a namespace with the awaitable ops
    aio = {op.name: op for op in ops if op.aio != "none"}
    for m in methods:
        if m.cls == "AsyncRing" and m.name in aio:
            raise DefError(methods_path, m.lineno, "AsyncRing.%s would hide the "
                           "awaitable op of ops.def line %d" % (m.name, aio[m.name].lineno))
    return Model(ops, consts, classes, methods)


def load_liburing_api(path: str) -> List[Tuple[str, str]]:
    """gen/liburing_api.txt: liburing's function names, each with what a
    user has instead when no method maps to it by convention ('' if none)."""
    out = []  # type: List[Tuple[str, str]]
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, _, note = line.partition("--")
            name = name.strip()
            if not IDENT.match(name) or not name.startswith("io_uring_"):
                raise DefError(path, lineno, "not a liburing function name: %r" % name)
            out.append((name, note.strip()))
    return out
