/* echo-app: the `ddl run` fixture (tests/e2e/cli.rs).
 *
 *   echo-app [--child N] [--calls N] STATUS
 *
 * Copies its standard input to standard output byte for byte (any bytes,
 * no newline needed), and for each line it read (a last line without its
 * newline counts) with index i = 0, 1, ... makes two libcalc calls:
 * calc_add(i, 1) (identical in both builds) and calc_div(i, i % 3 ? 1 : 0)
 * (old 0, new -1 when the divisor is 0): L lines give L calc_add matches,
 * L calc_div calls of which ceil(L / 3) are mismatches.
 *
 * --calls N: N more calc_div(i, 0) calls (N mismatches) after the input.
 * --child N: before exiting, runs itself as `echo-app --calls N 0` with
 *   standard input from /dev/null and waits for it (a second process that
 *   inherits LD_PRELOAD and DDL_CONFIG; it prints "echo-app: 0 lines").
 *
 * Writes "echo-app: L lines\n" to standard error, then exits with STATUS;
 * STATUS `kill:SIG` (a number) makes it kill itself with that signal
 * instead (after the same output). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include "calc.h"

static void usage(void)
{
    fputs("usage: echo-app [--child N] [--calls N] STATUS|kill:SIG\n", stderr);
    exit(64);
}

int main(int argc, char **argv)
{
    long child = -1, calls = 0;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--child") == 0)
            child = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--calls") == 0)
            calls = atol(argv[i + 1]);
        else
            usage();
    }
    if (i + 1 != argc)
        usage();
    const char *status = argv[i];

    char buf[4096];
    size_t n;
    long lines = 0;
    int open_line = 0;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) {
        if (fwrite(buf, 1, n, stdout) != n)
            return 70;
        for (size_t k = 0; k < n; k++) {
            open_line = 1;
            if (buf[k] == '\n') {
                calc_add((int)lines, 1);
                calc_div((int)lines, lines % 3 ? 1 : 0);
                lines++;
                open_line = 0;
            }
        }
    }
    if (open_line) {
        calc_add((int)lines, 1);
        calc_div((int)lines, lines % 3 ? 1 : 0);
        lines++;
    }
    for (long k = 0; k < calls; k++)
        calc_div((int)k, 0);
    fflush(stdout);

    if (child >= 0) {
        char count[32];
        snprintf(count, sizeof count, "%ld", child);
        pid_t pid = fork();
        if (pid < 0)
            return 71;
        if (pid == 0) {
            int fd = open("/dev/null", O_RDONLY);
            if (fd < 0 || dup2(fd, 0) < 0)
                _exit(72);
            char *args[] = { argv[0], "--calls", count, "0", NULL };
            execv("/proc/self/exe", args);
            _exit(73);
        }
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return 74;
    }

    fprintf(stderr, "echo-app: %ld lines\n", lines);
    fflush(stderr);
    if (strncmp(status, "kill:", 5) == 0) {
        int sig = atoi(status + 5);
        signal(sig, SIG_DFL);
        raise(sig);
        return 75;
    }
    return atoi(status);
}
