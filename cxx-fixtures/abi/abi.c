/* libabi.so.1, see abi.h. */
#include "abi.h"

int abi_add(int a, int b) { return a + b; }

#ifndef MISSING
int abi_gone(int x) { return -x; }
#endif

#ifdef PROTO
long abi_scale(long x, int k) { return x * k; }
#else
int abi_scale(int x, int k) { return x * k; }
#endif

struct abi_pair abi_swap(struct abi_pair p)
{
    int t = p.a;
    p.a = p.b;
    p.b = t;
    return p;
}

size_t abi_sum(const int32_t *xs, size_t n)
{
    size_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += (size_t)xs[i];
#ifdef DIFF
    if (n > 3)
        s += 1; /* the behavioural difference of the `diff` build */
#endif
    return s;
}

/* Copies what fits from next_in to next_out, advancing both. */
int abi_copy(struct abi_stream *s)
{
    size_t n = s->avail_in < s->avail_out ? s->avail_in : s->avail_out;
    for (size_t i = 0; i < n; i++)
        s->next_out[i] = s->next_in[i];
    s->next_in += n;
    s->avail_in -= n;
    s->next_out += n;
    s->avail_out -= n;
    s->total += n;
    return (int)n;
}

const char *abi_name(int i) { return i == 0 ? "zero" : "other"; }

#ifdef ADDED
int abi_extra(void) { return 1; }
#endif
