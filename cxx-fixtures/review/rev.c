#include "rev.h"
#include <stddef.h>

static void (*handler)(int);

void rev_set_handler(void (*h)(int)) { handler = h; }

int rev_check(int x)
{
    if (x < 0 && handler)
        handler(x);
    return x * 2;
}

int rev_inc(int x) { return x + 1; }

int rev_is_check(int (*f)(int)) { return f == rev_check; }
