/* fault-app [-o FILE] [CODE...]: calls fault_do(CODE, 7) for each CODE (all
 * of 0..FAULT_LAST when none is given), printing one line per call, and
 * fault_write(fd, ...) of one line per call to FILE (opened for writing,
 * truncated; default fault-app.out in the current folder). Then prints
 * "fault-app: done" and exits 0.
 *
 * Code 101 is a pause of the application's own (1 s, no call).
 * Code 102 uses handles across a poisoning (fctx_new/fctx_use/fctx_free).
 * Code 100 is the application's own fault: it has installed a SIGSEGV
 * handler (siglongjmp) at start, dereferences NULL, and prints
 * "fault-app: caught its own SIGSEGV". With the old build every run exits 0
 * with the same output; with the new build (LD_LIBRARY_PATH=OUT/faults/new)
 * each fault, exit or hang code does what README.md says. */
#define _GNU_SOURCE
#include "fault.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static sigjmp_buf own_jb;
static volatile sig_atomic_t own_armed;

static void own_handler(int sig, siginfo_t *si, void *uc) {
    (void)si;
    (void)uc;
    if (own_armed)
        siglongjmp(own_jb, 1);
    /* Not ours: the default action. */
    signal(sig, SIG_DFL);
}

static void own_fault(void) {
    if (sigsetjmp(own_jb, 1)) {
        own_armed = 0;
        printf("fault-app: caught its own SIGSEGV\n");
        return;
    }
    own_armed = 1;
    volatile int *p = NULL;
    *p = 1;
    own_armed = 0;
    printf("fault-app: no SIGSEGV?\n");
}

static void one(int fd, int code) {
    char line[64];
    if (code == 100) {
        own_fault();
        return;
    }
    if (code == 102) {
        /* Handles across a poisoning: the second use faults in the new
         * build; the handle's later calls cannot be mirrored any more, a
         * handle made after it can. */
        fctx_t *h = fctx_new();
        int a = fctx_use(h, 0, 1);
        int b = fctx_use(h, 1, 2);
        int c = fctx_use(h, 0, 3);
        fctx_free(h);
        fctx_t *g = fctx_new();
        int d = fctx_use(g, 0, 4);
        fctx_free(g);
        printf("fctx: %d %d %d %d\n", a, b, c, d);
        return;
    }
    if (code == 101) {
        /* A pause of the application's own: a shadow behind it catches up. */
        usleep(1000000);
        return;
    }
    int r = fault_do(code, 7);
    printf("fault_do(%d, 7) = %d%s\n", code, r, r == fault_expect(code, 7) ? "" : " (wrong)");
    snprintf(line, sizeof line, "code %d: %d\n", code, r);
    int w = fault_write(fd, line);
    printf("fault_write(file, \"code %d: ...\") = %d\n", code, w);
}

int main(int argc, char **argv) {
    const char *out = "fault-app.out";
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-o") == 0) {
        out = argv[2];
        first = 3;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = own_handler;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        perror(out);
        return 2;
    }
    if (first >= argc) {
        for (int code = 0; code <= FAULT_LAST; code++)
            one(fd, code);
        one(fd, 100);
    } else {
        for (int i = first; i < argc; i++)
            one(fd, atoi(argv[i]));
    }
    close(fd);
    printf("fault-app: done\n");
    return 0;
}
