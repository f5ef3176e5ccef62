/* Counts the characters of a UTF-8 string before and after the
 * application sets a UTF-8 locale. */
#include <locale.h>
#include <stdio.h>
#include "rev.h"

int main(void)
{
    const char *s = "h\xc3\xa9llo";
    printf("C locale: %ld\n", rev_chars(s));
    if (!setlocale(LC_ALL, "C.UTF-8"))
        return 3;
    printf("C.UTF-8: %ld\n", rev_chars(s));
    return 0;
}
