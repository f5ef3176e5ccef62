/* calc-plugin-app: not linked against libcalc. Opens the plugin with a bare
 * name, dlopen("libplugin.so"), found only through this executable's RUNPATH
 * $ORIGIN/plugins (an interposed dlopen must resolve for the real caller).
 * The plugin is linked against libcalc (which therefore arrives late) and
 * makes the boundary calls (see plugin.c for the counts).
 * With the argument "lazy" it opens the plugin with RTLD_LAZY (its PLT slots
 * are still unresolved when libddl rebinds them), else with RTLD_NOW.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    int lazy = argc > 1 && !strcmp(argv[1], "lazy");
    void *h = dlopen("libplugin.so", lazy ? RTLD_LAZY : RTLD_NOW);
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
