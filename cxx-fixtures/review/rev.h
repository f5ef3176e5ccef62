/* Review fixtures: a small component, old and new builds identical. */
#ifndef REV_H
#define REV_H
/* x * 2; for x < 0 first calls the error handler if one is set (libjpeg
 * style: the handler may longjmp out of the library). */
int rev_check(int x);
/* x + 1 */
int rev_inc(int x);
/* Not in the boundary: sets the error handler. */
void rev_set_handler(void (*h)(int));
/* Not in the boundary: 1 when f is rev_check (the library compares the
 * pointer with its own address of rev_check). */
int rev_is_check(int (*f)(int));
/* Not in the boundary: how many times rev_check ran in this instance of
 * the library (a fresh load starts at 0). */
int rev_checks(void);
/* fn(x) * 2: calls the application's callback. */
int rev_apply(int x, int (*fn)(int));
/* x - 1. The new build dereferences NULL when x == 7. */
int rev_fragile(int x);
/* a / b (identical in both builds). */
double rev_div(double a, double b);
/* Characters in s in the current locale (mbstowcs), -1 if invalid. */
long rev_chars(const char *s);
/* Prints a line on stdout (a component that logs), returns x. */
int rev_log(int x);
/* dlopen(name, RTLD_NOW), as a tail call. */
void *rev_load(const char *name);
#endif
