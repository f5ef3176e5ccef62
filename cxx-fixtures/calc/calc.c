/* libcalc, old and new builds (-DNEW). See calc.h for the differences.
 * -DNEW -DFIX_DIV: the new build with calc_div's difference fixed. */
#include "calc.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

int calc_add(int a, int b) { return a + b; }

int calc_div(int a, int b)
{
    if (b == 0) {
#if defined(NEW) && !defined(FIX_DIV)
        return -1;
#else
        return 0;
#endif
    }
    return a / b;
}

int calc_add3(int a, int b, int c) { return calc_add(calc_add(a, b), c); }

double calc_sqrt(double x)
{
    double r = sqrt(x);
#ifdef NEW
    if (x > 100.0)
        r = nextafter(r, INFINITY);
#endif
    return r;
}

double calc_norm2(double x, double y) { return calc_sqrt(x * x + y * y); }

float calc_scale(float x, float k) { return x * k; }

#ifdef NEW
/* Same results, garbage in the upper bits of %eax (see calc.h). */
__attribute__((naked)) bool calc_is_even(long n)
{
    (void)n;
    __asm__("movl %edi, %eax\n\t"
            "notl %eax\n\t"
            "andl $1, %eax\n\t"
            "orl $0x3c3c0000, %eax\n\t"
            "ret");
}
#else
bool calc_is_even(long n) { return n % 2 == 0; }
#endif

enum calc_sign calc_sign(int x) { return x < 0 ? CALC_NEG : x > 0 ? CALC_POS : CALC_ZERO; }

#ifdef NEW
/* Same results, garbage in the upper bits of %eax (see calc.h). */
__attribute__((naked)) int8_t calc_clamp8(int x)
{
    (void)x;
    __asm__("cmpl $127, %edi\n\t"
            "jle 1f\n\t"
            "movl $127, %edi\n"
            "1:\n\t"
            "cmpl $-128, %edi\n\t"
            "jge 2f\n\t"
            "movl $-128, %edi\n"
            "2:\n\t"
            "movl %edi, %eax\n\t"
            "xorl $0x5a5a0000, %eax\n\t"
            "ret");
}
#else
int8_t calc_clamp8(int x) { return (int8_t)(x < -128 ? -128 : x > 127 ? 127 : x); }
#endif

uint16_t calc_swap16(uint16_t v) { return (uint16_t)((v << 8) | (v >> 8)); }

unsigned long long calc_mul64(unsigned long long a, unsigned long long b)
{
#ifdef NEW
    if (a != 0 && b > ULLONG_MAX / a)
        return ULLONG_MAX;
#endif
    return a * b;
}

uint64_t calc_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
#ifdef NEW
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
#endif
        h ^= c;
        h *= 1099511628211ULL;
    }
    return h;
}

const char *calc_name(int code)
{
    switch (code) {
    case 0: return "zero";
    case 1: return "one";
    case 2: return "two";
#ifdef NEW
    case 3: return "thr3e";
#else
    case 3: return "three";
#endif
    default: return "many";
    }
}

double calc_trunc(double x)
{
#ifdef NEW
    if (isnan(x))
        return NAN;
    if (x > -1.0 && x < 1.0)
        return 0.0;
#endif
    return trunc(x);
}

int calc_slow(int ms)
{
#ifdef NEW
    usleep((useconds_t)ms * 1000);
#endif
    return ms;
}

long calc_parse(const char *s) { return strtol(s, NULL, 10); }

int calc_version(void)
{
#ifdef NEW
    return 2;
#else
    return 1;
#endif
}

#ifndef NEW
int calc_legacy(int x) { return x; }
#else
int calc_added(int x) { return x; }
#endif
