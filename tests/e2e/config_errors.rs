//! One test per kind of config error: libddl prints exactly one
//! `ddl: error: …` line naming the file, the JSON line of the key (and, for a
//! signature, the column inside it), and the application runs exactly as
//! without libddl (same stdout, same exit status).
//!
//! Formats (CONFIG.md and the issue):
//!   ddl: error: <file>: cannot read: …
//!   ddl: error: <file>:<line>:<col>: invalid JSON: …
//!   ddl: error: <file>:<line>: <key>: <message>
//!   ddl: error: <file>:<line>: functions[1]: column N of "<sig>": <message>

use std::path::Path;

use crate::harness::*;

fn q(s: impl AsRef<str>) -> String {
    serde_json::to_string(s.as_ref()).expect("string serialises")
}

/// A calc config, written by hand so that every key's line is known.
/// `extra` is inserted as whole lines after `"mode"`; `sig1` is functions[1].
fn calc_text(fx: &Path, new: Option<&str>, extra: &[&str], sig1: &str) -> String {
    let new = new
        .map(str::to_string)
        .unwrap_or_else(|| fx.join("calc/new/libcalc.so.1").display().to_string());
    let mut lines = vec![
        "{".to_string(),
        "  \"old\": \"libcalc.so.1\",".to_string(),
        format!("  \"new\": {},", q(new)),
        "  \"mode\": \"shadow\",".to_string(),
    ];
    lines.extend(extra.iter().map(|l| format!("  {l}")));
    lines.extend([
        "  \"functions\": [".to_string(),
        "    \"int calc_add(int a, int b)\",".to_string(),
        format!("    {},", q(sig1)),
        "    \"double calc_sqrt(double x)\"".to_string(),
        "  ]".to_string(),
        "}".to_string(),
    ]);
    lines.join("\n") + "\n"
}

/// 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the config text"))
        + 1
}

/// Runs calc-app-pie-now with `config` (a path that may not exist), checks
/// the app is untouched and returns the single `ddl: error: ` line.
fn error_line(tmp: &TempDir, config: &Path) -> String {
    error_line_of(
        &App::new(fixtures().join("calc/apps/calc-app-pie-now")),
        tmp,
        config,
    )
}

/// As [`error_line`], for another app.
fn error_line_of(app: &App, tmp: &TempDir, config: &Path) -> String {
    let plain = run_plain(app, tmp.path());
    let ddl = run_ddl(app, config, tmp.path());
    assert_eq!(
        plain.status, ddl.status,
        "a config error changed the exit status; stderr:\n{}",
        ddl.stderr
    );
    assert!(
        plain.stdout == ddl.stdout,
        "a config error changed the app's stdout; stderr:\n{}",
        ddl.stderr
    );
    let errors = ddl.error_lines();
    assert_eq!(
        errors.len(),
        1,
        "expected exactly one line starting with `ddl: error: `; stderr:\n{}",
        ddl.stderr
    );
    errors[0].to_string()
}

fn assert_prefix(line: &str, prefix: &str) {
    assert!(
        line.starts_with(prefix) && line.len() > prefix.len(),
        "error line\n  {line}\ndoes not start with\n  {prefix}<message>"
    );
}

#[test]
fn config_error_unreadable() {
    let tmp = TempDir::new("err-unreadable");
    let path = tmp.path().join("no-such-config.json");
    let line = error_line(&tmp, &path);
    assert_prefix(
        &line,
        &format!("ddl: error: {}: cannot read: ", path.display()),
    );
}

#[test]
fn config_error_bad_json() {
    let fx = fixtures();
    let tmp = TempDir::new("err-json");
    let text = calc_text(
        fx,
        None,
        &["\"sampling\": one,"],
        "int calc_div(int a, int b)",
    );
    let err =
        serde_json::from_str::<serde_json::Value>(&text).expect_err("the text is invalid JSON");
    let (l, c) = (err.line(), err.column());
    assert_eq!(l, line_of(&text, "\"sampling\""));
    let path = tmp.write("bad.json", &text);
    let line = error_line(&tmp, &path);
    assert_prefix(
        &line,
        &format!("ddl: error: {}:{l}:{c}: invalid JSON: ", path.display()),
    );
}

#[test]
fn config_error_unknown_key() {
    let fx = fixtures();
    let tmp = TempDir::new("err-key");
    let text = calc_text(
        fx,
        None,
        &["\"colour\": \"blue\","],
        "int calc_div(int a, int b)",
    );
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, "\"colour\"");
    assert_prefix(
        &line,
        &format!("ddl: error: {}:{l}: colour: ", path.display()),
    );
}

