//! Verdict records and summaries (CONFIG.md, "Verdict records (the report)"):
//! how captured values are written as JSON, one record per line, the
//! per-signature cap, and the summary line.
//!
//! Every line goes to the file with one `write(2)` of the whole line,
//! newline included, on a file opened with `O_APPEND`: a crash never leaves
//! half a line behind (at worst the last line is missing), and readers
//! ([`read_report`]) ignore a last line without its newline.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::compare::{single_element_role, until_nul, Diff, Outcome};
use crate::types::{Role, Scalar, Signature, Type};
use crate::value::Value;

/// Bytes of a buffer shown as `head` in its JSON form.
pub const HEAD_BYTES: usize = 64;

// ---------------------------------------------------------------------------
// Values as JSON
// ---------------------------------------------------------------------------

fn hex(bytes: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(D[(b >> 4) as usize] as char);
        s.push(D[(b & 15) as usize] as char);
    }
    s
}

/// A float as JSON: a number when finite, else `"NaN"`, `"inf"` or `"-inf"`.
fn float_json(v: f64) -> Json {
    if v.is_nan() {
        Json::from("NaN")
    } else if v.is_infinite() {
        Json::from(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
    }
}

/// A `float` as JSON, written with its own shortest decimal form (`0.1`,
/// not `0.10000000149011612`).
fn f32_json(v: f32) -> Json {
    if !v.is_finite() {
        return float_json(v as f64);
    }
    let shortest: f64 = v.to_string().parse().unwrap_or(v as f64);
    float_json(shortest)
}

/// A byte string as JSON: a string when it is UTF-8, otherwise
/// `{"str": <lossy, with replacement characters>, "hex": <hex of the bytes>}`.
pub fn bytes_json(b: &[u8]) -> Json {
    match std::str::from_utf8(b) {
        Ok(s) => Json::from(s),
        Err(_) => {
            let mut m = Map::new();
            m.insert(
                "str".into(),
                Json::from(String::from_utf8_lossy(b).into_owned()),
            );
            m.insert("hex".into(), Json::from(hex(b)));
            Json::Object(m)
        }
    }
}

/// The JSON form of a buffer: `{"len": <elements>, "sha256": <hex>, "head":
/// <hex of the first 64 bytes>}`.
pub fn buffer_json(elem: &Type, bytes: &[u8]) -> Json {
    let len = bytes.len() / elem.size().max(1);
    let mut m = Map::new();
    m.insert("len".into(), Json::from(len as u64));
    m.insert("sha256".into(), Json::from(hex(&Sha256::digest(bytes))));
    m.insert(
        "head".into(),
        Json::from(hex(&bytes[..bytes.len().min(HEAD_BYTES)])),
    );
    Json::Object(m)
}

/// The JSON form of a captured value, as verdict records write it.
///
/// Integers are exact JSON numbers (`bool` as `true`/`false`); floats are
/// numbers, or `"NaN"`, `"inf"`, `"-inf"`; strings per [`bytes_json`];
/// buffers per [`buffer_json`]; `Null` and `None` are `null`; an opaque
/// pointer is a `"0x…"` string. A struct, without its declaration at hand, is
/// an array of its fields' forms in declaration order (use
/// [`value_json_typed`] to get an object by field name).
pub fn value_json(v: &Value) -> Json {
    match v {
        Value::Null | Value::None => Json::Null,
        Value::Int(Scalar::Bool, x) => Json::Bool(*x != 0),
        Value::UInt(Scalar::Bool, x) => Json::Bool(*x != 0),
        Value::Int(_, x) => Json::from(*x),
        Value::UInt(_, x) => Json::from(*x),
        Value::F32(x) => f32_json(*x),
        Value::F64(x) => float_json(*x),
        Value::Opaque(p) => Json::from(format!("{p:#x}")),
        Value::Str(b) => bytes_json(b),
        Value::Buf { elem, bytes } => buffer_json(elem, bytes),
        Value::Struct(fs) => Json::Array(fs.iter().map(value_json).collect()),
    }
}

/// The JSON form of one element of type `elem` held in `bytes` (raw, little
/// endian): a scalar per [`value_json`], a struct as an object by field name.
/// Inside a struct element, fields that are `[private]`, `[opaque]`, `[null]`
/// or pointers are left out (pointers are not dereferenced inside buffers);
/// an inline array field is a JSON array. `null` when `bytes` is too short.
pub fn element_json(elem: &Type, bytes: &[u8]) -> Json {
    if bytes.len() < elem.size() {
        return Json::Null;
    }
    match elem {
        Type::Scalar(s) => value_json(&Value::scalar_from_bytes(*s, bytes)),
        Type::Struct(def) => {
            let mut m = Map::new();
            for f in &def.fields {
                if matches!(
                    f.role,
                    Role::Private
                        | Role::Opaque
                        | Role::Null
                        | Role::Handle { .. }
                        | Role::HandleOut { .. }
                ) || !matches!(f.ty, Type::Scalar(_) | Type::Struct(_))
                {
                    continue;
                }
                let fs = f.ty.size();
                let v = match f.role {
                    Role::Array { len } => {
                        let mut items = Vec::with_capacity(len);
                        for k in 0..len {
                            let o = f.offset + k * fs;
                            items.push(match bytes.get(o..o + fs) {
                                Some(b) => element_json(&f.ty, b),
                                None => Json::Null,
                            });
                        }
                        Json::Array(items)
                    }
                    _ => match bytes.get(f.offset..f.offset + fs) {
                        Some(b) => element_json(&f.ty, b),
                        None => Json::Null,
                    },
                };
                m.insert(f.name.clone(), v);
            }
            Json::Object(m)
        }
        _ => Json::Null,
    }
}

/// The JSON form of a value whose declared type is known: a [`Value::Struct`]
/// of a `struct S` (or `struct S *`) becomes an object by field name (fields
/// captured as [`Value::None`], i.e. private or opaque ones, are left out);
/// everything else is [`value_json`].
pub fn value_json_typed(v: &Value, ty: &Type) -> Json {
    let def = match ty {
        Type::Struct(d) => Some(d),
        Type::Pointer { pointee, .. } => match &**pointee {
            Type::Struct(d) => Some(d),
            _ => None,
        },
        _ => None,
    };
    match (v, def) {
        (Value::Struct(fs), Some(def)) => {
            let mut m = Map::new();
            for (i, fv) in fs.iter().enumerate() {
                if matches!(fv, Value::None) {
                    continue;
                }
                match def.fields.get(i) {
                    Some(f) => {
                        m.insert(f.name.clone(), slot_json(fv, &f.ty, &f.role));
                    }
                    None => {
                        m.insert(i.to_string(), value_json(fv));
                    }
                }
            }
            Json::Object(m)
        }
        _ => value_json(v),
    }
}

/// The JSON form of a value in a slot (return value, parameter or struct
/// field) with its declared type and role: an out-scalar or `[inout 1]`
/// pointer that holds exactly one element is written as that element, an
/// `[out N; string]` buffer as the string before its NUL, a struct as an
/// object by field name; otherwise [`value_json`].
pub fn slot_json(v: &Value, ty: &Type, role: &Role) -> Json {
    match v {
        Value::Buf { elem, bytes } => {
            if let Role::Buffer { string: true, .. } = role {
                return bytes_json(until_nul(bytes));
            }
            if matches!(role, Role::Value)
                && matches!(ty, Type::Struct(_))
                && bytes.len() == ty.size()
            {
                return element_json(ty, bytes);
            }
            if single_element_role(role) && !bytes.is_empty() && bytes.len() == elem.size() {
                return element_json(elem, bytes);
            }
            value_json(v)
        }
        Value::Struct(_) => {
            let ty = match (ty, role) {
                (Type::Struct(_) | Type::Pointer { .. }, _) => ty,
                (_, Role::Buffer { elem, .. }) => elem,
                _ => ty,
            };
            value_json_typed(v, ty)
        }
        _ => value_json(v),
    }
}

/// The `args` object of a record: every parameter by name, in the form of
/// [`slot_json`] (`[opaque]` pointers as `"0x…"`, NULL as `null`).
pub fn args_json(sig: &Signature, args: &[Value]) -> Map<String, Json> {
    let mut m = Map::new();
    for (p, v) in sig.params.iter().zip(args) {
        if matches!(v, Value::None) {
            continue;
        }
        m.insert(p.name.clone(), slot_json(v, &p.ty, &p.role));
    }
    m
}

/// The `primary` / `shadow` object of a record: `ret` (unless `void`), each
/// parameter's output that was captured (not [`Value::None`]), and `errno`
/// when it was captured.
pub fn outcome_json(sig: &Signature, o: &Outcome) -> Map<String, Json> {
    let mut m = Map::new();
    if sig.ret != Type::Void {
        m.insert("ret".into(), slot_json(&o.ret, &sig.ret, &sig.ret_role));
    }
    for (p, v) in sig.params.iter().zip(&o.outputs) {
        if matches!(v, Value::None) {
            continue;
        }
        m.insert(p.name.clone(), slot_json(v, &p.ty, &p.role));
    }
    if let Some(e) = o.errno {
        m.insert("errno".into(), Json::from(e));
    }
    if let Some(e) = &o.exception {
        m.insert("exception".into(), e.json());
    }
    if let Some(out) = o.outgoing.as_ref().filter(|v| !v.is_empty()) {
        m.insert(
            "outgoing".into(),
            Json::Array(out.iter().map(crate::compare::Outgoing::json).collect()),
        );
    }
    m
}

// ---------------------------------------------------------------------------
// Verdicts and counters
// ---------------------------------------------------------------------------

/// The arbiter's judgement of one invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// The outcomes are equal under the comparator.
    Match,
    /// They differ (the record lists the diffs).
    Mismatch,
    /// The shadow crashed, threw, or exited.
    ShadowFault,
    /// The shadow ran longer than `timeout_ms`.
    ShadowTimeout,
    /// The queue was full: not mirrored, counted.
    Dropped,
    /// Mirroring was impossible (e.g. a handle the shadow never saw).
    Unmirrored,
    /// Not mirrored by decision (sampling, `mode: off`, mirroring stopped).
    Skipped,
}

