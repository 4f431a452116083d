"""Emit the C: build/gen/ops_gen.c (prep functions, Sqe methods, op table,
constants), build/gen/ops_gen.h (op indices) and build/gen/methods_doc.h
(docstrings of the hand-written methods)."""

import textwrap
from typing import List

from model import Model, Op
from signature import (AIO, CHAIN, HEADER, RING, SQE, class_text_signature, form_name,
                       method_text_signature, op_text_signature)


def c_string(text: str) -> str:
    """A C string literal, split at newlines for readable output."""
    esc = text.replace("\\", "\\\\").replace('"', '\\"')
    lines = esc.split("\n")
    parts = ['"%s\\n"' % l for l in lines[:-1]] + ['"%s"' % lines[-1]]
    return "\n    ".join(parts)


def op_docstring(op: Op, form: str = SQE) -> str:
    body = "\n".join(op.doc)
    if form == RING:
        lead = ("The fast form of get_sqe().%s(...) with set_data(user_data): "
                "no Sqe object is made. The completion carries user_data "
                "(reap() gives it back). sqe_flags, buf_group and personality "
                "set what Sqe.set_flags() and friends set. A call that raises "
                "leaves nothing in the submission queue." % op.method)
        body = "\n".join(textwrap.wrap(lead, 76)) + "\n\n" + body
    if form == AIO:
        lead = ("An async iterator over the completions of Sqe.%s(): one item per "
                "completion, until the operation ends." if op.aio == "iter" else
                "Await Sqe.%s(): the future's result is what Cqe.getresult() gives, "
                "an OSError subclass on failure.") % op.method
        if "peer" in op.aio_flags:
            lead += " Each result is (fd, peer address)."
        if "fd" in op.aio_flags:
            lead += " New file descriptors nobody awaits any more are closed."
        if "carry" in op.aio_flags:
            lead += (" A cancelled receive is stopped in the kernel before the task "
                     "that awaited it resumes. Bytes it took before the cancel "
                     "reached it are not lost: AsyncRing.take_partial(fd) returns "
                     "them, and sock_recv() and sock_recv_into() on the socket "
                     "return them first (for a buf, they are copied from it when "
                     "the cancelled receive completes). With MSG_PEEK nothing is "
                     "consumed.")
        body = "\n".join(textwrap.wrap(lead, 76)) + "\n\n" + body
    if form == CHAIN:
        lead = ("Add Sqe.%s() to the chain, linked to the next operation; the "
                "future of its result. It runs when the chain's `async with` "
                "block ends (AsyncRing.chain())." % op.method)
        body = "\n".join(textwrap.wrap(lead, 76)) + "\n\n" + body
    if op.args:
        width = max(len(a.name) for a in op.args)
        rows = []
        for a in op.args:
            text = a.doc or a.kind.text
            wrapped = textwrap.wrap(text, 72 - width) or [""]
            rows.append("  %-*s  %s" % (width, a.name, wrapped[0]))
            rows += ["  %s  %s" % (" " * width, w) for w in wrapped[1:]]
        body += "\n\n" + "\n".join(rows)
    if op.returns:
        body += "\n\n" + "\n".join(textwrap.wrap("Result: " + op.returns, 76))
    tail = "Opcode %s, Linux %s" % (op.opcode, op.kernel)
    if op.man:
        tail += "; see the liburing man page %s(3)" % op.man
    body += "\n\n" + tail + "."
    return "%s\n--\n\n%s" % (op_text_signature(op, form), body)


# a placeholder ops_c() turns into '#line N "ops_gen.c"': the generated
# file's own line numbers again, after an op's call lines
LINE_RESUME = "#line @resume@"


def _c_path(path: str) -> str:
    return path.replace("\\", "\\\\").replace('"', '\\"')


