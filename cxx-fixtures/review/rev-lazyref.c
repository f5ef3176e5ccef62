/* A library with a lazy, never-resolved reference to a boundary function. */
#include "rev.h"
int rev_lazyref_unused(int x) { return rev_check(x); }
