/* The shadow call's sandbox: faults and signal-accepting hangs of the new
 * build become statuses instead of ending the process (sandbox.c).
 * arbiter/src/sandbox.rs mirrors every type here with #[repr(C)]. */
#ifndef DDL_SANDBOX_H
#define DDL_SANDBOX_H
#include "ddl_call.h"

/* What ended a sandboxed call with DDL_CALL_FAULT or DDL_CALL_TIMEOUT.
 * For a timeout: signal is the timer signal, code SI_TIMER, addr NULL and pc
 * where the call was interrupted. */
struct ddl_fault {
    int signal;  /* SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS, SIGTRAP */
    int code;    /* si_code */
    void *addr;  /* si_addr (the faulting data address for SIGSEGV/SIGBUS) */
    void *pc;    /* instruction pointer at the fault (from the ucontext) */
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

/* Runs one call: c->guard(c->ffi_call, ...) when c->guard is set, else
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

#endif
