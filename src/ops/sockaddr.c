/* sockaddr.c: socket addresses between the socket module's Python forms and
 * struct sockaddr, for AF_INET, AF_INET6 and AF_UNIX. */
#include "ops/opdef.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/un.h>

/* The host part: an address literal, '' (any), '<broadcast>', or a name
 * resolved with getaddrinfo() as socket.connect() does. */
static int
parse_host(PyObject *host, int family, void *dst)
{
    const char *s;
    struct addrinfo hints, *res = NULL;
    int err;

    if (!PyUnicode_Check(host)) {
        PyErr_Format(PyExc_TypeError, "host must be str, not %.100s",
                     Py_TYPE(host)->tp_name);
        return -1;
    }
    s = PyUnicode_AsUTF8(host);
    if (s == NULL)
        return -1;
    if (strlen(s) != (size_t)PyUnicode_GET_LENGTH(host)) {
        PyErr_SetString(PyExc_ValueError, "host contains a NUL character");
        return -1;
    }
    if (family == AF_INET) {
        if (s[0] == '\0') {
            ((struct in_addr *)dst)->s_addr = htonl(INADDR_ANY);
            return 0;
        }
        if (strcmp(s, "<broadcast>") == 0) {
            ((struct in_addr *)dst)->s_addr = htonl(INADDR_BROADCAST);
            return 0;
        }
    } else if (s[0] == '\0') {
        memcpy(dst, &in6addr_any, sizeof(in6addr_any));
        return 0;
    }
    if (inet_pton(family, s, dst) == 1)
        return 0;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    Py_BEGIN_ALLOW_THREADS
    err = getaddrinfo(s, NULL, &hints, &res);
    Py_END_ALLOW_THREADS
    if (err != 0 || res == NULL) {
        PyErr_Format(PyExc_OSError, "cannot resolve host '%s': %s", s,
                     gai_strerror(err));
        if (res)
            freeaddrinfo(res);
        return -1;
    }
    if (family == AF_INET)
        memcpy(dst, &((struct sockaddr_in *)res->ai_addr)->sin_addr,
               sizeof(struct in_addr));
    else
        memcpy(dst, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr,
               sizeof(struct in6_addr));
    freeaddrinfo(res);
    return 0;
}

static int
parse_port(PyObject *o, uint16_t *port)
{
    long v;
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "port must be int, not %.100s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0 || v > 65535) {
        PyErr_SetString(PyExc_OverflowError, "port must be 0-65535");
        return -1;
    }
    *port = htons((uint16_t)v);
    return 0;
}

