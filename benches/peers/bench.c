/* libbench.so.1: the component of the end-to-end benchmarks
 * (scripts/bench.sh). Old and new builds come from this file; -DNEW only
 * changes the build's identity string, never a result. */
#include "bench.h"

#include <stdlib.h>

#ifdef NEW
const char bench_build[] = "libbench new";
#else
const char bench_build[] = "libbench old";
#endif

int bench_add(int a, int b)
{
    return (int)((unsigned)a + (unsigned)b);
}

double bench_f(double x)
{
    return x * 0.5 + 1.0;
}

/* Sum of the bytes (the 64 KiB buffer workload). */
size_t bench_sum(const uint8_t *buf, size_t len)
{
    size_t s = 0;
    for (size_t i = 0; i < len; i++)
        s += buf[i];
    return s;
}

struct bench_handle {
    int base;
};

bench_handle_t *bench_open(int base)
{
    bench_handle_t *h = malloc(sizeof *h);
    if (h)
        h->base = base;
    return h;
}

int bench_h_add(bench_handle_t *h, int x)
{
    return (int)((unsigned)h->base + (unsigned)x);
}

void bench_close(bench_handle_t *h)
{
    free(h);
}
