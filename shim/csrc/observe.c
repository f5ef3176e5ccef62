/* The C half of the old build's observation (shim/src/observe.rs has the
 * rest): the observers of the variadic functions. Each performs the real
 * call (the printf and syslog families through libddl's libc's `v` form,
 * which is what glibc's own printf runs; open/openat through the real
 * function the old build's slot held, with the mode) and, when observe.rs
 * says a mirrored call is in flight on this thread, records it first (an
 * open: after, with the descriptor it gave), with errno kept. The text is
 * formatted with libddl's vsnprintf, as contain.c formats the new build's.
 *
 * Nothing here is exported under a libc name: observe.rs points the old
 * build's GOT slots at these ddl_observe_* functions. observe.rs sets the
 * hooks before any slot points here (no C→Rust symbol reference). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <syslog.h>

int __vprintf_chk(int flag, const char *fmt, va_list ap);
int __vfprintf_chk(FILE *fp, int flag, const char *fmt, va_list ap);
int __vdprintf_chk(int fd, int flag, const char *fmt, va_list ap);
void __vsyslog_chk(int pri, int flag, const char *fmt, va_list ap);

struct ddl_observe_hooks {
    /* Non-zero: record this call, then call done(errno saved before). */
    int (*observing)(void);
    void (*done)(int saved_errno);
    /* As contain.c's record: `len` bytes of text of `fn` to `target`. */
    void (*record)(const char *fn, int kind, uintptr_t target, const char *bytes, size_t len);
    /* An open made by the old build (recorded when it opens for write). */
    void (*open)(const char *fn, int dirfd, const char *path, int flags, unsigned mode, int fd);
};

enum {
    DDL_TARGET_FD = 0,
    DDL_TARGET_STREAM = 1,
    DDL_TARGET_STDOUT = 2,
    DDL_TARGET_SYSLOG = 3,
};

static struct ddl_observe_hooks hooks;

void ddl_observe_set_hooks(const struct ddl_observe_hooks *h) { hooks = *h; }

/* The real open functions (filled by observe.rs before a slot points here). */
uintptr_t ddl_observe_real_open, ddl_observe_real_open64, ddl_observe_real_openat,
    ddl_observe_real_openat64;

#define TEXT_BUF 4096

