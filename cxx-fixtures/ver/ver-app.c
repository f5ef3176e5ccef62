/* ver-app: calls ver_scale through its default version (VER_2) and, from
 * ver-app-v1.c, through ver_scale@VER_1, for x = 0..19 each: 40 calls of
 * ver_scale. Under DDL with new = the NEW libver: 9 mismatches (the VER_1
 * calls with x = 11..19), 31 matches. */
#include <stdio.h>

int ver_scale(int x);      /* the default version, VER_2 */
int ver_scale_old(int x);  /* ver-app-v1.c: ver_scale@VER_1 */

int main(void)
{
    for (int x = 0; x < 20; x++)
        printf("x=%d v2=%d v1=%d\n", x, ver_scale(x), ver_scale_old(x));
    return 0;
}
