/* A library that calls rev_inc through a lazy PLT slot. */
#include "rev.h"
int user_inc(int x) { return rev_inc(x); }
