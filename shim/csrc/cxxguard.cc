// The C++ exception guard (DESIGN.md: "A C++ exception escaping the new
// build aborts the process"). libddl.so embeds this library and loads it
// into the new build's namespace (shim/src/cxxguard.rs), so that the
// try/catch below uses that namespace's libstdc++, the one the new build
// throws with. ddl_cxxguard_call is a ddl_guard_fn (arbiter/csrc/ddl_call.h).
#include <cxxabi.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <typeinfo>

#include "ddl_call.h"

namespace {

// Copies s into buf (NUL-terminated, truncated to len - 1 bytes).
void put(char *buf, size_t len, const char *s) {
    if (buf == nullptr || len == 0)
        return;
    size_t n = s ? std::strlen(s) : 0;
    if (n >= len)
        n = len - 1;
    if (n)
        std::memcpy(buf, s, n);
    buf[n] = '\0';
}

// The demangled name of a type ("std::invalid_argument"), or its mangled
// name if it does not demangle, or "unknown" without a type (a foreign
// exception).
void put_type(char *buf, size_t len, const std::type_info *ti) {
    if (ti == nullptr) {
        put(buf, len, "unknown");
        return;
    }
    const char *mangled = ti->name();
    int status = -1;
    char *demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
    put(buf, len, status == 0 && demangled ? demangled : mangled);
    std::free(demangled);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int ddl_cxxguard_call(
    ddl_ffi_call_fn call, void *cif, void (*fn)(void), void *rvalue, void **avalue,
    char *type_buf, size_t type_len, char *what_buf, size_t what_len) {
    put(type_buf, type_len, "");
    put(what_buf, what_len, "");
    try {
        call(cif, fn, rvalue, avalue);
        return DDL_CALL_OK;
    } catch (abi::__forced_unwind &) {
        throw;  // thread cancellation must go on unwinding
    } catch (const std::exception &e) {
        put_type(type_buf, type_len, &typeid(e));
        put(what_buf, what_len, e.what());
        return DDL_CALL_EXCEPTION;
    } catch (...) {
        put_type(type_buf, type_len, abi::__cxa_current_exception_type());
        return DDL_CALL_EXCEPTION;
    }
}
