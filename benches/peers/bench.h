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

#endif