impl Verdict {
    /// Every verdict, in the order the summary lists them.
    pub const ALL: [Verdict; 7] = [
        Verdict::Match,
        Verdict::Mismatch,
        Verdict::ShadowFault,
        Verdict::ShadowTimeout,
        Verdict::Dropped,
        Verdict::Unmirrored,
        Verdict::Skipped,
    ];

    /// The name written in reports: `match`, `mismatch`, `shadow_fault`,
    /// `shadow_timeout`, `dropped`, `unmirrored`, `skipped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::Mismatch => "mismatch",
            Verdict::ShadowFault => "shadow_fault",
            Verdict::ShadowTimeout => "shadow_timeout",
            Verdict::Dropped => "dropped",
            Verdict::Unmirrored => "unmirrored",
            Verdict::Skipped => "skipped",
        }
    }

    /// The verdict a report name stands for (inverse of [`Verdict::as_str`]).
    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether a verdict of this kind gets a record (mismatches and shadow
    /// faults and timeouts); the others are only counted.
    pub fn is_recorded(self) -> bool {
        matches!(
            self,
            Verdict::Mismatch | Verdict::ShadowFault | Verdict::ShadowTimeout
        )
    }
}

/// Per-function totals of the summary line.
///
/// `calls = mirrored + dropped + skipped` and
/// `matched + mismatch + shadow_fault + shadow_timeout + unmirrored = mirrored`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Every call the application made through the boundary.
    pub calls: u64,
    /// Calls handed to the shadow.
    pub mirrored: u64,
    /// `match` verdicts.
    pub matched: u64,
    /// `mismatch` verdicts.
    pub mismatch: u64,
    /// `shadow_fault` verdicts.
    pub shadow_fault: u64,
    /// `shadow_timeout` verdicts.
    pub shadow_timeout: u64,
    /// Calls not mirrored because the queue was full.
    pub dropped: u64,
    /// Mirrored calls the shadow could not run faithfully.
    pub unmirrored: u64,
    /// Calls not mirrored by decision.
    pub skipped: u64,
}

