/* Boundary calls, then chdir (daemons chdir("/")), then more calls. */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "rev.h"

int main(void)
{
    printf("check(1) = %d\n", rev_check(1));
    mkdir("elsewhere", 0755);
    if (chdir("elsewhere") != 0)
        return 2;
    printf("check(2) = %d\n", rev_check(2));
    return 0;
}
