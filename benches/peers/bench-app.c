/* The workload of the end-to-end benchmarks (scripts/bench.sh).
 *
 *   bench-app KIND N THREADS [WORK]
 *
 * KIND: add (int bench_add(int, int)), f (double bench_f(double)),
 * sum64k (size_t bench_sum(buf, 65536)), memcpy64k (a 64 KiB memcpy, no
 * library call: the bandwidth reference for capturing a 64 KiB input), or
 * handle (int bench_h_add(h, x) on a handle each thread opens with
 * bench_open before the timed loop and closes with bench_close after it).
 * Each of THREADS threads makes N calls in a tight loop; the threads start
 * together (barrier). Only the loop is timed, with CLOCK_MONOTONIC (and
 * CLOCK_THREAD_CPUTIME_ID, which stays per-call when more threads than
 * cores share the machine). WORK (add and handle only, 0 by default): that
 * many steps of a dependent multiply-add chain (~1.1 ns each here) before
 * each call, a caller that does work of its own between calls. Prints, for
 * the median thread:
 *
 *   ns_per_call <wall ns per call>
 *   cpu_ns_per_call <thread cpu ns per call>
 *   checksum <sum over threads; identical under every path>
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define BUF 65536

enum kind { ADD, F, SUM64K, MEMCPY64K, HANDLE };

struct worker {
    pthread_t th;
    int id;
    enum kind kind;
    long n;
    int work;
    double ns_per_call;
    double cpu_ns_per_call;
    uint64_t checksum;
};

static pthread_barrier_t start;

static double ns_of(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* The caller's own work between calls: `steps` dependent multiply-adds. */
static uint64_t work(uint64_t x, int steps)
{
    for (int k = 0; k < steps; k++)
        x = x * 6364136223846793005u + 1442695040888963407u;
    return x;
}

static void *run(void *arg)
{
    struct worker *w = arg;
    long n = w->n;
    uint8_t *buf = NULL, *dst = NULL;
    if (w->kind == SUM64K || w->kind == MEMCPY64K) {
        buf = malloc(BUF);
        dst = malloc(BUF);
        if (!buf || !dst)
            abort();
        for (size_t i = 0; i < BUF; i++)
            buf[i] = (uint8_t)(i * 131u + (unsigned)w->id);
        memset(dst, 0, BUF);
    }
    bench_handle_t *h = NULL;
    if (w->kind == HANDLE && !(h = bench_open(w->id + 1)))
        abort();
    pthread_barrier_wait(&start);
    double t0 = ns_of(CLOCK_MONOTONIC), c0 = ns_of(CLOCK_THREAD_CPUTIME_ID);
    uint64_t sum = 0;
    switch (w->kind) {
    case ADD: {
        int s = w->id;
        if (w->work == 0) {
            for (long i = 0; i < n; i++)
                s = bench_add(s, (int)i);
        } else {
            uint64_t x = (uint64_t)w->id + 1;
            for (long i = 0; i < n; i++) {
                x = work(x, w->work);
                s = bench_add(s, (int)(x >> 40));
            }
            sum = x;
        }
        sum += (uint64_t)(unsigned)s;
        break;
    }
    case F: {
        double acc = 0;
        for (long i = 0; i < n; i++)
            acc += bench_f((double)(i & 1023));
        sum = (uint64_t)acc;
        break;
    }
    case SUM64K:
        for (long i = 0; i < n; i++) {
            buf[i & (BUF - 1)]++;
            sum += bench_sum(buf, BUF);
        }
        break;
    case HANDLE: {
        int s = w->id;
        if (w->work == 0) {
            for (long i = 0; i < n; i++)
                s = bench_h_add(h, s + (int)i);
        } else {
            uint64_t x = (uint64_t)w->id + 1;
            for (long i = 0; i < n; i++) {
                x = work(x, w->work);
                s = bench_h_add(h, s + (int)(x >> 40));
            }
            sum = x;
        }
        sum += (uint64_t)(unsigned)s;
        break;
    }
    case MEMCPY64K:
        for (long i = 0; i < n; i++) {
            buf[i & (BUF - 1)]++;
            memcpy(dst, buf, BUF);
            __asm__ volatile("" ::"r"(dst) : "memory");
            sum += dst[(i * 7) & (BUF - 1)];
        }
        break;
    }
    double t1 = ns_of(CLOCK_MONOTONIC), c1 = ns_of(CLOCK_THREAD_CPUTIME_ID);
    w->ns_per_call = (t1 - t0) / (double)n;
    w->cpu_ns_per_call = (c1 - c0) / (double)n;
    w->checksum = sum;
    if (h)
        bench_close(h);
    free(buf);
    free(dst);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s add|f|sum64k|memcpy64k|handle N THREADS [WORK]\n", argv[0]);
        return 2;
    }
    enum kind kind;
    if (!strcmp(argv[1], "add"))
        kind = ADD;
    else if (!strcmp(argv[1], "f"))
        kind = F;
    else if (!strcmp(argv[1], "sum64k"))
        kind = SUM64K;
    else if (!strcmp(argv[1], "memcpy64k"))
        kind = MEMCPY64K;
    else if (!strcmp(argv[1], "handle"))
        kind = HANDLE;
    else {
        fprintf(stderr, "bench-app: unknown kind %s\n", argv[1]);
        return 2;
    }
    long n = atol(argv[2]);
    int threads = atoi(argv[3]);
    int work_steps = argc == 5 ? atoi(argv[4]) : 0;
    if (n <= 0 || threads <= 0 || threads > 64 || work_steps < 0 ||
        (work_steps > 0 && kind != ADD && kind != HANDLE)) {
        fprintf(stderr, "bench-app: bad N, THREADS or WORK\n");
        return 2;
    }
    struct worker *w = calloc((size_t)threads, sizeof *w);
    double *wall = calloc((size_t)threads, sizeof *wall);
    double *cpu = calloc((size_t)threads, sizeof *cpu);
    if (!w || !wall || !cpu)
        abort();
    pthread_barrier_init(&start, NULL, (unsigned)threads);
    for (int t = 0; t < threads; t++) {
        w[t].id = t;
        w[t].kind = kind;
        w[t].n = n;
        w[t].work = work_steps;
        if (pthread_create(&w[t].th, NULL, run, &w[t]) != 0) {
            perror("pthread_create");
            return 1;
        }
    }
    uint64_t checksum = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(w[t].th, NULL);
        wall[t] = w[t].ns_per_call;
        cpu[t] = w[t].cpu_ns_per_call;
        checksum += w[t].checksum;
    }
    printf("ns_per_call %.3f\n", median(wall, threads));
    printf("cpu_ns_per_call %.3f\n", median(cpu, threads));
    printf("checksum %llu\n", (unsigned long long)checksum);
    return 0;
}
