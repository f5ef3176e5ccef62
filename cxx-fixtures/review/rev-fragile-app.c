/* Calls a function that only the new build crashes on. */
#include <stdio.h>
#include <unistd.h>
#include "rev.h"

int main(void)
{
    for (int i = 5; i < 10; i++)
        printf("fragile(%d) = %d\n", i, rev_fragile(i));
    usleep(100 * 1000);
    printf("done\n");
    return 0;
}
