/* calc-mid-app: linked against libplugin.so (DT_NEEDED, found through
 * RUNPATH $ORIGIN/plugins), which is linked against libcalc. The app itself
 * never references libcalc: every boundary call comes from a library loaded
 * at start. Same calls as calc-plugin-app (see plugin.c): 5 calls, 4 differ.
 */
#include <stdio.h>

int plugin_run(void);

int main(void)
{
    printf("plugin_run() = %d\n", plugin_run());
    return 0;
}
