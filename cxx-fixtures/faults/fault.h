/* libfault: the fault-injection component (README.md beside this file). */
#ifndef FAULT_H
#define FAULT_H

/* The `what` codes of fault_do. The old build ignores them and always
 * returns fault_expect(what, x); the new build does the misbehaviour named
 * here, and for every other code returns the same value as the old one. */
enum fault_what {
    FAULT_NONE = 0,          /* no fault: the correct value */
    FAULT_NULL = 1,          /* NULL dereference: SIGSEGV (SEGV_MAPERR) */
    FAULT_BUS = 2,           /* read of a mapping past its file's end: SIGBUS (BUS_ADRERR) */
    FAULT_FPE = 3,           /* integer division by zero: SIGFPE (FPE_INTDIV) */
    FAULT_TRAP = 4,          /* __builtin_trap (ud2): SIGILL (ILL_ILLOPN) */
    FAULT_ABORT = 5,         /* abort(): SIGABRT */
    FAULT_ASSERT = 6,        /* a failing assert (message on stderr): SIGABRT */
    FAULT_STACK = 7,         /* unbounded recursion: stack overflow, SIGSEGV */
    FAULT_DOUBLE_FREE = 8,   /* free twice (glibc's message on stderr): SIGABRT */
    FAULT_PRINTF = 9,        /* printf("%s", (char *)1): SIGSEGV inside libc */
    FAULT_EXIT = 10,         /* exit(3): atexit handlers, stdio flushed */
    FAULT__EXIT = 11,        /* _exit(4) */
    FAULT__EXIT_C99 = 12,    /* _Exit(5) */
    FAULT_QUICK_EXIT = 13,   /* quick_exit(6) */
    FAULT_ERROR = 14,        /* error(1, 0, ...): exit(1) from inside libc */
    FAULT_HANG = 15,         /* spins for ever; every signal still accepted */
    FAULT_HANG_BLOCKED = 16, /* blocks every signal, then spins for ever */
    FAULT_STDOUT = 17,       /* printf + fflush of a line on stdout */
    FAULT_WRITE1 = 18,       /* write(1, ...) of a line */
    FAULT_SIGACTION = 19,    /* installs its own SIGSEGV handler (it _exits 97 if
                                it ever runs), then returns the correct value */
    FAULT_SIGSYS = 20,       /* raise(SIGSYS) */
    FAULT_INT3 = 21,         /* int3: SIGTRAP */
    FAULT_SIGMASK = 22,      /* blocks SIGALRM, SIGSEGV and every real-time signal on
                                the calling thread, then returns the correct value */
    FAULT_HANG_RAW = 23,     /* blocks every signal with a raw rt_sigprocmask system
                                call (no libc function sees it), then spins for ever:
                                a hang no signal can interrupt */
    FAULT_THREAD = 24,       /* starts a thread (pthread_create) that dereferences
                                NULL, joins it, then returns the correct value */
    FAULT_LAST = 24,
};

/* The correct value, in both builds. */
static inline int fault_expect(int what, int x) { return what * 1000 + x; }

int fault_do(int what, int x);

/* Writes s to fd (both builds, the same bytes); returns write's result. */
int fault_write(int fd, const char *s);

/* A handle with a counter (both builds alike, except that the new build's
 * fctx_use dereferences NULL when `what` is 1): fctx_use adds x to the
 * counter and returns it. */
typedef struct fctx fctx_t;
fctx_t *fctx_new(void);
int fctx_use(fctx_t *c, int what, int x);
void fctx_free(fctx_t *c);

#endif
