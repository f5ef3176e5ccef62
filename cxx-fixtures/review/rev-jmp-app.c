/* A boundary call left by longjmp (the error handler jumps out of the
 * library, as libjpeg/libpng applications do), then ordinary calls on the
 * same thread. */
#include <setjmp.h>
#include <stdio.h>
#include "rev.h"

static jmp_buf env;
static void on_error(int code) { longjmp(env, code == 0 ? 1 : code); }

int main(void)
{
    rev_set_handler(on_error);
    int r = setjmp(env);
    if (r == 0) {
        printf("check(-3) = %d\n", rev_check(-3));
    } else {
        printf("error %d\n", r);
    }
    rev_set_handler(NULL);
    for (int i = 1; i <= 5; i++)
        printf("check(%d) = %d inc = %d\n", i, rev_check(i), rev_inc(i));
    return 0;
}
