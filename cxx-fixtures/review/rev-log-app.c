/* Calls a component function that writes to stdout. */
#include <stdio.h>
#include <unistd.h>
#include "rev.h"

int main(void)
{
    for (int i = 0; i < 3; i++)
        rev_log(i);
    usleep(100 * 1000);
    printf("done\n");
    return 0;
}
