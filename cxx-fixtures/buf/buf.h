/* libbuf: buffers, out-parameters, size expressions and structs.
 *
 * One source (buf.c) builds both versions: the old build without -DNEW, the
 * new build with -DNEW. Both carry the soname libbuf.so.1. The deliberate
 * differences (new vs old) are listed per function; the annotations a DDL
 * signature needs are given in brackets. */
#ifndef BUF_H
#define BUF_H

#include <stddef.h>
#include <stdint.h>

struct point { double x; double y; };
struct rect { int x, y, w, h; };
struct box3 { double a, b, c; };

/* Run-length encoding as (byte, count) pairs, runs of at most 255.
 * src [in len], dst [out cap; written ret]. Returns bytes written (0 if cap
 * is too small). New stores the count of a run longer than 127 with its high
 * bit cleared (same length, different byte). */
size_t buf_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap);
/* xs [in n], mean [out], max [out]; returns n. Identical. */
int buf_stats(const double *xs, int n, double *mean, double *max);
/* xs [inout n]: reverses in place. New forgets to swap the outermost pair
 * when n >= 10. */
void buf_reverse(int *xs, int n);
/* out [out cap; string]: upper-cased copy of s, truncated to cap - 1 chars;
 * returns strlen(s). New also turns '-' into '_'. */
int buf_upper(const char *s, char *out, size_t cap);
/* dst [out n; written *count], count [out]: writes *count = n / 2 bytes
 * dst[i] = 3 * i + 1 and returns *count. New writes 0xEE at dst[20] when n >= 64. */
size_t buf_fill(uint8_t *dst, size_t n, size_t *count);
/* struct by value in and out (SSE class). Identical. */
struct point buf_mid(struct point a, struct point b);
/* structs by const pointer. Identical. */
double buf_dist(const struct point *a, const struct point *b);
/* struct by pointer, updated in place (inout). New ignores dy when dx == 0. */
void buf_translate(struct point *p, double dx, double dy);
/* struct of ints by value (INTEGER class): w * h. New returns 0 when w or h
 * is negative. */
int buf_area(struct rect r);
/* struct larger than 16 bytes by value and returned (MEMORY class):
 * {b.a * k, b.b * k, b.c * k}. New uses |k| for the c field. */
struct box3 buf_scale3(struct box3 b, double k);
/* 8 integer and 10 double arguments (stack arguments): returns
 * sum(i * a_i) + sum(j * d_j). New adds d10 once more when a8 == 8 and
 * d10 > 100 (both passed on the stack). */
double buf_many(int a1, int a2, int a3, int a4, int a5, int a6, int a7, int a8,
                double d1, double d2, double d3, double d4, double d5,
                double d6, double d7, double d8, double d9, double d10);
/* Mixed-class struct by value and returned (INTEGER + SSE eightbytes):
 * {t.id + k, t.w * k}. New computes id - k when k < 0. */
struct tag { int id; double w; };
struct tag buf_tag(struct tag t, int k);
/* Two floats in one SSE eightbyte, swapped. Identical. */
struct fpair { float a; float b; };
struct fpair buf_swapf(struct fpair p);
/* Three floats (12 bytes: %xmm0 holds x and y, %xmm1 holds z), each
 * multiplied by k. Identical. */
struct pt3f { float x; float y; float z; };
struct pt3f buf_scale3f(struct pt3f p, float k);
/* A callback (function pointer, opaque: the shadow calls the same one):
 * xs[i] = fn(xs[i]) for i < n. New skips the last element when n > 4. */
void buf_apply(int *xs, int n, int (*fn)(int));
/* A caller-owned stream struct updated in place, zlib style:
 *   struct pump { const uint8_t *next_in [in avail_in]; size_t avail_in;
 *                 uint8_t *next_out [out avail_out]; size_t avail_out;
 *                 unsigned long total; void *user [null]; }
 * buf_pump moves n = min(avail_in, avail_out, 64) bytes from next_in to
 * next_out, advances both pointers, decreases both counts, adds n to total
 * and returns n. user is never touched. New writes 'Z' for every 'z'. */
struct pump {
    const uint8_t *next_in;
    size_t avail_in;
    uint8_t *next_out;
    size_t avail_out;
    unsigned long total;
    void *user;
};
int buf_pump(struct pump *p);
/* opaque pointer, returned unchanged. Identical. */
void *buf_identity(void *p);

#endif
