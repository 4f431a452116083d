/* echo_load.c: a TCP echo load generator for bench/run.py.
 *
 *   echo_load PORT [CONNS [MSG_BYTES [SECONDS [MAX_MESSAGES]]]]
 *
 * Opens CONNS (64) keep-alive connections to 127.0.0.1:PORT and drives them
 * from one epoll loop: each connection sends a MSG_BYTES (1024) message and
 * waits for the whole echo (checked byte for byte) before it sends the
 * next.  Runs for SECONDS (2.0) or until MAX_MESSAGES (0: no limit) full
 * round trips, whichever comes first, then prints
 *
 *   messages <n>
 *   seconds <s>
 *   msgs_per_sec <n/s>
 *   cpu_seconds <user+sys of this process>
 *
 * Only talks to 127.0.0.1.  Every loop is bounded by the deadline. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
    int fd;
    size_t sent;        /* bytes of the current message sent */
    size_t got;         /* bytes of its echo received */
    unsigned seq;       /* message number: varies the payload */
    int want_out;       /* EPOLLOUT armed */
};

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void
fill(unsigned char *msg, size_t len, unsigned seq, int idx)
{
    for (size_t i = 0; i < len; i++)
        msg[i] = (unsigned char)(i * 7 + seq * 13 + (unsigned)idx);
}

static void
die(const char *what)
{
    perror(what);
    exit(1);
}

/* send what is left of the current message, up to EAGAIN */
static int
send_some(struct conn *c, const unsigned char *msg, size_t len)
{
    while (c->sent < len) {
        ssize_t r = send(c->fd, msg + c->sent, len - c->sent, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            return -1;
        }
        c->sent += (size_t)r;
    }
    return 0;
}

static void
arm(int ep, struct conn *c, int idx, int out)
{
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.u32 = (uint32_t)idx};
    if (c->want_out == out)
        return;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl");
    c->want_out = out;
}

int
main(int argc, char **argv)
{
    int port, nconn = 64, ep;
    size_t len = 1024;
    double seconds = 2.0, t0, t1, deadline;
    unsigned long long max_msgs = 0, done = 0;
    struct conn *conns;
    unsigned char *rbuf, **out;
    struct epoll_event evs[256];
    struct sockaddr_in sa;
    struct rusage ru;

    if (argc < 2) {
        fprintf(stderr, "usage: %s PORT [CONNS [MSG_BYTES [SECONDS [MAX_MESSAGES]]]]\n", argv[0]);
        return 2;
    }
    port = atoi(argv[1]);
    if (argc > 2)
        nconn = atoi(argv[2]);
    if (argc > 3)
        len = (size_t)atol(argv[3]);
    if (argc > 4)
        seconds = atof(argv[4]);
    if (argc > 5)
        max_msgs = strtoull(argv[5], NULL, 10);
    if (port <= 0 || port > 65535 || nconn < 1 || nconn > 100000 || len < 1 ||
        len > (1 << 24) || !(seconds > 0)) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }

    conns = calloc((size_t)nconn, sizeof(*conns));
    out = calloc((size_t)nconn, sizeof(*out));
    rbuf = malloc(len);
    if (!conns || !out || !rbuf)
        die("malloc");
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1");
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    /* connect them all (blocking), then switch to non-blocking */
    for (int i = 0; i < nconn; i++) {
        struct conn *c = &conns[i];
        int one = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            die("socket");
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
            die("connect");
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0)
            die("fcntl");
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
            die("epoll_ctl");
        out[i] = malloc(len);
        if (out[i] == NULL)
            die("malloc");
    }

    t0 = now();
    deadline = t0 + seconds;
    /* every connection starts its first message */
    for (int i = 0; i < nconn; i++) {
        fill(out[i], len, 0, i);
        if (send_some(&conns[i], out[i], len) < 0)
            die("send");
        if (conns[i].sent < len)
            arm(ep, &conns[i], i, 1);
    }
    for (;;) {
        int n;
        double t = now();
        if (t >= deadline || (max_msgs && done >= max_msgs))
            break;
        n = epoll_wait(ep, evs, 256, (int)((deadline - t) * 1000) + 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            struct conn *c = &conns[i];
            if (evs[k].events & (EPOLLERR | EPOLLHUP)) {
                fprintf(stderr, "connection %d closed by the server\n", i);
                return 1;
            }
            if ((evs[k].events & EPOLLOUT) && c->sent < len) {
                if (send_some(c, out[i], len) < 0)
                    die("send");
                if (c->sent == len)
                    arm(ep, c, i, 0);
            }
            if (evs[k].events & EPOLLIN) {
                /* bounded: at most len bytes a call, stops at EAGAIN */
                for (;;) {
                    ssize_t r = recv(c->fd, rbuf, len - c->got, 0);
                    if (r < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                            break;
                        if (errno == EINTR)
                            continue;
                        die("recv");
                    }
                    if (r == 0) {
                        fprintf(stderr, "connection %d: EOF from the server\n", i);
                        return 1;
                    }
                    if (c->got + (size_t)r > c->sent ||
                        memcmp(rbuf, out[i] + c->got, (size_t)r) != 0) {
                        fprintf(stderr, "connection %d: wrong echo\n", i);
                        return 1;
                    }
                    c->got += (size_t)r;
                    if (c->got < len)
                        continue;
                    /* a whole echo: the next message */
                    done++;
                    c->seq++;
                    c->sent = c->got = 0;
                    fill(out[i], len, c->seq, i);
                    if (send_some(c, out[i], len) < 0)
                        die("send");
                    if (c->sent < len)
                        arm(ep, c, i, 1);
                    break;
                }
            }
        }
    }
    t1 = now();
    getrusage(RUSAGE_SELF, &ru);
    printf("messages %llu\n", done);
    printf("seconds %.6f\n", t1 - t0);
    printf("msgs_per_sec %.1f\n", (double)done / (t1 - t0));
    printf("cpu_seconds %.6f\n",
           (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6);
    for (int i = 0; i < nconn; i++) {
        close(conns[i].fd);
        free(out[i]);
    }
    free(out);
    free(conns);
    free(rbuf);
    close(ep);
    return 0;
}
