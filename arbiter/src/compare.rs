//! Comparators (CONFIG.md, "Comparators"): how a primary outcome and a shadow
//! outcome are judged equal or different, path by path.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::report;
use crate::types::{Expr, Role, Signature, StructDef, Type};
use crate::value::Value;

/// One comparator spec.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Spec {
    /// Bit-exact (floats: same bits; any NaN equals any NaN).
    Exact,
    /// Not compared.
    Ignore,
    /// Floats within this many units in the last place.
    Ulps(u64),
    /// Floats with |a-b| <= max(abs, rel * max(|a|, |b|)).
    Tol {
        /// Absolute tolerance.
        abs: f64,
        /// Relative tolerance.
        rel: f64,
    },
}

/// The specs one `compare` object (a function's, or `defaults.compare`) gives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompareSet {
    /// `"compare": "exact"` or `"compare": "ignore"` as a whole.
    pub all: Option<Spec>,
    /// The `ret` key.
    pub ret: Option<Spec>,
    /// The `errno` key (errno is compared only when this is set).
    pub errno: Option<Spec>,
    /// The `float` key: every floating result without a more specific spec.
    pub float: Option<Spec>,
    /// Keys naming parameters (their written output).
    pub params: BTreeMap<String, Spec>,
}

/// The comparator of one function: its own specs over `defaults.compare`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Comparator {
    /// The function's own `compare`.
    pub func: CompareSet,
    /// `defaults.compare`.
    pub defaults: CompareSet,
}

/// What a call produced, on either side.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The return value (`Value::None` for `void`).
    pub ret: Value,
    /// Per parameter, in order: what the callee wrote (`Value::None` for
    /// parameters that are inputs only).
    pub outputs: Vec<Value>,
    /// `errno` after the call, when the comparator asks for it.
    pub errno: Option<i32>,
    /// The C++ exception the call ended with instead of returning (its
    /// return value and outputs are then not compared).
    pub exception: Option<Exception>,
    /// The calls it made to the outside world (writes, opens for writing,
    /// processes, signals…), in order; `None` where they were not watched.
    pub outgoing: Option<Vec<Outgoing>>,
}

/// One call a build made to the outside world (the shadow's are
/// intercepted and not performed; the primary's are observed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The function called (`write`, `fprintf`, `unlink`…).
    pub function: String,
    /// What it acted on: `fd:N`, `stdout`, a path, `pid:N`…
    pub target: String,
    /// Bytes written (all of them counted), or 0.
    pub len: usize,
    /// A hash of all the bytes (FNV-1a, 64 bits).
    pub hash: u64,
    /// The first bytes.
    pub head: Vec<u8>,
}

impl Outgoing {
    /// `{"function", "target", "len", "head"}` as records show it (`head`
    /// as text when it is UTF-8, else hex).
    pub fn json(&self) -> serde_json::Value {
        let head = &self.head[..self.head.len().min(64)];
        let head = match std::str::from_utf8(head) {
            Ok(t) => serde_json::Value::from(t),
            Err(_) => {
                serde_json::Value::from(head.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
        };
        serde_json::json!({ "function": self.function, "target": self.target, "len": self.len, "head": head })
    }
}

/// A C++ exception that left a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    /// Its type, demangled (`std::invalid_argument`).
    pub ty: String,
    /// `what()`, for a `std::exception` (empty otherwise).
    pub what: String,
}

impl Exception {
    /// `{"type": …, "what": …}`, as records show it.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({ "type": self.ty, "what": self.what })
    }
}

/// One difference between the primary's and the shadow's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Diff {
    /// `ret`, `errno`, `PARAM`, `PARAM.field`, `PARAM[i]`.
    pub path: String,
    /// The primary's value at that path, as written in the report.
    pub primary: serde_json::Value,
    /// The shadow's value at that path.
    pub shadow: serde_json::Value,
}

// ---------------------------------------------------------------------------
// Float comparison
// ---------------------------------------------------------------------------

/// Maps an `f64`'s bits onto integers that are ordered like the floats, with
/// `-0.0` and `+0.0` both mapped to 0 (so they are 0 ulps apart).
fn ordered_f64(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    if b >= 0 {
        b
    } else {
        i64::MIN.wrapping_sub(b)
    }
}

/// As [`ordered_f64`], for `f32`.
fn ordered_f32(x: f32) -> i32 {
    let b = x.to_bits() as i32;
    if b >= 0 {
        b
    } else {
        i32::MIN.wrapping_sub(b)
    }
}

/// Distance in units in the last place between two `f64`s (finite or not;
/// `-0.0` and `+0.0` are 0 apart). NaNs have no meaningful distance.
pub fn ulps_distance_f64(a: f64, b: f64) -> u64 {
    (ordered_f64(a) as i128 - ordered_f64(b) as i128).unsigned_abs() as u64
}

/// Distance in units in the last place between two `f32`s (`-0.0` and `+0.0`
/// are 0 apart).
pub fn ulps_distance_f32(a: f32, b: f32) -> u64 {
    (ordered_f32(a) as i64 - ordered_f32(b) as i64).unsigned_abs()
}

/// Whether two `f64`s are equal under `spec`.
///
/// * any NaN equals any NaN under every spec, and a NaN equals nothing else;
/// * an infinity equals only the same-signed infinity (never a finite value,
///   however close in ulps);
/// * [`Spec::Exact`]: same bits (so `+0.0` and `-0.0` differ);
/// * [`Spec::Ulps`]: ulp distance on the ordered-integer mapping of the bits
///   (`-0.0` and `+0.0` are 0 apart, the smallest subnormals on either side
///   of zero are 2 apart);
/// * [`Spec::Tol`]: `|a-b| <= max(abs, rel * max(|a|, |b|))`;
/// * [`Spec::Ignore`]: always equal.
pub fn spec_ulps_eq_f64(a: f64, b: f64, spec: Spec) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if spec == Spec::Ignore {
        return true;
    }
    if a.is_infinite() || b.is_infinite() {
        return a == b;
    }
    match spec {
        Spec::Exact => a.to_bits() == b.to_bits(),
        Spec::Ignore => true,
        Spec::Ulps(n) => ulps_distance_f64(a, b) <= n,
        Spec::Tol { abs, rel } => (a - b).abs() <= abs.max(rel * a.abs().max(b.abs())),
    }
}

