/* Random reads in C over liburing: the baseline for bench/run.py.
 *
 *   randread FILE OFFSETS_FILE BLOCK DEPTH [direct] [fixed] [split]
 *
 * OFFSETS_FILE holds native uint64 offsets (written by bench/workloads/files.py, so C and
 * Python read the same blocks in the same order).  Keeps DEPTH reads in
 * flight, one reused aligned buffer per slot; with "direct" the file is
 * opened O_DIRECT; with "fixed" the file and the buffers are registered
 * (IOSQE_FIXED_FILE and io_uring_prep_read_fixed).  Prints "ops_per_sec
 * <float>" and "bytes <n>".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s FILE OFFSETS BLOCK DEPTH [direct] [fixed] [split]\n", argv[0]);
        return 2;
    }
    unsigned block = (unsigned)atoi(argv[3]);
    unsigned depth = (unsigned)atoi(argv[4]);
    int direct = 0, fixed = 0, split = 0;
    for (int a = 5; a < argc; a++) {
        direct |= strcmp(argv[a], "direct") == 0;
        fixed |= strcmp(argv[a], "fixed") == 0;
        split |= strcmp(argv[a], "split") == 0;
    }
    int fd = open(argv[1], O_RDONLY | (direct ? O_DIRECT : 0));
    if (fd < 0) { perror("open"); return 1; }

    FILE *of = fopen(argv[2], "rb");
    if (!of) { perror("offsets"); return 1; }
    struct stat st;
    fstat(fileno(of), &st);
    size_t n = st.st_size / sizeof(uint64_t);
    uint64_t *offs = malloc(n * sizeof(uint64_t));
    if (fread(offs, sizeof(uint64_t), n, of) != n) { perror("fread"); return 1; }
    fclose(of);

    char *bufs;
    if (posix_memalign((void **)&bufs, 4096, (size_t)block * depth)) return 1;
    unsigned *free_slots = malloc(depth * sizeof(unsigned));
    for (unsigned i = 0; i < depth; i++) free_slots[i] = i;
    unsigned nfree = depth;

    struct io_uring ring;
    int ret = io_uring_queue_init(depth < 256 ? 256 : depth, &ring, 0);
    if (ret < 0) { fprintf(stderr, "queue_init: %s\n", strerror(-ret)); return 1; }
    if (fixed) {
        struct iovec iov = {bufs, (size_t)block * depth};
        ret = io_uring_register_files(&ring, &fd, 1);
        if (ret == 0)
            ret = io_uring_register_buffers(&ring, &iov, 1);
        if (ret < 0) { fprintf(stderr, "register: %s\n", strerror(-ret)); return 1; }
    }

    size_t next = 0, completed = 0;
    unsigned long long bytes = 0;
    double t0 = now();
    while (completed < n) {
        while (nfree && next < n) {
            unsigned slot = free_slots[--nfree];
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            if (fixed) {
                io_uring_prep_read_fixed(sqe, 0, bufs + (size_t)slot * block, block,
                                         offs[next++], 0);
                sqe->flags |= IOSQE_FIXED_FILE;
            } else {
                io_uring_prep_read(sqe, fd, bufs + (size_t)slot * block, block, offs[next++]);
            }
            io_uring_sqe_set_data64(sqe, slot);
        }
        struct io_uring_cqe *cqe;
        if (split) {
            /* two calls, as the seed's submit() then wait_cqe(): a second
             * system call only when the submit did not complete a read */
            io_uring_submit(&ring);
            io_uring_wait_cqe(&ring, &cqe);
        } else {
            io_uring_submit_and_wait(&ring, 1);
        }
        while (io_uring_peek_cqe(&ring, &cqe) == 0) {
            if (cqe->res < 0) {
                fprintf(stderr, "read: %s\n", strerror(-cqe->res));
                return 1;
            }
            bytes += cqe->res;
            free_slots[nfree++] = (unsigned)io_uring_cqe_get_data64(cqe);
            io_uring_cqe_seen(&ring, cqe);
            completed++;
        }
    }
    double dt = now() - t0;
    printf("ops_per_sec %.1f\nbytes %llu\n", completed / dt, bytes);
    io_uring_queue_exit(&ring);
    close(fd);
    return 0;
}