impl Counters {
    /// The keys of the JSON form, in the order they are written.
    pub const KEYS: [&'static str; 9] = [
        "calls",
        "mirrored",
        "match",
        "mismatch",
        "shadow_fault",
        "shadow_timeout",
        "dropped",
        "unmirrored",
        "skipped",
    ];

    fn values(&self) -> [u64; 9] {
        [
            self.calls,
            self.mirrored,
            self.matched,
            self.mismatch,
            self.shadow_fault,
            self.shadow_timeout,
            self.dropped,
            self.unmirrored,
            self.skipped,
        ]
    }

    /// The JSON text of the counters, keys in the order of [`Counters::KEYS`]:
    /// `{"calls":100,"mirrored":100,"match":97,…,"skipped":0}`.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in Self::KEYS.iter().zip(self.values()).enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push('"');
            s.push_str(k);
            s.push_str("\":");
            s.push_str(&v.to_string());
        }
        s.push('}');
        s
    }

    /// Reads counters back from their JSON form (missing keys count 0).
    pub fn from_json(v: &Json) -> Counters {
        let g = |k: &str| v.get(k).and_then(Json::as_u64).unwrap_or(0);
        Counters {
            calls: g("calls"),
            mirrored: g("mirrored"),
            matched: g("match"),
            mismatch: g("mismatch"),
            shadow_fault: g("shadow_fault"),
            shadow_timeout: g("shadow_timeout"),
            dropped: g("dropped"),
            unmirrored: g("unmirrored"),
            skipped: g("skipped"),
        }
    }

    /// Counts one verdict: `calls` always; `mirrored` too for the verdicts
    /// of mirrored calls; and the verdict's own counter.
    pub fn count(&mut self, v: Verdict) {
        self.calls += 1;
        match v {
            Verdict::Dropped => self.dropped += 1,
            Verdict::Skipped => self.skipped += 1,
            _ => {
                self.mirrored += 1;
                match v {
                    Verdict::Match => self.matched += 1,
                    Verdict::Mismatch => self.mismatch += 1,
                    Verdict::ShadowFault => self.shadow_fault += 1,
                    Verdict::ShadowTimeout => self.shadow_timeout += 1,
                    _ => self.unmirrored += 1,
                }
            }
        }
    }

    /// Adds another set of counters to this one.
    pub fn add(&mut self, o: &Counters) {
        self.calls += o.calls;
        self.mirrored += o.mirrored;
        self.matched += o.matched;
        self.mismatch += o.mismatch;
        self.shadow_fault += o.shadow_fault;
        self.shadow_timeout += o.shadow_timeout;
        self.dropped += o.dropped;
        self.unmirrored += o.unmirrored;
        self.skipped += o.skipped;
    }
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// One verdict record (one line of the report).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The call's number among the process's intercepted calls.
    pub seq: u64,
    /// When the verdict was reached.
    pub time: SystemTime,
    /// Process id.
    pub pid: u32,
    /// Thread id of the calling thread.
    pub tid: u32,
    /// The function (C++: its declaration as written in the config).
    pub function: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The arguments, by parameter name.
    pub args: Map<String, Json>,
    /// The primary's outcome (`ret`, outputs by parameter name, `errno`).
    pub primary: Map<String, Json>,
    /// The shadow's outcome.
    pub shadow: Map<String, Json>,
    /// The differences (mismatches).
    pub diffs: Vec<Diff>,
    /// Where the call came from (`calc-app+0x1189`), when known.
    pub caller: Option<String>,
    /// More keys written after `verdict` (`"fault"`, `"at"`, `"exception"`,
    /// `"status"`, …); keys that clash with the fixed ones are left out.
    pub extra: Map<String, Json>,
}

