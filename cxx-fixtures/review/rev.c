#include "rev.h"
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <dlfcn.h>

static void (*handler)(int);

void rev_set_handler(void (*h)(int)) { handler = h; }

static int checks;
int rev_checks(void) { return checks; }

int rev_check(int x)
{
    checks++;
    if (x < 0 && handler)
        handler(x);
    return x * 2;
}

int rev_inc(int x) { return x + 1; }

int rev_is_check(int (*f)(int)) { return f == rev_check; }

int rev_apply(int x, int (*fn)(int)) { return fn(x) * 2; }

int rev_fragile(int x)
{
#ifdef NEW
    if (x == 7) {
        volatile int *p = NULL;
        return *p; /* the new build crashes on 7 */
    }
#endif
    return x - 1;
}

double rev_div(double a, double b) { return a / b; }

long rev_chars(const char *s) { return (long)mbstowcs(NULL, s, 0); }

int rev_log(int x)
{
    printf("rev_log: %d\n", x);
    fflush(stdout);
    return x;
}

/* A plugin loader that hands over to dlopen (a tail call: dlopen's caller
 * is rev_load's caller, whose RUNPATH applies). */
void *rev_load(const char *name) { return dlopen(name, RTLD_NOW); }
