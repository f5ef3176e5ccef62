/* One shadow call as the sandbox (sandbox.c) and the C++ exception guard
 * (shim/csrc/cxxguard.cc, loaded into the new build's namespace) see it.
 * Shared by C, C++ and Rust (arbiter/src/sandbox.rs mirrors it with #[repr(C)]). */
#ifndef DDL_CALL_H
#define DDL_CALL_H
#include <stddef.h>

/* libffi's ffi_call, passed as a pointer so that the guard library needs no
 * libffi of its own. */
typedef void (*ddl_ffi_call_fn)(void *cif, void (*fn)(void), void *rvalue, void **avalue);

/* The C++ guard: calls `call(cif, fn, rvalue, avalue)` inside try/catch.
 * Returns DDL_CALL_OK, or DDL_CALL_EXCEPTION with the exception's type
 * (demangled) in type_buf and, for a std::exception, what() in what_buf
 * (both NUL-terminated, truncated to their lengths). */
typedef int (*ddl_guard_fn)(ddl_ffi_call_fn call, void *cif, void (*fn)(void), void *rvalue,
                            void **avalue, char *type_buf, size_t type_len, char *what_buf,
                            size_t what_len);

enum ddl_call_status {
    DDL_CALL_OK = 0,
    DDL_CALL_EXCEPTION = 1,
    DDL_CALL_FAULT = 2,
    DDL_CALL_TIMEOUT = 3,
    DDL_CALL_EXIT = 4,
};

struct ddl_call {
    void *cif;
    void (*fn)(void);
    void *rvalue;
    void **avalue;
    ddl_ffi_call_fn ffi_call;
    ddl_guard_fn guard; /* NULL: ffi_call is called directly */
    char exc_type[256];
    char exc_what[512];
};

#endif
