/* A boundary function that calls back into the application, whose
 * callback has a side effect (it prints and counts, as a write callback
 * writes). */
#include <stdio.h>
#include <unistd.h>
#include "rev.h"

static int calls;
static int cb(int x)
{
    calls++;
    printf("callback(%d)\n", x);
    fflush(stdout);
    return x + 1;
}

int main(void)
{
    for (int i = 0; i < 3; i++)
        printf("apply(%d) = %d\n", i, rev_apply(i, cb));
    usleep(100 * 1000); /* let a shadow catch up */
    printf("callback ran %d times\n", calls);
    return 0;
}
