/* The same size as rev-gad-a, but the bulk is read-only data: where a's
 * first `ret` is, b has non-executable bytes. */
#include <dlfcn.h>
const char gad_rodata[65536 + 16] = "b";
void *gad_lookup(const char *name)
{
    void *r = dlsym(RTLD_DEFAULT, name);
    return r;
}
