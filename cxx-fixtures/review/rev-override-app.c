/* The program defines (and exports, -rdynamic) its own rev_inc, which
 * takes precedence over librev's for every object's reference. */
#include <stdio.h>
#include "rev.h"

int user_inc(int x);

int rev_inc(int x) { return x + 100; }

int main(void)
{
    printf("user_inc(5) = %d (the program's rev_inc: 105)\n", user_inc(5));
    printf("check(5) = %d\n", rev_check(5));
    return 0;
}
