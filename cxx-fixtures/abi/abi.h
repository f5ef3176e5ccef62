/* libabi.so.1: the C component of the `ddl check` fixture pairs (abi.mk).
 * One source; each variant of the new build is made with one -D flag that
 * changes one thing (see abi.mk for the finding each one gives). */
#ifndef ABI_H
#define ABI_H

#include <stddef.h>
#include <stdint.h>

/* Passed and returned by value. -DBYVALUE: a field is inserted in the
 * middle (size 8 -> 12, `b` moves from 4 to 8). */
struct abi_pair {
    int a;
#ifdef BYVALUE
    int tag;
#endif
    int b;
};

/* Passed by pointer, declared in a config with annotated fields.
 * -DSTREAM: a field is inserted after next_in (size 40 -> 48; avail_in,
 * next_out, avail_out and total move by 8). Without a config this is no
 * finding: the struct only crosses the boundary behind a pointer. */
struct abi_stream {
    const uint8_t *next_in;
#ifdef STREAM
    size_t flags;
#endif
    size_t avail_in;
    uint8_t *next_out;
    size_t avail_out;
    size_t total;
};

int abi_add(int a, int b);
#ifndef MISSING
int abi_gone(int x);
#endif
#ifdef PROTO
long abi_scale(long x, int k);
#else
int abi_scale(int x, int k);
#endif
struct abi_pair abi_swap(struct abi_pair p);
size_t abi_sum(const int32_t *xs, size_t n);
int abi_copy(struct abi_stream *s);
const char *abi_name(int i);
#ifdef ADDED
int abi_extra(void);
#endif

#endif
