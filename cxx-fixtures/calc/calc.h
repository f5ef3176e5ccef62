/* libcalc: pure scalar, float and string functions.
 *
 * One source (calc.c) builds both versions: the old build without -DNEW,
 * the new build with -DNEW. Both carry the soname libcalc.so.1.
 * The deliberate differences (new vs old) are listed per function. */
#ifndef CALC_H
#define CALC_H

#include <stdbool.h>
#include <stdint.h>

enum calc_sign { CALC_NEG = -1, CALC_ZERO = 0, CALC_POS = 1 };

/* identical */
int calc_add(int a, int b);
/* old returns 0 when b == 0, new returns -1 there; identical otherwise */
int calc_div(int a, int b);
/* identical; calls calc_add through the PLT (a boundary function called by
 * the component itself: in a non-PIE app that took calc_add's address it
 * reaches the app's canonical PLT entry; DDL must forward it, not mirror it) */
int calc_add3(int a, int b, int c);
/* for x > 100, new returns the double 1 ulp above old's sqrt(x) */
double calc_sqrt(double x);
/* sqrt(x*x + y*y) through calc_sqrt, called through the PLT: in a non-PIE
 * app whose RELRO table holds calc_sqrt's address, the inner call reaches the
 * app's canonical PLT entry, i.e. the app's rebound slot; DDL must forward it
 * (not count it, not mirror it). Differs like calc_sqrt: 1 ulp when
 * x*x + y*y > 100. */
double calc_norm2(double x, double y);
/* identical: x * k */
float calc_scale(float x, float k);
/* identical results. The new build is written in assembly and leaves
 * garbage in the upper bits of %eax (the psABI only defines %al for a bool):
 * comparing more than the low byte is a false mismatch. */
bool calc_is_even(long n);
/* identical */
enum calc_sign calc_sign(int x);
/* identical: x clamped to [-128, 127]. As calc_is_even, the new build
 * leaves garbage in the upper bits of %eax (only %al is the int8_t). */
int8_t calc_clamp8(int x);
/* identical: byte swap */
uint16_t calc_swap16(uint16_t v);
/* old wraps on overflow, new saturates at ULLONG_MAX: differs only on overflow */
unsigned long long calc_mul64(unsigned long long a, unsigned long long b);
/* FNV-1a; new folds 'A'..'Z' to lower case first: differs only for strings
 * with an upper-case letter */
uint64_t calc_hash(const char *s);
/* static strings; code 3: old "three", new "thr3e"; other codes identical */
const char *calc_name(int code);
/* trunc(x). New: +0.0 for every x in (-1, 1), so -0.0 becomes +0.0
 * (differs under "exact": not the same bits), and the default quiet NaN for
 * any NaN (a different NaN, which every comparator counts as equal). */
double calc_trunc(double x);
/* returns ms; the new build first sleeps ms milliseconds (a slow
 * candidate: the shadow falls behind, the caller must not). */
int calc_slow(int ms);
/* strtol(s, NULL, 10): sets errno (ERANGE) like strtol does. Identical. */
long calc_parse(const char *s);
/* old 1, new 2 (compared with "ignore") */
int calc_version(void);

/* Exported by one build only (no app calls them; the config-error tests name
 * them in a boundary): calc_legacy was removed in the new build, calc_added
 * is new in the new build. */
#ifndef NEW
int calc_legacy(int x);
#else
int calc_added(int x);
#endif

#endif
