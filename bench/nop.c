/* NOP round trips in C over liburing: the baseline for bench/run.py.
 *
 *   nop BATCH TOTAL [ENTRIES]
 *
 * Each round prepares BATCH no-ops (user data = index), submits, waits for
 * BATCH completions, reads res and user data of each, marks each seen.
 * Prints "ops_per_sec <float>" and "checksum <n>" (so nothing is optimised away).
 */
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s BATCH TOTAL [ENTRIES]\n", argv[0]);
        return 2;
    }
    unsigned batch = (unsigned)atoi(argv[1]);
    long total = atol(argv[2]);
    unsigned entries = argc > 3 ? (unsigned)atoi(argv[3]) : 256;
    struct io_uring ring;
    int ret = io_uring_queue_init(entries, &ring, 0);
    if (ret < 0) {
        fprintf(stderr, "queue_init: %s\n", strerror(-ret));
        return 1;
    }
    long rounds = total / batch, done = 0;
    unsigned long long sum = 0;
    double t0 = now();
    for (long r = 0; r < rounds; r++) {
        for (unsigned i = 0; i < batch; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, (unsigned long long)(done + i));
        }
        io_uring_submit(&ring);
        for (unsigned i = 0; i < batch; i++) {
            struct io_uring_cqe *cqe;
            ret = io_uring_wait_cqe(&ring, &cqe);
            if (ret < 0) {
                fprintf(stderr, "wait_cqe: %s\n", strerror(-ret));
                return 1;
            }
            sum += (unsigned long long)cqe->res + io_uring_cqe_get_data64(cqe);
            io_uring_cqe_seen(&ring, cqe);
        }
        done += batch;
    }
    double dt = now() - t0;
    printf("ops_per_sec %.1f\nchecksum %llu\n", done / dt, sum);
    io_uring_queue_exit(&ring);
    return 0;
}
