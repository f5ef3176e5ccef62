/* calc-dlopen: not linked against libcalc; opens it with
 * dlopen("libcalc.so.1") (found through this executable's RUNPATH, so an
 * interposed dlopen must resolve for the real caller), looks functions up
 * with dlsym(handle, ...) and dlsym(RTLD_DEFAULT, ...), calls through the
 * pointers, and closes it at the end.
 *
 * Boundary calls (and the inputs where the new build differs):
 *   calc_add   2  differs: never
 *   calc_div   3  differs for b == 0 -> (1,0) (5,0): 2
 *   calc_sqrt  2  differs for x > 100 -> 400: 1 (1 ulp)
 *   calc_name  2  differs for code 3: 1
 *   calc_hash  1  (looked up with RTLD_DEFAULT) differs for "Abc": 1
 * Total: 10 calls, 5 differing.
 *
 * With the argument "twice", it then opens libcalc again (after the
 * dlclose), looks calc_add and calc_div up again and calls calc_add(1, 1)
 * and calc_div(4, 0) (differs): 12 calls, 6 differing in all.
 *
 * With the argument "cycles", it instead opens and closes libcalc 40 times
 * (a plugin host reloading it; more than the namespaces glibc can give),
 * each time calling calc_div(i, 0) (differs) and calc_add(i, i): 40 calls
 * each, 40 differing.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int again(void)
{
    void *h = dlopen("libcalc.so.1", RTLD_NOW);
    if (!h) {
        printf("dlopen again failed: %s\n", dlerror());
        return 1;
    }
    int (*add)(int, int) = (int (*)(int, int))dlsym(h, "calc_add");
    int (*div)(int, int) = (int (*)(int, int))dlsym(h, "calc_div");
    if (!add || !div) {
        printf("dlsym again failed\n");
        return 1;
    }
    printf("calc_add(1, 1) = %d [again]\n", add(1, 1));
    printf("calc_div(4, 0) = %d [again]\n", div(4, 0));
    dlclose(h);
    return 0;
}

static int cycles(void)
{
    long s = 0;
    for (int i = 0; i < 40; i++) {
        void *h = dlopen("libcalc.so.1", RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            printf("cycle %d: dlopen failed: %s\n", i, dlerror());
            return 1;
        }
        int (*add)(int, int) = (int (*)(int, int))dlsym(h, "calc_add");
        int (*div)(int, int) = (int (*)(int, int))dlsym(h, "calc_div");
        if (!add || !div) {
            printf("cycle %d: dlsym failed\n", i);
            return 1;
        }
        int d = div(i, 0), a = add(i, i);
        printf("calc_div(%d, 0) = %d [cycle]\n", i, d);
        printf("calc_add(%d, %d) = %d [cycle]\n", i, i, a);
        s += d + a;
        if (dlclose(h) != 0) {
            printf("cycle %d: dlclose failed\n", i);
            return 1;
        }
    }
    printf("cycles: 40, sum %ld\n", s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "cycles"))
        return cycles();
    void *h = dlopen("libcalc.so.1", RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        printf("dlopen failed: %s\n", dlerror());
        return 1;
    }
    int (*add)(int, int) = (int (*)(int, int))dlsym(h, "calc_add");
    int (*div)(int, int) = (int (*)(int, int))dlsym(h, "calc_div");
    double (*sq)(double) = (double (*)(double))dlsym(h, "calc_sqrt");
    const char *(*name)(int) = (const char *(*)(int))dlsym(h, "calc_name");
    uint64_t (*hash)(const char *) = (uint64_t (*)(const char *))dlsym(RTLD_DEFAULT, "calc_hash");
    if (!add || !div || !sq || !name || !hash) {
        printf("dlsym failed\n");
        return 1;
    }
    printf("calc_add(2, 3) = %d\n", add(2, 3));
    printf("calc_add(-2, -3) = %d\n", add(-2, -3));
    printf("calc_div(1, 0) = %d\n", div(1, 0));
    printf("calc_div(9, 3) = %d\n", div(9, 3));
    printf("calc_div(5, 0) = %d\n", div(5, 0));
    printf("calc_sqrt(9) = %a\n", sq(9.0));
    printf("calc_sqrt(400) = %a\n", sq(400.0));
    printf("calc_name(3) = \"%s\"\n", name(3));
    printf("calc_name(1) = \"%s\"\n", name(1));
    printf("calc_hash(\"Abc\") = %#llx\n", (unsigned long long)hash("Abc"));
    if (dlclose(h) != 0) {
        printf("dlclose failed\n");
        return 1;
    }
    if (argc > 1 && !strcmp(argv[1], "twice") && again() != 0)
        return 1;
    printf("calc-dlopen: done\n");
    return 0;
}
