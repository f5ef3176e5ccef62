/* The shadow's specialised call: a function whose arguments and return value
 * all live in registers (at most 6 integer-class and 8 SSE-class arguments,
 * no struct by value, no stack argument) is called through one universal
 * prototype instead of libffi's ffi_call.
 *
 * Under the System V x86-64 ABI the integer-class arguments go to rdi, rsi,
 * rdx, rcx, r8, r9 in order and the SSE-class ones to xmm0..xmm7 in order,
 * each class counted on its own: calling any such function as
 *     f(g0, g1, g2, g3, g4, g5, x0, x1, x2, x3, x4, x5, x6, x7)
 * with its integer arguments in g0.. and its floating ones in x0.. puts every
 * argument in the register the callee reads; the extra registers are never
 * read. The return value is read from rax (integer class) or xmm0 (SSE
 * class). C calls a function through a pointer of another type here, which
 * the ABI (not ISO C) defines; the function is never variadic (DDL refuses
 * variadic boundary functions).
 *
 * It has ffi_call's signature, so that the sandbox (sandbox.c) runs it in
 * its place: `cif` is a struct ddl_regsig. */
#include <stdint.h>
#include <string.h>

#include "regcall.h"

typedef uint64_t (*int_fn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, double,
                           double, double, double, double, double, double, double);
typedef double (*sse_fn)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, double,
                         double, double, double, double, double, double, double);

void ddl_reg_call(void *cif, void (*fn)(void), void *rvalue, void **avalue)
{
    const struct ddl_regsig *s = cif;
    uint64_t g[6] = { 0 };
    double x[8] = { 0 };
    unsigned gi = 0, xi = 0;
    for (unsigned i = 0; i < s->nargs; i++) {
        if (s->cls[i] == DDL_REG_SSE) {
            /* The argument's bits (a float in the low four bytes). */
            memcpy(&x[xi++], avalue[i], 8);
        } else {
            memcpy(&g[gi++], avalue[i], 8);
        }
    }
    if (s->ret == DDL_REG_SSE) {
        double r = ((sse_fn)fn)(g[0], g[1], g[2], g[3], g[4], g[5], x[0], x[1], x[2], x[3], x[4],
                                x[5], x[6], x[7]);
        memcpy(rvalue, &r, 8);
    } else {
        uint64_t r = ((int_fn)fn)(g[0], g[1], g[2], g[3], g[4], g[5], x[0], x[1], x[2], x[3], x[4],
                                  x[5], x[6], x[7]);
        if (s->ret == DDL_REG_INT)
            memcpy(rvalue, &r, 8);
    }
}
