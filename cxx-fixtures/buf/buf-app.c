/* buf-app: uses libbuf deterministically and prints every result (all
 * outputs: return values, written buffers, out scalars, updated structs), one
 * line per boundary call, starting with the function's name.
 *
 * Boundary calls made by this app (and the inputs where the new build differs):
 *   buf_encode     6  (4 direct, 2 through the data table `ops`; one with src NULL, len 0)
 *                     differs: "a"+200*"b" (first at dst[3]), 300*"z" (first at dst[1]): 2
 *   buf_stats      3  (one with xs NULL, n 0) differs: never
 *   buf_reverse    5  differs for n >= 10 -> n = 10, n = 12: 2
 *   buf_upper      4  differs with '-' -> "foo-bar", "long-string-truncated" (cap 8): 2
 *   buf_fill       4  differs for n >= 64 -> n = 64, n = 100 (at dst[20]): 2
 *   buf_mid        2  differs: never
 *   buf_dist       2  (1 direct, 1 through `ops`) differs: never
 *   buf_translate  3  differs when dx == 0 -> (0, 5) (at p.y): 1
 *   buf_area       3  differs for negative w or h -> {1,1,-2,5}: 1
 *   buf_scale3     2  differs for k < 0 -> k = -1 (at ret.c): 1
 *   buf_many       3  differs when a8 == 8 and d10 > 100 -> second call: 1
 *   buf_identity   2  differs: never (opaque)
 *   buf_tag        2  mixed INTEGER/SSE struct; differs for k < 0 -> k = -1 (ret.id): 1
 *   buf_swapf      2  two floats in one eightbyte; differs: never
 *   buf_scale3f    2  three floats (xmm0 + xmm1); differs: never
 *   buf_apply      2  a callback; differs for n > 4 -> n = 5 (xs[4]): 1
 * Total: 47 calls, 14 differing calls. (buf_pump has its own app.)
 */
#include <stdio.h>
#include <string.h>

#include "buf.h"

/* Function addresses in writable data (R_X86_64_64 in a PIE, the canonical
 * PLT entry in a non-PIE executable). Not static, so the compiler cannot
 * fold the calls through it into direct calls. */
struct buf_ops {
    size_t (*encode)(const uint8_t *, size_t, uint8_t *, size_t);
    double (*dist)(const struct point *, const struct point *);
} ops = { buf_encode, buf_dist };

/* a pure callback for buf_apply */
static int triple_plus_one(int x) { return 3 * x + 1; }

static void print_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        printf("%02x", p[i]);
}

static void encode(const char *label, const uint8_t *src, size_t len, size_t cap, int via_table)
{
    uint8_t dst[64];
    memset(dst, 0, sizeof dst);
    size_t r = via_table ? ops.encode(src, len, dst, cap) : buf_encode(src, len, dst, cap);
    printf("buf_encode(%s, %zu, cap %zu)%s = %zu [", label, len, cap, via_table ? " [table]" : "", r);
    print_hex(dst, r);
    printf("]\n");
}

