/* libcodec: a component with state.
 *
 *  - codec_t: an opaque handle (create: codec_new, codec_open, codec_clone;
 *    destroy: codec_free). Its output depends on its whole history: each
 *    encode call mixes the codec's call counter and a running checksum into
 *    the output, so the shadow only agrees when it lives through the same
 *    calls in the same order.
 *  - rle_stream: a caller-owned struct updated in place (init / step with a
 *    flush flag / end), in the shape of zlib's z_stream: next_in/avail_in,
 *    next_out/avail_out advanced by the library, a private state pointer,
 *    allocator callbacks.
 *
 * One source (codec.c) builds both versions: the old build without -DNEW,
 * the new build with -DNEW. Both carry the soname libcodec.so.1.
 * Deliberate differences (new vs old):
 *  - codec_encode at level 9: from the codec's 3rd encode call on, the
 *    output's first byte differs;
 *  - rle_step: runs longer than 100 bytes are split at 100 (old: at 255),
 *    so inputs with long runs encode differently;
 *  - the new build's codec struct and rle state are larger (addresses and
 *    sizes never matter to DDL). */
#ifndef CODEC_H
#define CODEC_H

#include <stddef.h>
#include <stdint.h>

typedef struct codec codec_t;

codec_t *codec_new(int level);
/* 0 and *out set on success; -1 and *out = NULL for an unknown name */
int codec_open(const char *name, codec_t **out);
codec_t *codec_clone(const codec_t *c);
/* returns the bytes written to dst (at most cap) */
size_t codec_encode(codec_t *c, const uint8_t *src, size_t len, uint8_t *dst, size_t cap);
int codec_level(const codec_t *c);
/* how many calls the codec has counted (its encodes and ticks) */
long codec_calls(const codec_t *c);
/* Counts n more calls on the handle; returns the count (a call on a handle
 * with nothing but scalars that changes its state). */
long codec_tick(codec_t *c, int n);
void codec_free(codec_t *c);

typedef struct rle_stream {
    const uint8_t *next_in;
    unsigned avail_in;
    unsigned long total_in;
    uint8_t *next_out;
    unsigned avail_out;
    unsigned long total_out;
    const char *msg;
    struct rle_state *state;
    void *(*zalloc)(void *opaque, unsigned items, unsigned size);
    void (*zfree)(void *opaque, void *address);
    void *opaque;
} rle_stream;

#define RLE_OK 0
#define RLE_STREAM_END 1
#define RLE_BUF_ERROR (-5)
#define RLE_NO_FLUSH 0
#define RLE_FINISH 4

int rle_init(rle_stream *s, int level);
/* encodes (count, byte) pairs; RLE_FINISH flushes the pending run and
 * returns RLE_STREAM_END once everything is out */
int rle_step(rle_stream *s, int flush);
int rle_end(rle_stream *s);

#endif
