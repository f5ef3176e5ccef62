/* THREADS threads, CALLS codec_encode calls each, each followed by a
 * codec_tick and a codec_calls on the same handle (calls on a handle with
 * nothing but scalars: they take the callers' rings, codec_encode the
 * queue; codec_tick changes the handle's state, codec_calls reads it).
 *   own:    each thread its own handles, freed and created again every 1000
 *           calls (addresses are reused across threads);
 *   shared: one handle for all, used under a mutex (the application orders
 *           the calls; the shadow must see them in that order).
 * Levels 1..8 only: the two builds agree, so any mismatch is DDL's. */
#include "codec.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long calls;
static int shared_mode;
static codec_t *shared;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long *sums; /* per thread, printed in order by main */
static unsigned long shared_checks; /* the sum of codec_calls' answers */

static void *worker(void *arg)
{
    long t = (long)arg;
    uint8_t in[16], out[16];
    codec_t *c = shared_mode ? shared : codec_new(1 + (int)(t % 8));
    unsigned long sum = 0;
    for (long i = 0; i < calls; i++) {
        for (int k = 0; k < 16; k++)
            in[k] = (uint8_t)(i * 7 + k + t);
        if (shared_mode) {
            pthread_mutex_lock(&lock);
            codec_encode(shared, in, sizeof in, out, sizeof out);
            codec_tick(shared, 1);
            shared_checks += (unsigned long)codec_calls(shared);
            pthread_mutex_unlock(&lock);
        } else {
            codec_encode(c, in, sizeof in, out, sizeof out);
            for (int k = 0; k < 16; k++)
                sum += out[k];
            sum += (unsigned long)codec_tick(c, 1);
            sum += (unsigned long)codec_calls(c);
            if (i % 1000 == 999) {
                codec_free(c);
                c = codec_new(1 + (int)(t % 8));
            }
        }
    }
    if (!shared_mode) {
        codec_free(c);
        sums[t] = sum;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 8;
    calls = argc > 2 ? atol(argv[2]) : 100000;
    shared_mode = argc > 3 && strcmp(argv[3], "shared") == 0;
    if (shared_mode)
        shared = codec_new(3);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    sums = calloc((size_t)threads, sizeof *sums);
    for (long t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, worker, (void *)t);
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < threads && !shared_mode; t++)
        printf("thread %d sum %lu\n", t, sums[t]);
    if (shared_mode) {
        printf("shared calls %ld, checks %lu\n", codec_calls(shared), shared_checks);
        codec_free(shared);
    }
    free(th);
    free(sums);
    return 0;
}
