#include "rev-abi.h"
double rev_abi(int a, int b, int c, int d, int e, struct pair p, int f, struct trio t,
               double x, double d1, double d2, double d3, double d4, double d5, double d6,
               struct dd q, float y)
{
    return a + 2.0 * b + 3.0 * c + 4.0 * d + 5.0 * e + 6.0 * p.u + 7.0 * p.v + 8.0 * f
           + 9.0 * t.i + 10.0 * t.g + 11.0 * t.k + 12.0 * x + 13.0 * d1 + 14.0 * d2
           + 15.0 * d3 + 16.0 * d4 + 17.0 * d5 + 18.0 * d6 + 19.0 * q.a + 20.0 * q.b
           + 21.0 * y;
}
struct fi rev_fi(struct fi v, int k)
{
    struct fi r = { v.a * k, v.b + k };
    return r;
}
