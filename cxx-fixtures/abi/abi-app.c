/* Calls every function of libabi.so.1 (old build) and prints the results.
 * Boundary calls: abi_add 2, abi_gone 1, abi_scale 2, abi_swap 1,
 * abi_sum 2 (n = 3, 5: the `diff` build differs on the second),
 * abi_copy 2, abi_name 2. */
#include <stdio.h>

#include "abi.h"

int main(void)
{
    printf("add %d %d\n", abi_add(2, 3), abi_add(-1, 1));
    printf("gone %d\n", abi_gone(7));
    printf("scale %d %d\n", abi_scale(4, 5), abi_scale(-3, 3));
    struct abi_pair p = { 1, 2 };
    p = abi_swap(p);
    printf("swap %d %d\n", p.a, p.b);
    int32_t xs[5] = { 1, 2, 3, 4, 5 };
    printf("sum %zu %zu\n", abi_sum(xs, 3), abi_sum(xs, 5));
    uint8_t in[6] = { 'a', 'b', 'c', 'd', 'e', 'f' };
    uint8_t out[4] = { 0 };
    struct abi_stream s = { in, sizeof in, out, sizeof out, 0 };
    int a = abi_copy(&s);
    s.next_out = out;
    s.avail_out = sizeof out;
    int b = abi_copy(&s);
    printf("copy %d %d %.2s total %zu\n", a, b, (const char *)out, s.total);
    printf("name %s %s\n", abi_name(0), abi_name(1));
    return 0;
}
