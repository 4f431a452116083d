/* echo_server.c: the C baseline for the TCP echo workload of bench/run.py.
 *
 *   echo_server [PORT]
 *
 * One thread, one epoll loop, non-blocking sockets: everything received on
 * a connection is sent back (what the socket does not take at once waits
 * in the connection's buffer, with EPOLLOUT armed and reading paused).
 * Listens on 127.0.0.1:PORT (0, the default: any free port), prints
 * "PORT <n>" on stdout once listening, and exits on SIGTERM or SIGINT, or
 * when stdin reaches EOF (so it never outlives run.py). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF 65536
#define MAXFD 65536
#define LISTEN_TAG 0xffffffffu
#define STDIN_TAG 0xfffffffeu

struct conn {
    unsigned char buf[BUF];
    size_t off, len;        /* bytes still to send back: buf[off:len] */
};

static struct conn *conns[MAXFD];
static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void
drop(int ep, int fd)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(conns[fd]);
    conns[fd] = NULL;
}

/* send the pending bytes; 1 when all went, 0 on EAGAIN, -1 on error */
static int
flush(struct conn *c, int fd)
{
    while (c->off < c->len) {
        ssize_t r = send(fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
        }
        c->off += (size_t)r;
    }
    c->off = c->len = 0;
    return 1;
}

int
main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 0, one = 1, ls, ep;
    struct sockaddr_in sa;
    socklen_t salen = sizeof(sa);
    struct epoll_event ev, evs[256];
    struct sigaction act;

    memset(&act, 0, sizeof(act));
    act.sa_handler = on_signal;
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    signal(SIGPIPE, SIG_IGN);

    ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (ls < 0)
        return perror("socket"), 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1024) < 0)
        return perror("bind/listen"), 1;
    getsockname(ls, (struct sockaddr *)&sa, &salen);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        return perror("epoll_create1"), 1;
    ev.events = EPOLLIN;
    ev.data.u32 = LISTEN_TAG;
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    ev.events = EPOLLIN;
    ev.data.u32 = STDIN_TAG;
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev);   /* fails harmlessly if stdin is a file */
    printf("PORT %d\n", ntohs(sa.sin_port));
    fflush(stdout);

    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 1000);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return perror("epoll_wait"), 1;
        }
        for (int k = 0; k < n; k++) {
            uint32_t tag = evs[k].data.u32;
            if (tag == STDIN_TAG) {
                char b[256];
                if (read(0, b, sizeof(b)) <= 0)
                    stop = 1;
                continue;
            }
            if (tag == LISTEN_TAG) {
                for (int a = 0; a < 256; a++) {
                    int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    if (fd >= MAXFD || (conns[fd] = calloc(1, sizeof(struct conn))) == NULL) {
                        close(fd);
                        continue;
                    }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    ev.events = EPOLLIN;
                    ev.data.u32 = (uint32_t)fd;
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            {
                int fd = (int)tag, f;
                struct conn *c = conns[fd];
                if (c == NULL)
                    continue;
                if (c->len > 0) {            /* waiting for EPOLLOUT */
                    f = flush(c, fd);
                    if (f < 0) {
                        drop(ep, fd);
                        continue;
                    }
                    if (f == 0)
                        continue;
                    ev.events = EPOLLIN;
                    ev.data.u32 = (uint32_t)fd;
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                }
                if (evs[k].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                    ssize_t r = recv(fd, c->buf, BUF, 0);
                    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                        drop(ep, fd);
                        continue;
                    }
                    if (r < 0)
                        continue;
                    c->off = 0;
                    c->len = (size_t)r;
                    f = flush(c, fd);
                    if (f < 0) {
                        drop(ep, fd);
                    } else if (f == 0) {
                        ev.events = EPOLLOUT;
                        ev.data.u32 = (uint32_t)fd;
                        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                    }
                }
            }
        }
    }
    for (int fd = 0; fd < MAXFD; fd++)
        if (conns[fd] != NULL)
            drop(ep, fd);
    close(ls);
    close(ep);
    return 0;
}