/// Whether two `f32`s are equal under `spec` (the rules of
/// [`spec_ulps_eq_f64`], with ulps counted in `f32` units).
pub fn spec_ulps_eq_f32(a: f32, b: f32, spec: Spec) -> bool {
    // Widening to f64 is exact and keeps bits distinct, NaN, infinities and
    // the sign of zero: only the ulps must be counted in f32 units.
    match spec {
        Spec::Ulps(n) if a.is_finite() && b.is_finite() => ulps_distance_f32(a, b) <= n,
        _ => spec_ulps_eq_f64(a as f64, b as f64, spec),
    }
}

// ---------------------------------------------------------------------------
// Spec resolution (private twin of `Comparator::spec_for` in config.rs)
// ---------------------------------------------------------------------------

impl Comparator {
    /// The spec for a path under `key` (`ret` or a parameter name): the
    /// function's whole-`compare` spec, its key, its `float` (for floats),
    /// then the same in `defaults.compare`, then `exact` (CONFIG.md:
    /// "the most specific spec wins").
    pub fn spec_for(&self, key: &str, is_float: bool) -> Spec {
        fn in_set(set: &CompareSet, key: &str, is_float: bool) -> Option<Spec> {
            if let Some(s) = set.all {
                return Some(s);
            }
            let keyed = if key == "ret" {
                set.ret
            } else {
                set.params.get(key).copied()
            };
            keyed.or(if is_float { set.float } else { None })
        }
        in_set(&self.func, key, is_float)
            .or_else(|| in_set(&self.defaults, key, is_float))
            .unwrap_or(Spec::Exact)
    }

    /// How errno is compared; `None`: not compared (errno is compared only
    /// when asked for, and never for a function whose `compare` is `"ignore"`).
    pub fn errno_spec(&self) -> Option<Spec> {
        if self.func.all == Some(Spec::Ignore) {
            return None;
        }
        match self.func.errno.or(self.defaults.errno) {
            Some(Spec::Ignore) | None => None,
            s => s,
        }
    }
}

// ---------------------------------------------------------------------------
// judge
// ---------------------------------------------------------------------------

/// Handles are never compared by value (each side has its own); only
/// whether one side got none where the other got one.
fn handle_nullness(path: &str, p: &Value, s: &Value, diffs: &mut Vec<Diff>) {
    let null = |v: &Value| matches!(v, Value::Null | Value::Opaque(0));
    if null(p) != null(s) {
        diffs.push(Diff {
            path: path.to_string(),
            primary: report::value_json(p),
            shadow: report::value_json(s),
        });
    }
}

/// Compares a primary outcome with a shadow outcome under `cmp` and returns
/// every difference (empty: the outcomes match).
///
/// * `ret` is compared unless the return type is `void` or its role is
///   [`Role::Opaque`];
/// * every parameter's output (`Outcome::outputs[i]`) is compared, except
///   when both sides hold [`Value::None`] and for parameters whose role is
///   opaque, `[null]`, `[private]` or a handle (a value captured on one side
///   only is a difference); the spec key of every value
///   under a parameter (struct fields, buffer elements) is the parameter's
///   name, floats inside use the float rule;
/// * `errno` is compared when the comparator asks for it.
///
/// Paths: `ret`, `errno`, `PARAM` (scalars, out-scalars, strings, NULL vs
/// non-NULL, buffers of different lengths), `PARAM.field` (recursively),
/// `PARAM[i]` (only the first differing element of each buffer) and
/// `PARAM[i].field` for buffers of structs. A buffer that holds exactly one
/// element of an out-scalar (`[out]`, `T *p` with scalar T) or of an `[inout 1]`
/// / `[out 1]` pointer (`struct S *p`) is compared as that element, without
/// the `[0]` (`p`, `p.field`). Strings compare bytewise; [`Value::Opaque`] is
/// never compared.
pub fn judge(sig: &Signature, cmp: &Comparator, primary: &Outcome, shadow: &Outcome) -> Vec<Diff> {
    let mut diffs = Vec::new();
    if cmp.func.all == Some(Spec::Ignore) {
        return diffs;
    }
    // A call that threw has no outcome but its exception: the two sides
    // agree when both threw the same type (`what()` is shown, not compared:
    // messages are reworded between versions), or neither threw.
    if primary.exception.is_some() || shadow.exception.is_some() {
        let ty = |e: &Option<Exception>| e.as_ref().map(|e| e.ty.clone());
        if ty(&primary.exception) != ty(&shadow.exception) {
            let js =
                |e: &Option<Exception>| e.as_ref().map_or(serde_json::Value::Null, Exception::json);
            diffs.push(Diff {
                path: "exception".to_string(),
                primary: js(&primary.exception),
                shadow: js(&shadow.exception),
            });
        }
        return diffs;
    }
    // The calls each side made to the outside world, in order: function,
    // target and bytes (where both sides were watched).
    if let (Some(a), Some(b)) = (&primary.outgoing, &shadow.outgoing) {
        for i in 0..a.len().max(b.len()) {
            let (x, y) = (a.get(i), b.get(i));
            let same = match (x, y) {
                (Some(x), Some(y)) => {
                    x.function == y.function
                        && x.target == y.target
                        && x.len == y.len
                        && x.hash == y.hash
                }
                _ => false,
            };
            if !same {
                let js = |o: Option<&Outgoing>| o.map_or(serde_json::Value::Null, Outgoing::json);
                diffs.push(Diff {
                    path: format!("outgoing[{i}]"),
                    primary: js(x),
                    shadow: js(y),
                });
                break; // the first difference; the rest follow from it
            }
        }
    }
    if let Role::Handle { .. } = sig.ret_role {
        handle_nullness("ret", &primary.ret, &shadow.ret, &mut diffs);
    } else if sig.ret != Type::Void && sig.ret_role != Role::Opaque {
        let mut j = Judge {
            cmp,
            key: "ret",
            diffs: &mut diffs,
        };
        j.value("ret", &sig.ret, &sig.ret_role, &primary.ret, &shadow.ret);
    }
    for (i, param) in sig.params.iter().enumerate() {
        if matches!(
            param.role,
            Role::Opaque | Role::Null | Role::Private | Role::Handle { .. }
        ) {
            continue;
        }
        let p = primary.outputs.get(i).unwrap_or(&Value::None);
        let s = shadow.outputs.get(i).unwrap_or(&Value::None);
        if let Role::HandleOut { .. } = param.role {
            handle_nullness(&param.name, p, s, &mut diffs);
            continue;
        }
        let mut j = Judge {
            cmp,
            key: &param.name,
            diffs: &mut diffs,
        };
        j.value(&param.name, &param.ty, &param.role, p, s);
    }
    if let Some(spec) = cmp.errno_spec() {
        // errno is an integer: every spec but `ignore` compares it exactly.
        let _ = spec;
        if primary.errno != shadow.errno {
            let js = |e: Option<i32>| e.map_or(serde_json::Value::Null, |v| v.into());
            diffs.push(Diff {
                path: "errno".to_string(),
                primary: js(primary.errno),
                shadow: js(shadow.errno),
            });
        }
    }
    diffs
}

