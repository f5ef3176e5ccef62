//! What the fixtures do: the boundary of each component (as config
//! signatures) and, per app, how often each function is called and how many
//! of those calls the new build answers differently. The numbers come from
//! the header comments of the apps in `cxx-fixtures/` and are checked against
//! the builds themselves by `fixtures_agree_with_expectations`.

/// One boundary function's expected counts for one run.
#[derive(Clone, Copy, Debug)]
pub struct Want {
    pub function: &'static str,
    /// Calls the application makes (all mirrored unless sampled out).
    pub calls: u64,
    /// Of those, the calls whose outcome differs under the config's comparators.
    pub mismatch: u64,
}

pub const fn want(function: &'static str, calls: u64, mismatch: u64) -> Want {
    Want {
        function,
        calls,
        mismatch,
    }
}

/// libcalc's boundary (`calc_version` is compared with "ignore").
pub const CALC_SIGS: &[&str] = &[
    "int calc_add(int a, int b)",
    "int calc_div(int a, int b)",
    "int calc_add3(int a, int b, int c)",
    "double calc_sqrt(double x)",
    "double calc_norm2(double x, double y)",
    "float calc_scale(float x, float k)",
    "bool calc_is_even(long n)",
    "enum calc_sign calc_sign(int x)",
    "int8_t calc_clamp8(int x)",
    "uint16_t calc_swap16(uint16_t v)",
    "unsigned long long calc_mul64(unsigned long long a, unsigned long long b)",
    "uint64_t calc_hash(const char *s)",
    "const char *calc_name(int code)",
    "long calc_parse(const char *s)",
    "double calc_trunc(double x)",
    "int calc_slow(int ms)",
];
pub const CALC_VERSION_SIG: &str = "int calc_version(void)";
pub const CALC_SQRT_SIG: &str = "double calc_sqrt(double x)";

/// calc-app, any layout (see cxx-fixtures/calc/calc-app.c).
pub const CALC_APP: &[Want] = &[
    want("calc_add", 6, 0),
    want("calc_div", 7, 3),
    want("calc_add3", 2, 0),
    want("calc_sqrt", 6, 3),
    want("calc_norm2", 2, 1),
    want("calc_scale", 3, 0),
    want("calc_is_even", 4, 0),
    want("calc_sign", 3, 0),
    want("calc_clamp8", 3, 0),
    want("calc_swap16", 2, 0),
    want("calc_mul64", 4, 2),
    want("calc_hash", 5, 2),
    want("calc_name", 6, 2),
    want("calc_version", 1, 0),
];

/// Functions whose outputs differ between the builds but whose comparator
/// is "ignore" in the configs the tests write.
pub const IGNORED: &[&str] = &["calc_version"];

/// calc-dlopen (see cxx-fixtures/calc/calc-dlopen.c).
pub const CALC_DLOPEN: &[Want] = &[
    want("calc_add", 2, 0),
    want("calc_div", 3, 2),
    want("calc_sqrt", 2, 1),
    want("calc_name", 2, 1),
    want("calc_hash", 1, 1),
];

/// calc-dlopen twice: the first round, then libcalc opened again after its
/// dlclose.
pub const CALC_DLOPEN_TWICE: &[Want] = &[
    want("calc_add", 3, 0),
    want("calc_div", 4, 3),
    want("calc_sqrt", 2, 1),
    want("calc_name", 2, 1),
    want("calc_hash", 1, 1),
];

/// calc-dlopen cycles: libcalc opened and closed 40 times.
pub const CALC_DLOPEN_CYCLES: &[Want] = &[want("calc_add", 40, 0), want("calc_div", 40, 40)];

/// calc-plugin-app + libplugin.so (see cxx-fixtures/calc/plugin.c).
pub const CALC_PLUGIN: &[Want] = &[
    want("calc_add", 1, 0),
    want("calc_div", 2, 2),
    want("calc_sqrt", 1, 1),
    want("calc_name", 1, 1),
];

