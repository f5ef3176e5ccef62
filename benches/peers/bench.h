/* The benchmark component: libbench.so.1. The old and the new build are
 * compiled from bench.c (the new one with -DNEW) and return identical
 * results, so every mirrored call is a match. */
#ifndef BENCH_H
#define BENCH_H
#include <stddef.h>
#include <stdint.h>

int bench_add(int a, int b);
double bench_f(double x);
size_t bench_sum(const uint8_t *buf, size_t len);

/* A handle (the `handle` workload): made by bench_open, used by
 * bench_h_add (returns base + x), freed by bench_close. */
typedef struct bench_handle bench_handle_t;
bench_handle_t *bench_open(int base);
int bench_h_add(bench_handle_t *h, int x);
void bench_close(bench_handle_t *h);

#endif