/// The struct a type or role describes: `struct S`, `struct S *`, or a buffer
/// of `struct S`.
fn struct_def<'t>(ty: &'t Type, role: &'t Role) -> Option<&'t Arc<StructDef>> {
    match ty {
        Type::Struct(d) => return Some(d),
        Type::Pointer { pointee, .. } => {
            if let Type::Struct(d) = &**pointee {
                return Some(d);
            }
        }
        _ => {}
    }
    if let Role::Buffer {
        elem: Type::Struct(d),
        ..
    } = role
    {
        return Some(d);
    }
    None
}

/// Whether a buffer with this role that holds exactly one element is shown
/// and compared as that element (no `[0]` in paths).
pub(crate) fn single_element_role(role: &Role) -> bool {
    matches!(
        role,
        Role::Value
            | Role::Buffer {
                scalar_out: true,
                ..
            }
            | Role::Buffer {
                count: Expr::Int(1),
                written: None,
                string: false,
                ..
            }
    )
}

/// Whether the role is an `[out N; string]` buffer.
fn string_role(role: &Role) -> bool {
    matches!(role, Role::Buffer { string: true, .. })
}

/// Bytes of a string buffer up to (not including) the first NUL.
pub(crate) fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(n) => &bytes[..n],
        None => bytes,
    }
}

/// Whether a type is a floating scalar.
fn is_float_type(ty: &Type) -> bool {
    matches!(ty, Type::Scalar(s) if s.is_float())
}

/// The comparison of one top-level key (`ret` or one parameter).
struct Judge<'a> {
    cmp: &'a Comparator,
    key: &'a str,
    diffs: &'a mut Vec<Diff>,
}