/// libbuf's declared types.
pub const BUF_TYPES: &[&str] = &[
    "struct point { double x; double y; }",
    "struct rect { int x; int y; int w; int h; }",
    "struct box3 { double a; double b; double c; }",
    "struct tag { int id; double w; }",
    "struct fpair { float a; float b; }",
    "struct pt3f { float x; float y; float z; }",
    "struct pump { const uint8_t *next_in [in avail_in]; size_t avail_in; uint8_t *next_out [out avail_out]; size_t avail_out; unsigned long total; void *user [null]; }",
];

/// libbuf's boundary.
pub const BUF_SIGS: &[&str] = &[
    "size_t buf_encode(const uint8_t *src [in len], size_t len, uint8_t *dst [out cap; written ret], size_t cap)",
    "int buf_stats(const double *xs [in n], int n, double *mean [out], double *max [out])",
    "void buf_reverse(int *xs [inout n], int n)",
    "int buf_upper(const char *s, char *out [out cap; string], size_t cap)",
    "size_t buf_fill(uint8_t *dst [out n; written *count], size_t n, size_t *count [out])",
    "struct point buf_mid(struct point a, struct point b)",
    "double buf_dist(const struct point *a, const struct point *b)",
    "void buf_translate(struct point *p, double dx, double dy)",
    "int buf_area(struct rect r)",
    "struct box3 buf_scale3(struct box3 b, double k)",
    "double buf_many(int a1, int a2, int a3, int a4, int a5, int a6, int a7, int a8, double d1, double d2, double d3, double d4, double d5, double d6, double d7, double d8, double d9, double d10)",
    "void *buf_identity(void *p)",
    "int buf_pump(struct pump *p)",
    "struct tag buf_tag(struct tag t, int k)",
    "struct fpair buf_swapf(struct fpair p)",
    "struct pt3f buf_scale3f(struct pt3f p, float k)",
    "void buf_apply(int *xs [inout n], int n, int (*fn)(int))",
];

/// buf-app, any layout (see cxx-fixtures/buf/buf-app.c).
pub const BUF_APP: &[Want] = &[
    want("buf_encode", 6, 2),
    want("buf_stats", 3, 0),
    want("buf_reverse", 5, 2),
    want("buf_upper", 4, 2),
    want("buf_fill", 4, 2),
    want("buf_mid", 2, 0),
    want("buf_dist", 2, 0),
    want("buf_translate", 3, 1),
    want("buf_area", 3, 1),
    want("buf_scale3", 2, 1),
    want("buf_many", 3, 1),
    want("buf_identity", 2, 0),
    want("buf_tag", 2, 1),
    want("buf_swapf", 2, 0),
    want("buf_scale3f", 2, 0),
    want("buf_apply", 2, 1),
];

/// buf-leak-app (see cxx-fixtures/buf/buf-leak-app.c).
pub const BUF_LEAK: &[Want] = &[
    want("buf_reverse", 1, 1),
    want("buf_fill", 1, 1),
    want("buf_translate", 1, 1),
    want("buf_upper", 1, 1),
    want("buf_encode", 1, 1),
];

/// buf-pump-app, any layout (see cxx-fixtures/buf/buf-pump-app.c).
pub const BUF_PUMP: &[Want] = &[want("buf_pump", 5, 3)];

/// libver's boundary: ver_value exists as ver_value@VER_1 and the default
/// ver_value@@VER_2.
pub const VER_SIGS: &[&str] = &["int ver_value(void)", "int ver_twice(int x)"];

/// ver-app, any layout (see cxx-fixtures/ver/ver-app.c): the two VER_1
/// calls match (10 and 10), the three VER_2 calls differ (20 vs 21).
pub const VER_APP: &[Want] = &[want("ver_value", 5, 3), want("ver_twice", 2, 0)];

/// ver-dlopen (see cxx-fixtures/ver/ver-dlopen.c).
pub const VER_DLOPEN: &[Want] = &[want("ver_value", 4, 2)];

pub const LAYOUTS: &[&str] = &["pie-lazy", "pie-now", "noplt", "nopie"];

/// `wants` with one function's mismatch count replaced.
pub fn with_mismatch(wants: &[Want], function: &str, mismatch: u64) -> Vec<Want> {
    assert!(wants.iter().any(|w| w.function == function));
    wants
        .iter()
        .map(|w| {
            if w.function == function {
                Want { mismatch, ..*w }
            } else {
                *w
            }
        })
        .collect()
}
