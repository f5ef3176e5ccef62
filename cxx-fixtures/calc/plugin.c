/* libplugin.so: loaded by calc-plugin-app through $ORIGIN/plugins; linked
 * against libcalc.so.1 (RUNPATH: the old build's folder).
 *
 * Boundary calls (and the inputs where the new build differs):
 *   calc_add   1  differs: never
 *   calc_div   2  (1 direct, 1 through the data table `plugin_ops`)
 *                 differs for b == 0 -> (6,0) (9,0): 2
 *   calc_sqrt  1  differs for x > 100 -> 400: 1 (1 ulp)
 *   calc_name  1  differs for code 3: 1
 * Total: 5 calls, 4 differing.
 */
#include <stdio.h>

#include "calc.h"

/* not static: the call through it must really load the pointer */
int (*plugin_ops[1])(int, int) = { calc_div };

int plugin_run(void)
{
    int s = calc_add(2, 3);
    printf("plugin: calc_add(2, 3) = %d\n", s);
    printf("plugin: calc_div(6, 0) = %d\n", calc_div(6, 0));
    printf("plugin: calc_div(9, 0) = %d [table]\n", plugin_ops[0](9, 0));
    printf("plugin: calc_sqrt(400) = %a\n", calc_sqrt(400.0));
    printf("plugin: calc_name(3) = \"%s\"\n", calc_name(3));
    return s;
}
