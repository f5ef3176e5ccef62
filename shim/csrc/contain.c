/* The C half of the new build's containment (shim/src/contain.rs has the
 * table, the recording and everything else): the replacements that must be
 * C because the functions they replace are variadic (the printf and syslog
 * families, open/openat with their optional mode) and the exit functions,
 * which leave through ddl_sandbox_exit's siglongjmp and so must not have a
 * Rust frame under them.
 *
 * Nothing here is exported under a libc name: contain.rs points the new
 * build's GOT slots at these ddl_contain_* functions. Text is formatted
 * with libddl's own libc (vsnprintf: the application's locale) into a
 * bounded stack buffer first (a fault in formatting, e.g. a bad %s, is a
 * fault of the call and happens outside DDL's deferred sections); only
 * text longer than the buffer is formatted again, into a mapping, with
 * the timer deferred. The text goes to contain.rs through a hook it sets
 * (no C→Rust symbol reference, so no link-order constraint). */
#define _GNU_SOURCE
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>

/* Set by contain.rs before any slot points here. */
struct ddl_contain_hooks {
    /* An outgoing text of function `fn` (a string literal) to `target`
     * (kind: DDL_TARGET_*), `len` bytes at `bytes`. */
    void (*record)(const char *fn, int kind, uintptr_t target, const char *bytes, size_t len);
    /* open/openat: contain.rs decides (a write: /dev/null and a record;
     * a read: performed). Returns the descriptor or -1 (errno set in the
     * caller's namespace). */
    int (*open)(const char *fn, int dirfd, const char *path, int flags, unsigned mode);
};

enum {
    DDL_TARGET_FD = 0,     /* target: a descriptor */
    DDL_TARGET_STREAM = 1, /* target: a FILE * of the new build's namespace */
    DDL_TARGET_STDOUT = 2, /* the namespace's stdout (printf, vprintf) */
    DDL_TARGET_SYSLOG = 3, /* target: the priority */
};

static struct ddl_contain_hooks hooks;

void ddl_contain_set_hooks(const struct ddl_contain_hooks *h) { hooks = *h; }

/* ---- exits ---------------------------------------------------------- */

#define EXIT_STUB(name, how)                                                                      \
    __attribute__((noreturn, noinline)) void name(int status) {                                   \
        ddl_sandbox_exit(status, how, __builtin_return_address(0));                               \
        ddl_sandbox_park();                                                                       \
    }

EXIT_STUB(ddl_contain_exit, DDL_EXIT_EXIT)
EXIT_STUB(ddl_contain__exit, DDL_EXIT__EXIT)
EXIT_STUB(ddl_contain__Exit, DDL_EXIT__EXIT_C99)
EXIT_STUB(ddl_contain_quick_exit, DDL_EXIT_QUICK_EXIT)

/* ---- formatted output ----------------------------------------------- */

#define TEXT_BUF 4096

static int emit(const char *fn, int kind, uintptr_t target, const char *fmt, va_list ap) {
    char buf[TEXT_BUF];
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(buf, sizeof buf, fmt, aq);
    va_end(aq);
    if (n < 0 || !hooks.record)
        return n;
    if ((size_t)n < sizeof buf) {
        hooks.record(fn, kind, target, buf, (size_t)n);
        return n;
    }
    ddl_sandbox_defer_begin();
    size_t len = (size_t)n + 1;
    char *big = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big != MAP_FAILED) {
        va_copy(aq, ap);
        vsnprintf(big, len, fmt, aq);
        va_end(aq);
        hooks.record(fn, kind, target, big, (size_t)n);
        munmap(big, len);
    } else {
        hooks.record(fn, kind, target, buf, sizeof buf - 1);
    }
    ddl_sandbox_defer_end();
    return n;
}

#define V(fn, kind, target, fmt)                                                                  \
    do {                                                                                          \
        va_list ap;                                                                               \
        va_start(ap, fmt);                                                                        \
        int r_ = emit(fn, kind, (uintptr_t)(target), fmt, ap);                                    \
        va_end(ap);                                                                               \
        return r_;                                                                                \
    } while (0)