def _prep_function(op: Op) -> List[str]:
    spec = "pu_spec_" + op.name
    out = ["/* Sqe.%s: ops.def line %d */" % (op.method, op.lineno)]
    names = ", ".join('"%s"' % a.name for a in op.args)
    out.append("static const char *const pu_kw_%s[] = {%sNULL};"
               % (op.name, names + ", " if names else ""))
    out.append('static const pu_argspec %s = {"%s", pu_kw_%s, %d, %d, 0};'
               % (spec, op.method, op.name, op.nreq, len(op.args)))
    out.append("")
    out.append("static int")
    out.append("pu_prep_%s(SqeObject *rec, struct io_uring_sqe *sqe, "
               "PyObject *const *args," % op.name)
    out.append("    Py_ssize_t nargs, PyObject *kwnames)")
    out.append("{")
    out.append("    PyObject *argbuf[%d];" % max(1, len(op.args)))
    out.append("    PyObject *const *argv;")
    by_name = {a.name: a for a in op.args}
    for a in op.args:
        for d in a.kind.c_decls(a.name, a.default):
            out.append("    " + d)
    out.append("")
    out.append("    if (pu_args_view(&%s, args, nargs, kwnames, argbuf, &argv) < 0)" % spec)
    out.append("        return -1;")
    for i, a in enumerate(op.args):
        param = (by_name[a.kind.param].kind.cname(a.kind.param)
                 if a.kind.param and a.kind.param_kind != "constants" else None)
        conv = a.kind.c_convert(spec, i, a.name, None if a.kind.param_later else param)
        cond = conv if a.required else "argv[%d] != NULL && %s" % (i, conv)
        out.append("    if (%s < 0)" % cond)
        out.append("        return -1;")
    # checks of an argument against a later one (a futex word's size, from
    # its flags): once every converter ran, on the values they made
    for i, a in enumerate(op.args):
        if a.kind.param_later:
            check = a.kind.c_check(spec, i, a.name,
                                   by_name[a.kind.param].kind.cname(a.kind.param))
            out.append("    if (%s < 0)" % check)
            out.append("        return -1;")
    # the path arguments as given, for the OSError of a failed completion
    # (Path.is_filename): os.rename()'s filename and filename2
    files = ["argv[%d]" % i for i, a in enumerate(op.args)
             if a.kind.name == "path" and a.kind.is_filename(a.name)]
    if len(files) > 2:
        raise ValueError("op %s: an OSError names at most two paths" % op.name)
    if files:
        out.append("    if (pu_rec_paths(rec, %s, %s) < 0)"
                   % (files[0], files[1] if len(files) > 1 else "NULL"))
        out.append("        return -1;")
    # converters may have run Python code: write only an entry still ours
    # (an op without arguments runs none, and its caller checked the entry:
    # no second check on the hot path of a NOP)
    if op.args:
        out.append("    if (pu_prep_entry_check(rec, sqe, %s.fname) < 0)" % spec)
        out.append("        return -1;")
    else:
        out.append("    (void)rec;")
    # the call lines as written in ops.def: the compiler names ops.def's
    # line for an error in them, and the generated file's again after
    prev = None
    for call, lineno in zip(op.calls, op.call_linenos or [0] * len(op.calls)):
        if lineno and lineno != (prev or 0) + 1:
            out.append('#line %d "%s"' % (lineno, _c_path(op.path)))
        prev = lineno
        out.append("    " + call)
    if op.call_linenos:
        out.append(LINE_RESUME)
    out.append("    return 0;")
    out.append("}")
    out.append("")
    out.append("static PyObject *")
    out.append("Sqe_%s(PyObject *self, PyObject *const *args, Py_ssize_t nargs,"
               % op.method)
    out.append("    PyObject *kwnames)")
    out.append("{")
    out.append("    return pu_sqe_prep((SqeObject *)self, &pu_opdefs[PU_OP_%s], "
               "args, nargs, kwnames);" % op.name.upper())
    out.append("}")
    out.append("")
    out.append("static PyObject *")
    out.append("IoUring_%s(PyObject *self, PyObject *const *args, Py_ssize_t nargs,"
               % op.method)
    out.append("    PyObject *kwnames)")
    out.append("{")
    out.append("    return pu_ring_prep(self, &pu_opdefs[PU_OP_%s], args, nargs, kwnames);"
               % op.name.upper())
    out.append("}")
    out.append("")
    if op.aio != "none":
        fn = "pu_async_iter" if op.aio == "iter" else "pu_async_op"
        out.append("static PyObject *")
        out.append("AsyncRing_%s(PyObject *self, PyObject *const *args, Py_ssize_t nargs,"
                   % op.name)
        out.append("    PyObject *kwnames)")
        out.append("{")
        out.append("    return %s(self, &pu_opdefs[PU_OP_%s], args, nargs, kwnames);"
                   % (fn, op.name.upper()))
        out.append("}")
        out.append("")
    return out


