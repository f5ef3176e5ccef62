/* libver, old and new builds (-DNEW). See ver.h. */
#include "ver.h"

int ver_value_1(void);
int ver_value_2(void);

__asm__(".symver ver_value_1, ver_value@VER_1");
__asm__(".symver ver_value_2, ver_value@@VER_2");

int ver_value_1(void) { return 10; }

int ver_value_2(void)
{
#ifdef NEW
    return 21;
#else
    return 20;
#endif
}

int ver_twice(int x) { return 2 * x; }
