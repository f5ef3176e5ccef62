/* buf-pump-app: a caller-owned stream struct updated in place, zlib style
 * (see buf_pump in buf.h), pumped in chunks; prints every outcome.
 *
 * Boundary calls (and where the new build differs):
 *   buf_pump  5  differs when the bytes it moves hold a 'z' -> calls 1, 2, 4: 3
 */
#include <stdio.h>
#include <string.h>

#include "buf.h"

int main(void)
{
    /* buf_pump: 150 input bytes 'a' + i % 26 ('z' at 25, 51, 77, 103, 129) */
    uint8_t in[150], out[100], out2[128];
    for (int i = 0; i < 150; i++)
        in[i] = (uint8_t)('a' + i % 26);
    memset(out, 0, sizeof out);
    memset(out2, 0, sizeof out2);
    int cookie = 0;
    struct pump pm = { in, sizeof in, out, sizeof out, 0, &cookie };
    static const size_t out_room[5] = { 0, 0, 3, 100, 100 }; /* 0: keep going */
    for (int k = 0; k < 5; k++) {
        if (out_room[k]) {
            pm.next_out = out2;
            pm.avail_out = out_room[k];
            memset(out2, 0, sizeof out2);
        }
        uint8_t *o0 = pm.next_out;
        int n = buf_pump(&pm);
        printf("buf_pump(#%d) = %d in@%td avail_in %zu out+%td avail_out %zu total %lu [", k + 1, n,
               pm.next_in - in, pm.avail_in, pm.next_out - o0, pm.avail_out, pm.total);
        fwrite(o0, 1, (size_t)(pm.next_out - o0), stdout);
        printf("] user %s\n", pm.user == &cookie ? "same" : "changed");
    }

    return 0;
}
