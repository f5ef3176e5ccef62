/* Boundary calls, then the image is replaced with execveat (glibc 2.34+). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include "rev.h"

extern char **environ;

int main(void)
{
    for (int i = 0; i < 3; i++)
        printf("check(%d) = %d\n", i, rev_check(i));
    fflush(stdout);
    char *argv[] = { "true", NULL };
    execveat(AT_FDCWD, "/bin/true", argv, environ, 0);
    perror("execveat");
    return 1;
}
