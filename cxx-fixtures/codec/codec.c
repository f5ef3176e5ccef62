#include "codec.h"

#include <stdlib.h>
#include <string.h>

struct codec {
    int level;
    long calls;
    uint32_t sum;
#ifdef NEW
    char spare[40]; /* the new build's struct is larger */
#endif
};

codec_t *codec_new(int level)
{
    codec_t *c = calloc(1, sizeof *c);
    if (c) {
        c->level = level;
        c->sum = 2166136261u ^ (uint32_t)level;
    }
    return c;
}

int codec_open(const char *name, codec_t **out)
{
    static const char *const names[] = { "fast", "default", "best" };
    static const int levels[] = { 1, 6, 9 };
    for (int i = 0; i < 3; i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = codec_new(levels[i]);
            return *out ? 0 : -1;
        }
    }
    *out = NULL;
    return -1;
}

codec_t *codec_clone(const codec_t *c)
{
    codec_t *d = malloc(sizeof *d);
    if (d)
        memcpy(d, c, sizeof *d);
    return d;
}

size_t codec_encode(codec_t *c, const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    c->calls++;
    size_t n = len < cap ? len : cap;
    for (size_t i = 0; i < n; i++) {
        c->sum = (c->sum ^ src[i]) * 16777619u;
        dst[i] = (uint8_t)(src[i] ^ (c->sum >> 24) ^ (uint8_t)c->calls);
    }
#ifdef NEW
    if (c->level == 9 && c->calls >= 3 && n > 0)
        dst[0] ^= 0x5a;
#endif
    return n;
}

int codec_level(const codec_t *c) { return c->level; }
long codec_calls(const codec_t *c) { return c->calls; }
long codec_tick(codec_t *c, int n) { return c->calls += n; }
void codec_free(codec_t *c) { free(c); }

/* --- the stream ---------------------------------------------------------- */

#ifdef NEW
#define MAX_RUN 100
#else
#define MAX_RUN 255
#endif

struct rle_state {
    int level;
    int have;     /* a run is pending */
    uint8_t byte; /* its byte */
    unsigned run; /* its length */
    int pair_half; /* 1: the count of a pair is out, the byte is not */
#ifdef NEW
    char spare[24];
#endif
};

static void *default_alloc(void *opaque, unsigned items, unsigned size)
{
    (void)opaque;
    return calloc(items, size);
}

static void default_free(void *opaque, void *p)
{
    (void)opaque;
    free(p);
}

int rle_init(rle_stream *s, int level)
{
    if (!s->zalloc)
        s->zalloc = default_alloc;
    if (!s->zfree)
        s->zfree = default_free;
    s->state = s->zalloc(s->opaque, 1, sizeof *s->state);
    if (!s->state) {
        s->msg = "out of memory";
        return -4;
    }
    memset(s->state, 0, sizeof *s->state);
    s->state->level = level;
    s->total_in = s->total_out = 0;
    s->msg = NULL;
    return RLE_OK;
}

/* Emits the pending run's (count, byte) pair; 0 when out of room. */
static int emit(rle_stream *s)
{
    struct rle_state *st = s->state;
    if (!st->pair_half) {
        if (!s->avail_out)
            return 0;
        *s->next_out++ = (uint8_t)st->run;
        s->avail_out--;
        s->total_out++;
        st->pair_half = 1;
    }
    if (!s->avail_out)
        return 0;
    *s->next_out++ = st->byte;
    s->avail_out--;
    s->total_out++;
    st->pair_half = 0;
    st->have = 0;
    st->run = 0;
    return 1;
}

int rle_step(rle_stream *s, int flush)
{
    struct rle_state *st = s->state;
    if (!st) {
        s->msg = "stream not initialised";
        return -2;
    }
    for (;;) {
        if (st->pair_half || (st->have && st->run == MAX_RUN)) {
            if (!emit(s))
                return RLE_OK;
        }
        if (!s->avail_in)
            break;
        uint8_t b = *s->next_in;
        if (st->have && b != st->byte) {
            if (!emit(s))
                return RLE_OK;
            continue;
        }
        st->have = 1;
        st->byte = b;
        st->run++;
        s->next_in++;
        s->avail_in--;
        s->total_in++;
    }
    if (flush == RLE_FINISH) {
        if (st->have && !emit(s))
            return RLE_OK;
        return RLE_STREAM_END;
    }
    return RLE_OK;
}

int rle_end(rle_stream *s)
{
    if (!s->state)
        return -2;
    s->zfree(s->opaque, s->state);
    s->state = NULL;
    return RLE_OK;
}
