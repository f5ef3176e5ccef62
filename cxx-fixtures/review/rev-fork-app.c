/* After fork, in the child: the application's &rev_check and a dlsym
 * answer for it are still the same pointer. */
#include <dlfcn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
#include "rev.h"

static void show(const char *who)
{
    int (*mine)(int) = rev_check;
    int (*looked)(int) = (int (*)(int))dlsym(RTLD_DEFAULT, "rev_check");
    printf("%s: mine == dlsym answer: %d, library agrees: %d, check(3) = %d\n", who,
           mine == looked, rev_is_check(looked), looked(3));
    fflush(stdout);
}

int main(void)
{
    show("parent");
    pid_t pid = fork();
    if (pid == 0) {
        show("child");
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
