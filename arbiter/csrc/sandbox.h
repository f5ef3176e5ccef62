/* The shadow call's sandbox: faults and signal-accepting hangs of the new
 * build become statuses instead of ending the process (sandbox.c).
 * arbiter/src/sandbox.rs mirrors every type here with #[repr(C)]. */
#ifndef DDL_SANDBOX_H
#define DDL_SANDBOX_H
#include "ddl_call.h"

#include <pthread.h>
#include <signal.h>
#include <stddef.h>

/* What ended a sandboxed call with DDL_CALL_FAULT or DDL_CALL_TIMEOUT.
 * For a timeout: signal is the timer signal, code SI_TIMER, addr NULL and pc
 * where the call was interrupted. */
struct ddl_fault {
    int signal;  /* SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS, SIGTRAP */
    int code;    /* si_code */
    void *addr;  /* si_addr (the faulting data address for SIGSEGV/SIGBUS) */
    void *pc;    /* instruction pointer at the fault (from the ucontext); for
                    DDL_CALL_EXIT: the exit function's return address, or the
                    exit_group syscall's instruction */
    int exit_status; /* DDL_CALL_EXIT: the status the new build asked for */
    int exit_how;    /* DDL_CALL_EXIT: one of enum ddl_exit_how */
};

/* How a call tried to end the process (struct ddl_fault's exit_how). */
enum ddl_exit_how {
    DDL_EXIT_EXIT = 1,       /* exit(), through the patched reference */
    DDL_EXIT__EXIT = 2,      /* _exit() */
    DDL_EXIT__EXIT_C99 = 3,  /* _Exit() */
    DDL_EXIT_QUICK_EXIT = 4, /* quick_exit() */
    DDL_EXIT_GROUP = 5,      /* the exit_group syscall, caught by the backstop
                                (an exit from inside libc: error(), exit()
                                reached without the patched reference) */
};

/* Installs the process-wide handlers (once; later calls return 0 at once)
 * and picks the timer signal. 0, or a negative errno. */
int ddl_sandbox_install(void);

/* Prepares the calling thread for sandboxed calls: installs the handlers
 * if need be, an alternate signal stack (mmap, guard page), a POSIX timer
 * aimed at this thread, and unblocks the fault signals and the timer
 * signal. Idempotent per thread; released when the thread ends.
 * 0, or a negative errno. */
int ddl_sandbox_thread_init(void);

/* Runs one call (returns DDL_CALL_EXIT, *f's exit fields filled, when the
 * callee called ddl_sandbox_exit or exit_group under the backstop): c->guard(c->ffi_call, ...) when c->guard is set, else
 * c->ffi_call(c->cif, c->fn, c->rvalue, c->avalue). timeout_ms 0: no time
 * limit. Returns DDL_CALL_OK, DDL_CALL_EXCEPTION (c->exc_type/exc_what),
 * DDL_CALL_FAULT or DDL_CALL_TIMEOUT (*f filled), or a negative errno when
 * the thread could not be prepared (-EBUSY: called from inside a sandboxed
 * call). After a fault or a timeout the thread's signal mask is the one
 * ddl_sandbox_thread_init left. */
int ddl_sandbox_call(struct ddl_call *c, struct ddl_fault *f, unsigned timeout_ms);

/* The real-time signal the per-thread timers use (0 before install). */
int ddl_sandbox_timer_signal(void);

/* How often ddl_sandbox_call re-reads the signal dispositions to put
 * DDL's handlers back over ones installed since (1 = before every call, the
 * default: one rt_sigaction per managed signal; n = every n-th call per
 * thread, and before the next call after ddl_sandbox_handlers_changed).
 * Meant for when libddl interposes the application's sigaction/signal and
 * announces every change: until then, anything but 1 leaves a window in
 * which a shadow fault reaches the application's handler. */
void ddl_sandbox_set_recheck(unsigned every);

/* Announces that a handler may have changed (an interposed sigaction):
 * every thread re-reads the dispositions before its next sandboxed call. */
void ddl_sandbox_handlers_changed(void);

/* How many times a handler installed from another namespace (the new
 * build's own sigaction) was found and removed, and how many application
 * handlers installed over DDL's were taken under DDL's (chained to). */
unsigned long ddl_sandbox_foreign_handlers(void);
unsigned long ddl_sandbox_retaken_handlers(void);

/* Containment hooks (shim/csrc/contain.c, shim/src/contain.rs). */

/* Abandons the current sandboxed call as an exit: jumps back to
 * ddl_sandbox_call, which returns DDL_CALL_EXIT with `status`, `how` and
 * `pc` in the fault struct. Returns (doing nothing) when the calling thread
 * is not inside a sandboxed call. */
void ddl_sandbox_exit(int status, int how, void *pc);