#[test]
fn config_error_bad_value() {
    let fx = fixtures();
    let tmp = TempDir::new("err-value");
    let text = calc_text(
        fx,
        None,
        &["\"sampling\": 2,"],
        "int calc_div(int a, int b)",
    );
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, "\"sampling\"");
    assert_prefix(
        &line,
        &format!("ddl: error: {}:{l}: sampling: ", path.display()),
    );
}

/// `@` is not C: the error is at its column (25, 1-based).
#[test]
fn config_error_signature_syntax() {
    let fx = fixtures();
    let tmp = TempDir::new("err-sig");
    let sig = "int calc_div(int a, int @b)";
    assert_eq!(sig.find('@'), Some(24));
    let text = calc_text(fx, None, &[], sig);
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, sig);
    assert_prefix(
        &line,
        &format!(
            "ddl: error: {}:{l}: functions[1]: column 25 of \"{sig}\": ",
            path.display()
        ),
    );
}

/// An unknown type name: the error is at its column (21) and names it.
#[test]
fn config_error_unknown_type() {
    let fx = fixtures();
    let tmp = TempDir::new("err-type");
    let sig = "int calc_div(int a, frob b)";
    assert_eq!(sig.find("frob"), Some(20));
    let text = calc_text(fx, None, &[], sig);
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, sig);
    assert_prefix(
        &line,
        &format!(
            "ddl: error: {}:{l}: functions[1]: column 21 of \"{sig}\": ",
            path.display()
        ),
    );
    assert!(
        line.contains("frob"),
        "the message should name the type: {line}"
    );
}

/// `struct point` used without a declaration in `types` (libbuf config).
/// The column is that of `const`, `struct` or `point` (17, 23 or 30).
#[test]
fn config_error_struct_not_declared() {
    let fx = fixtures();
    let tmp = TempDir::new("err-struct");
    let sig = "double buf_dist(const struct point *a, const struct point *b)";
    let text = [
        "{".to_string(),
        "  \"old\": \"libbuf.so.1\",".to_string(),
        format!(
            "  \"new\": {},",
            q(fx.join("buf/new/libbuf.so.1").display().to_string())
        ),
        "  \"functions\": [".to_string(),
        "    \"void *buf_identity(void *p)\",".to_string(),
        format!("    {}", q(sig)),
        "  ]".to_string(),
        "}".to_string(),
    ]
    .join("\n");
    let path = tmp.write("ddl.json", &text);
    let app = App::new(fx.join("buf/apps/buf-app-pie-now"));
    let error = error_line_of(&app, &tmp, &path);
    let line = error.as_str();
    let l = line_of(&text, sig);
    let ok = [17, 23, 30].iter().any(|c| {
        line.starts_with(&format!(
            "ddl: error: {}:{l}: functions[1]: column {c} of \"{sig}\": ",
            path.display()
        ))
    });
    assert!(
        ok,
        "error line\n  {line}\ndoes not start with\n  ddl: error: {}:{l}: functions[1]: column 17|23|30 of \"{sig}\": ",
        path.display()
    );
    assert!(
        line.contains("point"),
        "the message should name the struct: {line}"
    );
}

/// calc_added exists only in the new build.
#[test]
fn config_error_symbol_missing_from_old() {
    let fx = fixtures();
    let tmp = TempDir::new("err-missing-old");
    let sig = "int calc_added(int x)";
    let text = calc_text(fx, None, &[], sig);
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, sig);
    assert_prefix(
        &line,
        &format!("ddl: error: {}:{l}: functions[1]: ", path.display()),
    );
    assert!(
        line.contains("calc_added"),
        "the message should name the symbol: {line}"
    );
}

/// calc_legacy exists only in the old build.
#[test]
fn config_error_symbol_missing_from_new() {
    let fx = fixtures();
    let tmp = TempDir::new("err-missing-new");
    let sig = "int calc_legacy(int x)";
    let text = calc_text(fx, None, &[], sig);
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, sig);
    assert_prefix(
        &line,
        &format!("ddl: error: {}:{l}: functions[1]: ", path.display()),
    );
    assert!(
        line.contains("calc_legacy"),
        "the message should name the symbol: {line}"
    );
}

