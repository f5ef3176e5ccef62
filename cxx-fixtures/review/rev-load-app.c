/* Loads a plugin through the component's loader; the plugin is found
 * through this program's RUNPATH. */
#include <stdio.h>
#include "rev.h"

int main(void)
{
    void *h = rev_load("librev-inner.so");
    printf("plugin through rev_load: %s\n", h ? "found" : "not found");
    return 0;
}
