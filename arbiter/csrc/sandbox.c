/* The shadow call's sandbox (see sandbox.h; ARCHITECTURE.md "Containment").
 *
 * One process-wide handler for the fault signals (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGABRT, SIGSYS, SIGTRAP) and for the timer signal (a free
 * real-time signal picked at install). It acts only on a thread whose
 * thread-local `inside` flag is set, i.e. while that thread runs a call made
 * by ddl_sandbox_call: it records the fault and siglongjmps back into
 * ddl_sandbox_call's frame. The jump only ever crosses frames of the new
 * build, of libffi, of the C++ guard and of libc: ddl_sandbox_call is the
 * outermost C frame, and the Rust caller only sees its return value.
 *
 * Everywhere else (application threads, the shadow thread between calls)
 * the handler chains to the handlers that would have run without DDL (see
 * "Chaining" below), so it never takes a fault of the application.
 *
 * Chaining. Per signal, an immutable snapshot `struct chain` lists what
 * would run without DDL: `below` (installed before DDL) and `tops` (handlers
 * the application installed over DDL's later, bottom first). Before every
 * sandboxed call the calling thread re-reads the dispositions (one
 * rt_sigaction per signal); a handler that replaced DDL's is pushed onto
 * `tops` and DDL's is installed over it again, so:
 *   - a real delivery (the kernel's return address is the libc restorer)
 *     outside the sandbox runs the top of the chain, i.e. the application's
 *     newest handler: the application's handler keeps winning for its own
 *     faults;
 *   - a handler of the chain that passes the signal on to "its previous
 *     handler" (DDL's, which it saw when it was installed) calls DDL's
 *     handler directly; DDL then runs the next one down (a per-thread cursor
 *     set before each handler it runs), never the same one again;
 *   - SIG_DFL: the default action is restored and the signal re-sent to the
 *     thread (it is blocked in the handler, so it arrives when the handler
 *     returns, at the faulting instruction, and the process dies as it would
 *     have); SIG_IGN for a fault the kernel raised: the kernel would have
 *     forced the default action, so does this; otherwise ignored.
 * A handler whose code lies in another link-map namespace (the new build
 * installing its own, e.g. with sigaction from inside a shadow call) is
 * dropped, never chained to.
 * Limits: between an application's sigaction over DDL's and the next
 * sandboxed call, the application's handler gets every fault, the shadow
 * thread's included (it is between calls then, so a shadow fault needs a
 * call: none happens before the re-check); an application that later puts
 * DDL's handler back (restoring a saved "previous") cannot be told from no
 * change, so its removed handler stays in the chain; SA_RESETHAND of a
 * chained handler is not emulated. Interposing the application's and the
 * new build's sigaction/signal in libddl (issue 4, item 3) removes all
 * three: the chain is then updated at the sigaction itself, and the
 * per-call re-check can go.
 *
 * Timeouts: each prepared thread owns a POSIX timer (CLOCK_MONOTONIC,
 * SIGEV_THREAD_ID to itself, the timer signal), but no system call is made
 * per call: a call with a time limit only stores its start time
 * (CLOCK_MONOTONIC_COARSE, read through the vDSO: a few ns) and its limit
 * (timeout plus the coarse clock's resolution, so that a call is never
 * taken early) in atomics of its thread. A monitor thread (started by the
 * first such call, every signal blocked) looks at every prepared thread
 * every timeout/4 (clamped to 1..250 ms) and fires the timer of a thread
 * whose call is past its limit at once; the handler takes the timer signal
 * as the timeout only when the thread is inside a call with a limit whose
 * elapsed time (read again) reached it, so a late signal (the call ended,
 * another began) is ignored. The timeout fires within timeout + timeout/4
 * + two ticks of the coarse clock (200 ms: at most about 258 ms). A
 * periodic per-thread timer would do without the monitor, but its ticks
 * would interrupt the new build's blocking calls (nanosleep, poll: EINTR,
 * SA_RESTART or not) long before any limit; the monitor signals a thread
 * only when its call is over the limit. With no call in flight for two
 * rounds the monitor sleeps on a futex; the next call wakes it (one system
 * call on that transition only).
 *
 * Exits (DDL_CALL_EXIT): shim/src/contain.rs points the new build's
 * references to exit, _exit, _Exit and quick_exit at stubs
 * (shim/csrc/contain.c) that call ddl_sandbox_exit, which jumps back like a
 * fault; outside a sandboxed call they park the thread for ever
 * (ddl_sandbox_park). Exits from inside libc (error()) reach the
 * exit_group syscall, which the per-thread seccomp backstop
 * (ddl_sandbox_install_backstop) turns into SIGSYS with si_code
 * SYS_SECCOMP: the handler reports it as an exit (status from the syscall's
 * first argument) inside a call, and parks the thread outside one (a thread
 * of the new build's, which inherited the filter). The filter cannot be
 * removed: the shadow thread keeps it for life and never calls exit_group
 * itself (the process ends through another thread).
 *
 * Deferral: DDL's own code that runs inside a sandboxed call (contain.rs
 * recording an outgoing call: it allocates and locks) brackets itself with
 * ddl_sandbox_defer_begin/end; a timeout that falls due meanwhile is only
 * noted, and the timer re-armed to fire at once when the section ends, so
 * the jump never leaves an allocator or a lock of DDL's half-way.
 *
 * x86-64 Linux, glibc. The thread-local state is initial-exec TLS (libddl.so
 * is preloaded, so it sits in the static TLS block and a signal handler
 * reads it without __tls_get_addr). */
#define _GNU_SOURCE
#include "sandbox.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/futex.h>
#include <linux/seccomp.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <alloca.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

#define SBX_NSIG 65 /* Linux: signals 1..64 */
#define SBX_MAX_TOPS 8
#define ALT_STACK_SIZE (64 * 1024)

static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGSYS, SIGTRAP};
#define N_FAULT_SIGNALS (int)(sizeof fault_signals / sizeof fault_signals[0])

/* What would run without DDL for one signal. Published whole (atomic
 * pointer), never changed nor freed afterwards: a handler on any thread may
 * be reading an older one. */
struct chain {
    struct sigaction below;
    int ntops;
    struct sigaction tops[SBX_MAX_TOPS];
};

