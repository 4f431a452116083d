"""The floor under any Python NOP loop: the fast NOP loop of
bench/workloads/nop.py with no io_uring in it, to compare with C's NOP rate
(docs/performance.md).

    python3 bench/loop_floor.py

"no call": the loop's own bytecode (n + i per op, then 64 ready-made
(user_data, res, flags) tuples iterated and summed, as reap() gives them);
"py call": one call of an empty Python function with user_data= per op, in
place of ring.prep_nop(user_data=...); "dict call": a C callable instead
(dict(user_data=...), which also builds a dict)."""

import time


def f(user_data=None):
    pass


def loop(total, call):
    tuples = [(i + 10**6, 0, 0) for i in range(64)]
    s = n = 0
    t0 = time.perf_counter()
    for _ in range(total // 64):
        if call:
            for i in range(64):
                call(user_data=n + i)
        else:
            for i in range(64):
                x = n + i  # noqa: F841 (the addition is the point)
        b = 0
        for data, res, flags in tuples:
            b += res + data
        s += b
        n += 64
    return total / (time.perf_counter() - t0)



if __name__ == "__main__":
    for rep in range(3):
        print("no call %.1fM/s" % (loop(1280000, None) / 1e6), " py call %.1fM/s" % (loop(1280000, f) / 1e6), " dict call %.1fM/s" % (loop(1280000, dict) / 1e6))
