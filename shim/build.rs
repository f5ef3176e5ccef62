//! Builds the C++ exception guard library (`csrc/cxxguard.cc`) with the
//! system's `c++` into `OUT_DIR/libddl-cxxguard.so`; `src/cxxguard.rs`
//! embeds the bytes with `include_bytes!` and loads them into the new
//! build's namespace at run time. libstdc++ is linked dynamically, so the
//! guard shares the namespace's own libstdc++ (and its exception runtime)
//! with the new build.
//!
//! It also compiles `csrc/contain.c` (the C half of `src/contain.rs`: the
//! variadic and exit replacements) and `csrc/observe.c` (the C half of
//! `src/observe.rs`) into static libraries linked into libddl with the
//! `cc` crate.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let src = manifest.join("csrc/cxxguard.cc");
    let include = manifest.join("../arbiter/csrc");
    println!("cargo:rerun-if-changed={}", src.display());
    println!(
        "cargo:rerun-if-changed={}",
        include.join("ddl_call.h").display()
    );
    println!("cargo:rerun-if-env-changed=CXX");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_string());
    let so = out.join("libddl-cxxguard.so");
    let status = Command::new(&cxx)
        .args(["-O2", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror"])
        .arg("-Wl,-soname,libddl-cxxguard.so")
        .arg("-I")
        .arg(&include)
        .arg("-o")
        .arg(&so)
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run `{cxx}` to build the C++ guard: {e}"));
    assert!(
        status.success(),
        "`{cxx}` failed to build {}",
        src.display()
    );

    let contain = manifest.join("csrc/contain.c");
    println!("cargo:rerun-if-changed={}", contain.display());
    println!(
        "cargo:rerun-if-changed={}",
        include.join("sandbox.h").display()
    );
    cc::Build::new()
        .file(&contain)
        .include(&include)
        .flag("-std=gnu11")
        .flag("-fno-omit-frame-pointer")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("ddl_contain");

    // The C half of src/observe.rs (the old build's variadic observers).
    let observe = manifest.join("csrc/observe.c");
    println!("cargo:rerun-if-changed={}", observe.display());
    cc::Build::new()
        .file(&observe)
        .flag("-std=gnu11")
        .flag("-fno-omit-frame-pointer")
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("ddl_observe");
}
