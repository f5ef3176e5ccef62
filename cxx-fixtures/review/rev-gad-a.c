/* A plugin whose text segment's first `ret` byte is far from its start
 * (built without start files, so no _init comes first). */
#include <dlfcn.h>
__attribute__((used)) static void pad(void) { __asm__ volatile(".skip 65536, 0x90"); }
const char gad_rodata[16] = "a";
void *gad_lookup(const char *name)
{
    void *r = dlsym(RTLD_DEFAULT, name);
    return r;
}
