/* Pointer identity: the application's &rev_check and the library's own
 * address of rev_check are the same function pointer. */
#include <dlfcn.h>
#include <stdio.h>
#include "rev.h"

int main(void)
{
    int (*mine)(int) = rev_check;
    int (*looked)(int) = (int (*)(int))dlsym(RTLD_DEFAULT, "rev_check");
    printf("library says mine is rev_check: %d\n", rev_is_check(mine));
    printf("library says dlsym answer is rev_check: %d\n", rev_is_check(looked));
    printf("mine == dlsym answer: %d\n", mine == looked);
    printf("check(4) = %d\n", mine(4));
    return 0;
}