static _Atomic(struct chain *) chains[SBX_NSIG];
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_int installed;
static int timer_sig;
static void *restorer; /* the return address of a real delivery */
static sigset_t managed;
static pthread_key_t thread_key;
static atomic_ulong foreign_handlers, retaken_handlers;
static atomic_ulong handlers_epoch = 1;
static atomic_uint recheck_every = 1;
static atomic_ulong parked;
static atomic_ulong deferred_timeouts;
static atomic_int backstops; /* threads that installed the exit backstop */
static clockid_t call_clock = CLOCK_MONOTONIC; /* CLOCK_MONOTONIC_COARSE when it exists */
static long long call_clock_res;               /* its resolution, ns */

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif

struct sbx_thread {
    volatile sig_atomic_t inside;
    volatile sig_atomic_t armed; /* the current call has a time limit */
    _Atomic long long call_start; /* its start (clock_ns); 0: none (read by the monitor) */
    _Atomic long long limit_ns;   /* its limit, plus the clock's resolution */
    atomic_uint period_ms;        /* how often the monitor must look at it */
    int registered;               /* in the monitor's table */
    int nb;                      /* a thread the new build started (nb_trampoline) */
    void *nb_start;              /* its start routine */
    long nb_tag;                 /* its namespace (ddl_sandbox_spawn's tag) */
    sigjmp_buf *jb;
    struct ddl_fault *fault;
    int initialised;
    pid_t tid;
    int timer_ok;
    timer_t timer;
    void *alt;
    size_t alt_len;
    sigset_t mask; /* the mask thread_init left; put back after a jump */
    void *fn;      /* the current call's function */
    int defer;     /* ddl_sandbox_defer_begin nesting */
    volatile sig_atomic_t timeout_pending; /* a timeout fell due while deferred */
    int backstop;  /* the exit backstop is installed on this thread */
    unsigned long seen_epoch;
    unsigned calls_since_check;
    signed char chain_next[SBX_NSIG];
};

static __thread struct sbx_thread T __attribute__((tls_model("initial-exec")));

static void handler(int sig, siginfo_t *si, void *ucv);

static int is_ours(const struct sigaction *sa) {
    return (sa->sa_flags & SA_SIGINFO) && sa->sa_sigaction == handler;
}

static int same_handler(const struct sigaction *a, const struct sigaction *b) {
    return a->sa_sigaction == b->sa_sigaction && a->sa_flags == b->sa_flags;
}

static void our_action(struct sigaction *act) {
    memset(act, 0, sizeof *act);
    act->sa_sigaction = handler;
    act->sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
    /* Neither a timer signal nor another fault interrupts the recording
     * of one (SIGSEGV inside the handler itself still kills, as it would). */
    act->sa_mask = managed;
}

static void *pc_of(void *ucv) {
#if defined(__x86_64__)
    return ucv ? (void *)((ucontext_t *)ucv)->uc_mcontext.gregs[REG_RIP] : NULL;
#elif defined(__aarch64__)
    return ucv ? (void *)((ucontext_t *)ucv)->uc_mcontext.pc : NULL;
#else
    (void)ucv;
    return NULL;
#endif
}

/* exit_group's first argument, from the registers at the syscall. */
static int exit_status_of(void *ucv) {
#if defined(__x86_64__)
    return ucv ? (int)((ucontext_t *)ucv)->uc_mcontext.gregs[REG_RDI] : 0;
#elif defined(__aarch64__)
    return ucv ? (int)((ucontext_t *)ucv)->uc_mcontext.regs[0] : 0;
#else
    (void)ucv;
    return 0;
#endif
}

static int sync_fault(int sig) {
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGFPE || sig == SIGILL || sig == SIGTRAP;
}

/* The default action, as the kernel would take it: SIG_DFL, then the signal
 * again to this thread (blocked while the handler runs: it arrives on return,
 * for a fault at the faulting instruction). */
static void default_action(int sig) {
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), sig);
}

