#include <stdio.h>
#include "rev-abi.h"
int main(void)
{
    for (int i = 0; i < 3; i++) {
        struct pair p = { 100 + i, 200 + i };
        struct trio t = { 300 + i, 0.5f + i, 400 + i };
        struct dd q = { 0.25 * i, 0.125 * i };
        double r = rev_abi(1 + i, 2, 3, 4, 5, p, 6, t, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, q,
                           8.5f + i);
        struct fi v = { 1.5f + i, 7 + i };
        struct fi w = rev_fi(v, 3);
        printf("abi %d: %.17g fi: %g %d\n", i, r, w.a, w.b);
    }
    return 0;
}