const FIXED_KEYS: [&str; 11] = [
    "seq", "time", "pid", "tid", "function", "verdict", "args", "primary", "shadow", "diffs",
    "caller",
];

fn push_key(out: &mut String, k: &str, v: &Json) {
    out.push(',');
    out.push_str(&Json::from(k).to_string());
    out.push(':');
    out.push_str(&v.to_string());
}

impl Record {
    /// The record as one JSON line (with its `'\n'`), keys in the order
    /// seq, time, pid, tid, function, verdict, the extra keys, args, primary,
    /// shadow, diffs, caller. `time` is RFC 3339 UTC with microseconds.
    pub fn to_line(&self) -> String {
        let mut s = String::with_capacity(256);
        s.push_str("{\"seq\":");
        s.push_str(&self.seq.to_string());
        s.push_str(",\"time\":\"");
        s.push_str(&humantime::format_rfc3339_micros(self.time).to_string());
        s.push('"');
        push_key(&mut s, "pid", &Json::from(self.pid));
        push_key(&mut s, "tid", &Json::from(self.tid));
        push_key(&mut s, "function", &Json::from(self.function.as_str()));
        push_key(&mut s, "verdict", &Json::from(self.verdict.as_str()));
        for (k, v) in &self.extra {
            if !FIXED_KEYS.contains(&k.as_str()) {
                push_key(&mut s, k, v);
            }
        }
        push_key(&mut s, "args", &Json::Object(self.args.clone()));
        push_key(&mut s, "primary", &Json::Object(self.primary.clone()));
        push_key(&mut s, "shadow", &Json::Object(self.shadow.clone()));
        s.push_str(",\"diffs\":[");
        for (i, d) in self.diffs.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str("{\"path\":");
            s.push_str(&Json::from(d.path.as_str()).to_string());
            push_key(&mut s, "primary", &d.primary);
            push_key(&mut s, "shadow", &d.shadow);
            s.push('}');
        }
        s.push(']');
        push_key(
            &mut s,
            "caller",
            &self.caller.as_deref().map_or(Json::Null, Json::from),
        );
        s.push_str("}\n");
        s
    }
}

/// A diff path with buffer indexes normalised (`buf[17].x` → `buf[].x`).
pub fn normalise_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        if in_index {
            if c == ']' {
                out.push(']');
                in_index = false;
            }
        } else {
            out.push(c);
            if c == '[' {
                in_index = true;
            }
        }
    }
    out
}

/// The summary line (with its `'\n'`): `{"summary":{"fn":{…counters…},…}}`,
/// functions in the given order.
pub fn summary_line(per_function: &[(String, Counters)]) -> String {
    let mut s = String::from("{\"summary\":{");
    for (i, (name, c)) in per_function.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&Json::from(name.as_str()).to_string());
        s.push(':');
        s.push_str(&c.to_json());
    }
    s.push_str("}}\n");
    s
}

// ---------------------------------------------------------------------------
// The writer
// ---------------------------------------------------------------------------

/// The cap key of a record: function, verdict, sorted normalised diff paths.
type CapKey = (String, Verdict, Vec<String>);

/// Owns the report file and writes records and summaries to it, one
/// `write(2)` per line, applying `records_per_signature`.
#[derive(Debug)]
pub struct ReportWriter {
    path: PathBuf,
    cap: u32,
    seen: HashMap<CapKey, u32>,
    suppressed: u64,
    errors: u64,
}

