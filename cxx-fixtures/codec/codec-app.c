/* Uses libcodec's handles and its stream the way an application would; the
 * output depends only on the old build. Expected verdicts: codec.mk. */
#include "codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hex(const char *what, const uint8_t *p, size_t n)
{
    printf("%s %zu:", what, n);
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
    printf("\n");
}

static unsigned allocs, frees;

static void *my_alloc(void *opaque, unsigned items, unsigned size)
{
    (*(int *)opaque)++;
    allocs++;
    return calloc(items, size);
}

static void my_free(void *opaque, void *p)
{
    (void)opaque;
    frees++;
    free(p);
}

/* Compresses `in` through a stream, `chunk` input bytes and `room` output
 * bytes at a time; returns the number of rle_step calls. */
static int squeeze(const char *name, const uint8_t *in, size_t len, size_t chunk, unsigned room,
                   int custom_alloc)
{
    rle_stream s;
    int counter = 0;
    memset(&s, 0, sizeof s);
    if (custom_alloc) {
        s.zalloc = my_alloc;
        s.zfree = my_free;
        s.opaque = &counter;
    }
    if (rle_init(&s, 6) != RLE_OK)
        return -1;
    uint8_t out[1024];
    size_t used = 0, fed = 0;
    int steps = 0, rc = RLE_OK;
    while (rc != RLE_STREAM_END) {
        if (s.avail_in == 0 && fed < len) {
            size_t n = len - fed < chunk ? len - fed : chunk;
            s.next_in = in + fed;
            s.avail_in = (unsigned)n;
            fed += n;
        }
        s.next_out = out + used;
        s.avail_out = room;
        rc = rle_step(&s, fed == len ? RLE_FINISH : RLE_NO_FLUSH);
        used = (size_t)(s.next_out - out);
        steps++;
        if (rc < 0 || steps > 1000)
            break;
    }
    printf("%s: rc %d, steps %d, in %lu, out %lu\n", name, rc, steps, s.total_in, s.total_out);
    hex(name, out, used);
    rle_end(&s);
    if (custom_alloc)
        printf("%s: allocator called %d times\n", name, counter);
    return steps;
}

int main(void)
{
    static const char *const msgs[] = { "hello, codec", "the same history", "on both sides",
                                        "or the shadow parts" };
    codec_t *c1 = codec_new(1);
    codec_t *c9 = codec_new(9);
    codec_t *cb = NULL, *cn = (codec_t *)1;
    int rb = codec_open("best", &cb);
    int rn = codec_open("nope", &cn);
    printf("open best %d level %d, open nope %d %s\n", rb, codec_level(cb), rn,
           cn ? "set" : "NULL");
    uint8_t out[64];
    for (int r = 0; r < 4; r++) {
        const uint8_t *m = (const uint8_t *)msgs[r];
        size_t n = strlen(msgs[r]);
        hex("c1", out, codec_encode(c1, m, n, out, sizeof out));
        hex("c9", out, codec_encode(c9, m, n, out, sizeof out));
        hex("cb", out, codec_encode(cb, m, n, out, sizeof out));
    }
    codec_t *cc = codec_clone(c9);
    for (int r = 0; r < 2; r++) {
        const uint8_t *m = (const uint8_t *)msgs[r];
        hex("cc", out, codec_encode(cc, m, strlen(msgs[r]), out, 8));
    }
    printf("levels %d %d, c9 calls %ld\n", codec_level(c1), codec_level(cc), codec_calls(c9));
    codec_free(c1);
    codec_free(c9);
    codec_free(cb);
    codec_free(cc);
    codec_free(NULL);

    uint8_t a[48], b[152];
    for (int i = 0; i < 3; i++)
        memcpy(a + 16 * i, "aaabccccddddddde", 16);
    memset(b, 'x', 150);
    b[150] = 'y';
    b[151] = 'z';
    squeeze("short-runs", a, sizeof a, 24, 8, 0);
    squeeze("long-run", b, sizeof b, 200, 64, 1);
    printf("allocs %u frees %u\n", allocs, frees);
    return 0;
}
