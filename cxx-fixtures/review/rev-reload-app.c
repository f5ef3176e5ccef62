/* dlopen, call, dlclose, three times: each load is a fresh instance of the
 * library (its static state starts over) when nothing else holds it. */
#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
    for (int i = 0; i < 3; i++) {
        void *h = dlopen("librev.so.1", RTLD_NOW);
        if (!h) {
            printf("dlopen: %s\n", dlerror());
            return 1;
        }
        int (*check)(int) = (int (*)(int))dlsym(h, "rev_check");
        int (*checks)(void) = (int (*)(void))dlsym(h, "rev_checks");
        printf("round %d: check(%d) = %d, checks in this instance = %d\n", i, i, check(i), checks());
        dlclose(h);
        printf("round %d: still loaded after dlclose: %d\n", i,
               dlopen("librev.so.1", RTLD_NOW | RTLD_NOLOAD) != NULL);
    }
    return 0;
}
