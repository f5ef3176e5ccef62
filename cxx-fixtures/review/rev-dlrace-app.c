/* Two threads dlopen/dlclose at the same time: one a library with a lazy
 * boundary reference, the other a library whose constructor dlopens. The
 * main thread references rev_check lazily and calls it only at the end. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include "rev.h"

#define N 300

static void *loop(void *arg)
{
    const char *path = arg;
    for (int i = 0; i < N; i++) {
        void *h = dlopen(path, RTLD_NOW);
        if (!h) {
            fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
            exit(2);
        }
        dlclose(h);
    }
    return NULL;
}

int main(void)
{
    pthread_t a, b;
    pthread_create(&a, NULL, loop, getenv("REV_LAZYREF"));
    pthread_create(&b, NULL, loop, getenv("REV_CTOR"));
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    printf("done, check(2) = %d\n", rev_check(2));
    return 0;
}
