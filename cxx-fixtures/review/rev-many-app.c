/* Looks up 80 functions one by one with dlsym (a loader filling a function
 * table) and asks dladdr about each answer. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
    void *h = dlopen("librevmany.so.1", RTLD_NOW);
    if (!h) {
        printf("dlopen: %s\n", dlerror());
        return 1;
    }
    int ok = 0;
    for (int i = 0; i < 80; i++) {
        char name[32];
        snprintf(name, sizeof name, "rev_f%d", i);
        int (*f)(int) = (int (*)(int))dlsym(h, name);
        Dl_info info;
        int r = dladdr((void *)f, &info);
        int named = r && info.dli_sname && __builtin_strcmp(info.dli_sname, name) == 0
                    && info.dli_saddr == (void *)f;
        if (!named)
            printf("%s: dladdr %d, sname %s\n", name, r, r && info.dli_sname ? info.dli_sname : "-");
        ok += named && f(1) == 1 + i;
    }
    printf("%d of 80 described by dladdr\n", ok);
    return 0;
}
