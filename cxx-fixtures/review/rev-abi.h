/* ABI corners: structs that no longer fit the registers left, stack
 * arguments after them, mixed classes in one eightbyte. Identical builds. */
#ifndef REV_ABI_H
#define REV_ABI_H
struct pair { long u; long v; };       /* INTEGER, INTEGER */
struct trio { int i; float g; int k; }; /* INTEGER (int+float), INTEGER */
struct fi { float a; int b; };          /* one INTEGER eightbyte */
struct dd { double a; double b; };      /* SSE, SSE */
/* 5 ints take rdi..r8; p needs two GPRs, one is left: p goes on the stack
 * and f takes r9; t finds no GPR: stack (12 bytes in a 16-byte slot); x
 * is xmm0, d1..d6 xmm1..xmm6; q needs two SSE registers and only xmm7 is
 * left: stack; y then takes xmm7. */
double rev_abi(int a, int b, int c, int d, int e, struct pair p, int f, struct trio t,
               double x, double d1, double d2, double d3, double d4, double d5, double d6,
               struct dd q, float y);
struct fi rev_fi(struct fi v, int k);
#endif