impl Judge<'_> {
    fn spec(&self, is_float: bool) -> Spec {
        self.cmp.spec_for(self.key, is_float)
    }

    fn push(&mut self, path: String, p: serde_json::Value, s: serde_json::Value) {
        self.diffs.push(Diff {
            path,
            primary: p,
            shadow: s,
        });
    }

    /// A structural difference (NULL, lengths, kinds) at `path`, unless the
    /// values there are ignored.
    fn structural(&mut self, path: &str, leaf_float: bool, ty: &Type, p: &Value, s: &Value) {
        if self.spec(leaf_float) == Spec::Ignore {
            return;
        }
        self.push(
            path.to_string(),
            report::value_json_typed(p, ty),
            report::value_json_typed(s, ty),
        );
    }

    /// Compares two captured values at `path`; `ty` and `role` are the
    /// declared type and role of the slot they came from.
    fn value(&mut self, path: &str, ty: &Type, role: &Role, p: &Value, s: &Value) {
        match (p, s) {
            (Value::None, Value::None) => {}
            (Value::Opaque(_), _) | (_, Value::Opaque(_)) => {}
            (Value::Null, Value::Null) => {}
            (Value::Int(..) | Value::UInt(..), Value::Int(..) | Value::UInt(..)) => {
                self.scalar(path, p, s);
            }
            (Value::F32(_) | Value::F64(_), Value::F32(_) | Value::F64(_)) => {
                self.scalar(path, p, s);
            }
            (Value::Str(a), Value::Str(b)) => {
                if a != b && self.spec(false) != Spec::Ignore {
                    self.push(
                        path.to_string(),
                        report::value_json(p),
                        report::value_json(s),
                    );
                }
            }
            (
                Value::Buf {
                    elem: ea,
                    bytes: ba,
                },
                Value::Buf {
                    elem: eb,
                    bytes: bb,
                },
            ) => {
                if string_role(role) {
                    let (a, b) = (until_nul(ba), until_nul(bb));
                    if a != b && self.spec(false) != Spec::Ignore {
                        self.push(
                            path.to_string(),
                            report::value_json(&Value::Str(a.to_vec())),
                            report::value_json(&Value::Str(b.to_vec())),
                        );
                    }
                } else if ea != eb {
                    self.structural(path, false, ty, p, s);
                } else {
                    self.buffer(path, role, ea, ba, bb, p, s);
                }
            }
            (Value::Struct(fa), Value::Struct(fb)) => {
                self.struct_value(path, ty, role, fa, fb);
            }
            // A string buffer captured as a string on one side only.
            (Value::Str(a), Value::Buf { bytes: b, .. })
            | (Value::Buf { bytes: b, .. }, Value::Str(a))
                if string_role(role) =>
            {
                let b = until_nul(b);
                if a.as_slice() != b && self.spec(false) != Spec::Ignore {
                    let (pa, sb) = if matches!(p, Value::Str(_)) {
                        (a.as_slice(), b)
                    } else {
                        (b, a.as_slice())
                    };
                    self.push(
                        path.to_string(),
                        report::value_json(&Value::Str(pa.to_vec())),
                        report::value_json(&Value::Str(sb.to_vec())),
                    );
                }
            }
            _ => {
                let leaf_float = match (p, s) {
                    (Value::F32(_) | Value::F64(_), _) | (_, Value::F32(_) | Value::F64(_)) => true,
                    (Value::Buf { elem, .. }, _) | (_, Value::Buf { elem, .. }) => {
                        is_float_type(elem)
                    }
                    _ => match role {
                        Role::Buffer { elem, .. } => is_float_type(elem),
                        _ => is_float_type(ty),
                    },
                };
                self.structural(path, leaf_float, ty, p, s);
            }
        }
    }

    /// Two scalar values (integers exact, floats under the float rule).
    fn scalar(&mut self, path: &str, p: &Value, s: &Value) {
        let eq = scalar_eq(p, s, self.spec(true), self.spec(false));
        if !eq {
            self.push(
                path.to_string(),
                report::value_json(p),
                report::value_json(s),
            );
        }
    }

    /// Two buffers of the same element type.
    #[allow(clippy::too_many_arguments)]
    fn buffer(
        &mut self,
        path: &str,
        role: &Role,
        elem: &Type,
        a: &[u8],
        b: &[u8],
        p: &Value,
        s: &Value,
    ) {
        if a == b {
            return;
        }
        let size = elem.size().max(1);
        if a.len() != b.len() {
            self.structural(path, is_float_type(elem), &Type::Void, p, s);
            return;
        }
        let n = a.len() / size;
        if n == 1 && single_element_role(role) {
            self.element(path.to_string(), elem, a, b);
            return;
        }
        // The specs depend on the parameter, not the element: looked up
        // once, and an element's path is written only for a difference (a
        // float result of another summation order differs in every element).
        let (float_spec, int_spec) = (self.spec(true), self.spec(false));
        for i in 0..n {
            let (ea, eb) = (&a[i * size..(i + 1) * size], &b[i * size..(i + 1) * size]);
            if ea == eb {
                continue;
            }
            if let Type::Scalar(sc) = elem {
                let (va, vb) = (
                    Value::scalar_from_bytes(*sc, ea),
                    Value::scalar_from_bytes(*sc, eb),
                );
                if scalar_eq(&va, &vb, float_spec, int_spec) {
                    continue;
                }
            }
            if self.element(format!("{path}[{i}]"), elem, ea, eb) {
                return;
            }
        }
        // Trailing bytes that do not make a whole element.
        if a[n * size..] != b[n * size..] && self.spec(false) != Spec::Ignore {
            self.push(
                path.to_string(),
                report::value_json(p),
                report::value_json(s),
            );
        }
    }

    /// One element of a buffer (or an inline field) given as raw bytes;
    /// returns whether a difference was recorded.
    fn element(&mut self, path: String, ty: &Type, a: &[u8], b: &[u8]) -> bool {
        if a.len() < ty.size() || b.len() < ty.size() {
            return false;
        }
        match ty {
            Type::Scalar(sc) => {
                let (va, vb) = (
                    Value::scalar_from_bytes(*sc, a),
                    Value::scalar_from_bytes(*sc, b),
                );
                let before = self.diffs.len();
                self.scalar(&path, &va, &vb);
                if self.diffs.len() > before {
                    // Show the element as the report shows elements.
                    let d = self.diffs.last_mut().unwrap();
                    d.primary = report::element_json(ty, a);
                    d.shadow = report::element_json(ty, b);
                    true
                } else {
                    false
                }
            }
            Type::Struct(def) => {
                let before = self.diffs.len();
                for f in &def.fields {
                    if matches!(
                        f.role,
                        Role::Private
                            | Role::Opaque
                            | Role::Null
                            | Role::Handle { .. }
                            | Role::HandleOut { .. }
                    ) {
                        continue;
                    }
                    if !matches!(f.ty, Type::Scalar(_) | Type::Struct(_)) {
                        continue; // pointers are not dereferenced inside buffers
                    }
                    let fpath = format!("{path}.{}", f.name);
                    let fsize = f.ty.size();
                    match f.role {
                        Role::Array { len } => {
                            let end = f.offset + fsize * len;
                            if end > a.len() || end > b.len() {
                                continue;
                            }
                            for k in 0..len {
                                let o = f.offset + k * fsize;
                                let (fa, fb) = (&a[o..o + fsize], &b[o..o + fsize]);
                                if fa != fb && self.element(format!("{fpath}[{k}]"), &f.ty, fa, fb)
                                {
                                    break;
                                }
                            }
                        }
                        _ => {
                            let end = f.offset + fsize;
                            if end > a.len() || end > b.len() {
                                continue;
                            }
                            let (fa, fb) = (&a[f.offset..end], &b[f.offset..end]);
                            if fa != fb {
                                self.element(fpath, &f.ty, fa, fb);
                            }
                        }
                    }
                }
                self.diffs.len() > before
            }
            _ => false,
        }
    }

    /// Two structs captured field by field.
    fn struct_value(&mut self, path: &str, ty: &Type, role: &Role, fa: &[Value], fb: &[Value]) {
        let def = struct_def(ty, role).cloned();
        let n = fa.len().max(fb.len());
        for i in 0..n {
            let (va, vb) = (
                fa.get(i).unwrap_or(&Value::None),
                fb.get(i).unwrap_or(&Value::None),
            );
            match def.as_ref().and_then(|d| d.fields.get(i)) {
                Some(f) => {
                    if matches!(
                        f.role,
                        Role::Private
                            | Role::Opaque
                            | Role::Null
                            | Role::Handle { .. }
                            | Role::HandleOut { .. }
                    ) {
                        continue;
                    }
                    let fpath = format!("{path}.{}", f.name);
                    self.value(&fpath, &f.ty, &f.role, va, vb);
                }
                None => {
                    let fpath = format!("{path}.{i}");
                    self.value(&fpath, &Type::Void, &Role::Value, va, vb);
                }
            }
        }
    }
}

/// Two scalars equal under `float` (for floating-point values) or `int`
/// (for the others: only `Ignore` changes anything).
fn scalar_eq(p: &Value, s: &Value, float: Spec, int: Spec) -> bool {
    match (p, s) {
        (Value::F32(a), Value::F32(b)) => spec_ulps_eq_f32(*a, *b, float),
        (Value::F64(a), Value::F64(b)) => spec_ulps_eq_f64(*a, *b, float),
        (Value::F32(a), Value::F64(b)) => spec_ulps_eq_f64(*a as f64, *b, float),
        (Value::F64(a), Value::F32(b)) => spec_ulps_eq_f64(*a, *b as f64, float),
        _ => int == Spec::Ignore || int_of(p) == int_of(s),
    }
}

