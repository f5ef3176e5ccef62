//! `observe` against a small library loaded twice: into the base
//! namespace (as the old build, its slots patched by `patch_object`) and
//! into a namespace of its own (as the new build, patched by
//! `contain::patch_namespace` and called sandboxed on a shadow thread).
//! The same calls must give the same records on both sides, and the old
//! build's calls must be performed exactly as without DDL.

use super::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use arbiter::invoke::Invoker;
use arbiter::marshal::Raw;
use arbiter::signature::{parse_signature, TypeTable};

const LIB_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

/* Every observed kind of call once; returns a checksum of the results. */
int o_all(const char *dir) {
    char path[512];
    int sum = 0;
    sum += printf("printf %d|%s\n", 42, "x");
    sum += fprintf(stderr, "to stderr %d\n", 7);
    sum += fputs("fputs out\n", stdout);
    sum += puts("puts");
    sum += (int)fwrite("fw", 1, 2, stdout);
    fflush(stdout);
    sum += (int)write(1, "w1\n", 3);
    struct iovec v[2] = {{"ab", 2}, {"cde\n", 4}};
    sum += (int)writev(1, v, 2);
    snprintf(path, sizeof path, "%s/f1", dir);
    FILE *f = fopen(path, "w");
    if (f) {
        sum += fprintf(f, "in file %d\n", 1);
        fclose(f);
    }
    snprintf(path, sizeof path, "%s/f2", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
        sum += (int)write(fd, "abc", 3);
        close(fd);
    }
    snprintf(path, sizeof path, "%s/f3", dir);
    sum += unlink(path); /* does not exist: -1 */
    signal(SIGUSR2, SIG_IGN);
    signal(SIGUSR2, SIG_DFL);
    return sum;
}
"#;

fn lib() -> PathBuf {
    let dir = Path::new(env!("OUT_DIR")).join("observe-test");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("libobs.c");
    std::fs::write(&src, LIB_C).unwrap();
    let out = dir.join("libobs.so");
    let st = Command::new("gcc")
        .args(["-O2", "-D_FORTIFY_SOURCE=2", "-fPIC", "-shared"])
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success(), "gcc failed");
    out
}

fn key(o: &Outgoing) -> (String, String, usize, u64) {
    (o.function.clone(), o.target.clone(), o.len, o.hash)
}

#[test]
fn table_observers() {
    let mut seen = std::collections::HashSet::new();
    for e in crate::contain::intercepted() {
        if let Some(o) = e.observer {
            assert!(o.function != 0 && o.function != e.replacement, "{}", e.name);
            assert!(seen.insert(o.function), "{}: observer shared", e.name);
        }
    }
    let observed = |n: &str| {
        crate::contain::intercepted()
            .iter()
            .find(|e| e.name == n)
            .unwrap()
            .observer
            .is_some()
    };
    for n in [
        "write",
        "writev",
        "printf",
        "__printf_chk",
        "fprintf",
        "puts",
        "fopen",
        "open",
        "unlink",
        "kill",
        "signal",
        "sigaction",
        "fork",
    ] {
        assert!(observed(n), "{n} not observed");
    }
    for n in ["exit", "_exit", "vfork", "execl", "sigprocmask"] {
        assert!(!observed(n), "{n} observed");
    }
}

#[test]
fn both_builds_record_the_same_calls() {
    let path = lib();
    // Both builds are given the same folder: the records name paths.
    let tmp_old = std::env::temp_dir().join(format!("ddl-observe-{}", std::process::id()));
    std::fs::create_dir_all(&tmp_old).unwrap();

    // The new build: its own namespace, contained, called sandboxed.
    let p2 = path.clone();
    let dir_new = CString::new(tmp_old.to_str().unwrap()).unwrap();
    let (shadow, shadow_ret) = std::thread::spawn(move || {
        arbiter::sandbox::thread_init().expect("thread_init");
        let c = CString::new(p2.to_str().unwrap()).unwrap();
        // SAFETY: dlmopen as DDL does it.
        let h = unsafe {
            libc::dlmopen(
                libc::LM_ID_NEWLM,
                c.as_ptr(),
                libc::RTLD_NOW | libc::RTLD_LOCAL,
            )
        };
        assert!(!h.is_null());
        // SAFETY: a live handle of a new namespace.
        unsafe { crate::contain::patch_namespace(h, &[]) }.expect("patch");
        let f = real_dlsym(h, c"o_all");
        let inv =
            Invoker::new(&parse_signature("int f(const char *d)", &TypeTable::new()).unwrap());
        // SAFETY: o_all(const char *).
        let r = unsafe {
            inv.call_sandboxed(
                f as *const c_void,
                &[Raw::Bits(dir_new.as_ptr() as u64)],
                None,
                0,
            )
        };
        let r = match r {
            Ok(Raw::Bits(b)) => b as u32 as i32,
            other => panic!("{other:?}"),
        };
        (crate::contain::take_outgoing(), r)
    })
    .join()
    .unwrap();
    // Contained: the new build wrote no file.
    assert!(std::fs::read_dir(&tmp_old).unwrap().next().is_none());

    // The old build: the base namespace, its slots observed.
    let c = CString::new(path.to_str().unwrap()).unwrap();
    let h = real_dlopen(&c, libc::RTLD_LAZY | libc::RTLD_LOCAL);
    assert!(!h.is_null());
    let obj = crate::elf::base_namespace_objects()
        .into_iter()
        .find(|o| o.name.ends_with("libobs.so"))
        .expect("in the base namespace");
    install_hooks();
    let (n, _) = patch_object(&obj).expect("patch");
    assert!(n >= 8, "{n} slots");
    let f: unsafe extern "C" fn(*const c_char) -> c_int =
        unsafe { std::mem::transmute(real_dlsym(h, c"o_all")) };
    let dir = CString::new(tmp_old.to_str().unwrap()).unwrap();
    // Not observing: performed, nothing recorded.
    // SAFETY: o_all(const char *).
    let plain = unsafe { f(dir.as_ptr()) };
    assert!(take_observed().is_empty());
    FORCE.with(|x| x.set(true));
    // SAFETY: as above.
    let watched = unsafe { f(dir.as_ptr()) };
    FORCE.with(|x| x.set(false));
    let primary = take_observed();
    assert_eq!(plain, watched);
    // Performed: the files are there.
    assert_eq!(std::fs::read(tmp_old.join("f1")).unwrap(), b"in file 1\n");
    assert_eq!(std::fs::read(tmp_old.join("f2")).unwrap(), b"abc");
    // The same answers but for unlink (-1 on the old side, 0 contained).
    assert_eq!(plain, shadow_ret - 1, "{plain} {shadow_ret}");
    let a: Vec<_> = primary.iter().map(key).collect();
    let b: Vec<_> = shadow
        .iter()
        .map(|o| (o.function.to_string(), o.target.clone(), o.len, o.hash))
        .collect();
    assert_eq!(a, b, "\nprimary {primary:#?}\nshadow {shadow:#?}");
    let fns: Vec<&str> = primary.iter().map(|o| o.function.as_str()).collect();
    assert!(
        fns.contains(&"__printf_chk") || fns.contains(&"printf"),
        "{fns:?}"
    );
    assert!(primary.iter().any(|o| o.target == "stdout"));
    assert!(primary.iter().any(|o| o.target == "stderr"));
    assert!(
        primary
            .iter()
            .any(|o| o.target.ends_with("/f2") && o.function == "write"),
        "{primary:#?}"
    );
    let _ = std::fs::remove_dir_all(&tmp_old);
}
