/* calc-plugin-app: not linked against libcalc. Opens the plugin with a bare
 * name, dlopen("libplugin.so"), found only through this executable's RUNPATH
 * $ORIGIN/plugins (an interposed dlopen must resolve for the real caller).
 * The plugin is linked against libcalc (which therefore arrives late) and
 * makes the boundary calls (see plugin.c for the counts).
 */
#include <dlfcn.h>
#include <stdio.h>

int main(void)
{
    void *h = dlopen("libplugin.so", RTLD_NOW);
    if (!h) {
        printf("dlopen(libplugin.so) failed: %s\n", dlerror());
        return 1;
    }
    int (*run)(void) = (int (*)(void))dlsym(h, "plugin_run");
    if (!run) {
        printf("dlsym(plugin_run) failed\n");
        return 1;
    }
    int r = run();
    printf("plugin_run() = %d\n", r);
    return 0;
}
