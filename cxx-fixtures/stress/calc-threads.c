/* calc-threads: counts must add up however the process ends.
 *
 *   calc-threads THREADS CALLS MODE
 *
 * Starts THREADS threads that each call calc_add(i, t) CALLS times (so
 * calc_add is called exactly THREADS * CALLS times), then ends the process
 * the way MODE says, with invocations possibly still queued for the shadow:
 *   return      main returns after joining every thread
 *   exit        main calls exit(0) after joining
 *   thread-exit the last thread to finish calls exit(0) itself while main is
 *               still blocked in pthread_join
 * Prints the threads' summed results, which do not depend on scheduling.
 * calc_add is identical in both builds: every judged call is a match. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calc.h"

static long calls_per_thread;
static int nthreads;
static const char *mode;
static long sums[64];
static atomic_int finished;

static void *worker(void *arg)
{
    int t = (int)(long)arg;
    long s = 0;
    for (long i = 0; i < calls_per_thread; i++)
        s += calc_add((int)(i & 0xffff), t);
    sums[t] = s;
    if (atomic_fetch_add(&finished, 1) + 1 == nthreads && strcmp(mode, "thread-exit") == 0) {
        long total = 0;
        for (int k = 0; k < nthreads; k++)
            total += sums[k];
        printf("total %ld\n", total);
        fflush(stdout);
        exit(0);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: calc-threads THREADS CALLS return|exit|thread-exit\n");
        return 2;
    }
    nthreads = atoi(argv[1]);
    calls_per_thread = atol(argv[2]);
    mode = argv[3];
    if (nthreads < 1 || nthreads > 64)
        return 2;
    pthread_t th[64];
    for (int t = 0; t < nthreads; t++)
        pthread_create(&th[t], NULL, worker, (void *)(long)t);
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    long total = 0;
    for (int t = 0; t < nthreads; t++)
        total += sums[t];
    printf("total %ld\n", total);
    if (strcmp(mode, "exit") == 0) {
        fflush(stdout);
        exit(0);
    }
    return 0;
}