impl ReportWriter {
    /// Creates the report at `path` (its folder must exist), or appends to
    /// it: a process that `exec`s keeps its pid and its report path, and
    /// the report written before the exec must stand (readers take the last
    /// summary line). Every line is appended with `O_APPEND`. At most `records_per_signature` records are
    /// written per (function, verdict, differing paths).
    pub fn create(path: &Path, records_per_signature: u32) -> std::io::Result<ReportWriter> {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        Ok(ReportWriter {
            path: path.to_path_buf(),
            cap: records_per_signature,
            seen: HashMap::new(),
            suppressed: 0,
            errors: 0,
        })
    }

    /// The report's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that were not written because of the cap.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }

    /// Lines that could not be written (I/O errors).
    pub fn io_errors(&self) -> u64 {
        self.errors
    }

    /// Writes one line with a single `write(2)` (retried only for the
    /// remainder of a short write or after `EINTR`).
    fn write_line(&mut self, line: &str) -> bool {
        // The file is opened for each line rather than kept open: an
        // application may close every descriptor it did not open itself
        // (daemons do), and a descriptor number DDL kept could then be
        // reused for the application's own file.
        let r = std::fs::OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&self.path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        match r {
            Ok(()) => true,
            Err(_) => {
                self.errors += 1;
                false
            }
        }
    }

    /// Writes a record unless its (function, verdict, sorted diff paths with
    /// `[i]` as `[]`) already has `records_per_signature` records; returns
    /// whether it was written.
    pub fn record(&mut self, r: &Record) -> bool {
        let mut paths: Vec<String> = r.diffs.iter().map(|d| normalise_path(&d.path)).collect();
        paths.sort();
        paths.dedup();
        let key = (r.function.clone(), r.verdict, paths);
        let n = self.seen.entry(key).or_insert(0);
        if *n >= self.cap {
            self.suppressed += 1;
            return false;
        }
        *n += 1;
        self.write_line(&r.to_line())
    }

    /// Writes an event line: `{"event": "mirroring_stopped", "time": …,
    /// "pid": …, "seq": <last sequence number>, "reason": …}`. Readers of
    /// verdict records skip lines with an `event` key.
    pub fn event(&mut self, seq: u64, pid: u32, event: &str, reason: &str) {
        let line = serde_json::json!({
            "event": event,
            "time": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            "pid": pid,
            "seq": seq,
            "reason": reason,
        });
        self.write_line(&format!("{line}\n"));
    }

    /// Writes a summary line `{"summary": {"fn": {…}, …}}` (functions in the
    /// given order). Readers take the last one.
    pub fn summary(&mut self, per_function: &[(String, Counters)]) {
        let line = summary_line(per_function);
        self.write_line(&line);
    }
}