# the C function behind each form's method (emitted by _prep_function)
FORM_C_PREFIX = {SQE: "Sqe_", RING: "IoUring_", AIO: "AsyncRing_", CHAIN: "AsyncRing_"}


def _method_table(array: str, ops: List[Op], form: str) -> List[str]:
    """One PyMethodDef array: a method per op, in one form."""
    out = ["PyMethodDef %s[] = {" % array]
    for op in ops:
        name = form_name(op, form)
        out.append('    {"%s", (PyCFunction)(void (*)(void))%s%s,'
                   % (name, FORM_C_PREFIX[form], name))
        out.append("     METH_FASTCALL | METH_KEYWORDS,")
        out.append("     %s}," % c_string(op_docstring(op, form)).replace("\n    ", "\n     "))
    out += ["    {NULL, NULL, 0, NULL},", "};", ""]
    return out


AIO_MODE_C = {"await": "PU_ASYNC_AWAIT", "iter": "PU_ASYNC_ITER", "none": "PU_ASYNC_NONE"}


def _aio_flags_c(op: Op) -> str:
    return " | ".join("PU_ASYNC_%s" % f.upper() for f in op.aio_flags) or "0"


def ops_c(model: Model, c_path: str = "ops_gen.c") -> str:
    out = ["/* %s */" % HEADER,
           '#include "ops/op_helpers.h"',
           '#include "ops_gen.h"',
           "",
           "#include <fcntl.h>",
           "",
           "/* ---- the prep functions and their Sqe methods ---- */",
           ""]
    for op in model.ops:
        out += _prep_function(op)
    out.append("/* ---- the op table, in ops.def order ---- */")
    out.append("const pu_opdef pu_opdefs[] = {")
    for op in model.ops:
        out.append('    [PU_OP_%s] = {"%s", %s, "%s", pu_prep_%s, %s, %s, %s, %s},'
                   % (op.name.upper(), op.name, op.opcode_c, op.opcode, op.name,
                      op.result or "NULL", op.complete or "NULL", AIO_MODE_C[op.aio],
                      _aio_flags_c(op)))
    out.append("};")
    out.append("const int pu_nopdefs = PU_NOPS;")
    out.append("const char *const pu_op_kernels[] = {")
    for op in model.ops:
        out.append('    [PU_OP_%s] = "%s",' % (op.name.upper(), op.kernel))
    out.append("};")
    out.append("/* every op has an entry: checked when this file compiles */")
    out.append("_Static_assert(sizeof(pu_opdefs) / sizeof(pu_opdefs[0]) == PU_NOPS,")
    out.append('               "an op in ops_gen.h has no table entry");')
    out.append("/* the numbers ops.def gives are upstream's (liburing_compat.h names the")
    out.append(" * opcodes the headers lack) */")
    for op in model.ops:
        if op.opcode_value is not None:
            out.append('_Static_assert(%s == %d, "ops.def line %d: %s is not %d");'
                       % (op.opcode, op.opcode_value, op.lineno, op.opcode, op.opcode_value))
    out.append("")
    out += _method_table("pu_generated_sqe_methods", model.ops, SQE)
    out.append("/* IoUring's fast forms, one per op */")
    out += _method_table("pu_generated_ring_methods", model.ops, RING)
    out.append("/* AsyncRing's awaitable forms, one per op whose async mode is not none */")
    out += _method_table("pu_generated_async_methods",
                         [op for op in model.ops if op.aio != "none"], AIO)
    out.append("/* AsyncChain's (AsyncRing.chain()): the awaitable forms but for timeout=,")
    out.append(" * the same C (pu_async_op() sends a chain's call to src/async/chain.c) */")
    out += _method_table("pu_generated_chain_methods",
                         [op for op in model.ops if op.aio == "await"], CHAIN)
    out.append("/* ---- constants: each only where the headers define it ---- */")
    out.append("static int")
    out.append("add_const(PyObject *m, const char *name, long long v)")
    out.append("{")
    out.append("    PyObject *o = PyLong_FromLongLong(v);")
    out.append("    if (o == NULL || PyModule_AddObject(m, name, o) < 0) {")
    out.append("        Py_XDECREF(o);")
    out.append("        return -1;")
    out.append("    }")
    out.append("    return 0;")
    out.append("}")
    out.append("")
    out.append("int")
    out.append("pu_add_generated_constants(PyObject *m)")
    out.append("{")
    out.append("    (void)add_const;")
    for c, value in model.consts:
        out.append("#ifdef %s" % c)
        out.append('    if (add_const(m, "%s", (long long)(%s)) < 0)' % (c, c))
        out.append("        return -1;")
        if value is not None:   # an enum, or newer than the headers
            out.append("#else")
            out.append('    if (add_const(m, "%s", %dLL) < 0)' % (c, value))
            out.append("        return -1;")
        out.append("#endif")
    for name, value in model.opcodes:   # enums: no #ifdef
        out.append('    if (add_const(m, "%s", (long long)(%s)) < 0)' % (name, value))
        out.append("        return -1;")
    out.append("    return 0;")
    out.append("}")
    for i, line in enumerate(out):
        if line == LINE_RESUME:
            out[i] = '#line %d "%s"' % (i + 2, _c_path(c_path))
    return "\n".join(out) + "\n"


