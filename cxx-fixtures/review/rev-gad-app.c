/* dlopen a plugin, let it call dlsym, dlclose it; then the same with a
 * second plugin of the same size, which the kernel maps at the same address. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    const char *libs[2] = { getenv("REV_GAD_A"), getenv("REV_GAD_B") };
    for (int i = 0; i < 2; i++) {
        void *h = dlopen(libs[i], RTLD_NOW);
        if (!h) {
            printf("dlopen: %s\n", dlerror());
            return 1;
        }
        void *(*look)(const char *) = (void *(*)(const char *))dlsym(h, "gad_lookup");
        printf("plugin %d: lookup(puts) == puts: %d\n", i, look("puts") == (void *)puts);
        dlclose(h);
    }
    return 0;
}
