/* exit-probe.so: preloaded first by scripts/numpy-phases.py. Its constructor
 * notes CLOCK_MONOTONIC; an atexit handler (registered first, so it runs
 * after the handlers registered later, libddl's drain among them) prints
 *   PROBE <ctor ms> <atexit ms> <main thread's CPU ms>
 * on stderr. With the parent's clock before the spawn and after the wait,
 * that splits a run into start (exec to the constructor: ld.so, libddl's
 * load and boot), body and exit (the rest of the exit handlers, _dl_fini,
 * the teardown). Build: cc -O2 -shared -fPIC -o exit-probe.so exit-probe.c */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double ms(clockid_t c)
{
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double started;

static void at_exit(void)
{
    char b[160];
    int n = snprintf(b, sizeof b, "PROBE %.4f %.4f %.4f\n", started, ms(CLOCK_MONOTONIC),
                     ms(CLOCK_THREAD_CPUTIME_ID));
    if (n > 0)
        (void)!write(2, b, (size_t)n);
}

__attribute__((constructor)) static void init(void)
{
    started = ms(CLOCK_MONOTONIC);
    atexit(at_exit);
}
