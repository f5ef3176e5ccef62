/* libnext.so: a second preloadable library, as another tool would ship it.
 * It interposes a libc function (puts) and a boundary function (calc_add),
 * forwards both unchanged through dlsym(RTLD_NEXT, ...), counts the calls and
 * prints the counts on stderr when unloaded.
 *
 * If libddl's own dlsym interposition answers RTLD_NEXT relative to libddl
 * instead of the real caller, then with LD_PRELOAD="libddl.so:libnext.so"
 * RTLD_NEXT from here finds libnext's own puts again: endless recursion.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned long n_puts, n_add;

int puts(const char *s)
{
    static int (*next)(const char *);
    if (!next)
        next = (int (*)(const char *))dlsym(RTLD_NEXT, "puts");
    if (!next || next == puts)
        abort();
    n_puts++;
    return next(s);
}

int calc_add(int a, int b)
{
    static int (*next)(int, int);
    if (!next)
        next = (int (*)(int, int))dlsym(RTLD_NEXT, "calc_add");
    if (!next || next == calc_add)
        abort();
    n_add++;
    return next(a, b);
}

__attribute__((destructor)) static void report(void)
{
    fprintf(stderr, "libnext: puts %lu calc_add %lu\n", n_puts, n_add);
}
