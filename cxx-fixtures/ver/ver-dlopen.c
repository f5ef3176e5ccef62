/* ver-dlopen: opens libver with dlopen (through its RUNPATH) and looks the
 * versions of ver_value up with dlvsym and dlsym.
 *
 * Boundary calls (and where the new build differs):
 *   ver_value  4  dlvsym VER_1 x2 (never differ), dlvsym VER_2 x1 and
 *                 dlsym (the default, VER_2) x1 (differ): 2
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
    void *h = dlopen("libver.so.1", RTLD_NOW);
    if (!h) {
        printf("dlopen failed: %s\n", dlerror());
        return 1;
    }
    int (*v1)(void) = (int (*)(void))dlvsym(h, "ver_value", "VER_1");
    int (*v2)(void) = (int (*)(void))dlvsym(h, "ver_value", "VER_2");
    int (*vd)(void) = (int (*)(void))dlsym(h, "ver_value");
    if (!v1 || !v2 || !vd) {
        printf("dlvsym/dlsym failed\n");
        return 1;
    }
    printf("ver_value@VER_1() = %d [dlvsym]\n", v1());
    printf("ver_value@VER_1() = %d [dlvsym]\n", v1());
    printf("ver_value@VER_2() = %d [dlvsym]\n", v2());
    printf("ver_value() = %d [dlsym]\n", vd());
    printf("identity: dlsym == dlvsym VER_2: %d\n", vd == v2);
    printf("identity: dlvsym VER_1 != VER_2: %d\n", v1 != v2);
    return 0;
}
