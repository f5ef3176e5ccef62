/* Divides under each rounding mode the application sets (fesetround). */
#include <fenv.h>
#include <stdio.h>
#include "rev.h"

int main(void)
{
    const int modes[4] = { FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO };
    for (int i = 0; i < 4; i++) {
        fesetround(modes[i]);
        double q = rev_div(1.0, 3.0);
        fesetround(FE_TONEAREST);
        printf("mode %d: 1/3 = %a\n", i, q);
    }
    return 0;
}