/// `new` is a file that is not a shared object.
#[test]
fn config_error_new_does_not_load() {
    let fx = fixtures();
    let tmp = TempDir::new("err-new");
    let garbage = tmp.write("libcalc.so.1", "this is not an ELF file\n");
    let text = calc_text(
        fx,
        Some(&garbage.display().to_string()),
        &[],
        "int calc_div(int a, int b)",
    );
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, "\"new\"");
    assert_eq!(l, 3);
    assert_prefix(&line, &format!("ddl: error: {}:{l}: new: ", path.display()));
}

/// A `handles` entry naming a create function that is not in the boundary:
/// the key of the name inside the entry.
#[test]
fn config_error_handle_function_not_in_functions() {
    let fx = fixtures();
    let tmp = TempDir::new("err-handles");
    let text = calc_text(
        fx,
        None,
        &["\"handles\": [{ \"type\": \"calc_ctx *\", \"create\": [\"calc_new\"], \"destroy\": [] }],"],
        "int calc_div(int a, int b)",
    );
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, "\"handles\"");
    assert_eq!(
        line,
        format!(
            "ddl: error: {}:{l}: handles[0].create[0]: calc_new is not in \"functions\"",
            path.display()
        )
    );
}

/// A handle type that is not a pointer: the column inside the type.
#[test]
fn config_error_handle_type_not_a_pointer() {
    let fx = fixtures();
    let tmp = TempDir::new("err-handle-type");
    let text = calc_text(
        fx,
        None,
        &["\"handles\": [{ \"type\": \"calc_ctx\", \"create\": [], \"destroy\": [] }],"],
        "int calc_div(int a, int b)",
    );
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, "\"handles\"");
    assert_eq!(
        line,
        format!(
            "ddl: error: {}:{l}: handles[0].type: column 1 of \"calc_ctx\": a handle type is a pointer: `T *`",
            path.display()
        )
    );
}

/// A size expression naming a parameter that does not exist: the column
/// of the name (33).
#[test]
fn config_error_size_expression_unknown_name() {
    let fx = fixtures();
    let tmp = TempDir::new("err-size");
    let sig = "void buf_reverse(int *xs [inout m], int n)";
    assert_eq!(sig.find("m]"), Some(32));
    let text = [
        "{".to_string(),
        "  \"old\": \"libbuf.so.1\",".to_string(),
        format!(
            "  \"new\": {},",
            q(fx.join("buf/new/libbuf.so.1").display().to_string())
        ),
        "  \"functions\": [".to_string(),
        "    \"void *buf_identity(void *p)\",".to_string(),
        format!("    {}", q(sig)),
        "  ]".to_string(),
        "}".to_string(),
    ]
    .join("\n");
    let path = tmp.write("ddl.json", &text);
    let app = App::new(fx.join("buf/apps/buf-app-pie-now"));
    let error = error_line_of(&app, &tmp, &path);
    let l = line_of(&text, sig);
    assert_prefix(
        &error,
        &format!(
            "ddl: error: {}:{l}: functions[1]: column 33 of \"{sig}\": ",
            path.display()
        ),
    );
}

/// An unknown type inside a struct declared in `types`: `types[0]`, the
/// column of the type name (26).
#[test]
fn config_error_bad_struct_declaration() {
    let fx = fixtures();
    let tmp = TempDir::new("err-types");
    let decl = "struct point { double x; dooble y; }";
    assert_eq!(decl.find("dooble"), Some(25));
    let text = [
        "{".to_string(),
        "  \"old\": \"libbuf.so.1\",".to_string(),
        format!(
            "  \"new\": {},",
            q(fx.join("buf/new/libbuf.so.1").display().to_string())
        ),
        "  \"types\": [".to_string(),
        format!("    {}", q(decl)),
        "  ],".to_string(),
        "  \"functions\": [".to_string(),
        "    \"struct point buf_mid(struct point a, struct point b)\"".to_string(),
        "  ]".to_string(),
        "}".to_string(),
    ]
    .join("\n");
    let path = tmp.write("ddl.json", &text);
    let app = App::new(fx.join("buf/apps/buf-app-pie-now"));
    let error = error_line_of(&app, &tmp, &path);
    let l = line_of(&text, decl);
    assert_prefix(
        &error,
        &format!(
            "ddl: error: {}:{l}: types[0]: column 26 of \"{decl}\": ",
            path.display()
        ),
    );
}

