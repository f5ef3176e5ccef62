//! Builds the shadow call's sandbox (csrc/sandbox.c) and its specialised
//! register call (csrc/regcall.c): the only C in the arbiter, kept apart so
//! that `siglongjmp` never crosses a Rust frame.

fn main() {
    println!("cargo:rerun-if-changed=csrc/sandbox.c");
    println!("cargo:rerun-if-changed=csrc/sandbox.h");
    println!("cargo:rerun-if-changed=csrc/ddl_call.h");
    println!("cargo:rerun-if-changed=csrc/regcall.c");
    println!("cargo:rerun-if-changed=csrc/regcall.h");
    cc::Build::new()
        .file("csrc/sandbox.c")
        .file("csrc/regcall.c")
        .include("csrc")
        .flag("-std=gnu11")
        .flag("-fno-omit-frame-pointer")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("ddl_sandbox");
}
