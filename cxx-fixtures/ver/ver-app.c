/* ver-app: calls both versions of ver_value, printing every result.
 *
 * Boundary calls (and where the new build differs):
 *   ver_value  5  (2 through its VER_1 reference: never differ;
 *                  3 through the default VER_2 reference: all differ): 3
 *   ver_twice  2  differs: never
 */
#include <stdio.h>

#include "ver.h"

/* A reference to the old version VER_1 under another local name. */
int ver_value_v1(void);
__asm__(".symver ver_value_v1, ver_value@VER_1");

int main(void)
{
    for (int i = 0; i < 2; i++)
        printf("ver_value@VER_1() = %d\n", ver_value_v1());
    for (int i = 0; i < 3; i++)
        printf("ver_value@@VER_2() = %d\n", ver_value());
    printf("ver_twice(21) = %d\n", ver_twice(21));
    printf("ver_twice(-4) = %d\n", ver_twice(-4));
    return 0;
}
