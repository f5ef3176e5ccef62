/* libfault.so.1: old (plain) and new (-DNEW) builds; fault.h lists the
 * misbehaviours of the new build. */
#define _GNU_SOURCE
#include "fault.h"

#include <assert.h>
#include <pthread.h>
#include <stdint.h>
#include <error.h>
#include <signal.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int fault_write(int fd, const char *s) { return (int)write(fd, s, strlen(s)); }

struct fctx {
    int total;
};

fctx_t *fctx_new(void) { return calloc(1, sizeof(struct fctx)); }

int fctx_use(fctx_t *c, int what, int x)
{
#ifdef NEW
    if (what == 1) {
        volatile int *p = NULL;
        x += *p;
    }
#else
    (void)what;
#endif
    c->total += x;
    return c->total;
}

void fctx_free(fctx_t *c) { free(c); }

#ifndef NEW

int fault_do(int what, int x) { return fault_expect(what, x); }

#else

static volatile int sink;

__attribute__((noinline)) static int recurse(int n) {
    volatile char buf[256];
    buf[n & 255] = (char)n;
    if (n == -1) /* never: keeps the recursion unbounded without a warning */
        return 0;
    return recurse(n + 1) + buf[(n * 7) & 255];
}

static void own_segv_handler(int sig) {
    (void)sig;
    static const char msg[] = "libfault (new): its own SIGSEGV handler ran\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(97);
}

static void *null_thread(void *arg) {
    volatile int *p = NULL;
    return (void *)(intptr_t)(*p + (int)(intptr_t)arg);
}

__attribute__((noreturn)) static void spin(void) {
    for (;;)
        sink++;
}

int fault_do(int what, int x) {
    switch (what) {
    case FAULT_NULL: {
        volatile int *p = NULL;
        return *p + x;
    }
    case FAULT_BUS: {
        FILE *f = tmpfile();
        if (!f)
            abort();
        volatile char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fileno(f), 0);
        if (p == MAP_FAILED)
            abort();
        return p[0] + x;
    }
    case FAULT_FPE: {
        volatile int zero = 0;
        return x / zero;
    }
    case FAULT_TRAP:
        __builtin_trap();
    case FAULT_ABORT:
        abort();
    case FAULT_ASSERT:
        assert(x == -x - 1);
        return fault_expect(what, x);
    case FAULT_STACK:
        return recurse(x);
    case FAULT_DOUBLE_FREE: {
        char *volatile p = malloc(64);
        free(p);
        free(p);
        return fault_expect(what, x);
    }
    case FAULT_PRINTF: {
        char *volatile bad = (char *)1;
        printf("%s", bad);
        return fault_expect(what, x);
    }
    case FAULT_EXIT:
        exit(3);
    case FAULT__EXIT:
        _exit(4);
    case FAULT__EXIT_C99:
        _Exit(5);
    case FAULT_QUICK_EXIT:
        quick_exit(6);
    case FAULT_ERROR:
        error(1, 0, "libfault (new): error() exits");
        return fault_expect(what, x);
    case FAULT_HANG:
        spin();
    case FAULT_HANG_BLOCKED: {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, NULL);
        spin();
    }
    case FAULT_HANG_RAW: {
        sigset_t all;
        sigfillset(&all);
        syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, 8);
        spin();
    }
    case FAULT_THREAD: {
        pthread_t th;
        if (pthread_create(&th, NULL, null_thread, NULL) == 0) {
            void *r;
            pthread_join(th, &r);
        }
        return fault_expect(what, x);
    }
    case FAULT_STDOUT:
        printf("libfault (new): a line on stdout\n");
        fflush(stdout);
        return fault_expect(what, x);
    case FAULT_WRITE1: {
        static const char msg[] = "libfault (new): a write(1)\n";
        ssize_t r = write(1, msg, sizeof msg - 1);
        (void)r;
        return fault_expect(what, x);
    }
    case FAULT_SIGACTION: {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = own_segv_handler;
        sigaction(SIGSEGV, &sa, NULL);
        return fault_expect(what, x);
    }
    case FAULT_SIGSYS:
        raise(SIGSYS);
        return fault_expect(what, x);
    case FAULT_INT3:
        __asm__ volatile("int3");
        return fault_expect(what, x);
    case FAULT_SIGMASK: {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGALRM);
        sigaddset(&set, SIGSEGV);
        for (int s = SIGRTMIN; s <= SIGRTMAX; s++)
            sigaddset(&set, s);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        return fault_expect(what, x);
    }
    default:
        return fault_expect(what, x);
    }
}

#endif