/// Reads a report: the verdict records (every line that is a JSON object
/// without a `summary` key) and the object of the last summary line (the
/// value of its `summary` key). A last line without its newline (a write cut
/// short) and lines that are not JSON are ignored.
pub fn read_report(path: &Path) -> std::io::Result<(Vec<Json>, Option<Json>)> {
    let data = std::fs::read(path)?;
    let complete = match data.iter().rposition(|&b| b == b'\n') {
        Some(i) => &data[..=i],
        None => &data[..0],
    };
    let mut records = Vec::new();
    let mut summary = None;
    for line in complete.split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let Ok(Json::Object(mut m)) = serde_json::from_slice::<Json>(line) else {
            continue;
        };
        if let Some(s) = m.remove("summary") {
            summary = Some(s);
        } else if m.contains_key("event") {
            continue;
        } else {
            records.push(Json::Object(m));
        }
    }
    Ok((records, summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Dir, Expr, Field, Param, StructDef};
    use serde_json::json;
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ddl-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join(name)
    }

    fn pair() -> Arc<StructDef> {
        Arc::new(StructDef {
            name: "pair".into(),
            fields: vec![
                Field {
                    name: "a".into(),
                    ty: Type::Scalar(Scalar::I32),
                    offset: 0,
                    role: Role::Value,
                },
                Field {
                    name: "ok".into(),
                    ty: Type::Scalar(Scalar::Bool),
                    offset: 4,
                    role: Role::Value,
                },
                Field {
                    name: "v".into(),
                    ty: Type::Scalar(Scalar::U16),
                    offset: 6,
                    role: Role::Array { len: 2 },
                },
                Field {
                    name: "state".into(),
                    ty: Type::Pointer {
                        pointee: Box::new(Type::Void),
                        is_const: false,
                    },
                    offset: 16,
                    role: Role::Private,
                },
                Field {
                    name: "d".into(),
                    ty: Type::Scalar(Scalar::F32),
                    offset: 24,
                    role: Role::Value,
                },
            ],
            size: 32,
            align: 8,
        })
    }

    #[test]
    fn scalar_forms() {
        assert_eq!(
            value_json(&Value::Int(Scalar::I64, i64::MIN)),
            json!(i64::MIN)
        );
        assert_eq!(
            value_json(&Value::UInt(Scalar::U64, u64::MAX)),
            json!(u64::MAX)
        );
        assert_eq!(
            value_json(&Value::UInt(Scalar::U64, u64::MAX)).to_string(),
            "18446744073709551615"
        );
        assert_eq!(value_json(&Value::UInt(Scalar::Bool, 1)), json!(true));
        assert_eq!(value_json(&Value::Int(Scalar::Bool, 0)), json!(false));
        assert_eq!(value_json(&Value::F64(1.5)), json!(1.5));
        assert_eq!(value_json(&Value::F32(0.1)).to_string(), "0.1");
        assert_eq!(value_json(&Value::F64(f64::NAN)), json!("NaN"));
        assert_eq!(value_json(&Value::F64(f64::INFINITY)), json!("inf"));
        assert_eq!(value_json(&Value::F32(f32::NEG_INFINITY)), json!("-inf"));
        assert_eq!(value_json(&Value::Null), json!(null));
        assert_eq!(value_json(&Value::None), json!(null));
        assert_eq!(value_json(&Value::Opaque(0xdead)), json!("0xdead"));
    }

    #[test]
    fn string_forms() {
        assert_eq!(value_json(&Value::Str(b"h\xc3\xa9".to_vec())), json!("hé"));
        assert_eq!(
            value_json(&Value::Str(b"a\xffb".to_vec())),
            json!({"str": "a\u{fffd}b", "hex": "61ff62"})
        );
    }

    #[test]
    fn buffer_forms() {
        let bytes: Vec<u8> = (0..100u8).collect();
        let v = value_json(&Value::Buf {
            elem: Type::Scalar(Scalar::U32),
            bytes: bytes.clone(),
        });
        assert_eq!(v["len"], json!(25));
        assert_eq!(v["head"].as_str().unwrap().len(), 128);
        assert!(v["head"].as_str().unwrap().starts_with("00010203"));
        assert_eq!(v["sha256"].as_str().unwrap(), hex(&Sha256::digest(&bytes)));
        let e = value_json(&Value::Buf {
            elem: Type::Scalar(Scalar::U8),
            bytes: vec![],
        });
        assert_eq!(
            e,
            json!({"len": 0, "head": "",
                   "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"})
        );
    }

    #[test]
    fn element_and_struct_forms() {
        let p = pair();
        let mut b = vec![0u8; 32];
        b[0..4].copy_from_slice(&(-5i32).to_le_bytes());
        b[4] = 1;
        b[6..8].copy_from_slice(&7u16.to_le_bytes());
        b[8..10].copy_from_slice(&9u16.to_le_bytes());
        b[16..24].copy_from_slice(&0x1234u64.to_le_bytes());
        b[24..28].copy_from_slice(&2.5f32.to_le_bytes());
        let ty = Type::Struct(p.clone());
        assert_eq!(
            element_json(&ty, &b),
            json!({"a": -5, "ok": true, "v": [7, 9], "d": 2.5})
        );
        assert_eq!(element_json(&ty, &b[..10]), json!(null));
        assert_eq!(
            element_json(&Type::Scalar(Scalar::F64), &f64::NAN.to_le_bytes()),
            json!("NaN")
        );
        let sv = Value::Struct(vec![
            Value::Int(Scalar::I32, 1),
            Value::UInt(Scalar::Bool, 0),
            Value::Buf {
                elem: Type::Scalar(Scalar::U16),
                bytes: vec![1, 0, 2, 0],
            },
            Value::None,
            Value::F32(1.0),
        ]);
        assert_eq!(
            value_json_typed(&sv, &ty),
            json!({"a": 1, "ok": false, "v": {"len": 2, "head": "01000200",
                   "sha256": hex(&Sha256::digest([1u8, 0, 2, 0]))}, "d": 1.0})
        );
        let pty = Type::Pointer {
            pointee: Box::new(ty.clone()),
            is_const: false,
        };
        assert_eq!(value_json_typed(&sv, &pty)["a"], json!(1));
        assert_eq!(value_json(&sv)[0], json!(1));
        assert_eq!(
            value_json_typed(&Value::Int(Scalar::I32, 3), &Type::Scalar(Scalar::I32)),
            json!(3)
        );
    }

    #[test]
    fn slot_and_outcome_forms() {
        let out1 = Role::Buffer {
            dir: Dir::Out,
            elem: Type::Scalar(Scalar::F64),
            count: Expr::Int(1),
            written: None,
            string: false,
            scalar_out: true,
        };
        let strbuf = Role::Buffer {
            dir: Dir::Out,
            elem: Type::Scalar(Scalar::I8),
            count: Expr::Int(8),
            written: None,
            string: true,
            scalar_out: false,
        };
        let dptr = Type::Pointer {
            pointee: Box::new(Type::Scalar(Scalar::F64)),
            is_const: false,
        };
        let cptr = Type::Pointer {
            pointee: Box::new(Type::Scalar(Scalar::I8)),
            is_const: false,
        };
        let sig = Signature {
            name: "f".into(),
            ret: Type::Scalar(Scalar::I32),
            ret_role: Role::Value,
            params: vec![
                Param {
                    name: "x".into(),
                    ty: Type::Scalar(Scalar::I32),
                    role: Role::Value,
                    handle: None,
                },
                Param {
                    name: "out".into(),
                    ty: dptr,
                    role: out1,
                    handle: None,
                },
                Param {
                    name: "name".into(),
                    ty: cptr,
                    role: strbuf,
                    handle: None,
                },
            ],
            text: "int f(int x, double *out, char *name)".into(),
            effect: Default::default(),
        };
        let o = Outcome {
            ret: Value::Int(Scalar::I32, 0),
            outputs: vec![
                Value::None,
                Value::Buf {
                    elem: Type::Scalar(Scalar::F64),
                    bytes: 2.5f64.to_le_bytes().to_vec(),
                },
                Value::Buf {
                    elem: Type::Scalar(Scalar::I8),
                    bytes: b"ok\0junk".to_vec(),
                },
            ],
            errno: Some(2),
            exception: None,
            outgoing: None,
        };
        assert_eq!(
            Json::Object(outcome_json(&sig, &o)),
            json!({"ret": 0, "out": 2.5, "name": "ok", "errno": 2})
        );
        let args = vec![Value::Int(Scalar::I32, 4), Value::Opaque(0x10), Value::Null];
        assert_eq!(
            Json::Object(args_json(&sig, &args)),
            json!({"x": 4, "out": "0x10", "name": null})
        );
    }

    #[test]
    fn verdicts_and_counters() {
        for v in Verdict::ALL {
            assert_eq!(Verdict::parse(v.as_str()), Some(v));
        }
        assert_eq!(Verdict::ShadowTimeout.as_str(), "shadow_timeout");
        assert!(Verdict::ShadowFault.is_recorded());
        assert!(!Verdict::Unmirrored.is_recorded());
        let mut c = Counters::default();
        for v in Verdict::ALL {
            c.count(v);
        }
        assert_eq!(c.calls, 7);
        assert_eq!(c.mirrored, 5);
        assert_eq!(c.calls, c.mirrored + c.dropped + c.skipped);
        assert_eq!(
            c.matched + c.mismatch + c.shadow_fault + c.shadow_timeout + c.unmirrored,
            c.mirrored
        );
        assert_eq!(
            c.to_json(),
            r#"{"calls":7,"mirrored":5,"match":1,"mismatch":1,"shadow_fault":1,"shadow_timeout":1,"dropped":1,"unmirrored":1,"skipped":1}"#
        );
        let back = Counters::from_json(&serde_json::from_str(&c.to_json()).unwrap());
        assert_eq!(back, c);
        let mut d = Counters::default();
        d.add(&c);
        d.add(&c);
        assert_eq!(d.calls, 14);
    }

    fn rec(seq: u64, function: &str, verdict: Verdict, paths: &[&str]) -> Record {
        Record {
            seq,
            time: UNIX_EPOCH + Duration::from_micros(1_795_305_001_123_456),
            pid: 4242,
            tid: 4243,
            function: function.into(),
            verdict,
            args: json!({"a": 7, "b": 0}).as_object().unwrap().clone(),
            primary: json!({"ret": 0}).as_object().unwrap().clone(),
            shadow: json!({"ret": -1}).as_object().unwrap().clone(),
            diffs: paths
                .iter()
                .map(|p| Diff {
                    path: p.to_string(),
                    primary: json!(0),
                    shadow: json!(-1),
                })
                .collect(),
            caller: Some("calc-app+0x1189".into()),
            extra: Map::new(),
        }
    }

    #[test]
    fn record_line_order() {
        let r = rec(17, "calc_div", Verdict::Mismatch, &["ret"]);
        assert_eq!(
            r.to_line(),
            "{\"seq\":17,\"time\":\"2026-11-21T23:50:01.123456Z\",\"pid\":4242,\"tid\":4243,\
             \"function\":\"calc_div\",\"verdict\":\"mismatch\",\"args\":{\"a\":7,\"b\":0},\
             \"primary\":{\"ret\":0},\"shadow\":{\"ret\":-1},\
             \"diffs\":[{\"path\":\"ret\",\"primary\":0,\"shadow\":-1}],\
             \"caller\":\"calc-app+0x1189\"}\n"
        );
        let mut f = rec(3, "calc_div", Verdict::ShadowFault, &[]);
        f.extra.insert("fault".into(), json!("SIGSEGV"));
        f.extra.insert("at".into(), json!("libcalc.so.1+0x1234"));
        f.extra.insert("seq".into(), json!(99)); // clashes: left out
        f.caller = None;
        f.shadow = Map::new();
        let line = f.to_line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        assert!(line.contains(
            "\"verdict\":\"shadow_fault\",\"at\":\"libcalc.so.1+0x1234\",\"fault\":\"SIGSEGV\",\"args\""
        ));
        let v: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(v["seq"], json!(3));
        assert_eq!(v["caller"], json!(null));
        assert_eq!(v["shadow"], json!({}));
        assert_eq!(v["diffs"], json!([]));
    }

    #[test]
    fn paths_normalised() {
        assert_eq!(normalise_path("buf[17].x"), "buf[].x");
        assert_eq!(normalise_path("a[1].b[22]"), "a[].b[]");
        assert_eq!(normalise_path("ret"), "ret");
    }

    #[test]
    fn writer_caps_and_summary() {
        let path = tmp("caps.jsonl");
        let mut w = ReportWriter::create(&path, 2).unwrap();
        assert_eq!(w.path(), path.as_path());
        assert!(w.record(&rec(1, "f", Verdict::Mismatch, &["buf[3]", "ret"])));
        // Same key (index and order do not matter).
        assert!(w.record(&rec(2, "f", Verdict::Mismatch, &["ret", "buf[9]"])));
        assert!(!w.record(&rec(3, "f", Verdict::Mismatch, &["buf[0]", "ret"])));
        // Other paths, verdicts, functions have their own caps.
        assert!(w.record(&rec(4, "f", Verdict::Mismatch, &["ret"])));
        assert!(w.record(&rec(5, "f", Verdict::ShadowFault, &[])));
        assert!(w.record(&rec(6, "g", Verdict::Mismatch, &["ret", "buf[3]"])));
        assert_eq!(w.suppressed(), 1);
        let mut c = Counters::default();
        c.count(Verdict::Match);
        w.summary(&[("zeta".into(), c), ("alpha".into(), Counters::default())]);
        c.count(Verdict::Mismatch);
        w.summary(&[("zeta".into(), c)]);
        assert_eq!(w.io_errors(), 0);
        drop(w);

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 7);
        assert!(lines[5].starts_with("{\"summary\":{\"zeta\":{\"calls\":1,"));
        assert!(lines[5].contains("},\"alpha\":{"));
        let (recs, sum) = read_report(&path).unwrap();
        assert_eq!(
            recs.iter()
                .map(|r| r["seq"].as_u64().unwrap())
                .collect::<Vec<_>>(),
            [1, 2, 4, 5, 6]
        );
        let sum = sum.unwrap();
        assert_eq!(sum["zeta"]["calls"], json!(2));
        assert_eq!(sum["zeta"]["mismatch"], json!(1));
        assert!(sum.get("alpha").is_none());

        // create() appends: what an earlier image of the process wrote stays.
        let before = std::fs::read(&path).unwrap().len();
        let w = ReportWriter::create(&path, 2).unwrap();
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap().len(), before);
        // A missing folder is an error.
        assert!(ReportWriter::create(&tmp("no/such/dir.jsonl"), 1).is_err());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn zero_cap_writes_nothing() {
        let path = tmp("zero.jsonl");
        let mut w = ReportWriter::create(&path, 0).unwrap();
        assert!(!w.record(&rec(1, "f", Verdict::Mismatch, &["ret"])));
        drop(w);
        assert_eq!(read_report(&path).unwrap(), (vec![], None));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn read_truncated_last_line() {
        let path = tmp("trunc.jsonl");
        let full = rec(1, "f", Verdict::Mismatch, &["ret"]).to_line();
        let sum = summary_line(&[("f".into(), Counters::default())]);
        let second = rec(2, "f", Verdict::Mismatch, &["ret"]).to_line();
        let cut = &second[..second.len() / 2];
        std::fs::write(&path, format!("{full}{sum}\n{full}{cut}")).unwrap();
        let (recs, s) = read_report(&path).unwrap();
        assert_eq!(recs.len(), 2);
        assert!(recs.iter().all(|r| r["seq"] == json!(1)));
        assert_eq!(s.unwrap()["f"]["calls"], json!(0));
        // A complete-looking last line without its newline is ignored too.
        let one = rec(9, "f", Verdict::Mismatch, &[]).to_line();
        std::fs::write(&path, format!("{full}{}", one.trim_end())).unwrap();
        assert_eq!(read_report(&path).unwrap().0.len(), 1);
        // Garbage lines are skipped.
        std::fs::write(&path, format!("not json\n{full}")).unwrap();
        assert_eq!(read_report(&path).unwrap().0.len(), 1);
        assert!(read_report(&tmp("missing.jsonl")).is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
