/* A library whose constructor dlopens another library (plugins loading
 * their own plugins): it runs with ld.so's load lock held. */
#include <dlfcn.h>
#include <stdlib.h>
static void __attribute__((constructor)) init(void)
{
    const char *p = getenv("REV_INNER");
    void *h = dlopen(p, RTLD_NOW);
    if (h)
        dlclose(h);
}
