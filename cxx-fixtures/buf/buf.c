/* libbuf, old and new builds (-DNEW). See buf.h for the differences. */
#include "buf.h"

#include <math.h>

size_t buf_encode(const uint8_t *src, size_t len, uint8_t *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t run = 1;
        while (i + run < len && src[i + run] == src[i] && run < 255)
            run++;
        if (o + 2 > cap)
            return 0;
        dst[o++] = src[i];
#ifdef NEW
        dst[o++] = (uint8_t)(run > 127 ? run & 0x7f : run);
#else
        dst[o++] = (uint8_t)run;
#endif
        i += run;
    }
    return o;
}

int buf_stats(const double *xs, int n, double *mean, double *max)
{
    double s = 0, m = -INFINITY;
    for (int i = 0; i < n; i++) {
        s += xs[i];
        if (xs[i] > m)
            m = xs[i];
    }
    *mean = n > 0 ? s / n : 0.0;
    *max = m;
    return n;
}

void buf_reverse(int *xs, int n)
{
    int lo = 0;
#ifdef NEW
    if (n >= 10)
        lo = 1;
#endif
    for (int i = lo; i < n / 2; i++) {
        int t = xs[i];
        xs[i] = xs[n - 1 - i];
        xs[n - 1 - i] = t;
    }
}

int buf_upper(const char *s, char *out, size_t cap)
{
    size_t i = 0, n = 0;
    while (s[n])
        n++;
    for (; cap > 0 && i + 1 < cap && s[i]; i++) {
        char c = s[i];
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
#ifdef NEW
        if (c == '-')
            c = '_';
#endif
        out[i] = c;
    }
    if (cap > 0)
        out[i] = 0;
    return (int)n;
}

size_t buf_fill(uint8_t *dst, size_t n, size_t *count)
{
    size_t c = n / 2;
    for (size_t i = 0; i < c; i++)
        dst[i] = (uint8_t)(3 * i + 1);
#ifdef NEW
    if (n >= 64)
        dst[20] = 0xEE;
#endif
    *count = c;
    return c;
}

struct point buf_mid(struct point a, struct point b)
{
    struct point m = { (a.x + b.x) / 2, (a.y + b.y) / 2 };
    return m;
}

double buf_dist(const struct point *a, const struct point *b)
{
    double dx = a->x - b->x, dy = a->y - b->y;
    return sqrt(dx * dx + dy * dy);
}

void buf_translate(struct point *p, double dx, double dy)
{
    p->x += dx;
#ifdef NEW
    if (dx == 0)
        return;
#endif
    p->y += dy;
}

int buf_area(struct rect r)
{
#ifdef NEW
    if (r.w < 0 || r.h < 0)
        return 0;
#endif
    return r.w * r.h;
}

struct box3 buf_scale3(struct box3 b, double k)
{
    struct box3 r = { b.a * k, b.b * k, b.c * k };
#ifdef NEW
    r.c = b.c * fabs(k);
#endif
    return r;
}

double buf_many(int a1, int a2, int a3, int a4, int a5, int a6, int a7, int a8,
                double d1, double d2, double d3, double d4, double d5,
                double d6, double d7, double d8, double d9, double d10)
{
    double s = 1.0 * a1 + 2.0 * a2 + 3.0 * a3 + 4.0 * a4 + 5.0 * a5 + 6.0 * a6 + 7.0 * a7 + 8.0 * a8;
    s += 1 * d1 + 2 * d2 + 3 * d3 + 4 * d4 + 5 * d5 + 6 * d6 + 7 * d7 + 8 * d8 + 9 * d9 + 10 * d10;
#ifdef NEW
    if (a8 == 8 && d10 > 100)
        s += d10;
#endif
    return s;
}

struct tag buf_tag(struct tag t, int k)
{
    struct tag r = { t.id + k, t.w * k };
#ifdef NEW
    if (k < 0)
        r.id = t.id - k;
#endif
    return r;
}

struct fpair buf_swapf(struct fpair p)
{
    struct fpair r = { p.b, p.a };
    return r;
}

struct pt3f buf_scale3f(struct pt3f p, float k)
{
    struct pt3f r = { p.x * k, p.y * k, p.z * k };
    return r;
}

void buf_apply(int *xs, int n, int (*fn)(int))
{
    int m = n;
#ifdef NEW
    if (n > 4)
        m = n - 1;
#endif
    for (int i = 0; i < m; i++)
        xs[i] = fn(xs[i]);
}

int buf_pump(struct pump *p)
{
    size_t n = p->avail_in < p->avail_out ? p->avail_in : p->avail_out;
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p->next_in[i];
#ifdef NEW
        if (c == 'z')
            c = 'Z';
#endif
        p->next_out[i] = c;
    }
    p->next_in += n;
    p->next_out += n;
    p->avail_in -= n;
    p->avail_out -= n;
    p->total += n;
    return (int)n;
}

void *buf_identity(void *p) { return p; }
