/* The workload of the end-to-end benchmarks (scripts/bench.sh).
 *
 *   bench-app KIND N THREADS [WORK]
 *
 * KIND: add (int bench_add(int, int)), f (double bench_f(double)),
 * sum64k (size_t bench_sum(buf, 65536)), memcpy64k (a 64 KiB memcpy, no
 * library call: the bandwidth reference for capturing a 64 KiB input),
 * handoff64k (sum64k's loop, each call's 64 KiB input first handed to a
 * reader thread that sums it too: the floor of mirroring such a call, see
 * handoff() below; plain runs only), or handle (int bench_h_add(h, x) on
 * a handle each thread opens with bench_open before the timed loop and
 * closes with bench_close after it).
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
 *   dropped <handoff64k only: copies its full ring dropped, all threads>
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <emmintrin.h>

#include "bench.h"

#define BUF 65536

enum kind { ADD, F, SUM64K, MEMCPY64K, HANDOFF64K, HANDLE };

struct worker {
    pthread_t th;
    int id;
    enum kind kind;
    long n;
    int work;
    double ns_per_call;
    double cpu_ns_per_call;
    uint64_t checksum;
    long dropped;
};

/* The hand-off floor (KIND handoff64k): what any tool that mirrors a call
 * with a 64 KiB input into another thread must at least do on the caller's
 * thread, written as lean as this machine allows. The caller copies the
 * input into the next of SLOTS rotating buffers and publishes it; a reader
 * thread sums each published buffer with the same bench_sum (the "shadow")
 * and gives it back. A full ring drops (counted), it never waits. The copy
 * uses non-temporal stores: the fastest way measured here to write lines
 * another core read last (an ordinary memcpy into them took 4 to 27 us
 * against 2.5 us; DDL's capture, arbiter/src/bufpool.rs, does the same). */
#define SLOTS 16
struct handoff {
    uint8_t *slot[SLOTS];
    _Atomic long head; /* published by the caller */
    char pad[64];
    _Atomic long tail; /* given back by the reader */
    char pad2[64];
    _Atomic int stop;
    uint64_t sum;
};

static void stream_copy(uint8_t *d, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i += 64) {
        __m128i a = _mm_loadu_si128((const __m128i *)(s + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(s + i + 16));
        __m128i c = _mm_loadu_si128((const __m128i *)(s + i + 32));
        __m128i e = _mm_loadu_si128((const __m128i *)(s + i + 48));
        _mm_stream_si128((__m128i *)(d + i), a);
        _mm_stream_si128((__m128i *)(d + i + 16), b);
        _mm_stream_si128((__m128i *)(d + i + 32), c);
        _mm_stream_si128((__m128i *)(d + i + 48), e);
    }
    _mm_sfence();
}

static void *reader(void *arg)
{
    struct handoff *ho = arg;
    long t = 0;
    for (;;) {
        long h = atomic_load_explicit(&ho->head, memory_order_acquire);
        if (t == h) {
            if (atomic_load_explicit(&ho->stop, memory_order_acquire) &&
                t == atomic_load_explicit(&ho->head, memory_order_acquire))
                return NULL;
            __builtin_ia32_pause();
            continue;
        }
        ho->sum += bench_sum(ho->slot[t % SLOTS], BUF);
        atomic_store_explicit(&ho->tail, ++t, memory_order_release);
    }
}

/* Hands `buf` to the reader; false when the ring is full (dropped). */
static int handoff(struct handoff *ho, const uint8_t *buf)
{
    long h = atomic_load_explicit(&ho->head, memory_order_relaxed);
    if (h - atomic_load_explicit(&ho->tail, memory_order_acquire) >= SLOTS)
        return 0;
    stream_copy(ho->slot[h % SLOTS], buf, BUF);
    atomic_store_explicit(&ho->head, h + 1, memory_order_release);
    return 1;
}

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
    if (w->kind == SUM64K || w->kind == MEMCPY64K || w->kind == HANDOFF64K) {
        buf = malloc(BUF);
        dst = malloc(BUF);
        if (!buf || !dst)
            abort();
        for (size_t i = 0; i < BUF; i++)
            buf[i] = (uint8_t)(i * 131u + (unsigned)w->id);
        memset(dst, 0, BUF);
    }
    struct handoff *ho = NULL;
    pthread_t rd;
    if (w->kind == HANDOFF64K) {
        if (!(ho = calloc(1, sizeof *ho)))
            abort();
        for (int k = 0; k < SLOTS; k++)
            if (!(ho->slot[k] = aligned_alloc(64, BUF)))
                abort();
            else
                memset(ho->slot[k], 0, BUF);
        if (pthread_create(&rd, NULL, reader, ho) != 0)
            abort();
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
    case HANDOFF64K:
        for (long i = 0; i < n; i++) {
            buf[i & (BUF - 1)]++;
            if (!handoff(ho, buf))
                w->dropped++;
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
    if (ho) {
        atomic_store_explicit(&ho->stop, 1, memory_order_release);
        pthread_join(rd, NULL);
        for (int k = 0; k < SLOTS; k++)
            free(ho->slot[k]);
        free(ho);
    }
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
        fprintf(stderr, "usage: %s add|f|sum64k|memcpy64k|handoff64k|handle N THREADS [WORK]\n", argv[0]);
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
    else if (!strcmp(argv[1], "handoff64k"))
        kind = HANDOFF64K;
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
    long dropped = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(w[t].th, NULL);
        dropped += w[t].dropped;
        wall[t] = w[t].ns_per_call;
        cpu[t] = w[t].cpu_ns_per_call;
        checksum += w[t].checksum;
    }
    printf("ns_per_call %.3f\n", median(wall, threads));
    printf("cpu_ns_per_call %.3f\n", median(cpu, threads));
    printf("checksum %llu\n", (unsigned long long)checksum);
    if (kind == HANDOFF64K)
        printf("dropped %ld\n", dropped);
    return 0;
}