static int
u32_item(PyObject *o, const char *what, uint32_t *out)
{
    unsigned long v;
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be int", what);
        return -1;
    }
    v = PyLong_AsUnsignedLong(o);
    if (v == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    if (v > 0xffffffffUL) {
        PyErr_Format(PyExc_OverflowError, "%s must be 0-4294967295", what);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int
family_of(PyObject *o)
{
    if (PyUnicode_Check(o) || PyBytes_Check(o) || PyByteArray_Check(o))
        return AF_UNIX;
    if (PyTuple_Check(o) && PyTuple_GET_SIZE(o) == 2) {
        PyObject *h = PyTuple_GET_ITEM(o, 0);
        if (PyUnicode_Check(h)) {
            const char *s = PyUnicode_AsUTF8(h);
            if (s == NULL) {
                PyErr_Clear();
                return AF_INET;
            }
            if (strchr(s, ':') != NULL)
                return AF_INET6;
        }
        return AF_INET;
    }
    if (PyTuple_Check(o))
        return AF_INET6;
    return AF_UNSPEC;
}

int
pu_sockaddr_from_python(PyObject *o, int family, struct sockaddr_storage *ss,
                        socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
        family = family_of(o);

    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        if (!PyTuple_Check(o) || PyTuple_GET_SIZE(o) != 2) {
            PyErr_Format(PyExc_TypeError,
                         "AF_INET address must be a (host, port) tuple, not %.100s",
                         Py_TYPE(o)->tp_name);
            return -1;
        }
        sin->sin_family = AF_INET;
        if (parse_host(PyTuple_GET_ITEM(o, 0), AF_INET, &sin->sin_addr) < 0 ||
            parse_port(PyTuple_GET_ITEM(o, 1), &sin->sin_port) < 0)
            return -1;
        *len = sizeof(*sin);
        return 0;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        Py_ssize_t n = PyTuple_Check(o) ? PyTuple_GET_SIZE(o) : 0;
        uint32_t flowinfo = 0, scope = 0;
        if (n < 2 || n > 4) {
            PyErr_Format(PyExc_TypeError,
                         "AF_INET6 address must be a tuple (host, port[, "
                         "flowinfo[, scope_id]]), not %.100s",
                         Py_TYPE(o)->tp_name);
            return -1;
        }
        sin6->sin6_family = AF_INET6;
        if (parse_host(PyTuple_GET_ITEM(o, 0), AF_INET6, &sin6->sin6_addr) < 0 ||
            parse_port(PyTuple_GET_ITEM(o, 1), &sin6->sin6_port) < 0)
            return -1;
        if (n > 2 && u32_item(PyTuple_GET_ITEM(o, 2), "flowinfo", &flowinfo) < 0)
            return -1;
        if (n > 3 && u32_item(PyTuple_GET_ITEM(o, 3), "scope_id", &scope) < 0)
            return -1;
        if (flowinfo > 0xfffff) {
            PyErr_SetString(PyExc_OverflowError, "flowinfo must be 0-1048575");
            return -1;
        }
        sin6->sin6_flowinfo = htonl(flowinfo);
        sin6->sin6_scope_id = scope;
        *len = sizeof(*sin6);
        return 0;
    }
    if (family == AF_UNIX) {
        struct sockaddr_un *sun = (struct sockaddr_un *)ss;
        PyObject *b = NULL;
        Py_ssize_t n;
        if (PyUnicode_Check(o)) {
            b = PyUnicode_EncodeFSDefault(o);
        } else if (PyObject_CheckBuffer(o)) {
            b = PyBytes_FromObject(o);
        } else if (PyObject_HasAttrString(o, "__fspath__")) {
            if (!PyUnicode_FSConverter(o, &b))
                return -1;
        } else {
            PyErr_Format(PyExc_TypeError,
                         "AF_UNIX address must be str or bytes, not %.100s",
                         Py_TYPE(o)->tp_name);
            return -1;
        }
        if (b == NULL)
            return -1;
        n = PyBytes_GET_SIZE(b);
        /* abstract names (leading NUL) use their exact length */
        if (n >= (Py_ssize_t)sizeof(sun->sun_path)) {
            Py_DECREF(b);
            PyErr_SetString(PyExc_OSError, "AF_UNIX path too long");
            return -1;
        }
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, PyBytes_AS_STRING(b), (size_t)n);
        Py_DECREF(b);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n +
                           (n > 0 && sun->sun_path[0] != '\0' ? 1 : 0));
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "unsupported address %.100R", o);
    return -1;
}

PyObject *
pu_sockaddr_to_python(const struct sockaddr *sa, socklen_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (len < sizeof(sa_family_t))
        Py_RETURN_NONE;
    switch (sa->sa_family) {
    case AF_INET: {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        return Py_BuildValue("(si)", host, (int)ntohs(sin->sin_port));
    }
    case AF_INET6: {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        return Py_BuildValue("(siII)", host, (int)ntohs(sin6->sin6_port),
                             (unsigned)ntohl(sin6->sin6_flowinfo),
                             (unsigned)sin6->sin6_scope_id);
    }
    case AF_UNIX: {
        const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
        size_t n = len - offsetof(struct sockaddr_un, sun_path);
        if (len <= offsetof(struct sockaddr_un, sun_path))
            return PyUnicode_FromString("");
        if (sun->sun_path[0] == '\0')   /* abstract: bytes, as socket does */
            return PyBytes_FromStringAndSize(sun->sun_path, (Py_ssize_t)n);
        return PyUnicode_DecodeFSDefaultAndSize(
            sun->sun_path, (Py_ssize_t)strnlen(sun->sun_path, n));
    }
    default:
        return Py_BuildValue("(iy#)", (int)sa->sa_family, sa->sa_data,
                             (Py_ssize_t)(len - sizeof(sa_family_t)));
    }
}