def ops_h(model: Model) -> str:
    out = ["/* %s */" % HEADER,
           "#ifndef PU_OPS_GEN_H",
           "#define PU_OPS_GEN_H",
           "",
           "/* indices into pu_opdefs[] */",
           "enum pu_op_index {"]
    for op in model.ops:
        out.append("    PU_OP_%s," % op.name.upper())
    out.append("    PU_NOPS")
    out.append("};")
    out.append("")
    out.append("/* opcodes by op name, for call lines; numbers where the headers lack them */")
    for op in model.ops:
        out.append("#define PU_OPCODE_%s %s" % (op.name.upper(), op.opcode_c))
    out.append("")
    out.append("#endif")
    return "\n".join(out) + "\n"


def methods_doc_h(model: Model) -> str:
    out = ["/* %s */" % HEADER,
           "#ifndef PU_METHODS_DOC_H",
           "#define PU_METHODS_DOC_H",
           ""]
    for c in model.classes:
        doc = "\n".join(c.doc)
        if c.signature is not None:
            doc = "%s\n--\n\n%s" % (class_text_signature(c.name, c.signature), doc)
        out.append("#define PU_DOC_%s \\\n    %s" % (c.name, c_string(doc).replace("\n", " \\\n")))
        out.append("")
    for m in model.methods:
        body = "\n".join(m.doc)
        if m.deprecated:
            body = "Deprecated: %s\n\n%s" % (m.deprecated, body)
            # the method's DeprecationWarning, the same words as its docs
            out.append("#define PU_DEPRECATED_%s_%s %s"
                       % (m.cls, m.name, c_string("%s.%s() is deprecated: %s"
                                                  % (m.cls, m.name, m.deprecated))))
        doc = body if m.prop else "%s\n--\n\n%s" % (method_text_signature(m), body)
        out.append("#define PU_DOC_%s_%s \\\n    %s"
                   % (m.cls or "module", m.name, c_string(doc).replace("\n", " \\\n")))
        out.append("")
    out.append("#endif")
    return "\n".join(out) + "\n"
