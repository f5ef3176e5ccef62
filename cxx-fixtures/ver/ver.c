/* libver: one function exported in two symbol versions, the way zlib and
 * glibc do it. ver_scale@VER_1 is the old semantics (kept for old binaries),
 * ver_scale@@VER_2 the default.
 *
 * Deliberate difference: the NEW build's ver_scale@VER_1 returns 2x+1 for
 * x > 10 (old: 2x). ver_scale@@VER_2 is identical in both builds (3x).
 * A DDL that mirrored a VER_1 call into the default version would report a
 * mismatch on every VER_1 call; one that honours the reference's version
 * reports exactly the x > 10 ones. */
int ver_scale_v1(int x);
int ver_scale_v2(int x);

int ver_scale_v1(int x)
{
#ifdef NEW
    if (x > 10)
        return 2 * x + 1;
#endif
    return 2 * x;
}

int ver_scale_v2(int x) { return 3 * x; }

__asm__(".symver ver_scale_v1, ver_scale@VER_1");
__asm__(".symver ver_scale_v2, ver_scale@@VER_2");
