/* buf-leak-app: checks that the shadow never writes into the app's memory.
 * After each call whose new build writes something different, the app
 * waits 100 ms (the shadow has run by then) and prints its buffers again:
 * they must still hold what the old build wrote.
 *
 * Boundary calls (all differ in the new build):
 *   buf_reverse    1  (n 12: xs[0] and xs[11])
 *   buf_fill       1  (n 64: dst[20])
 *   buf_translate  1  (dx 0, dy 5: p.y)
 *   buf_upper      1  ("a-b": out[1])
 *   buf_encode     1  (300 x 'z': dst[1])
 * Total: 5 calls, 5 mismatches.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"

static void settle(void) { usleep(100 * 1000); }

int main(void)
{
    int xs[12];
    for (int i = 0; i < 12; i++)
        xs[i] = i;
    buf_reverse(xs, 12);
    settle();
    printf("buf_reverse(xs, 12) then: xs[0] %d xs[11] %d\n", xs[0], xs[11]);

    uint8_t dst[64];
    size_t count = 0;
    memset(dst, 0, sizeof dst);
    buf_fill(dst, 64, &count);
    settle();
    printf("buf_fill(dst, 64) then: count %zu dst[20] %#x\n", count, dst[20]);

    struct point p = { 1.0, 2.0 };
    buf_translate(&p, 0.0, 5.0);
    settle();
    printf("buf_translate(&p, 0, 5) then: {%g, %g}\n", p.x, p.y);

    char out[16];
    memset(out, 0, sizeof out);
    buf_upper("a-b", out, sizeof out);
    settle();
    printf("buf_upper(\"a-b\") then: \"%s\"\n", out);

    uint8_t src[300], enc[64];
    memset(src, 'z', sizeof src);
    memset(enc, 0, sizeof enc);
    size_t n = buf_encode(src, sizeof src, enc, sizeof enc);
    settle();
    printf("buf_encode(300 x z) then: %zu [%02x %02x %02x %02x]\n", n, enc[0], enc[1], enc[2], enc[3]);
    return 0;
}