/* Blocks the calling thread for ever: every signal glibc lets a thread
 * block is blocked, then pause() in a loop. Counted (ddl_sandbox_parked).
 * For a thread of the new build's that tries to end the process outside a
 * sandboxed call. */
__attribute__((noreturn)) void ddl_sandbox_park(void);
unsigned long ddl_sandbox_parked(void);

/* The calling thread's state: bit 0 set when it was prepared
 * (ddl_sandbox_thread_init), bit 1 when it is inside a sandboxed call. */
int ddl_sandbox_state(void);

/* The function the calling thread's current sandboxed call called (c->fn),
 * NULL outside one. */
void *ddl_sandbox_current_fn(void);

/* Defers the timer signal on the calling thread (nestable): a timeout that
 * falls due meanwhile is taken when the outermost ddl_sandbox_defer_end
 * re-arms the timer to fire at once (so the jump never leaves DDL's own
 * code half-way: a lock or an allocator state held). Faults are not
 * deferred. */
void ddl_sandbox_defer_begin(void);
void ddl_sandbox_defer_end(void);
/* How many timeouts fell due inside a deferred section (and were taken
 * when it ended). */
unsigned long ddl_sandbox_deferred_timeouts(void);

/* Removes DDL's managed signals (the fault signals and the timer signal)
 * from `set`. */
void ddl_sandbox_strip_managed(sigset_t *set);

/* Is `sig` one of DDL's managed signals? */
int ddl_sandbox_is_managed(int sig);

/* The exit backstop: installs on the calling thread (and so on the threads
 * it creates from then on) a seccomp filter that turns the exit_group
 * syscall into SIGSYS (SECCOMP_RET_TRAP), which the handler reports as
 * DDL_CALL_EXIT (DDL_EXIT_GROUP, status from the first argument) inside a
 * sandboxed call, and parks (ddl_sandbox_park) outside one. Sets
 * PR_SET_NO_NEW_PRIVS on the thread first. Idempotent per thread; the
 * filter cannot be removed and stays for the thread's life.
 * 0, or a negative errno. */
int ddl_sandbox_install_backstop(void);

/* The backstop's filter also traps write, writev and pwrite64 on fds 1 and
 * 2 (except from DDL's own raw syscall). Inside a sandboxed call such a
 * write is answered with its byte count and given to this hook: the
 * syscall number, the fd, a copy of the bytes (`copied` of them, at most
 * 16 MiB; NULL when none) and the total. */
typedef void (*ddl_trapped_write_fn)(int nr, int fd, const char *bytes, size_t copied,
                                     size_t total);
void ddl_sandbox_set_write_hook(ddl_trapped_write_fn f);

/* Trapped writes answered (not performed) on threads that are not DDL's
 * shadow threads (threads the new build started from a shadow call). */
unsigned long ddl_sandbox_swallowed_writes(void);

/* Writes `len` bytes to fd 2 past the filter: DDL's own diagnostics, on
 * any thread. */
void ddl_sandbox_diag(const char *buf, size_t len);

/* ---- threads the new build starts (sandbox.c) ---- */

/* The namespace's pthread_create. */
typedef int (*ddl_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

/* A fault (or exit) of a thread the new build started. */
struct ddl_thread_fault {
    struct ddl_fault fault; /* signal, code, addr, pc; exit_status/how for an exit */
    void *start;            /* the thread's start routine */
    long tag;               /* its namespace (ddl_sandbox_spawn's tag) */
    int status;             /* DDL_CALL_FAULT or DDL_CALL_EXIT */
    int after;              /* 1: after the start routine returned (the thread was parked) */
};

/* pthread_create (c11 0) or thrd_create (c11 1: `start` returns int, the
 * result is a thrd_* code) for the new build: `create` (its namespace's
 * pthread_create) starts the thread on DDL's trampoline, which runs
 * `start(arg)` contained (a fault or an exit ends the thread, recorded;
 * pthread_join gets PTHREAD_CANCELED). `tag` names the namespace in the
 * records. */
int ddl_sandbox_spawn(pthread_t *thr, const pthread_attr_t *attr, void *(*start)(void *), void *arg,
                      int c11, long tag, ddl_create_fn create);

/* Moves up to `max` recorded thread faults to `out` (each once); returns
 * how many. Faults past the 64 that can wait are counted lost. */
size_t ddl_sandbox_take_thread_faults(struct ddl_thread_fault *out, size_t max);
unsigned long ddl_sandbox_thread_faults_lost(void);
/* Threads started through ddl_sandbox_spawn. */
unsigned long ddl_sandbox_new_build_threads(void);
/* The namespace being called now (its tag; -1 before any). */
void ddl_sandbox_set_namespace(long tag);
long ddl_sandbox_current_namespace(void);

#endif
