/* The app's reference to the old version of ver_scale. */
__asm__(".symver ver_scale, ver_scale@VER_1");
int ver_scale(int x);
int ver_scale_old(int x);

int ver_scale_old(int x) { return ver_scale(x); }