/// `mode` takes `shadow` or `off` for now (`guarded`, `promoted` come later).
#[test]
fn config_error_mode_not_yet_supported() {
    let fx = fixtures();
    let tmp = TempDir::new("err-mode");
    let text = calc_text(fx, None, &[], "int calc_div(int a, int b)")
        .replace("\"mode\": \"shadow\"", "\"mode\": \"guarded\"");
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, "\"mode\"");
    assert_prefix(
        &line,
        &format!("ddl: error: {}:{l}: mode: ", path.display()),
    );
}

/// Bad `capture`, `classes` and `sandbox` entries are refused clearly too.
#[test]
fn config_error_refused_keys_capture_sandbox_and_a_bad_class() {
    let fx = fixtures();
    for (key, line_text) in [
        ("capture", "\"capture\": \"/nonexistent-folder/calls.zst\","),
        (
            "capture.hash[0]",
            "\"capture\": { \"path\": \"c.zst\", \"hash\": [\"calc_div.a\"] },",
        ),
        ("classes[0]", "\"classes\": [{ \"name\": \"Shape\" }],"),
        (
            "sandbox.intercept[0]",
            "\"sandbox\": { \"intercept\": [\"sys tem\"] },",
        ),
    ] {
        let tmp = TempDir::new(&format!("err-{key}"));
        let text = calc_text(fx, None, &[line_text], "int calc_div(int a, int b)");
        let path = tmp.write("ddl.json", &text);
        let line = error_line(&tmp, &path);
        let l = line_of(
            &text,
            &format!("\"{}\"", key.split(['[', '.']).next().unwrap()),
        );
        assert_prefix(
            &line,
            &format!("ddl: error: {}:{l}: {key}: ", path.display()),
        );
    }
}

/// A C++ declaration that no symbol of the old build implements: an error
/// naming functions[1], once the old build is loaded.
#[test]
fn config_error_cxx_declaration_not_in_the_old_build() {
    let fx = fixtures();
    let tmp = TempDir::new("err-cxx");
    let sig = "int Shape::area() const";
    let text = calc_text(fx, None, &[], sig);
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, sig);
    assert_prefix(
        &line,
        &format!("ddl: error: {}:{l}: functions[1]: ", path.display()),
    );
}

/// A comparator keyed by a name that is not a parameter of the function.
#[test]
fn config_error_compare_unknown_parameter() {
    let fx = fixtures();
    let tmp = TempDir::new("err-compare");
    let text = calc_text(fx, None, &[], "int calc_div(int a, int b)").replace(
        "    \"int calc_div(int a, int b)\",",
        "    { \"sig\": \"int calc_div(int a, int b)\", \"compare\": { \"c\": \"exact\" } },",
    );
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, "calc_div");
    assert_prefix(
        &line,
        &format!("ddl: error: {}:{l}: functions[1]", path.display()),
    );
    assert!(
        line.contains("\"c\"")
            || line.contains(" c ")
            || line.contains("`c`")
            || line.contains("'c'")
            || line.contains(": c"),
        "the message should name `c`: {line}"
    );
}

/// A config or a new build that others than its owner and root may write
/// is refused (it says which code runs inside the application).
#[test]
fn config_error_files_writable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let fx = fixtures();
    // The config itself, world-writable: no line (nothing was read yet).
    let tmp = TempDir::new("err-writable-config");
    let text = calc_text(fx, None, &[], "int calc_div(int a, int b)");
    let path = tmp.write("ddl.json", &text);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let line = error_line(&tmp, &path);
    assert_eq!(
        line,
        format!(
            "ddl: error: {}: {} is writable by every user (mode 666): refused",
            path.display(),
            path.display()
        )
    );
    // The new build, group-writable (the group is not root's).
    let tmp = TempDir::new("err-writable-new");
    let new = tmp.path().join("libcalc.so.1");
    std::fs::copy(fx.join("calc/new/libcalc.so.1"), &new).unwrap();
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o775)).unwrap();
    let gid = std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(&new).unwrap());
    if gid == 0 {
        // Under root's group the group is trusted; make it world-writable instead.
        std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o757)).unwrap();
    }
    let text = calc_text(
        fx,
        Some(&new.display().to_string()),
        &[],
        "int calc_div(int a, int b)",
    );
    let path = tmp.write("ddl.json", &text);
    let line = error_line(&tmp, &path);
    let l = line_of(&text, "\"new\"");
    assert_prefix(
        &line,
        &format!(
            "ddl: error: {}:{l}: new: {} is writable by",
            path.display(),
            new.display()
        ),
    );
    assert!(line.ends_with(": refused"), "{line}");
}
