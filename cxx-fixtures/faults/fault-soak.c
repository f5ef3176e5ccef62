/* fault-soak N [threads]: N fault_do calls (split over the threads), where
 * call i asks the new build for a NULL dereference (code 1) when
 * i % 10000 == 9999 and for a hang that accepts signals (code 15) when
 * i % 100000 == 99999, and for nothing otherwise; each thread pauses 2 ms
 * every 2000 calls and before each fault or hang, so that the shadow keeps
 * up and the faults and hangs are really mirrored (calls between pauses
 * may be dropped: a full queue or ring drops, it never waits). Then, after a 300 ms pause, 100 fault_write calls to
 * /dev/null: mirrored only if mirroring is still going. Prints the sum of
 * the results and "fault-soak: done" (the old build never misbehaves). */
#include "fault.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static long per_thread;
static long sums[64];

static void *worker(void *arg)
{
    long t = (long)arg;
    long sum = 0;
    for (long k = 0; k < per_thread; k++) {
        long i = t * per_thread + k;
        int what = i % 100000 == 99999 ? 15 : i % 10000 == 9999 ? 1 : 0;
        if (what)
            usleep(2000);
        sum += fault_do(what, (int)(i % 1000));
        if (k % 2000 == 1999)
            usleep(2000);
    }
    sums[t] = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    if (threads < 1 || threads > 64)
        threads = 1;
    per_thread = n / threads;
    pthread_t th[64];
    for (long t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, worker, (void *)t);
    long total = 0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        total += sums[t];
    }
    usleep(300000);
    int fd = open("/dev/null", O_WRONLY);
    int w = 0;
    for (int i = 0; i < 100; i++)
        w += fault_write(fd, "x\n");
    close(fd);
    printf("fault-soak: sum %ld, written %d\nfault-soak: done\n", total, w);
    return 0;
}