/// An integer value as `i128` (`None` for non-integers).
fn int_of(v: &Value) -> Option<i128> {
    match *v {
        Value::Int(_, x) => Some(x as i128),
        Value::UInt(_, x) => Some(x as i128),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Dir, Field, Param, Scalar};
    use serde_json::json;

    fn sc(s: Scalar) -> Type {
        Type::Scalar(s)
    }

    fn ptr(t: Type) -> Type {
        Type::Pointer {
            pointee: Box::new(t),
            is_const: false,
        }
    }

    fn buf_role(dir: Dir, elem: Type, count: i64) -> Role {
        Role::Buffer {
            dir,
            elem,
            count: Expr::Int(count),
            written: None,
            string: false,
            scalar_out: false,
        }
    }

    fn param(name: &str, ty: Type, role: Role) -> Param {
        Param {
            name: name.into(),
            ty,
            role,
            handle: None,
        }
    }

    fn sig(ret: Type, ret_role: Role, params: Vec<Param>) -> Signature {
        Signature {
            name: "f".into(),
            ret,
            ret_role,
            params,
            text: "f".into(),
            effect: Default::default(),
        }
    }

    fn outcome(ret: Value, outputs: Vec<Value>) -> Outcome {
        Outcome {
            ret,
            outputs,
            errno: None,
            exception: None,
            outgoing: None,
        }
    }

    fn paths(d: &[Diff]) -> Vec<&str> {
        d.iter().map(|d| d.path.as_str()).collect()
    }

    fn f64s(v: &[f64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn i32s(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    /// struct point { double x; double y; int tag; void *priv [private]; char *p; }
    fn point() -> Arc<StructDef> {
        Arc::new(StructDef {
            name: "point".into(),
            fields: vec![
                Field {
                    name: "x".into(),
                    ty: sc(Scalar::F64),
                    offset: 0,
                    role: Role::Value,
                },
                Field {
                    name: "y".into(),
                    ty: sc(Scalar::F64),
                    offset: 8,
                    role: Role::Value,
                },
                Field {
                    name: "tag".into(),
                    ty: sc(Scalar::I32),
                    offset: 16,
                    role: Role::Value,
                },
                Field {
                    name: "priv".into(),
                    ty: ptr(Type::Void),
                    offset: 24,
                    role: Role::Private,
                },
                Field {
                    name: "p".into(),
                    ty: ptr(sc(Scalar::I8)),
                    offset: 32,
                    role: Role::String,
                },
            ],
            size: 40,
            align: 8,
        })
    }

    fn point_bytes(x: f64, y: f64, tag: i32, priv_: u64, p: u64) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(x.to_le_bytes());
        b.extend(y.to_le_bytes());
        b.extend(tag.to_le_bytes());
        b.extend([0xAAu8; 4]);
        b.extend(priv_.to_le_bytes());
        b.extend(p.to_le_bytes());
        b
    }

    #[test]
    fn judge_array_fields_opaque_and_missing() {
        // struct rec { int id; uint16_t v[3]; double w; }
        let rec = Arc::new(StructDef {
            name: "rec".into(),
            fields: vec![
                Field {
                    name: "id".into(),
                    ty: sc(Scalar::I32),
                    offset: 0,
                    role: Role::Value,
                },
                Field {
                    name: "v".into(),
                    ty: sc(Scalar::U16),
                    offset: 4,
                    role: Role::Array { len: 3 },
                },
                Field {
                    name: "w".into(),
                    ty: sc(Scalar::F64),
                    offset: 16,
                    role: Role::Value,
                },
            ],
            size: 24,
            align: 8,
        });
        let elem = Type::Struct(rec.clone());
        let rb = |id: i32, v: [u16; 3], w: f64| {
            let mut b = id.to_le_bytes().to_vec();
            for x in v {
                b.extend(x.to_le_bytes());
            }
            b.extend([0u8; 6]);
            b.extend(w.to_le_bytes());
            b
        };
        let s = sig(
            Type::Void,
            Role::Value,
            vec![
                param("rs", ptr(elem.clone()), buf_role(Dir::Out, elem.clone(), 3)),
                param("h", ptr(Type::Void), Role::Value),
                param("k", sc(Scalar::I32), Role::Value),
            ],
        );
        let mk = |rs: Vec<Vec<u8>>, h: u64, k: Value| {
            outcome(
                Value::None,
                vec![
                    Value::Buf {
                        elem: elem.clone(),
                        bytes: rs.concat(),
                    },
                    Value::Opaque(h),
                    k,
                ],
            )
        };
        let c = Comparator::default();
        let a = mk(
            vec![
                rb(1, [1, 2, 3], 0.5),
                rb(2, [4, 5, 6], 1.5),
                rb(3, [7, 8, 9], 2.5),
            ],
            0x1000,
            Value::None,
        );
        let b = mk(
            vec![
                rb(1, [1, 2, 3], 0.5),
                rb(2, [4, 0, 0], 1.5),
                rb(9, [7, 8, 9], 2.5),
            ],
            0x2000,
            Value::None,
        );
        let d = judge(&s, &c, &a, &b);
        // First differing element only, first differing array index only;
        // opaque values are never compared; None on both sides is skipped.
        assert_eq!(paths(&d), ["rs[1].v[1]"]);
        assert_eq!(d[0].primary, json!(5));
        assert_eq!(d[0].shadow, json!(0));
        // A value on one side only is a difference.
        let b2 = mk(
            vec![
                rb(1, [1, 2, 3], 0.5),
                rb(2, [4, 5, 6], 1.5),
                rb(3, [7, 8, 9], 2.5),
            ],
            0,
            Value::Int(Scalar::I32, 1),
        );
        let d = judge(&s, &c, &a, &b2);
        assert_eq!(paths(&d), ["k"]);
        assert_eq!(d[0].primary, json!(null));
        assert_eq!(d[0].shadow, json!(1));
    }

    // ---- floats ----

    #[test]
    fn ulps_around_zero() {
        let tiny = f64::from_bits(1);
        assert_eq!(ulps_distance_f64(0.0, -0.0), 0);
        assert_eq!(ulps_distance_f64(0.0, tiny), 1);
        assert_eq!(ulps_distance_f64(-tiny, tiny), 2);
        assert_eq!(ulps_distance_f64(-0.0, tiny), 1);
        assert!(spec_ulps_eq_f64(0.0, -0.0, Spec::Ulps(0)));
        assert!(!spec_ulps_eq_f64(0.0, -0.0, Spec::Exact));
        assert!(spec_ulps_eq_f64(-tiny, tiny, Spec::Ulps(2)));
        assert!(!spec_ulps_eq_f64(-tiny, tiny, Spec::Ulps(1)));
        let t32 = f32::from_bits(1);
        assert_eq!(ulps_distance_f32(-t32, t32), 2);
        assert!(spec_ulps_eq_f32(0.0, -0.0, Spec::Ulps(0)));
        assert!(!spec_ulps_eq_f32(0.0, -0.0, Spec::Exact));
    }

    #[test]
    fn ulps_across_sign_and_neighbours() {
        let one = 1.0f64;
        let next = f64::from_bits(one.to_bits() + 1);
        let prev = f64::from_bits(one.to_bits() - 1);
        assert_eq!(ulps_distance_f64(prev, next), 2);
        assert!(spec_ulps_eq_f64(one, next, Spec::Ulps(1)));
        assert!(!spec_ulps_eq_f64(one, next, Spec::Ulps(0)));
        assert!(!spec_ulps_eq_f64(one, next, Spec::Exact));
        // -1 and 1 are very far apart, no overflow
        assert!(ulps_distance_f64(-1.0, 1.0) > 1 << 62);
        assert_eq!(
            ulps_distance_f64(-f64::MAX, f64::MAX),
            2 * f64::MAX.to_bits()
        );
        let n32 = f32::from_bits(1.0f32.to_bits() + 3);
        assert!(spec_ulps_eq_f32(1.0, n32, Spec::Ulps(3)));
        assert!(!spec_ulps_eq_f32(1.0, n32, Spec::Ulps(2)));
        assert!(!spec_ulps_eq_f32(-1.0, 1.0, Spec::Ulps(1000)));
    }

    #[test]
    fn nan_and_inf() {
        let qnan = f64::NAN;
        let other_nan = f64::from_bits(0xfff8_0000_0000_0001);
        for spec in [
            Spec::Exact,
            Spec::Ignore,
            Spec::Ulps(0),
            Spec::Ulps(5),
            Spec::Tol { abs: 1.0, rel: 0.0 },
        ] {
            assert!(spec_ulps_eq_f64(qnan, other_nan, spec), "{spec:?}");
            assert!(spec_ulps_eq_f32(f32::NAN, -f32::NAN, spec), "{spec:?}");
            assert!(spec_ulps_eq_f64(f64::INFINITY, f64::INFINITY, spec));
            assert!(spec_ulps_eq_f64(f64::NEG_INFINITY, f64::NEG_INFINITY, spec));
            if spec != Spec::Ignore {
                assert!(!spec_ulps_eq_f64(qnan, 1.0, spec), "{spec:?}");
                assert!(!spec_ulps_eq_f64(1.0, qnan, spec), "{spec:?}");
                assert!(!spec_ulps_eq_f64(f64::INFINITY, f64::NEG_INFINITY, spec));
                assert!(!spec_ulps_eq_f32(f32::INFINITY, f32::MAX, spec));
            }
        }
        // inf is one ulp past MAX, but still not equal to it
        assert!(!spec_ulps_eq_f64(f64::INFINITY, f64::MAX, Spec::Ulps(10)));
        assert!(!spec_ulps_eq_f64(
            f64::INFINITY,
            f64::MAX,
            Spec::Tol {
                abs: f64::INFINITY,
                rel: 1.0
            }
        ));
    }

    #[test]
    fn tolerance() {
        let t = Spec::Tol {
            abs: 1e-9,
            rel: 1e-6,
        };
        assert!(spec_ulps_eq_f64(1.0, 1.0 + 1e-7, t));
        assert!(!spec_ulps_eq_f64(1.0, 1.0 + 1e-5, t));
        assert!(spec_ulps_eq_f64(0.0, 1e-10, t));
        assert!(!spec_ulps_eq_f64(0.0, 1e-8, t));
        assert!(spec_ulps_eq_f64(1e6, 1e6 + 0.5, t));
        assert!(spec_ulps_eq_f32(1.0, 1.0000001, t));
        let abs_only = Spec::Tol { abs: 0.5, rel: 0.0 };
        assert!(spec_ulps_eq_f64(-0.25, 0.25, abs_only));
        assert!(!spec_ulps_eq_f64(-0.25, 0.2501, abs_only));
    }

    // ---- spec resolution ----

    #[test]
    fn resolution_order() {
        let mut c = Comparator::default();
        assert_eq!(c.spec_for("ret", true), Spec::Exact);
        c.defaults.float = Some(Spec::Ulps(1));
        assert_eq!(c.spec_for("ret", true), Spec::Ulps(1));
        assert_eq!(c.spec_for("ret", false), Spec::Exact);
        c.defaults.params.insert("x".into(), Spec::Ulps(2));
        assert_eq!(c.spec_for("x", true), Spec::Ulps(2));
        c.func.float = Some(Spec::Ulps(3));
        assert_eq!(c.spec_for("x", true), Spec::Ulps(3));
        assert_eq!(c.spec_for("x", false), Spec::Ulps(2));
        c.func.ret = Some(Spec::Ulps(4));
        assert_eq!(c.spec_for("ret", true), Spec::Ulps(4));
        assert_eq!(c.spec_for("y", true), Spec::Ulps(3));
        c.func.all = Some(Spec::Ignore);
        assert_eq!(c.spec_for("ret", true), Spec::Ignore);
        assert_eq!(c.errno_spec(), None);
        c.func.all = None;
        assert_eq!(c.errno_spec(), None);
        c.defaults.errno = Some(Spec::Exact);
        assert_eq!(c.errno_spec(), Some(Spec::Exact));
        c.func.errno = Some(Spec::Ignore);
        assert_eq!(c.errno_spec(), None);
    }

    // ---- judge ----

    #[test]
    fn judge_scalar_ret() {
        let s = sig(sc(Scalar::I32), Role::Value, vec![]);
        let c = Comparator::default();
        let a = outcome(Value::Int(Scalar::I32, 0), vec![]);
        let b = outcome(Value::Int(Scalar::I32, -1), vec![]);
        let d = judge(&s, &c, &a, &b);
        assert_eq!(
            d,
            vec![Diff {
                path: "ret".into(),
                primary: json!(0),
                shadow: json!(-1)
            }]
        );
        assert!(judge(&s, &c, &a, &a).is_empty());
        let mut ign = Comparator::default();
        ign.func.ret = Some(Spec::Ignore);
        assert!(judge(&s, &ign, &a, &b).is_empty());
        let mut all = Comparator::default();
        all.func.all = Some(Spec::Ignore);
        assert!(judge(&s, &all, &a, &b).is_empty());
    }

    #[test]
    fn judge_float_ret_specs() {
        let s = sig(sc(Scalar::F64), Role::Value, vec![]);
        let a = outcome(Value::F64(1.0), vec![]);
        let b = outcome(Value::F64(f64::from_bits(1.0f64.to_bits() + 2)), vec![]);
        let mut c = Comparator::default();
        assert_eq!(paths(&judge(&s, &c, &a, &b)), ["ret"]);
        c.defaults.float = Some(Spec::Ulps(2));
        assert!(judge(&s, &c, &a, &b).is_empty());
        c.func.ret = Some(Spec::Ulps(1));
        assert_eq!(paths(&judge(&s, &c, &a, &b)), ["ret"]);
        let n1 = outcome(Value::F64(f64::NAN), vec![]);
        let n2 = outcome(Value::F64(-f64::NAN), vec![]);
        assert!(judge(&s, &Comparator::default(), &n1, &n2).is_empty());
        let d = judge(&s, &Comparator::default(), &n1, &a);
        assert_eq!(d[0].primary, json!("NaN"));
        assert_eq!(d[0].shadow, json!(1.0));
    }

    #[test]
    fn judge_void_and_opaque_ret_skipped() {
        let c = Comparator::default();
        let s = sig(Type::Void, Role::Value, vec![]);
        assert!(judge(
            &s,
            &c,
            &outcome(Value::None, vec![]),
            &outcome(Value::Int(Scalar::I32, 1), vec![])
        )
        .is_empty());
        let s = sig(ptr(Type::Void), Role::Opaque, vec![]);
        assert!(judge(
            &s,
            &c,
            &outcome(Value::Opaque(1), vec![]),
            &outcome(Value::Opaque(2), vec![])
        )
        .is_empty());
    }

    #[test]
    fn judge_string_ret_and_null() {
        let c = Comparator::default();
        let s = sig(ptr(sc(Scalar::I8)), Role::String, vec![]);
        let a = outcome(Value::Str(b"abc".to_vec()), vec![]);
        let b = outcome(Value::Str(b"abd".to_vec()), vec![]);
        let d = judge(&s, &c, &a, &b);
        assert_eq!(paths(&d), ["ret"]);
        assert_eq!(d[0].primary, json!("abc"));
        assert_eq!(d[0].shadow, json!("abd"));
        let n = outcome(Value::Null, vec![]);
        let d = judge(&s, &c, &a, &n);
        assert_eq!(paths(&d), ["ret"]);
        assert_eq!(d[0].shadow, json!(null));
        assert!(judge(&s, &c, &n, &n).is_empty());
    }

    #[test]
    fn judge_out_scalar_and_errno() {
        // int f(int a, double *out [out], int *cnt)
        let out_role = |s: Scalar| Role::Buffer {
            dir: Dir::Out,
            elem: sc(s),
            count: Expr::Int(1),
            written: None,
            string: false,
            scalar_out: true,
        };
        let s = sig(
            sc(Scalar::I32),
            Role::Value,
            vec![
                param("a", sc(Scalar::I32), Role::Value),
                param("out", ptr(sc(Scalar::F64)), out_role(Scalar::F64)),
                param("cnt", ptr(sc(Scalar::I32)), out_role(Scalar::I32)),
            ],
        );
        let mk = |o: f64, n: i32, e: i32| Outcome {
            ret: Value::Int(Scalar::I32, 0),
            outputs: vec![
                Value::None,
                Value::Buf {
                    elem: sc(Scalar::F64),
                    bytes: f64s(&[o]),
                },
                Value::Buf {
                    elem: sc(Scalar::I32),
                    bytes: i32s(&[n]),
                },
            ],
            errno: Some(e),
            exception: None,
            outgoing: None,
        };
        let mut c = Comparator::default();
        let d = judge(&s, &c, &mk(1.5, 3, 0), &mk(2.5, 4, 22));
        assert_eq!(paths(&d), ["out", "cnt"]);
        assert_eq!(d[0].primary, json!(1.5));
        assert_eq!(d[0].shadow, json!(2.5));
        assert_eq!(d[1].primary, json!(3));
        assert_eq!(d[1].shadow, json!(4));
        c.func.errno = Some(Spec::Exact);
        c.func.params.insert("out".into(), Spec::Ignore);
        let d = judge(&s, &c, &mk(1.5, 3, 0), &mk(2.5, 4, 22));
        assert_eq!(paths(&d), ["cnt", "errno"]);
        assert_eq!(d[1].primary, json!(0));
        assert_eq!(d[1].shadow, json!(22));
        // Out-scalars captured as scalars are compared the same way.
        let mut a = mk(1.5, 3, 0);
        let mut b = mk(1.5, 3, 0);
        a.outputs[2] = Value::Int(Scalar::I32, 3);
        b.outputs[2] = Value::Int(Scalar::I32, 5);
        assert_eq!(paths(&judge(&s, &c, &a, &b)), ["cnt"]);
    }

    #[test]
    fn judge_buffers() {
        // void f(double *dst [out n], int n, uint8_t *raw [out 8], char *name [out 16; string])
        let s = sig(
            Type::Void,
            Role::Value,
            vec![
                param(
                    "dst",
                    ptr(sc(Scalar::F64)),
                    Role::Buffer {
                        dir: Dir::Out,
                        elem: sc(Scalar::F64),
                        count: Expr::Param(1),
                        written: None,
                        string: false,
                        scalar_out: false,
                    },
                ),
                param("n", sc(Scalar::I32), Role::Value),
                param(
                    "raw",
                    ptr(sc(Scalar::U8)),
                    buf_role(Dir::Out, sc(Scalar::U8), 8),
                ),
                param(
                    "name",
                    ptr(sc(Scalar::I8)),
                    Role::Buffer {
                        dir: Dir::Out,
                        elem: sc(Scalar::I8),
                        count: Expr::Int(16),
                        written: None,
                        string: true,
                        scalar_out: false,
                    },
                ),
            ],
        );
        let mk = |d: &[f64], raw: &[u8], name: &[u8]| {
            outcome(
                Value::None,
                vec![
                    Value::Buf {
                        elem: sc(Scalar::F64),
                        bytes: f64s(d),
                    },
                    Value::None,
                    Value::Buf {
                        elem: sc(Scalar::U8),
                        bytes: raw.to_vec(),
                    },
                    Value::Buf {
                        elem: sc(Scalar::I8),
                        bytes: name.to_vec(),
                    },
                ],
            )
        };
        let c = Comparator::default();
        let a = mk(&[1.0, 2.0, 3.0, 4.0], &[1, 2, 3, 4], b"abc\0xyz");
        assert!(judge(&s, &c, &a, &a).is_empty());
        // Garbage after the NUL of a string buffer is not compared.
        let b = mk(&[1.0, 2.0, 3.0, 4.0], &[1, 2, 3, 4], b"abc\0qqq");
        assert!(judge(&s, &c, &a, &b).is_empty());
        // Only the first differing element of each buffer.
        let b = mk(&[1.0, 2.5, 3.5, 4.0], &[1, 2, 3, 9], b"abd\0xyz");
        let d = judge(&s, &c, &a, &b);
        assert_eq!(paths(&d), ["dst[1]", "raw[3]", "name"]);
        assert_eq!(d[0].primary, json!(2.0));
        assert_eq!(d[0].shadow, json!(2.5));
        assert_eq!(d[1].primary, json!(4));
        assert_eq!(d[1].shadow, json!(9));
        assert_eq!(d[2].primary, json!("abc"));
        assert_eq!(d[2].shadow, json!("abd"));
        // Different lengths: one diff at the parameter with the buffer forms.
        let b = mk(&[1.0, 2.0, 3.0], &[1, 2, 3, 4], b"abc\0xyz");
        let d = judge(&s, &c, &a, &b);
        assert_eq!(paths(&d), ["dst"]);
        assert_eq!(d[0].primary["len"], json!(4));
        assert_eq!(d[0].shadow["len"], json!(3));
        // Ulps spec on the parameter applies to its elements.
        let mut c2 = Comparator::default();
        c2.func.params.insert("dst".into(), Spec::Ulps(1));
        let near = f64::from_bits(2.0f64.to_bits() + 1);
        let b = mk(&[1.0, near, 3.0, 4.0], &[1, 2, 3, 4], b"abc\0xyz");
        assert!(judge(&s, &c2, &a, &b).is_empty());
        assert_eq!(paths(&judge(&s, &c, &a, &b)), ["dst[1]"]);
        // NaNs with different payloads are equal.
        let a = mk(&[f64::NAN], &[], b"");
        let b = mk(&[-f64::NAN], &[], b"");
        assert!(judge(&s, &c, &a, &b).is_empty());
        // NULL vs a buffer.
        let mut b = mk(&[1.0, 2.0, 3.0, 4.0], &[1, 2, 3, 4], b"abc\0xyz");
        b.outputs[2] = Value::Null;
        let a = mk(&[1.0, 2.0, 3.0, 4.0], &[1, 2, 3, 4], b"abc\0xyz");
        let d = judge(&s, &c, &a, &b);
        assert_eq!(paths(&d), ["raw"]);
        assert_eq!(d[0].shadow, json!(null));
        assert_eq!(d[0].primary["len"], json!(4));
    }

    #[test]
    fn judge_struct_buffers() {
        let pt = point();
        let s = sig(
            Type::Void,
            Role::Value,
            vec![
                param(
                    "pts",
                    ptr(Type::Struct(pt.clone())),
                    Role::Buffer {
                        dir: Dir::InOut,
                        elem: Type::Struct(pt.clone()),
                        count: Expr::Param(1),
                        written: None,
                        string: false,
                        scalar_out: false,
                    },
                ),
                param("n", sc(Scalar::I32), Role::Value),
                param(
                    "one",
                    ptr(Type::Struct(pt.clone())),
                    buf_role(Dir::InOut, Type::Struct(pt.clone()), 1),
                ),
            ],
        );
        let elem = Type::Struct(pt.clone());
        let mk = |pts: Vec<Vec<u8>>, one: Vec<u8>| {
            outcome(
                Value::None,
                vec![
                    Value::Buf {
                        elem: elem.clone(),
                        bytes: pts.concat(),
                    },
                    Value::None,
                    Value::Buf {
                        elem: elem.clone(),
                        bytes: one,
                    },
                ],
            )
        };
        let c = Comparator::default();
        let a = mk(
            vec![
                point_bytes(1.0, 2.0, 3, 0x1000, 0x2000),
                point_bytes(4.0, 5.0, 6, 1, 2),
            ],
            point_bytes(1.0, 1.0, 1, 1, 1),
        );
        // Private fields, pointer fields and padding differ: no diff.
        let mut pad = point_bytes(1.0, 1.0, 1, 99, 98);
        pad[20] = 0;
        let b = mk(
            vec![
                point_bytes(1.0, 2.0, 3, 0x5000, 0x6000),
                point_bytes(4.0, 5.0, 6, 7, 8),
            ],
            pad,
        );
        assert!(judge(&s, &c, &a, &b).is_empty());
        // Field diffs of the first differing element only; single element without [0].
        let b = mk(
            vec![
                point_bytes(1.0, 2.0, 3, 0, 0),
                point_bytes(4.0, 5.5, 7, 1, 2),
            ],
            point_bytes(1.0, 1.0, 2, 1, 1),
        );
        let d = judge(&s, &c, &a, &b);
        assert_eq!(paths(&d), ["pts[1].y", "pts[1].tag", "one.tag"]);
        assert_eq!(d[0].primary, json!(5.0));
        assert_eq!(d[0].shadow, json!(5.5));
        assert_eq!(d[1].primary, json!(6));
        assert_eq!(d[1].shadow, json!(7));
        // Float rule applies to float fields only.
        let mut c2 = Comparator::default();
        c2.func.float = Some(Spec::Ignore);
        let d = judge(&s, &c2, &a, &b);
        assert_eq!(paths(&d), ["pts[1].tag", "one.tag"]);
    }

    #[test]
    fn judge_struct_values() {
        // struct stream { double x; double y; int tag; void *priv [private]; char *p; } by pointer,
        // captured field by field.
        let pt = point();
        let s = sig(
            sc(Scalar::I32),
            Role::Value,
            vec![param(
                "st",
                ptr(Type::Struct(pt.clone())),
                buf_role(Dir::InOut, Type::Struct(pt.clone()), 1),
            )],
        );
        let mk = |x: f64, tag: i64, p: Value| {
            outcome(
                Value::Int(Scalar::I32, 0),
                vec![Value::Struct(vec![
                    Value::F64(x),
                    Value::F64(0.0),
                    Value::Int(Scalar::I32, tag),
                    Value::Opaque(7),
                    p,
                ])],
            )
        };
        let c = Comparator::default();
        let a = mk(1.0, 2, Value::Str(b"hi".to_vec()));
        assert!(judge(&s, &c, &a, &a).is_empty());
        let b = mk(1.5, 3, Value::Str(b"ho".to_vec()));
        let d = judge(&s, &c, &a, &b);
        // The private field (Opaque values) is never compared; the string field is.
        assert_eq!(paths(&d), ["st.x", "st.tag", "st.p"]);
        assert_eq!(d[2].primary, json!("hi"));
        // NULL vs string in a field.
        let b = mk(1.0, 2, Value::Null);
        assert_eq!(paths(&judge(&s, &c, &a, &b)), ["st.p"]);
    }
}