int main(void)
{
    uint8_t src[512];

    encode("\"aaabcc\"", (const uint8_t *)"aaabcc", 6, 64, 0);
    src[0] = 'a';
    memset(src + 1, 'b', 200);
    encode("\"a\"+200*\"b\"", src, 201, 64, 0);
    memset(src, 'z', 300);
    encode("300*\"z\"", src, 300, 64, 0);
    memset(src, 'q', 100);
    encode("100*\"q\"", src, 100, 64, 1);
    encode("\"abcdef\"", (const uint8_t *)"abcdef", 6, 4, 1);
    encode("NULL", NULL, 0, 64, 0); /* a NULL buffer: no size is evaluated */

    static const double xs1[4] = { 1, 2, 3, 4 }, xs2[3] = { -1.5, 2.25, 1e10 };
    double mean = 0, max = 0;
    int n = buf_stats(xs1, 4, &mean, &max);
    printf("buf_stats({1,2,3,4}, 4) = %d mean %a max %a\n", n, mean, max);
    n = buf_stats(xs2, 3, &mean, &max);
    printf("buf_stats({-1.5,2.25,1e10}, 3) = %d mean %a max %a\n", n, mean, max);
    n = buf_stats(NULL, 0, &mean, &max);
    printf("buf_stats(NULL, 0) = %d mean %a max %a\n", n, mean, max);

    static const int rev_n[5] = { 5, 10, 12, 1, 0 };
    for (int k = 0; k < 5; k++) {
        int xs[16];
        for (int i = 0; i < 16; i++)
            xs[i] = i * 10 + k;
        buf_reverse(xs, rev_n[k]);
        printf("buf_reverse(n %d) = [", rev_n[k]);
        for (int i = 0; i < rev_n[k]; i++)
            printf(i ? " %d" : "%d", xs[i]);
        printf("]\n");
    }

    static const struct { const char *s; size_t cap; } up[4] = {
        { "hello", 32 }, { "foo-bar", 32 }, { "long-string-truncated", 8 }, { "no dash", 4 } };
    for (int k = 0; k < 4; k++) {
        char out[32];
        memset(out, 'X', sizeof out);
        int r = buf_upper(up[k].s, out, up[k].cap);
        printf("buf_upper(\"%s\", cap %zu) = %d \"%s\"\n", up[k].s, up[k].cap, r, out);
    }

    static const size_t fill_n[4] = { 10, 64, 100, 63 };
    for (int k = 0; k < 4; k++) {
        uint8_t dst[128];
        size_t count = 999;
        memset(dst, 0, sizeof dst);
        size_t r = buf_fill(dst, fill_n[k], &count);
        printf("buf_fill(n %zu) = %zu count %zu [", fill_n[k], r, count);
        print_hex(dst, count);
        printf("]\n");
    }

    struct point a = { 1.0, 2.0 }, b = { 4.0, -6.0 }, c = { 0.1, 0.7 };
    struct point m = buf_mid(a, b);
    printf("buf_mid(a, b) = {%a, %a}\n", m.x, m.y);
    m = buf_mid(b, c);
    printf("buf_mid(b, c) = {%a, %a}\n", m.x, m.y);

    printf("buf_dist(a, b) = %a\n", buf_dist(&a, &b));
    printf("buf_dist(b, c) = %a [table]\n", ops.dist(&b, &c));

    static const double tr[3][2] = { { 1, 2 }, { 0, 5 }, { -3, 0 } };
    for (int k = 0; k < 3; k++) {
        struct point p = { 10.0 + k, 20.0 + k };
        buf_translate(&p, tr[k][0], tr[k][1]);
        printf("buf_translate({%d, %d}, %g, %g) -> {%a, %a}\n", 10 + k, 20 + k, tr[k][0], tr[k][1], p.x, p.y);
    }

    static const struct rect rs[3] = { { 0, 0, 3, 4 }, { 1, 1, -2, 5 }, { 0, 0, 0, 7 } };
    for (int k = 0; k < 3; k++)
        printf("buf_area({%d, %d, %d, %d}) = %d\n", rs[k].x, rs[k].y, rs[k].w, rs[k].h, buf_area(rs[k]));

    struct box3 bx = { 1.0, 2.0, 3.0 };
    struct box3 s = buf_scale3(bx, 2.0);
    printf("buf_scale3({1, 2, 3}, 2) = {%a, %a, %a}\n", s.a, s.b, s.c);
    s = buf_scale3(bx, -1.0);
    printf("buf_scale3({1, 2, 3}, -1) = {%a, %a, %a}\n", s.a, s.b, s.c);

    printf("buf_many(1..8, 1..10) = %a\n", buf_many(1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
    printf("buf_many(1..8, 1..9, 200) = %a\n", buf_many(1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 200));
    printf("buf_many(1..7, 9, 1..9, 200) = %a\n", buf_many(1, 2, 3, 4, 5, 6, 7, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 200));

    struct tag tg = { 7, 1.5 };
    static const int tag_k[2] = { 2, -1 };
    for (int k = 0; k < 2; k++) {
        struct tag r = buf_tag(tg, tag_k[k]);
        printf("buf_tag({7, 1.5}, %d) = {%d, %a}\n", tag_k[k], r.id, r.w);
    }
    struct fpair fp = { 1.25f, -3.5f };
    struct fpair fr = buf_swapf(fp);
    printf("buf_swapf({1.25, -3.5}) = {%a, %a}\n", (double)fr.a, (double)fr.b);
    fr = buf_swapf(fr);
    printf("buf_swapf({-3.5, 1.25}) = {%a, %a}\n", (double)fr.a, (double)fr.b);
    struct pt3f p3 = { 1.0f, 2.0f, 3.0f };
    struct pt3f r3 = buf_scale3f(p3, 0.5f);
    printf("buf_scale3f({1, 2, 3}, 0.5) = {%a, %a, %a}\n", (double)r3.x, (double)r3.y, (double)r3.z);
    r3 = buf_scale3f(r3, -4.0f);
    printf("buf_scale3f({0.5, 1, 1.5}, -4) = {%a, %a, %a}\n", (double)r3.x, (double)r3.y, (double)r3.z);
    static const int apply_n[2] = { 3, 5 };
    for (int k = 0; k < 2; k++) {
        int xs[5] = { 1, 2, 3, 4, 5 };
        buf_apply(xs, apply_n[k], triple_plus_one);
        printf("buf_apply(n %d, triple_plus_one) = [%d %d %d %d %d]\n", apply_n[k], xs[0], xs[1], xs[2], xs[3], xs[4]);
    }

    int local[4] = { 1, 2, 3, 4 };
    printf("buf_identity(local) = %s\n", buf_identity(local) == (void *)local ? "same" : "different");
    printf("buf_identity(NULL) = %s\n", buf_identity(NULL) == NULL ? "null" : "non-null");
    return 0;
}
