/* libver: one function exported in two symbol versions, as versioned
 * libraries (zlib, glibc-style) do.
 *
 *   ver_value@VER_1   old 10, new 10 (identical)
 *   ver_value@@VER_2  old 20, new 21 (differs)  -- the default version
 *   ver_twice@@VER_2  2 * x in both (identical; unversioned callers get it)
 *
 * DDL must resolve the new build's function with the version the caller's
 * reference carries: a VER_1 call mirrored into the new build's default
 * VER_2 would be a false mismatch (10 vs 21), and a VER_1 call forwarded to
 * the old VER_2 would change what the app sees (10 -> 20). */
#ifndef VER_H
#define VER_H

int ver_value(void);
int ver_twice(int x);

#endif