/* Formats and records (ap is copied, left unconsumed). */
static void note(const char *fn, int kind, uintptr_t target, const char *fmt, va_list ap) {
    char buf[TEXT_BUF];
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(buf, sizeof buf, fmt, aq);
    va_end(aq);
    if (n < 0)
        return;
    if ((size_t)n < sizeof buf) {
        hooks.record(fn, kind, target, buf, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big) {
        va_copy(aq, ap);
        vsnprintf(big, (size_t)n + 1, fmt, aq);
        va_end(aq);
        hooks.record(fn, kind, target, big, (size_t)n);
        free(big);
    } else {
        hooks.record(fn, kind, target, buf, sizeof buf - 1);
    }
}

static void observe(const char *fn, int kind, uintptr_t target, const char *fmt, va_list ap) {
    int e = errno;
    if (hooks.observing && hooks.observing()) {
        note(fn, kind, target, fmt, ap);
        hooks.done(e);
    }
}

#define OBS(fn, kind, target, fmt, call)                                                          \
    do {                                                                                          \
        va_list ap;                                                                               \
        va_start(ap, fmt);                                                                        \
        observe(fn, kind, (uintptr_t)(target), fmt, ap);                                          \
        int r_ = call;                                                                            \
        va_end(ap);                                                                               \
        return r_;                                                                                \
    } while (0)

#define OBS_VOID(fn, kind, target, fmt, call)                                                     \
    do {                                                                                          \
        va_list ap;                                                                               \
        va_start(ap, fmt);                                                                        \
        observe(fn, kind, (uintptr_t)(target), fmt, ap);                                          \
        call;                                                                                     \
        va_end(ap);                                                                               \
    } while (0)

int ddl_observe_printf(const char *fmt, ...) {
    OBS("printf", DDL_TARGET_STDOUT, 0, fmt, vprintf(fmt, ap));
}
int ddl_observe_vprintf(const char *fmt, va_list ap) {
    observe("vprintf", DDL_TARGET_STDOUT, 0, fmt, ap);
    return vprintf(fmt, ap);
}
int ddl_observe_printf_chk(int flag, const char *fmt, ...) {
    OBS("__printf_chk", DDL_TARGET_STDOUT, 0, fmt, __vprintf_chk(flag, fmt, ap));
}
int ddl_observe_vprintf_chk(int flag, const char *fmt, va_list ap) {
    observe("__vprintf_chk", DDL_TARGET_STDOUT, 0, fmt, ap);
    return __vprintf_chk(flag, fmt, ap);
}
int ddl_observe_fprintf(FILE *fp, const char *fmt, ...) {
    OBS("fprintf", DDL_TARGET_STREAM, fp, fmt, vfprintf(fp, fmt, ap));
}
int ddl_observe_vfprintf(FILE *fp, const char *fmt, va_list ap) {
    observe("vfprintf", DDL_TARGET_STREAM, (uintptr_t)fp, fmt, ap);
    return vfprintf(fp, fmt, ap);
}
int ddl_observe_fprintf_chk(FILE *fp, int flag, const char *fmt, ...) {
    OBS("__fprintf_chk", DDL_TARGET_STREAM, fp, fmt, __vfprintf_chk(fp, flag, fmt, ap));
}
int ddl_observe_vfprintf_chk(FILE *fp, int flag, const char *fmt, va_list ap) {
    observe("__vfprintf_chk", DDL_TARGET_STREAM, (uintptr_t)fp, fmt, ap);
    return __vfprintf_chk(fp, flag, fmt, ap);
}
int ddl_observe_dprintf(int fd, const char *fmt, ...) {
    OBS("dprintf", DDL_TARGET_FD, fd, fmt, vdprintf(fd, fmt, ap));
}
int ddl_observe_vdprintf(int fd, const char *fmt, va_list ap) {
    observe("vdprintf", DDL_TARGET_FD, (uintptr_t)fd, fmt, ap);
    return vdprintf(fd, fmt, ap);
}
int ddl_observe_dprintf_chk(int fd, int flag, const char *fmt, ...) {
    OBS("__dprintf_chk", DDL_TARGET_FD, fd, fmt, __vdprintf_chk(fd, flag, fmt, ap));
}
int ddl_observe_vdprintf_chk(int fd, int flag, const char *fmt, va_list ap) {
    observe("__vdprintf_chk", DDL_TARGET_FD, (uintptr_t)fd, fmt, ap);
    return __vdprintf_chk(fd, flag, fmt, ap);
}
void ddl_observe_syslog(int pri, const char *fmt, ...) {
    OBS_VOID("syslog", DDL_TARGET_SYSLOG, pri, fmt, vsyslog(pri, fmt, ap));
}
void ddl_observe_vsyslog(int pri, const char *fmt, va_list ap) {
    observe("vsyslog", DDL_TARGET_SYSLOG, (uintptr_t)pri, fmt, ap);
    vsyslog(pri, fmt, ap);
}
void ddl_observe_syslog_chk(int pri, int flag, const char *fmt, ...) {
    OBS_VOID("__syslog_chk", DDL_TARGET_SYSLOG, pri, fmt, __vsyslog_chk(pri, flag, fmt, ap));
}
void ddl_observe_vsyslog_chk(int pri, int flag, const char *fmt, va_list ap) {
    observe("__vsyslog_chk", DDL_TARGET_SYSLOG, (uintptr_t)pri, fmt, ap);
    __vsyslog_chk(pri, flag, fmt, ap);
}

/* ---- open/openat (the mode is variadic) ----------------------------- */

static unsigned mode_of(int flags, va_list ap) {
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
        return va_arg(ap, unsigned);
    return 0;
}

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);

static void opened(const char *fn, int dirfd, const char *path, int flags, unsigned mode, int fd) {
    int e = errno;
    if (hooks.observing && hooks.observing()) {
        hooks.open(fn, dirfd, path, flags, mode, fd);
        hooks.done(e);
    }
}

#define OPEN(fn, real, path, flags)                                                               \
    do {                                                                                          \
        va_list ap;                                                                               \
        va_start(ap, flags);                                                                      \
        unsigned mode = mode_of(flags, ap);                                                       \
        va_end(ap);                                                                               \
        open_fn f = (open_fn)__atomic_load_n(&real, __ATOMIC_RELAXED);                            \
        int fd = f(path, flags, mode);                                                            \
        opened(fn, AT_FDCWD, path, flags, mode, fd);                                              \
        return fd;                                                                                \
    } while (0)

#define OPENAT(fn, real, dirfd, path, flags)                                                      \
    do {                                                                                          \
        va_list ap;                                                                               \
        va_start(ap, flags);                                                                      \
        unsigned mode = mode_of(flags, ap);                                                       \
        va_end(ap);                                                                               \
        openat_fn f = (openat_fn)__atomic_load_n(&real, __ATOMIC_RELAXED);                        \
        int fd = f(dirfd, path, flags, mode);                                                     \
        opened(fn, dirfd, path, flags, mode, fd);                                                 \
        return fd;                                                                                \
    } while (0)

int ddl_observe_open(const char *path, int flags, ...) {
    OPEN("open", ddl_observe_real_open, path, flags);
}
int ddl_observe_open64(const char *path, int flags, ...) {
    OPEN("open64", ddl_observe_real_open64, path, flags);
}
int ddl_observe_openat(int dirfd, const char *path, int flags, ...) {
    OPENAT("openat", ddl_observe_real_openat, dirfd, path, flags);
}
int ddl_observe_openat64(int dirfd, const char *path, int flags, ...) {
    OPENAT("openat64", ddl_observe_real_openat64, dirfd, path, flags);
}