int ddl_contain_printf(const char *fmt, ...) { V("printf", DDL_TARGET_STDOUT, 0, fmt); }
int ddl_contain_vprintf(const char *fmt, va_list ap) {
    return emit("vprintf", DDL_TARGET_STDOUT, 0, fmt, ap);
}
int ddl_contain_printf_chk(int flag, const char *fmt, ...) {
    (void)flag;
    V("__printf_chk", DDL_TARGET_STDOUT, 0, fmt);
}
int ddl_contain_vprintf_chk(int flag, const char *fmt, va_list ap) {
    (void)flag;
    return emit("__vprintf_chk", DDL_TARGET_STDOUT, 0, fmt, ap);
}
int ddl_contain_fprintf(FILE *fp, const char *fmt, ...) { V("fprintf", DDL_TARGET_STREAM, fp, fmt); }
int ddl_contain_vfprintf(FILE *fp, const char *fmt, va_list ap) {
    return emit("vfprintf", DDL_TARGET_STREAM, (uintptr_t)fp, fmt, ap);
}
int ddl_contain_fprintf_chk(FILE *fp, int flag, const char *fmt, ...) {
    (void)flag;
    V("__fprintf_chk", DDL_TARGET_STREAM, fp, fmt);
}
int ddl_contain_vfprintf_chk(FILE *fp, int flag, const char *fmt, va_list ap) {
    (void)flag;
    return emit("__vfprintf_chk", DDL_TARGET_STREAM, (uintptr_t)fp, fmt, ap);
}
int ddl_contain_dprintf(int fd, const char *fmt, ...) { V("dprintf", DDL_TARGET_FD, fd, fmt); }
int ddl_contain_vdprintf(int fd, const char *fmt, va_list ap) {
    return emit("vdprintf", DDL_TARGET_FD, (uintptr_t)fd, fmt, ap);
}
int ddl_contain_dprintf_chk(int fd, int flag, const char *fmt, ...) {
    (void)flag;
    V("__dprintf_chk", DDL_TARGET_FD, fd, fmt);
}
int ddl_contain_vdprintf_chk(int fd, int flag, const char *fmt, va_list ap) {
    (void)flag;
    return emit("__vdprintf_chk", DDL_TARGET_FD, (uintptr_t)fd, fmt, ap);
}

#define S(fn, pri, fmt)                                                                           \
    do {                                                                                          \
        va_list ap;                                                                               \
        va_start(ap, fmt);                                                                        \
        emit(fn, DDL_TARGET_SYSLOG, (uintptr_t)(pri), fmt, ap);                                   \
        va_end(ap);                                                                               \
    } while (0)

void ddl_contain_syslog(int pri, const char *fmt, ...) { S("syslog", pri, fmt); }
void ddl_contain_vsyslog(int pri, const char *fmt, va_list ap) {
    emit("vsyslog", DDL_TARGET_SYSLOG, (uintptr_t)pri, fmt, ap);
}
void ddl_contain_syslog_chk(int pri, int flag, const char *fmt, ...) {
    (void)flag;
    S("__syslog_chk", pri, fmt);
}
void ddl_contain_vsyslog_chk(int pri, int flag, const char *fmt, va_list ap) {
    (void)flag;
    emit("__vsyslog_chk", DDL_TARGET_SYSLOG, (uintptr_t)pri, fmt, ap);
}

/* ---- open/openat (the mode is variadic) ----------------------------- */

static unsigned mode_of(int flags, va_list ap) {
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE)
        return va_arg(ap, unsigned);
    return 0;
}

#define OPEN(fn, dirfd, path, flags)                                                              \
    do {                                                                                          \
        va_list ap;                                                                               \
        va_start(ap, flags);                                                                      \
        unsigned mode = mode_of(flags, ap);                                                       \
        va_end(ap);                                                                               \
        if (!hooks.open) {                                                                        \
            errno = ENOSYS;                                                                       \
            return -1;                                                                            \
        }                                                                                         \
        return hooks.open(fn, dirfd, path, flags, mode);                                          \
    } while (0)

int ddl_contain_open(const char *path, int flags, ...) { OPEN("open", AT_FDCWD, path, flags); }
int ddl_contain_open64(const char *path, int flags, ...) { OPEN("open64", AT_FDCWD, path, flags); }
int ddl_contain_openat(int dirfd, const char *path, int flags, ...) {
    OPEN("openat", dirfd, path, flags);
}
int ddl_contain_openat64(int dirfd, const char *path, int flags, ...) {
    OPEN("openat64", dirfd, path, flags);
}