/* Runs `p` for this delivery as the kernel would have. */
static void run_prev(const struct sigaction *p, int sig, siginfo_t *si, void *ucv) {
    if (!(p->sa_flags & SA_SIGINFO) && p->sa_handler == SIG_IGN) {
        if (sync_fault(sig) && si && si->si_code > 0)
            default_action(sig); /* the kernel forces SIG_DFL for a fault */
        return;
    }
    if (!(p->sa_flags & SA_SIGINFO) && p->sa_handler == SIG_DFL) {
        default_action(sig);
        return;
    }
    sigset_t extra = p->sa_mask, saved;
    if (!(p->sa_flags & SA_NODEFER))
        sigaddset(&extra, sig);
    pthread_sigmask(SIG_BLOCK, &extra, &saved);
    if (p->sa_flags & SA_SIGINFO)
        p->sa_sigaction(sig, si, ucv);
    else
        p->sa_handler(sig);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

/* Outside the sandbox: what would have run without DDL. */
static void chain_on(int sig, siginfo_t *si, void *ucv, int real) {
    struct chain *c = atomic_load_explicit(&chains[sig], memory_order_acquire);
    if (!c) {
        default_action(sig);
        return;
    }
    /* Entries: 0 = below, k = tops[k-1]. */
    int k = real ? c->ntops : T.chain_next[sig];
    if (k < 0 || k > c->ntops) {
        /* The bottom of the chain called back into DDL's handler: nothing
         * left below, so the default action. */
        default_action(sig);
        return;
    }
    T.chain_next[sig] = (signed char)(k - 1);
    run_prev(k == 0 ? &c->below : &c->tops[k - 1], sig, si, ucv);
}

static void record(struct sbx_thread *t, int sig, siginfo_t *si, void *ucv) {
    struct ddl_fault *f = t->fault;
    f->signal = sig;
    f->code = si ? si->si_code : 0;
    f->addr = (si && sig != timer_sig) ? si->si_addr : NULL;
    f->pc = pc_of(ucv);
}

/* The calls' clock, in ns (vDSO: no system call). */
static long long clock_ns(void) {
    struct timespec ts;
    clock_gettime(call_clock, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Fires the thread's timer at once. */
static void fire_timer(struct sbx_thread *t) {
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    its.it_value.tv_nsec = 1000;
    timer_settime(t->timer, 0, &its, NULL);
}

static int our_timer_signal(struct sbx_thread *t, int sig, siginfo_t *si) {
    return sig == timer_sig && si && si->si_code == SI_TIMER && t->tid != 0 &&
           si->si_value.sival_int == t->tid;
}

/* ---- writes to fds 1 and 2 on filtered threads ------------------------
 *
 * The backstop's filter also traps write, writev and pwrite64 on fds 1 and
 * 2 (the new build's libc writing its own messages there: malloc's "double
 * free detected", __libc_message, a stream it made on fd 2), except when
 * they come from ddl_sandbox_raw_syscall below (the filter allows that one
 * instruction address), which is how DDL performs a write on such a thread. */

/* A raw syscall with up to four arguments: DDL's own writes on a filtered
 * thread. `ddl_sandbox_raw_after` is the address right after its `syscall`
 * instruction: seccomp_data.instruction_pointer for a syscall made here. */
long ddl_sandbox_raw_syscall(long nr, long a0, long a1, long a2, long a3);
extern const char ddl_sandbox_raw_after[];
__asm__(".text\n"
        ".globl ddl_sandbox_raw_syscall\n"
        ".hidden ddl_sandbox_raw_syscall\n"
        ".type ddl_sandbox_raw_syscall,@function\n"
        "ddl_sandbox_raw_syscall:\n"
        "    mov %rdi, %rax\n"
        "    mov %rsi, %rdi\n"
        "    mov %rdx, %rsi\n"
        "    mov %rcx, %rdx\n"
        "    mov %r8, %r10\n"
        "    syscall\n"
        ".globl ddl_sandbox_raw_after\n"
        ".hidden ddl_sandbox_raw_after\n"
        "ddl_sandbox_raw_after:\n"
        "    ret\n"
        ".size ddl_sandbox_raw_syscall, .-ddl_sandbox_raw_syscall\n");

static atomic_ulong swallowed_writes;
/* Set by shim/src/contain.rs: records a trapped write of a sandboxed call. */
static _Atomic(ddl_trapped_write_fn) write_hook;

void ddl_sandbox_set_write_hook(ddl_trapped_write_fn f) { atomic_store(&write_hook, f); }
unsigned long ddl_sandbox_swallowed_writes(void) { return atomic_load(&swallowed_writes); }

static int is_trapped_write(int nr) {
    return nr == SYS_write || nr == SYS_writev || nr == SYS_pwrite64;
}

/* Copies `n` bytes at `src` (the caller's memory, maybe bad) to `dst`
 * without faulting: 0, or -EFAULT. */
static long safe_copy(void *dst, const void *src, size_t n) {
    if (n == 0)
        return 0;
    struct iovec l = {dst, n}, r = {(void *)src, n};
    long got = ddl_sandbox_raw_syscall(SYS_process_vm_readv, getpid(), (long)&l, 1, (long)&r);
    if (got < 0)
        return got;
    return (size_t)got == n ? 0 : -EFAULT;
}

#define TRAP_COPY_MAX (16u << 20) /* bytes of one trapped write kept */

void ddl_sandbox_diag(const char *buf, size_t len) {
    while (len > 0) {
        long n = ddl_sandbox_raw_syscall(SYS_write, 2, (long)buf, (long)len, 0);
        if (n == -EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

/* A trapped write: inside a sandboxed call (not DDL's own deferred code)
 * it is recorded through the hook and answered with the byte count; on a
 * DDL thread outside one (DDL's diagnostics, a panic message) it is
 * performed; on a thread the new build started it is answered and
 * counted (ddl_sandbox_swallowed_writes). */
static void trapped_write(struct sbx_thread *t, int nr, void *ucv) {
#if defined(__x86_64__)
    greg_t *g = ((ucontext_t *)ucv)->uc_mcontext.gregs;
    long fd = g[REG_RDI], a1 = g[REG_RSI], a2 = g[REG_RDX], a3 = g[REG_R10];
    if (!(t->inside && t->jb) || t->defer) {
        if (t->initialised) {
            g[REG_RAX] = ddl_sandbox_raw_syscall(nr, fd, a1, a2, a3);
            return;
        }
    }
    /* The total, as the kernel would check it. */
    size_t total = 0;
    const struct iovec *iov = (const struct iovec *)a1;
    struct iovec one = {(void *)a1, (size_t)a2};
    int cnt = 1;
    if (nr == SYS_writev) {
        if (a2 < 0 || a2 > IOV_MAX) {
            g[REG_RAX] = -EINVAL;
            return;
        }
        cnt = (int)a2;
    } else {
        iov = &one;
    }
    struct iovec v[64];
    for (int i = 0; i < cnt; i++) {
        struct iovec cur;
        if (iov == &one)
            cur = one;
        else if (safe_copy(&cur, &iov[i], sizeof cur) != 0) {
            g[REG_RAX] = -EFAULT;
            return;
        }
        if (i < 64)
            v[i] = cur;
        total += cur.iov_len;
    }
    if (!(t->inside && t->jb) || t->defer || t->nb) {
        atomic_fetch_add(&swallowed_writes, 1);
        g[REG_RAX] = (long)total;
        return;
    }
    ddl_trapped_write_fn hook = atomic_load(&write_hook);
    size_t keep = total < TRAP_COPY_MAX ? total : TRAP_COPY_MAX;
    char *copy = NULL;
    if (hook && keep > 0) {
        copy = mmap(NULL, keep, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (copy == MAP_FAILED)
            copy = NULL;
    }
    size_t at = 0;
    for (int i = 0; copy && i < cnt && i < 64 && at < keep; i++) {
        size_t n = v[i].iov_len < keep - at ? v[i].iov_len : keep - at;
        if (safe_copy(copy + at, v[i].iov_base, n) != 0) {
            munmap(copy, keep);
            g[REG_RAX] = -EFAULT;
            return;
        }
        at += n;
    }
    if (hook)
        hook(nr, (int)fd, copy, at, total);
    if (copy)
        munmap(copy, keep);
    g[REG_RAX] = (long)total;
#else
    (void)t;
    (void)nr;
    (void)ucv;
#endif
}

static void push_thread_fault(const struct ddl_fault *f, int status, int after, void *start,
                              long tag);

static void handler(int sig, siginfo_t *si, void *ucv) {
    void *ra = __builtin_return_address(0);
    struct sbx_thread *t = &T;
    if (our_timer_signal(t, sig, si)) {
        if (t->inside && t->armed && t->jb &&
            clock_ns() - atomic_load_explicit(&t->call_start, memory_order_relaxed) >=
                atomic_load_explicit(&t->limit_ns, memory_order_relaxed)) {
            if (t->defer) {
                /* Inside DDL's own code (a replacement recording an
                 * outgoing call): taken when it leaves. */
                if (!t->timeout_pending)
                    atomic_fetch_add_explicit(&deferred_timeouts, 1, memory_order_relaxed);
                t->timeout_pending = 1;
                return;
            }
            record(t, sig, si, ucv);
            t->inside = 0;
            siglongjmp(*t->jb, DDL_CALL_TIMEOUT);
        }
        return; /* late, or the call is within its limit: ignored */
    }
    if (sig == SIGSYS && si && si->si_code == SYS_SECCOMP && is_trapped_write(si->si_syscall) &&
        atomic_load_explicit(&backstops, memory_order_relaxed)) {
        trapped_write(t, si->si_syscall, ucv);
        return;
    }
    if (sig == SIGSYS && si && si->si_code == SYS_SECCOMP && si->si_syscall == SYS_exit_group &&
        atomic_load_explicit(&backstops, memory_order_relaxed)) {
        /* The exit backstop: the new build (or its libc, e.g. error())
         * tried to end the process. */
        if (t->inside && t->jb) {
            record(t, sig, si, ucv);
            t->fault->exit_status = exit_status_of(ucv);
            t->fault->exit_how = DDL_EXIT_GROUP;
            t->inside = 0;
            siglongjmp(*t->jb, DDL_CALL_EXIT);
        }
        /* A thread that inherited the filter (one the new build started)
         * or a shadow thread between calls: it must not end the process. */
        ddl_sandbox_park();
    }
    if (t->inside && t->jb && sig != timer_sig) {
        /* kill(2) from another process is not the new build's doing. */
        int external = si && si->si_code == SI_USER && si->si_pid != getpid();
        if (!external) {
            record(t, sig, si, ucv);
            t->inside = 0;
            siglongjmp(*t->jb, DDL_CALL_FAULT);
        }
    }
    if (t->nb && sig != timer_sig && !(si && si->si_code == SI_USER && si->si_pid != getpid())) {
        /* A thread of the new build's after its start routine (its TLS
         * and key destructors): never the application's fault. Recorded,
         * and the thread is parked. */
        struct ddl_fault f;
        memset(&f, 0, sizeof f);
        f.signal = sig;
        f.code = si ? si->si_code : 0;
        f.addr = si ? si->si_addr : NULL;
        f.pc = pc_of(ucv);
        push_thread_fault(&f, DDL_CALL_FAULT, 1, t->nb_start, t->nb_tag);
        ddl_sandbox_park();
    }
    int saved_errno = errno;
    chain_on(sig, si, ucv, restorer == NULL || ra == restorer);
    errno = saved_errno;
}

/* Does `fn` lie in an object of a namespace other than the base one? */
static int in_other_namespace(void *fn) {
    Dl_info info;
    struct link_map *lm = NULL;
    if (!fn || !dladdr1(fn, &info, (void **)&lm, RTLD_DL_LINKMAP) || !lm)
        return 0;
    Lmid_t id = LM_ID_BASE;
    if (dlinfo(lm, RTLD_DI_LMID, &id) != 0)
        return 0;
    return id != LM_ID_BASE;
}

static int handler_address_foreign(const struct sigaction *sa) {
    if (!(sa->sa_flags & SA_SIGINFO) && (sa->sa_handler == SIG_DFL || sa->sa_handler == SIG_IGN))
        return 0;
    return in_other_namespace((void *)sa->sa_sigaction);
}

/* The chain after `cur` (what is installed on the signal now) was found
 * over `old` (NULL: DDL is not installed yet, so `cur` is what lies below). */
static struct chain *chain_with(const struct chain *old, const struct sigaction *cur, int *pushed) {
    struct chain *c = malloc(sizeof *c);
    *pushed = 0;
    if (!c)
        return NULL;
    if (!old) {
        memset(c, 0, sizeof *c);
        c->below = *cur;
        return c;
    }
    *c = *old;
    if (handler_address_foreign(cur))
        return c; /* the new build's own handler: never chained to */
    if (c->ntops == SBX_MAX_TOPS) {
        /* Keep the newest handlers; the oldest one installed over DDL's
         * drops out of the chain. */
        memmove(&c->tops[0], &c->tops[1], (SBX_MAX_TOPS - 1) * sizeof c->tops[0]);
        c->ntops--;
    }
    c->tops[c->ntops++] = *cur;
    *pushed = 1;
    return c;
}

/* Puts DDL's handler on `sig` over `cur` (what is installed now) and makes
 * `cur` part of the chain. Under install_lock. */
static int take(int sig, const struct sigaction *cur) {
    struct chain *old = atomic_load_explicit(&chains[sig], memory_order_relaxed);
    int pushed;
    struct chain *c = chain_with(old, cur, &pushed);
    if (!c)
        return -ENOMEM;
    atomic_store_explicit(&chains[sig], c, memory_order_release);
    struct sigaction act, was;
    our_action(&act);
    if (sigaction(sig, &act, &was) != 0)
        return -errno;
    if (!is_ours(&was) && !same_handler(&was, cur)) {
        /* Someone installed between the read and the swap: chain to what
         * was really displaced (a delivery meanwhile used `c`: a window of
         * a few instructions). */
        struct chain *d = chain_with(old, &was, &pushed);
        if (d)
            atomic_store_explicit(&chains[sig], d, memory_order_release);
    }
    if (old)
        atomic_fetch_add(pushed ? &retaken_handlers : &foreign_handlers, 1);
    if (!restorer) {
        /* The restorer libc gives every handler: a real delivery returns
         * there (x86-64 SA_RESTORER; elsewhere unknown, and every entry is
         * taken as a real delivery). */
        struct sigaction mine;
        if (sigaction(sig, NULL, &mine) == 0 && is_ours(&mine)) {
#if defined(__x86_64__)
            restorer = (void *)mine.sa_restorer;
#endif
        }
    }
    return 0;
}

static void pick_timer_signal(void) {
    for (int s = SIGRTMAX; s >= SIGRTMIN; s--) {
        struct sigaction cur;
        if (sigaction(s, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
            cur.sa_handler == SIG_DFL) {
            timer_sig = s;
            return;
        }
    }
}

/* ---- the monitor (see "Timeouts") ------------------------------------ */

#define MON_MAX 256
static pthread_mutex_t mon_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sbx_thread *mon_threads[MON_MAX]; /* prepared threads, under mon_lock */
static atomic_int monitor_running, monitor_sleeping;

static void register_thread(struct sbx_thread *t) {
    pthread_mutex_lock(&mon_lock);
    for (int i = 0; i < MON_MAX; i++) {
        if (!mon_threads[i]) {
            mon_threads[i] = t;
            t->registered = 1;
            break;
        }
    }
    pthread_mutex_unlock(&mon_lock);
}

/* Before the thread's timer is deleted: the monitor never fires a timer
 * that is gone. */
static void unregister_thread(struct sbx_thread *t) {
    if (!t->registered)
        return;
    pthread_mutex_lock(&mon_lock);
    for (int i = 0; i < MON_MAX; i++)
        if (mon_threads[i] == t)
            mon_threads[i] = NULL;
    t->registered = 0;
    pthread_mutex_unlock(&mon_lock);
}

/* One look at every prepared thread: fires the timer of each call past its
 * limit. Returns the shortest period of the calls in flight, 0 if none. */
static unsigned monitor_scan(void) {
    unsigned period = 0;
    long long now = clock_ns();
    pthread_mutex_lock(&mon_lock);
    for (int i = 0; i < MON_MAX; i++) {
        struct sbx_thread *t = mon_threads[i];
        if (!t)
            continue;
        long long start = atomic_load_explicit(&t->call_start, memory_order_seq_cst);
        if (!start)
            continue;
        unsigned p = atomic_load_explicit(&t->period_ms, memory_order_relaxed);
        if (!period || p < period)
            period = p;
        if (now - start >= atomic_load_explicit(&t->limit_ns, memory_order_relaxed))
            fire_timer(t);
    }
    pthread_mutex_unlock(&mon_lock);
    return period;
}

static void *monitor(void *arg) {
    (void)arg;
    int idle = 0;
    for (;;) {
        unsigned period = monitor_scan();
        if (period) {
            idle = 0;
        } else if (++idle >= 2) {
            /* Nothing in flight for two rounds: sleep until a call with a
             * limit starts (it sees monitor_sleeping and wakes us), after
             * a second look that closes the race with such a call. */
            atomic_store_explicit(&monitor_sleeping, 1, memory_order_seq_cst);
            if (!monitor_scan())
                syscall(SYS_futex, &monitor_sleeping, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
            atomic_store_explicit(&monitor_sleeping, 0, memory_order_seq_cst);
            idle = 0;
            continue;
        }
        unsigned ms = period ? period : 250;
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void monitor_after_fork(void) {
    /* The child has no monitor (and maybe a lock held by a thread that
     * does not exist there). */
    pthread_mutex_init(&mon_lock, NULL);
    atomic_store(&monitor_running, 0);
    atomic_store(&monitor_sleeping, 0);
}

/* Starts the monitor (once), or wakes it. */
static void start_monitor(void) {
    if (atomic_load_explicit(&monitor_running, memory_order_acquire)) {
        if (atomic_exchange_explicit(&monitor_sleeping, 0, memory_order_seq_cst))
            syscall(SYS_futex, &monitor_sleeping, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
        return;
    }
    int no = 0;
    if (!atomic_compare_exchange_strong(&monitor_running, &no, 1))
        return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* inherited: the monitor takes no signal */
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 64 * 1024);
    pthread_t th;
    if (pthread_create(&th, &a, monitor, NULL) != 0)
        atomic_store(&monitor_running, 0); /* tried again by the next call */
    else
        pthread_setname_np(th, "ddl-sbx-monitor");
    pthread_attr_destroy(&a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void thread_end(void *arg) {
    struct sbx_thread *t = arg;
    if (t != &T)
        return;
    unregister_thread(t);
    if (t->timer_ok) {
        timer_delete(t->timer);
        t->timer_ok = 0;
    }
    if (t->alt) {
        stack_t ss, cur;
        if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == (char *)t->alt + getpagesize()) {
            memset(&ss, 0, sizeof ss);
            ss.ss_flags = SS_DISABLE;
            sigaltstack(&ss, NULL);
        }
        munmap(t->alt, t->alt_len);
        t->alt = NULL;
    }
    t->initialised = 0;
}

int ddl_sandbox_install(void) {
    if (atomic_load_explicit(&installed, memory_order_acquire))
        return 0;
    pthread_mutex_lock(&install_lock);
    int rc = 0;
    if (atomic_load_explicit(&installed, memory_order_relaxed))
        goto out;
    struct timespec res;
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &res) == 0 && res.tv_sec == 0) {
        call_clock = CLOCK_MONOTONIC_COARSE;
        call_clock_res = res.tv_nsec;
    } else if (clock_getres(CLOCK_MONOTONIC, &res) == 0) {
        call_clock_res = res.tv_nsec;
    }
    pick_timer_signal();
    if (!timer_sig) {
        rc = -EAGAIN;
        goto out;
    }
    sigemptyset(&managed);
    for (int i = 0; i < N_FAULT_SIGNALS; i++)
        sigaddset(&managed, fault_signals[i]);
    sigaddset(&managed, timer_sig);
    if ((rc = -pthread_key_create(&thread_key, thread_end)) != 0)
        goto out;
    pthread_atfork(NULL, NULL, monitor_after_fork);
    for (int i = 0; i <= N_FAULT_SIGNALS; i++) {
        int sig = i < N_FAULT_SIGNALS ? fault_signals[i] : timer_sig;
        struct sigaction cur;
        if (sigaction(sig, NULL, &cur) != 0) {
            rc = -errno;
            goto out;
        }
        if ((rc = take(sig, &cur)) != 0)
            goto out;
    }
    atomic_store_explicit(&installed, 1, memory_order_release);
out:
    pthread_mutex_unlock(&install_lock);
    return rc;
}

int ddl_sandbox_timer_signal(void) { return timer_sig; }
unsigned long ddl_sandbox_foreign_handlers(void) { return atomic_load(&foreign_handlers); }
unsigned long ddl_sandbox_retaken_handlers(void) { return atomic_load(&retaken_handlers); }

void ddl_sandbox_handlers_changed(void) { atomic_fetch_add(&handlers_epoch, 1); }
void ddl_sandbox_set_recheck(unsigned every) { atomic_store(&recheck_every, every ? every : 1); }

/* Before a call: DDL's handler must be the one installed on every managed
 * signal (see "Chaining"). One rt_sigaction per signal, so it is skipped
 * when the policy allows (ddl_sandbox_set_recheck) and no change was
 * announced (ddl_sandbox_handlers_changed). */
static int recheck(struct sbx_thread *t) {
    unsigned long epoch = atomic_load_explicit(&handlers_epoch, memory_order_acquire);
    unsigned every = atomic_load_explicit(&recheck_every, memory_order_relaxed);
    if (epoch == t->seen_epoch && ++t->calls_since_check < every)
        return 0;
    t->seen_epoch = epoch;
    t->calls_since_check = 0;
    int rc = 0;
    for (int i = 0; i <= N_FAULT_SIGNALS; i++) {
        int sig = i < N_FAULT_SIGNALS ? fault_signals[i] : timer_sig;
        struct sigaction cur;
        if (sigaction(sig, NULL, &cur) != 0 || is_ours(&cur))
            continue;
        pthread_mutex_lock(&install_lock);
        if (sigaction(sig, NULL, &cur) == 0 && !is_ours(&cur))
            rc = take(sig, &cur);
        pthread_mutex_unlock(&install_lock);
        if (rc)
            return rc;
    }
    return 0;
}

int ddl_sandbox_thread_init(void) {
    struct sbx_thread *t = &T;
    if (t->initialised)
        return 0;
    int rc = ddl_sandbox_install();
    if (rc)
        return rc;
    long page = sysconf(_SC_PAGESIZE);
    long min = sysconf(_SC_SIGSTKSZ);
    size_t len = ALT_STACK_SIZE;
    if (min > 0 && (size_t)min * 4 > len)
        len = ((size_t)min * 4 + page - 1) / page * page;
    void *mem = mmap(NULL, len + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                     -1, 0);
    if (mem == MAP_FAILED)
        return -errno;
    if (mprotect(mem, page, PROT_NONE) != 0) { /* the guard page, below */
        rc = -errno;
        munmap(mem, len + page);
        return rc;
    }
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = (char *)mem + page;
    ss.ss_size = len;
    if (sigaltstack(&ss, NULL) != 0) {
        rc = -errno;
        munmap(mem, len + page);
        return rc;
    }
    t->alt = mem;
    t->alt_len = len + page;
    t->tid = (pid_t)syscall(SYS_gettid);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = timer_sig;
    sev.sigev_value.sival_int = t->tid;
    sev.sigev_notify_thread_id = t->tid;
    if (timer_create(CLOCK_MONOTONIC, &sev, &t->timer) != 0) {
        rc = -errno;
        thread_end(t);
        return rc;
    }
    t->timer_ok = 1;
    register_thread(t);
    pthread_sigmask(SIG_UNBLOCK, &managed, NULL);
    pthread_sigmask(SIG_SETMASK, NULL, &t->mask);
    pthread_setspecific(thread_key, t);
    t->initialised = 1;
    return 0;
}

/* How often the monitor looks at a call with a limit of `ms`. */
static unsigned period_for(unsigned ms) {
    unsigned p = ms / 4;
    return p < 1 ? 1 : p > 250 ? 250 : p;
}

static void start_monitor(void);

int ddl_sandbox_call(struct ddl_call *c, struct ddl_fault *f, unsigned timeout_ms) {
    struct sbx_thread *t = &T;
    /* The caller leaves both buffers uninitialised: empty strings first. */
    c->exc_type[0] = 0;
    c->exc_what[0] = 0;
    if (t->jb)
        return -EBUSY;
    if (!t->initialised) {
        int rc = ddl_sandbox_thread_init();
        if (rc)
            return rc;
    }
    int rc = recheck(t);
    if (rc)
        return rc;
    memset(f, 0, sizeof *f);
    sigjmp_buf jb;
    t->fault = f;
    t->fn = (void *)c->fn;
    t->defer = 0;
    t->timeout_pending = 0;
    t->jb = &jb;
    /* No mask saved (a syscall per call): the slow path puts back t->mask. */
    if (timeout_ms && t->timer_ok) {
        unsigned p = period_for(timeout_ms);
        if (atomic_load_explicit(&t->period_ms, memory_order_relaxed) != p)
            atomic_store_explicit(&t->period_ms, p, memory_order_relaxed);
        atomic_store_explicit(&t->limit_ns, (long long)timeout_ms * 1000000LL + call_clock_res,
                              memory_order_relaxed);
        long long now = clock_ns();
        atomic_store_explicit(&t->call_start, now ? now : 1, memory_order_seq_cst);
        t->armed = 1;
        /* Pairs with the monitor's store of `monitor_sleeping` and its
         * second look (both seq_cst): one of the two sees the other. */
        if (atomic_load_explicit(&monitor_sleeping, memory_order_seq_cst) ||
            !atomic_load_explicit(&monitor_running, memory_order_relaxed))
            start_monitor();
    }
    int st = sigsetjmp(jb, 0);
    if (st == 0) {
        atomic_signal_fence(memory_order_seq_cst);
        t->inside = 1;
        atomic_signal_fence(memory_order_seq_cst);
        if (c->guard) {
            st = c->guard(c->ffi_call, c->cif, c->fn, c->rvalue, c->avalue, c->exc_type,
                          sizeof c->exc_type, c->exc_what, sizeof c->exc_what);
        } else {
            c->ffi_call(c->cif, c->fn, c->rvalue, c->avalue);
            st = DDL_CALL_OK;
        }
        atomic_signal_fence(memory_order_seq_cst);
        t->inside = 0;
        atomic_signal_fence(memory_order_seq_cst);
    } else {
        /* From the handler (which cleared `inside`): the handler's mask, or
         * whatever the new build made of it, goes. */
        pthread_sigmask(SIG_SETMASK, &t->mask, NULL);
    }
    if (t->armed) {
        atomic_store_explicit(&t->call_start, 0, memory_order_relaxed);
        t->armed = 0;
    }
    t->jb = NULL;
    t->fault = NULL;
    t->fn = NULL;
    t->defer = 0;
    t->timeout_pending = 0;
    return st;
}

/* ---- Containment hooks (sandbox.h) ---------------------------------- */

void ddl_sandbox_exit(int status, int how, void *pc) {
    struct sbx_thread *t = &T;
    if (!t->inside || !t->jb)
        return;
    struct ddl_fault *f = t->fault;
    f->signal = 0;
    f->code = 0;
    f->addr = NULL;
    f->pc = pc;
    f->exit_status = status;
    f->exit_how = how;
    atomic_signal_fence(memory_order_seq_cst);
    t->inside = 0;
    atomic_signal_fence(memory_order_seq_cst);
    siglongjmp(*t->jb, DDL_CALL_EXIT);
}

void ddl_sandbox_park(void) {
    atomic_fetch_add(&parked, 1);
    sigset_t all;
    sigfillset(&all);
    /* glibc keeps its own internal signals (cancellation, setxid)
     * unblockable: setuid() in the application still completes. */
    pthread_sigmask(SIG_SETMASK, &all, NULL);
    for (;;)
        pause();
}

unsigned long ddl_sandbox_parked(void) { return atomic_load(&parked); }
unsigned long ddl_sandbox_deferred_timeouts(void) { return atomic_load(&deferred_timeouts); }

int ddl_sandbox_state(void) {
    struct sbx_thread *t = &T;
    return (t->initialised ? 1 : 0) | (t->inside && t->jb ? 2 : 0);
}

void *ddl_sandbox_current_fn(void) {
    struct sbx_thread *t = &T;
    return t->inside ? t->fn : NULL;
}

void ddl_sandbox_defer_begin(void) {
    struct sbx_thread *t = &T;
    t->defer++;
    atomic_signal_fence(memory_order_seq_cst);
}

void ddl_sandbox_defer_end(void) {
    struct sbx_thread *t = &T;
    atomic_signal_fence(memory_order_seq_cst);
    if (t->defer > 0 && --t->defer == 0 && t->timeout_pending) {
        t->timeout_pending = 0;
        if (t->inside && t->armed && t->timer_ok) {
            /* Fire again at once: taken outside DDL's code. */
            fire_timer(t);
        }
    }
}

void ddl_sandbox_strip_managed(sigset_t *set) {
    if (!set)
        return;
    for (int i = 0; i < N_FAULT_SIGNALS; i++)
        sigdelset(set, fault_signals[i]);
    if (timer_sig)
        sigdelset(set, timer_sig);
}

int ddl_sandbox_is_managed(int sig) {
    for (int i = 0; i < N_FAULT_SIGNALS; i++)
        if (fault_signals[i] == sig)
            return 1;
    return timer_sig != 0 && sig == timer_sig;
}

int ddl_sandbox_install_backstop(void) {
    struct sbx_thread *t = &T;
    if (t->backstop)
        return 0;
    int rc = ddl_sandbox_install(); /* SIGSYS must be DDL's first */
    if (rc)
        return rc;
    /* exit_group: trap. write, writev, pwrite64 on fd 1 or 2: trap unless
     * made by ddl_sandbox_raw_syscall (its address, both halves). Else
     * allow. */
    uint64_t ip = (uint64_t)(uintptr_t)ddl_sandbox_raw_after;
    struct sock_filter code[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        /* 1 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 15),
        /* 2 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        /* 3 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit_group, 11, 0),
        /* 4 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_write, 3, 0),
        /* 5 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_writev, 2, 0),
        /* 6 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pwrite64, 1, 0),
        /* 7 */ BPF_JUMP(BPF_JMP | BPF_JA, 9, 0, 0),
        /* 8 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        /* 9 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 1, 1, 0),
        /* 10 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 2, 0, 6),
        /* 11 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, instruction_pointer)),
        /* 12 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)ip, 0, 3),
        /* 13 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                          offsetof(struct seccomp_data, instruction_pointer) + 4),
        /* 14 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)(ip >> 32), 2, 1),
        /* 15 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        /* 16 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
        /* 17 */ BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
#if !defined(__x86_64__)
    return -ENOSYS;
#endif
    struct sock_fprog prog = {.len = (unsigned short)(sizeof code / sizeof code[0]), .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    /* The handler must know a backstop exists before the first trap. */
    atomic_fetch_add(&backstops, 1);
    /* No SECCOMP_FILTER_FLAG_TSYNC: this thread (and its future children)
     * only. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
        rc = -errno;
        atomic_fetch_sub(&backstops, 1);
        return rc;
    }
    t->backstop = 1;
    return 0;
}

/* ---- threads the new build starts ------------------------------------
 *
 * contain.rs points the new build's pthread_create and thrd_create at
 * replacements that call ddl_sandbox_spawn: the thread is created by the
 * namespace's own pthread_create (its libc runs the thread's TLS and key
 * destructors as it would) on nb_trampoline, which prepares it like a
 * shadow thread (an alternate signal stack, the fault signals unblocked;
 * the seccomp backstop is inherited from the creating thread) and runs
 * the start routine under sigsetjmp with the thread "inside": a fault or
 * an exit there jumps back, is recorded (ddl_sandbox_take_thread_faults)
 * and the thread ends, its pthread_join answering PTHREAD_CANCELED
 * (thrd_join: -1). A fault after the start routine returned (a destructor
 * of its thread-exit) is recorded and the thread parked. No time limit:
 * such a thread may wait for work for ever (a pool's worker). */

struct nb_start {
    void *(*start)(void *);
    void *arg;
    int c11;
    long tag;
    size_t stack;
};

#define TF_SLOTS 64
static struct {
    atomic_int state; /* 0 free, 1 being written, 2 ready */
    struct ddl_thread_fault tf;
} tf_slots[TF_SLOTS];
static atomic_ulong tf_lost, nb_threads;
static atomic_long current_tag = -1;

/* Async-signal-safe (the park path runs in the handler). */
static void push_thread_fault(const struct ddl_fault *f, int status, int after, void *start,
                              long tag) {
    for (int i = 0; i < TF_SLOTS; i++) {
        int free_ = 0;
        if (atomic_compare_exchange_strong(&tf_slots[i].state, &free_, 1)) {
            tf_slots[i].tf.fault = *f;
            tf_slots[i].tf.start = start;
            tf_slots[i].tf.tag = tag;
            tf_slots[i].tf.status = status;
            tf_slots[i].tf.after = after;
            atomic_store_explicit(&tf_slots[i].state, 2, memory_order_release);
            return;
        }
    }
    atomic_fetch_add(&tf_lost, 1);
}

size_t ddl_sandbox_take_thread_faults(struct ddl_thread_fault *out, size_t max) {
    size_t n = 0;
    for (int i = 0; i < TF_SLOTS && n < max; i++) {
        if (atomic_load_explicit(&tf_slots[i].state, memory_order_acquire) != 2)
            continue;
        out[n++] = tf_slots[i].tf;
        atomic_store_explicit(&tf_slots[i].state, 0, memory_order_release);
    }
    return n;
}

unsigned long ddl_sandbox_thread_faults_lost(void) { return atomic_load(&tf_lost); }
unsigned long ddl_sandbox_new_build_threads(void) { return atomic_load(&nb_threads); }
void ddl_sandbox_set_namespace(long tag) { atomic_store(&current_tag, tag); }
long ddl_sandbox_current_namespace(void) { return atomic_load(&current_tag); }

static size_t alt_stack_size(void) {
    long min = sysconf(_SC_SIGSTKSZ);
    size_t len = ALT_STACK_SIZE;
    if (min > 0 && (size_t)min * 4 > len)
        len = ((size_t)min * 4 + 4095) / 4096 * 4096;
    return len;
}

/* Runs the start routine under sigsetjmp; `alt` is its alternate stack. */
__attribute__((noinline)) static void *nb_run(const struct nb_start *s, void *alt, size_t alt_len) {
    struct sbx_thread *t = &T;
    if (alt) {
        stack_t ss;
        memset(&ss, 0, sizeof ss);
        ss.ss_sp = alt;
        ss.ss_size = alt_len;
        sigaltstack(&ss, NULL);
    }
    sigset_t faults;
    sigemptyset(&faults);
    for (int i = 0; i < N_FAULT_SIGNALS; i++)
        sigaddset(&faults, fault_signals[i]);
    pthread_sigmask(SIG_UNBLOCK, &faults, NULL);
    if (timer_sig) {
        /* Never this thread's: a stray one must not take its default action. */
        sigset_t tm;
        sigemptyset(&tm);
        sigaddset(&tm, timer_sig);
        pthread_sigmask(SIG_BLOCK, &tm, NULL);
    }
    pthread_sigmask(SIG_SETMASK, NULL, &t->mask);
    t->nb = 1;
    t->nb_start = (void *)s->start;
    t->nb_tag = s->tag;
    struct ddl_fault f;
    memset(&f, 0, sizeof f);
    sigjmp_buf jb;
    void *volatile ret = PTHREAD_CANCELED;
    t->fault = &f;
    t->fn = (void *)s->start;
    t->jb = &jb;
    int st = sigsetjmp(jb, 0);
    if (st == 0) {
        atomic_signal_fence(memory_order_seq_cst);
        t->inside = 1;
        atomic_signal_fence(memory_order_seq_cst);
        if (s->c11)
            ret = (void *)(intptr_t)((int (*)(void *))(void *)s->start)(s->arg);
        else
            ret = s->start(s->arg);
        atomic_signal_fence(memory_order_seq_cst);
        t->inside = 0;
        atomic_signal_fence(memory_order_seq_cst);
    } else {
        pthread_sigmask(SIG_SETMASK, &t->mask, NULL);
        push_thread_fault(&f, st, 0, (void *)s->start, s->tag);
        ret = PTHREAD_CANCELED;
    }
    t->jb = NULL;
    t->fault = NULL;
    t->fn = NULL;
    t->defer = 0;
    if (alt) {
        /* The stack goes (or its frame does): later faults of this thread
         * run on its own stack. */
        stack_t ss;
        memset(&ss, 0, sizeof ss);
        ss.ss_flags = SS_DISABLE;
        sigaltstack(&ss, NULL);
    }
    return ret;
}

static void *nb_trampoline(void *p) {
    struct nb_start s = *(struct nb_start *)p;
    free(p);
    size_t alt_len = alt_stack_size();
    if (s.stack >= 16 * alt_len) {
        /* On this thread's own stack, above every frame of the routine:
         * freed with the thread however it ends (pthread_exit too). */
        void *alt = alloca(alt_len);
        return nb_run(&s, alt, alt_len);
    }
    void *mem = mmap(NULL, alt_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                     -1, 0);
    if (mem == MAP_FAILED)
        return nb_run(&s, NULL, 0);
    /* A small stack: a mapping, unmapped on return (kept by a
     * pthread_exit: 64 KiB per such thread). */
    void *r = nb_run(&s, mem, alt_len);
    munmap(mem, alt_len);
    return r;
}

int ddl_sandbox_spawn(pthread_t *thr, const pthread_attr_t *attr, void *(*start)(void *), void *arg,
                      int c11, long tag, ddl_create_fn create) {
    if (!create || !start)
        return c11 ? 2 /* thrd_error */ : EAGAIN;
    /* Deferred throughout: a timeout must not leave base libc's malloc or
     * the stack-cache lock (ld.so's, shared by every namespace) held. */
    ddl_sandbox_defer_begin();
    size_t stack = 0;
    if (attr) {
        pthread_attr_getstacksize(attr, &stack);
    } else {
        pthread_attr_t d;
        if (pthread_getattr_default_np(&d) == 0) {
            pthread_attr_getstacksize(&d, &stack);
            pthread_attr_destroy(&d);
        }
    }
    int rc = EAGAIN;
    struct nb_start *s = malloc(sizeof *s);
    if (s) {
        s->start = start;
        s->arg = arg;
        s->c11 = c11;
        s->tag = tag;
        s->stack = stack;
        rc = create(thr, attr, nb_trampoline, s);
        if (rc)
            free(s);
        else
            atomic_fetch_add(&nb_threads, 1);
    }
    ddl_sandbox_defer_end();
    if (c11) /* glibc's thrd_create mapping */
        return rc == 0 ? 0 : rc == ENOMEM ? 3 /* thrd_nomem */ : 2 /* thrd_error */;
    return rc;
}
