//! The config file (CONFIG.md): strict JSON named by `DDL_CONFIG`, checked
//! completely before anything is rebound.
//!
//! Errors point at the JSON line of the key (and, for a signature, at the
//! column inside it). serde_json gives positions only for syntax errors, so
//! the file is read as borrowed [`RawValue`]s: each one is a slice of the
//! input text, and its offset (a pointer difference) gives its line.

// `ConfigError` is the documented error type, built once on a cold path;
// boxing it would only complicate every caller.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::compare::{Comparator, CompareSet, Spec};
use crate::cxx::{self, CxxDecl, CxxKind};
use crate::signature::{parse_signature, TypeTable};
use crate::types::{Effect, Role, Signature, Type};

/// What DDL does with the boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward to old, mirror to new, compare.
    Shadow,
    /// Load nothing, rebind nothing.
    Off,
}

/// One entry of `functions`.
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    /// The parsed prototype (for a C++ declaration, its C form: `this`
    /// first, references as pointers).
    pub sig: Signature,
    /// What reports call it: the function's name, or a C++ declaration as
    /// written in the config.
    pub key: String,
    /// The C++ declaration, when the entry is one (its symbols are found
    /// among the old build's mangled names).
    pub cxx: Option<CxxDecl>,
    /// Its comparator (its own `compare` over `defaults.compare`).
    pub compare: Comparator,
    /// JSON line of this entry.
    pub line: usize,
    /// Position in `functions`.
    pub index: usize,
}

/// One entry of `handles` (CONFIG.md, "Handles").
#[derive(Clone, Debug)]
pub struct HandleSpec {
    /// The handle's C type as written (`"codec_t *"`).
    pub ty: String,
    /// Functions that create one, with the JSON line of each name.
    pub create: Vec<(String, usize)>,
    /// Functions that destroy one, with the JSON line of each name.
    pub destroy: Vec<(String, usize)>,
    /// JSON line of the entry.
    pub line: usize,
}

/// A checked config file.
#[derive(Clone, Debug)]
pub struct Config {
    /// The config file, as given (the `DDL_CONFIG` path).
    pub file: PathBuf,
    /// The old component: soname, file name or absolute path.
    pub old: String,
    /// The new build (a relative `new` is taken relative to the config file's folder).
    pub new: PathBuf,
    /// `shadow` or `off`.
    pub mode: Mode,
    /// Globs on the executable's base name; empty: every executable.
    pub attach_exe: Vec<String>,
    /// Structs and typedefs of `types`.
    pub types: TypeTable,
    /// The handle types (`handles`), in order: an index is a handle class.
    /// C++ objects have a class of their own, after these.
    pub handles: Vec<HandleSpec>,
    /// `sandbox.intercept`: more functions the new build must not really
    /// call (recorded as outgoing calls, answered 0).
    pub sandbox_intercept: Vec<String>,
    /// `classes`: sizes of C++ classes in the new build, by qualified name,
    /// for when its DWARF does not tell.
    pub classes: Vec<(String, usize)>,
    /// The boundary, in the order of `functions`.
    pub functions: Vec<FunctionSpec>,
    /// Fraction of calls mirrored (0..=1).
    pub sampling: f64,
    /// Invocations that may wait for the shadow.
    pub queue: usize,
    /// Bytes of captured data that may wait for the shadow.
    pub queue_bytes: usize,
    /// Longest a shadow call may run.
    pub timeout_ms: u64,
    /// Where verdict records go (`%p`: the pid; see [`Config::report_path`]).
    pub report: String,
    /// How often a summary line is written.
    pub summary_every_s: u64,
    /// Records kept per (function, verdict, differing paths).
    pub records_per_signature: u32,
    /// `capture`: where the capture log goes, and what of it is kept.
    pub capture: Option<CaptureSpec>,
    /// JSON line of each top-level key present in the file (for
    /// [`Config::key_error`]).
    pub key_lines: BTreeMap<String, usize>,
}

/// The config's `capture` (CONFIG.md): a path, or an object with privacy
/// options.
#[derive(Clone, Debug, PartialEq)]
pub struct CaptureSpec {
    /// Where the log goes, as written (`%p`: the pid; relative to the
    /// working directory, like `report`).
    pub path: String,
    /// Keep at most this many bytes of each buffer or string (`None`: all).
    pub max_buffer_bytes: Option<usize>,
    /// Outputs stored only as a hash: `(function index, output)`, the
    /// output being a parameter index or `None` for the return value.
    pub hash: Vec<(usize, Option<usize>)>,
}

impl CaptureSpec {
    /// The log's path for process `pid` (`%p` replaced by it).
    pub fn path_for(&self, pid: u32) -> PathBuf {
        PathBuf::from(self.path.replace("%p", &pid.to_string()))
    }
}

/// Refuses a file that someone other than its owner and root may write:
/// the config says which code runs inside the application, and the new
/// build is that code. `Err` says who can write it.
pub fn writable_by_others(path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let m = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => return Ok(()), // a missing file is someone else's error
    };
    let mode = m.mode();
    if mode & 0o002 != 0 {
        return Err(format!(
            "{} is writable by every user (mode {:o}): refused",
            path.display(),
            mode & 0o7777
        ));
    }
    if mode & 0o020 != 0 && m.gid() != 0 {
        return Err(format!(
            "{} is writable by its group (gid {}, mode {:o}): refused",
            path.display(),
            m.gid(),
            mode & 0o7777
        ));
    }
    Ok(())
}

/// A config that cannot be used, with where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file, as given.
    pub file: PathBuf,
    /// JSON line of the key (or of the syntax error).
    pub line: Option<usize>,
    /// The key: `sampling`, `functions[1]`, `functions[1].sig`, `types[0]`, …
    pub key: Option<String>,
    /// Column: inside the signature when `signature` is set, else of a JSON syntax error.
    pub column: Option<usize>,
    /// The signature or declaration text the column points into.
    pub signature: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let (Some(c), None) = (self.column, &self.signature) {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(k) = &self.key {
            write!(f, "{k}: ")?;
        }
        if let Some(s) = &self.signature {
            // One line on stderr: a multi-line prototype (`\n` in the JSON
            // string) is shown with spaces, which keeps every column in place.
            let s: String = s
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            match self.column {
                Some(c) => write!(f, "column {c} of \"{s}\": ")?,
                None => write!(f, "\"{s}\": ")?,
            }
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

type Result<T> = std::result::Result<T, ConfigError>;

const KNOWN_KEYS: &[&str] = &[
    "old",
    "new",
    "mode",
    "attach",
    "types",
    "handles",
    "functions",
    "defaults",
    "sampling",
    "queue",
    "queue_bytes",
    "timeout_ms",
    "report",
    "summary_every_s",
    "records_per_signature",
    "capture",
    "classes",
    "sandbox",
];

/// A JSON object with its members in order, values kept as raw text.
/// Duplicate keys are an error (serde_json would keep the last silently).
struct Obj<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Obj<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Obj<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Obj<'de>, A::Error> {
                let mut out: Vec<(String, &'de RawValue)> = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v: &'de RawValue = map.next_value()?;
                    if out.iter().any(|(x, _)| *x == k) {
                        return Err(de::Error::custom(format!("duplicate key \"{k}\"")));
                    }
                    out.push((k, v));
                }
                Ok(Obj(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'a> Obj<'a> {
    fn get(&self, k: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(x, _)| x == k).map(|(_, v)| *v)
    }
}

/// Parsing state: the file name and the text the raw values point into.
struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
}

fn found(raw: &RawValue) -> String {
    let s = raw.get();
    if s.chars().count() > 60 {
        let t: String = s.chars().take(57).collect();
        format!("{t}...")
    } else {
        s.to_string()
    }
}

impl<'a> Ctx<'a> {
    fn line_of(&self, raw: &RawValue) -> usize {
        let base = self.text.as_ptr() as usize;
        let p = raw.get().as_ptr() as usize;
        let off = p.saturating_sub(base).min(self.text.len());
        self.text.as_bytes()[..off]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    fn err(&self, raw: Option<&RawValue>, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: raw.map(|r| self.line_of(r)),
            key: Some(key.to_string()),
            column: None,
            signature: None,
            message: message.into(),
        }
    }

    fn json_err(&self, e: serde_json::Error) -> ConfigError {
        json_error(self.file, e)
    }

    fn obj(&self, raw: &'a RawValue, key: &str) -> Result<Obj<'a>> {
        if !raw.get().starts_with('{') {
            return Err(self.err(
                Some(raw),
                key,
                format!("expected an object, found {}", found(raw)),
            ));
        }
        serde_json::from_str::<Obj<'a>>(raw.get())
            .map_err(|e| self.err(Some(raw), key, e.to_string()))
    }

    /// Refuses a member of `o` (the object at `key`) not in `allowed`:
    /// `key.member: unknown key (<takes>)`.
    fn only_keys(&self, o: &Obj<'a>, key: &str, allowed: &[&str], takes: &str) -> Result<()> {
        match o.0.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, v)) => Err(self.err(
                Some(v),
                &format!("{key}.{k}"),
                format!("unknown key ({takes})"),
            )),
            None => Ok(()),
        }
    }

    /// `capture`: a path, or `{ "path", "max_buffer_bytes", "hash" }`.
    /// A `hash` entry is `function.output`, the output being a parameter
    /// the function writes or `return`.
    fn capture(&self, raw: &'a RawValue, functions: &[FunctionSpec]) -> Result<CaptureSpec> {
        if raw.get().starts_with('"') {
            let path = self.nonempty_string(raw, "capture")?;
            return Ok(CaptureSpec {
                path,
                max_buffer_bytes: None,
                hash: Vec::new(),
            });
        }
        let o = self.obj(raw, "capture")?;
        self.only_keys(
            &o,
            "capture",
            &["path", "max_buffer_bytes", "hash"],
            "capture takes path, max_buffer_bytes and hash",
        )?;
        let path = match o.get("path") {
            Some(v) => self.nonempty_string(v, "capture.path")?,
            None => {
                return Err(self.err(Some(raw), "capture.path", "missing (where the log goes)"))
            }
        };
        let max_buffer_bytes = match o.get("max_buffer_bytes") {
            Some(v) if v.get() != "null" => Some(self.integer(
                v,
                "capture.max_buffer_bytes",
                0,
                usize::MAX as u64,
                "a number of bytes",
            )? as usize),
            _ => None,
        };
        let mut hash = Vec::new();
        if let Some(v) = o.get("hash") {
            for (i, n) in self.arr(v, "capture.hash")?.into_iter().enumerate() {
                let key = format!("capture.hash[{i}]");
                let name = self.nonempty_string(n, &key)?;
                let Some((func, out)) = name.rsplit_once('.') else {
                    return Err(self.err(
                        Some(n),
                        &key,
                        format!("expected function.output, found \"{name}\""),
                    ));
                };
                let Some(f) = functions
                    .iter()
                    .find(|f| f.key == func || f.sig.name == func)
                else {
                    return Err(self.err(
                        Some(n),
                        &key,
                        format!("no function {func} in functions"),
                    ));
                };
                let which = if out == "return" {
                    if matches!(f.sig.ret, Type::Void) {
                        return Err(self.err(Some(n), &key, format!("{func} returns void")));
                    }
                    None
                } else {
                    let Some(p) = f.sig.params.iter().position(|p| p.name == out) else {
                        return Err(self.err(
                            Some(n),
                            &key,
                            format!("{func} has no parameter {out}"),
                        ));
                    };
                    let writes = matches!(
                        &f.sig.params[p].role,
                        Role::Buffer { dir, .. } if *dir != crate::types::Dir::In
                    );
                    if !writes {
                        return Err(self.err(
                            Some(n),
                            &key,
                            format!("{func} does not write {out}: only outputs are stored as a hash (inputs are needed to replay)"),
                        ));
                    }
                    Some(p)
                };
                hash.push((f.index, which));
            }
        }
        Ok(CaptureSpec {
            path,
            max_buffer_bytes,
            hash,
        })
    }

    fn arr(&self, raw: &'a RawValue, key: &str) -> Result<Vec<&'a RawValue>> {
        if !raw.get().starts_with('[') {
            return Err(self.err(
                Some(raw),
                key,
                format!("expected an array, found {}", found(raw)),
            ));
        }
        serde_json::from_str::<Vec<&'a RawValue>>(raw.get())
            .map_err(|e| self.err(Some(raw), key, e.to_string()))
    }

    fn string(&self, raw: &RawValue, key: &str) -> Result<String> {
        if raw.get().starts_with('"') {
            if let Ok(s) = serde_json::from_str::<String>(raw.get()) {
                return Ok(s);
            }
        }
        Err(self.err(
            Some(raw),
            key,
            format!("expected a string, found {}", found(raw)),
        ))
    }

    fn nonempty_string(&self, raw: &RawValue, key: &str) -> Result<String> {
        let s = self.string(raw, key)?;
        if s.is_empty() {
            return Err(self.err(Some(raw), key, "expected a non-empty string"));
        }
        Ok(s)
    }

    fn number(&self, raw: &RawValue) -> Option<serde_json::Number> {
        match serde_json::from_str::<serde_json::Value>(raw.get()) {
            Ok(serde_json::Value::Number(n)) => Some(n),
            _ => None,
        }
    }

    /// A whole number from `min` up; `what` describes it in the error.
    fn integer(&self, raw: &RawValue, key: &str, min: u64, max: u64, what: &str) -> Result<u64> {
        let n = self.number(raw);
        let v = n.as_ref().and_then(|n| {
            n.as_u64().or_else(|| {
                // 1e3 and 65536.0 are whole numbers too.
                let f = n.as_f64()?;
                (f.fract() == 0.0 && (0.0..1.8e19).contains(&f)).then_some(f as u64)
            })
        });
        match v {
            Some(v) if v >= min && v <= max => Ok(v),
            _ => Err(self.err(
                Some(raw),
                key,
                format!("expected {what}, found {}", found(raw)),
            )),
        }
    }

    fn spec(&self, raw: &'a RawValue, key: &str) -> Result<Spec> {
        const EXPECTED: &str =
            "expected \"exact\", \"ignore\", {\"ulps\": n} or {\"abs\": x, \"rel\": y}";
        let t = raw.get();
        if t.starts_with('"') {
            return match self.string(raw, key)?.as_str() {
                "exact" => Ok(Spec::Exact),
                "ignore" => Ok(Spec::Ignore),
                _ => Err(self.err(Some(raw), key, format!("{EXPECTED}, found {}", found(raw)))),
            };
        }
        if !t.starts_with('{') {
            return Err(self.err(Some(raw), key, format!("{EXPECTED}, found {}", found(raw))));
        }
        let o = self.obj(raw, key)?;
        if o.get("oracle").is_some() {
            return Err(self.err(Some(raw), key, "oracle comparators arrive later"));
        }
        if let Some(u) = o.get("ulps") {
            if o.0.len() != 1 {
                return Err(self.err(
                    Some(raw),
                    key,
                    "{\"ulps\": n} takes no other key (use {\"abs\": x, \"rel\": y} for tolerances)",
                ));
            }
            let k = format!("{key}.ulps");
            return Ok(Spec::Ulps(self.integer(
                u,
                &k,
                0,
                u64::MAX,
                "a whole number of units in the last place",
            )?));
        }
        if o.0.is_empty() {
            return Err(self.err(Some(raw), key, format!("{EXPECTED}, found {{}}")));
        }
        let (mut abs, mut rel) = (0.0, 0.0);
        for (k, v) in &o.0 {
            let slot = match k.as_str() {
                "abs" => &mut abs,
                "rel" => &mut rel,
                _ => {
                    return Err(self.err(
                        Some(v),
                        &format!("{key}.{k}"),
                        format!("unknown key (a spec is {})", &EXPECTED[9..]),
                    ))
                }
            };
            let x = self.number(v).and_then(|n| n.as_f64());
            match x {
                Some(x) if x >= 0.0 && x.is_finite() => *slot = x,
                _ => {
                    return Err(self.err(
                        Some(v),
                        &format!("{key}.{k}"),
                        format!("expected a number from 0 up, found {}", found(v)),
                    ))
                }
            }
        }
        Ok(Spec::Tol { abs, rel })
    }

    /// A `compare` value. `sig` is the function it belongs to (its keys may
    /// name its parameters); for `defaults.compare`, `param_ok` decides.
    fn compare_set(
        &self,
        raw: &'a RawValue,
        key: &str,
        sig: Option<&Signature>,
        param_ok: &dyn Fn(&str) -> bool,
    ) -> Result<CompareSet> {
        let mut set = CompareSet::default();
        let t = raw.get();
        if t.starts_with('"') {
            match self.string(raw, key)?.as_str() {
                "exact" => set.all = Some(Spec::Exact),
                "ignore" => set.all = Some(Spec::Ignore),
                _ => {
                    return Err(self.err(
                        Some(raw),
                        key,
                        format!(
                            "expected \"exact\", \"ignore\" or an object of specs, found {}",
                            found(raw)
                        ),
                    ))
                }
            }
            return Ok(set);
        }
        if !t.starts_with('{') {
            return Err(self.err(
                Some(raw),
                key,
                format!(
                    "expected \"exact\", \"ignore\" or an object of specs, found {}",
                    found(raw)
                ),
            ));
        }
        let o = self.obj(raw, key)?;
        for (k, v) in &o.0 {
            let sub = format!("{key}.{k}");
            let spec = self.spec(v, &sub)?;
            match k.as_str() {
                "ret" => {
                    if let Some(sig) = sig {
                        if sig.ret == Type::Void {
                            return Err(self.err(
                                Some(v),
                                &sub,
                                format!("{} returns void", sig.name),
                            ));
                        }
                    }
                    set.ret = Some(spec);
                }
                "errno" => set.errno = Some(spec),
                "float" => set.float = Some(spec),
                p => {
                    let ok = match sig {
                        Some(sig) => sig.params.iter().any(|x| x.name == p),
                        None => param_ok(p),
                    };
                    if !ok {
                        let msg = match sig {
                            Some(sig) => format!(
                                "\"{p}\" is not a parameter of {} (keys are ret, errno, float and parameter names)",
                                sig.name
                            ),
                            None => format!(
                                "\"{p}\" is not a parameter of any function (keys are ret, errno, float and parameter names)"
                            ),
                        };
                        return Err(self.err(Some(v), &sub, msg));
                    }
                    set.params.insert(p.to_string(), spec);
                }
            }
        }
        Ok(set)
    }
}

/// A serde_json syntax error, positioned: `file:LINE:COL: invalid JSON: …`.
fn json_error(file: &Path, e: serde_json::Error) -> ConfigError {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = full.strip_suffix(&suffix).unwrap_or(&full).to_string();
    ConfigError {
        file: file.to_path_buf(),
        line: Some(e.line().max(1)),
        key: None,
        column: Some(e.column()),
        signature: None,
        message: format!("invalid JSON: {msg}"),
    }
}

impl Config {
    /// Reads and checks the config file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let plain = |message: String| ConfigError {
            file: path.to_path_buf(),
            line: None,
            key: None,
            column: None,
            signature: None,
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| plain(format!("cannot read: {e}")))?;
        if let Err(why) = writable_by_others(path) {
            return Err(plain(why));
        }
        Config::parse(&text, path)
    }

    /// Checks a config given as text; `file` names it in errors and anchors
    /// a relative `new`.
    pub fn parse(text: &str, file: &Path) -> Result<Config> {
        let cx = Ctx { file, text };
        let top: &RawValue = serde_json::from_str(text).map_err(|e| cx.json_err(e))?;
        if !top.get().starts_with('{') {
            return Err(ConfigError {
                file: file.to_path_buf(),
                line: Some(cx.line_of(top)),
                key: None,
                column: None,
                signature: None,
                message: format!(
                    "expected a JSON object at the top level, found {}",
                    found(top)
                ),
            });
        }
        // Parsed from the whole text so that a duplicate key's position is exact.
        let obj: Obj = serde_json::from_str(text).map_err(|e| cx.json_err(e))?;

        let mut key_lines = BTreeMap::new();
        for (k, v) in &obj.0 {
            if !KNOWN_KEYS.contains(&k.as_str()) {
                return Err(cx.err(
                    Some(v),
                    k,
                    format!("unknown key (known keys: {})", KNOWN_KEYS.join(", ")),
                ));
            }
            key_lines.insert(k.clone(), cx.line_of(v));
        }
        let missing = |k: &str| ConfigError {
            file: file.to_path_buf(),
            line: None,
            key: Some(k.to_string()),
            column: None,
            signature: None,
            message: "required key is missing".to_string(),
        };

        let mut sandbox_intercept = Vec::new();
        if let Some(v) = obj.get("sandbox") {
            if v.get() != "null" {
                let o = cx.obj(v, "sandbox")?;
                cx.only_keys(&o, "sandbox", &["intercept"], "sandbox takes intercept")?;
                for (_, sub) in &o.0 {
                    for (i, n) in cx.arr(sub, "sandbox.intercept")?.into_iter().enumerate() {
                        let key = format!("sandbox.intercept[{i}]");
                        let name = cx.nonempty_string(n, &key)?;
                        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                            return Err(cx.err(Some(n), &key, "expected a function name"));
                        }
                        sandbox_intercept.push(name);
                    }
                }
            }
        }

        let old = match obj.get("old") {
            Some(v) => cx.nonempty_string(v, "old")?,
            None => return Err(missing("old")),
        };
        let new = match obj.get("new") {
            Some(v) => {
                let s = cx.nonempty_string(v, "new")?;
                let p = PathBuf::from(s);
                if p.is_relative() {
                    match file.parent() {
                        Some(dir) => dir.join(p),
                        None => p,
                    }
                } else {
                    p
                }
            }
            None => return Err(missing("new")),
        };
        let mode = match obj.get("mode") {
            None => Mode::Shadow,
            Some(v) => match cx.string(v, "mode")?.as_str() {
                "shadow" => Mode::Shadow,
                "off" => Mode::Off,
                m @ ("guarded" | "promoted") => {
                    return Err(cx.err(
                        Some(v),
                        "mode",
                        format!("\"{m}\" arrives with the promotion issue"),
                    ))
                }
                _ => {
                    return Err(cx.err(
                        Some(v),
                        "mode",
                        format!("expected \"shadow\" or \"off\", found {}", found(v)),
                    ))
                }
            },
        };
        let mut attach_exe = Vec::new();
        if let Some(v) = obj.get("attach") {
            let o = cx.obj(v, "attach")?;
            cx.only_keys(&o, "attach", &["exe"], "attach takes exe")?;
            for (_, sub) in &o.0 {
                for (i, g) in cx.arr(sub, "attach.exe")?.into_iter().enumerate() {
                    let key = format!("attach.exe[{i}]");
                    let s = cx.nonempty_string(g, &key)?;
                    if let Err(e) = glob::Pattern::new(&s) {
                        return Err(cx.err(Some(g), &key, format!("invalid glob: {e}")));
                    }
                    attach_exe.push(s);
                }
            }
        }

        let mut types = TypeTable::new();
        if let Some(v) = obj.get("types") {
            for (i, d) in cx.arr(v, "types")?.into_iter().enumerate() {
                let key = format!("types[{i}]");
                let s = cx.string(d, &key)?;
                types.declare(&s).map_err(|e| ConfigError {
                    file: file.to_path_buf(),
                    line: Some(cx.line_of(d)),
                    key: Some(key.clone()),
                    column: Some(e.column),
                    signature: Some(s.clone()),
                    message: e.message,
                })?;
            }
        }

        // Handle types, declared before the functions that use them.
        let mut handles = Vec::new();
        if let Some(v) = obj.get("handles") {
            for (i, h) in cx.arr(v, "handles")?.into_iter().enumerate() {
                let key = format!("handles[{i}]");
                let o = cx.obj(h, &key)?;
                cx.only_keys(
                    &o,
                    &key,
                    &["type", "create", "destroy"],
                    "a handle takes type, create and destroy",
                )?;
                let ty_raw = o.get("type").ok_or_else(|| {
                    cx.err(
                        Some(h),
                        &key,
                        "missing \"type\": the handle's C type, e.g. \"codec_t *\"",
                    )
                })?;
                let ty = cx.nonempty_string(ty_raw, &format!("{key}.type"))?;
                types.declare_handle(&ty).map_err(|e| ConfigError {
                    file: file.to_path_buf(),
                    line: Some(cx.line_of(ty_raw)),
                    key: Some(format!("{key}.type")),
                    column: Some(e.column),
                    signature: Some(ty.clone()),
                    message: e.message,
                })?;
                let names = |k: &str| -> Result<Vec<(String, usize)>> {
                    let mut out = Vec::new();
                    if let Some(a) = o.get(k) {
                        for (j, n) in cx.arr(a, &format!("{key}.{k}"))?.into_iter().enumerate() {
                            let nk = format!("{key}.{k}[{j}]");
                            out.push((cx.nonempty_string(n, &nk)?, cx.line_of(n)));
                        }
                    }
                    Ok(out)
                };
                let create = names("create")?;
                let destroy = names("destroy")?;
                handles.push(HandleSpec {
                    ty,
                    create,
                    destroy,
                    line: cx.line_of(h),
                });
            }
        }

        // Functions, with their own compare (defaults are merged below).
        let fv = obj.get("functions").ok_or_else(|| missing("functions"))?;
        let entries = cx.arr(fv, "functions")?;
        if entries.is_empty() {
            return Err(cx.err(
                Some(fv),
                "functions",
                "the boundary is empty: list at least one function",
            ));
        }
        let mut functions = Vec::with_capacity(entries.len());
        let mut seen: HashMap<String, usize> = HashMap::new();
        // C++ classes first: a declaration may name a class (`Shape *`) whose
        // own methods come later in the list. Every C++ class pointer is one
        // handle class: an object is paired once, whatever its static type.
        let mut cxx_class: Option<u32> = None;
        let mut decls: Vec<Option<CxxDecl>> = Vec::with_capacity(entries.len());
        for (index, e) in entries.iter().enumerate() {
            let raw = if e.get().starts_with('{') {
                cx.obj(e, &format!("functions[{index}]"))?.get("sig")
            } else {
                Some(*e)
            };
            let text = raw.and_then(|r| serde_json::from_str::<String>(r.get()).ok());
            let decl = match (raw, text) {
                (Some(raw), Some(text)) if cxx::is_cxx_decl(&text) => {
                    let key = if e.get().starts_with('{') {
                        format!("functions[{index}].sig")
                    } else {
                        format!("functions[{index}]")
                    };
                    let d = CxxDecl::parse(&text).map_err(|err| ConfigError {
                        file: file.to_path_buf(),
                        line: Some(cx.line_of(raw)),
                        key: Some(key),
                        column: Some(err.column),
                        signature: Some(text.clone()),
                        message: err.message,
                    })?;
                    if let Some(t) = d.this_type() {
                        let class = *cxx_class.get_or_insert(types.handle_classes());
                        types
                            .declare_handle_in(&format!("{t} *"), class)
                            .map_err(|err| {
                                cx.err(Some(raw), &format!("functions[{index}]"), err.message)
                            })?;
                    }
                    Some(d)
                }
                _ => None,
            };
            decls.push(decl);
        }
        for (index, e) in entries.into_iter().enumerate() {
            let key = format!("functions[{index}]");
            let line = cx.line_of(e);
            let (sig_raw, sig_key, compare_raw) = if e.get().starts_with('"') {
                (e, key.clone(), None)
            } else if e.get().starts_with('{') {
                let o = cx.obj(e, &key)?;
                cx.only_keys(
                    &o,
                    &key,
                    &["sig", "compare"],
                    "a function entry takes sig and compare",
                )?;
                let s = o.get("sig").ok_or_else(|| {
                    cx.err(Some(e), &key, "missing \"sig\": the function's prototype")
                })?;
                (s, format!("{key}.sig"), o.get("compare"))
            } else {
                return Err(cx.err(
                    Some(e),
                    &key,
                    format!(
                        "expected a prototype string or {{\"sig\": …, \"compare\": …}}, found {}",
                        found(e)
                    ),
                ));
            };
            let text = cx.string(sig_raw, &sig_key)?;
            let decl = decls[index].take();
            // A C++ declaration is checked as its C form (`this` first,
            // references as pointers); errors point into that form.
            let c_text = match &decl {
                Some(d) => d.c_prototype_named(&format!("{}__{index}", d.c_name())),
                None => text.clone(),
            };
            let mut sig = parse_signature(&c_text, &types).map_err(|err| ConfigError {
                file: file.to_path_buf(),
                line: Some(cx.line_of(sig_raw)),
                key: Some(sig_key.clone()),
                column: Some(err.column),
                signature: Some(c_text.clone()),
                message: if decl.is_some() {
                    format!("in the C form of {text:?}: {}", err.message)
                } else {
                    err.message
                },
            })?;
            if let (Some(d), Some(class)) = (&decl, cxx_class) {
                match d.kind {
                    CxxKind::Ctor => sig.effect = Effect::Construct { class },
                    CxxKind::Dtor => sig.effect = Effect::Destroy { class },
                    _ => {}
                }
            }
            let key_name = if decl.is_some() {
                text.clone()
            } else {
                sig.name.clone()
            };
            if let Some(&first) = seen.get(&key_name) {
                return Err(cx.err(
                    Some(e),
                    &key,
                    format!("{} is listed twice (also functions[{first}])", key_name),
                ));
            }
            seen.insert(key_name.clone(), index);
            let func = match compare_raw {
                Some(c) => cx.compare_set(c, &format!("{key}.compare"), Some(&sig), &|_| false)?,
                None => CompareSet::default(),
            };
            functions.push(FunctionSpec {
                key: key_name,
                cxx: decl,
                sig,
                compare: Comparator {
                    func,
                    defaults: CompareSet::default(),
                },
                line,
                index,
            });
        }

        for (class, h) in handles.iter().enumerate() {
            let class = class as u32;
            for (list, effect) in [
                (&h.create, Effect::Create { class }),
                (&h.destroy, Effect::Destroy { class }),
            ] {
                let creates = matches!(effect, Effect::Create { .. });
                let what = if creates { "create" } else { "destroy" };
                for (j, (name, line)) in list.iter().enumerate() {
                    let herr = |message: String| ConfigError {
                        file: file.to_path_buf(),
                        line: Some(*line),
                        key: Some(format!("handles[{class}].{what}[{j}]")),
                        column: None,
                        signature: None,
                        message,
                    };
                    let Some(f) = functions.iter_mut().find(|f| f.sig.name == *name) else {
                        return Err(herr(format!("{name} is not in \"functions\"")));
                    };
                    if f.sig.effect != Effect::None {
                        return Err(herr(format!(
                            "{name} is listed twice in \"handles\" (a function creates or destroys one handle type)"
                        )));
                    }
                    let takes = f.sig.params.iter().any(|p| {
                        p.handle == Some(class) && !matches!(p.role, Role::HandleOut { .. })
                    });
                    let makes = f.sig.params.iter().any(|p| p.handle == Some(class))
                        || f.sig.ret_role == (Role::Handle { class });
                    let ok = if creates { makes } else { takes };
                    if !ok {
                        return Err(herr(format!(
                            "{name} {} no {} (its prototype has no parameter{} of that type)",
                            if creates { "makes" } else { "takes" },
                            h.ty,
                            if creates {
                                ", [out] handle or return value"
                            } else {
                                ""
                            },
                        )));
                    }
                    f.sig.effect = effect;
                }
            }
        }

        let mut defaults = CompareSet::default();
        if let Some(v) = obj.get("defaults") {
            let o = cx.obj(v, "defaults")?;
            cx.only_keys(&o, "defaults", &["compare"], "defaults takes compare")?;
            for (_, sub) in &o.0 {
                let any_param = |p: &str| {
                    functions
                        .iter()
                        .any(|f| f.sig.params.iter().any(|x| x.name == p))
                };
                defaults = cx.compare_set(sub, "defaults.compare", None, &any_param)?;
            }
        }
        for f in &mut functions {
            f.compare.defaults = defaults.clone();
        }

        let mut classes = Vec::new();
        if let Some(v) = obj.get("classes") {
            for (i, c) in cx.arr(v, "classes")?.into_iter().enumerate() {
                let key = format!("classes[{i}]");
                let o = cx.obj(c, &key)?;
                cx.only_keys(&o, &key, &["name", "size"], "a class takes name and size")?;
                let (Some(n), Some(sz)) = (o.get("name"), o.get("size")) else {
                    return Err(cx.err(Some(c), &key, "expected {\"name\": …, \"size\": …}"));
                };
                let name = cx.nonempty_string(n, &format!("{key}.name"))?;
                let size = cx.integer(sz, &format!("{key}.size"), 1, 1 << 30, "a size in bytes")?;
                classes.push((name, size as usize));
            }
        }

        let sampling = match obj.get("sampling") {
            None => 1.0,
            Some(v) => match cx.number(v).and_then(|n| n.as_f64()) {
                Some(x) if (0.0..=1.0).contains(&x) => x,
                _ => {
                    return Err(cx.err(
                        Some(v),
                        "sampling",
                        format!("expected a number from 0 to 1, found {}", found(v)),
                    ))
                }
            },
        };
        let int = |k: &str, default: u64, min: u64, max: u64, what: &str| -> Result<u64> {
            match obj.get(k) {
                None => Ok(default),
                Some(v) => cx.integer(v, k, min, max, what),
            }
        };
        let queue = int("queue", 65536, 1, usize::MAX as u64, "a positive integer")? as usize;
        let queue_bytes = int(
            "queue_bytes",
            67_108_864,
            1,
            usize::MAX as u64,
            "a positive integer",
        )? as usize;
        let timeout_ms = int("timeout_ms", 1000, 1, u64::MAX, "a positive integer")?;
        let summary_every_s = int("summary_every_s", 60, 1, u64::MAX, "a positive integer")?;
        let records_per_signature = int(
            "records_per_signature",
            100,
            0,
            u32::MAX as u64,
            "an integer from 0 to 4294967295",
        )? as u32;
        let report = match obj.get("report") {
            None => "ddl-report.%p.jsonl".to_string(),
            Some(v) => cx.nonempty_string(v, "report")?,
        };
        let capture = match obj.get("capture") {
            Some(v) if v.get() != "null" => Some(cx.capture(v, &functions)?),
            _ => None,
        };

        Ok(Config {
            file: file.to_path_buf(),
            old,
            new,
            mode,
            attach_exe,
            types,
            handles,
            sandbox_intercept,
            classes,
            functions,
            sampling,
            queue,
            queue_bytes,
            timeout_ms,
            report,
            summary_every_s,
            records_per_signature,
            capture,
            key_lines,
        })
    }

    /// Whether DDL attaches to an executable with this base name
    /// (`attach.exe` globs; none: every executable).
    pub fn attaches_to(&self, exe_base_name: &str) -> bool {
        self.attach_exe.is_empty()
            || self.attach_exe.iter().any(|g| {
                glob::Pattern::new(g)
                    .map(|p| p.matches(exe_base_name))
                    .unwrap_or(false)
            })
    }

    /// The report's path for process `pid` (`%p` replaced by it).
    pub fn report_path(&self, pid: u32) -> PathBuf {
        PathBuf::from(self.report.replace("%p", &pid.to_string()))
    }

    /// An error about function `index` found later (e.g. its symbol is
    /// missing from a build), positioned like parse errors.
    pub fn function_error(&self, index: usize, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.functions.get(index).map(|f| f.line),
            key: Some(format!("functions[{index}]")),
            column: None,
            signature: None,
            message: message.into(),
        }
    }

    /// An error about top-level key `key` (e.g. a `new` that fails to load).
    pub fn key_error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line: self.key_lines.get(key).copied(),
            key: Some(key.to_string()),
            column: None,
            signature: None,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Role;

    const FILE: &str = "calc.ddl.json";

    fn parse(text: &str) -> Config {
        Config::parse(text, Path::new(FILE)).unwrap_or_else(|e| panic!("{e}"))
    }
    fn fail(text: &str) -> String {
        match Config::parse(text, Path::new(FILE)) {
            Ok(_) => panic!("parsed: {text}"),
            Err(e) => e.to_string(),
        }
    }
    /// A minimal valid config with one extra top-level member.
    fn with(extra: &str) -> String {
        format!(
            "{{\n  \"old\": \"libcalc.so.1\",\n  \"new\": \"build/libcalc.so.1\",\n  \"functions\": [\"int calc_add(int a, int b)\"]{}{}\n}}",
            if extra.is_empty() { "" } else { ",\n  " },
            extra
        )
    }

    #[test]
    fn minimal_and_defaults() {
        let c = parse(&with(""));
        assert_eq!(c.file, PathBuf::from(FILE));
        assert_eq!(c.old, "libcalc.so.1");
        assert_eq!(c.new, PathBuf::from("build/libcalc.so.1"));
        assert_eq!(c.mode, Mode::Shadow);
        assert!(c.attach_exe.is_empty());
        assert_eq!(c.functions.len(), 1);
        assert_eq!(c.functions[0].sig.name, "calc_add");
        assert_eq!(c.functions[0].line, 4);
        assert_eq!(c.functions[0].index, 0);
        assert_eq!(c.functions[0].compare, Comparator::default());
        assert_eq!(c.sampling, 1.0);
        assert_eq!(c.queue, 65536);
        assert_eq!(c.queue_bytes, 67_108_864);
        assert_eq!(c.timeout_ms, 1000);
        assert_eq!(c.report, "ddl-report.%p.jsonl");
        assert_eq!(c.summary_every_s, 60);
        assert_eq!(c.records_per_signature, 100);
        assert_eq!(c.report_path(4242), PathBuf::from("ddl-report.4242.jsonl"));
        assert!(c.attaches_to("anything"));
    }

    #[test]
    fn the_example_of_config_md_without_handles() {
        let text = r#"{
  "old": "libcalc.so.1",
  "new": "build/calc-v2/libcalc.so.1",
  "mode": "shadow",
  "attach": { "exe": ["calc-app", "python3*"] },
  "types": ["struct point { double x; double y; }"],
  "functions": [
    "int calc_add(int a, int b)",
    { "sig": "double calc_sqrt(double x)", "compare": { "ret": { "ulps": 2 } } },
    { "sig": "int calc_version(void)", "compare": "ignore" }
  ],
  "defaults": { "compare": { "float": { "ulps": 0 } } },
  "sampling": 1.0,
  "queue": 65536,
  "timeout_ms": 1000,
  "report": "ddl-report.jsonl",
  "capture": null
}"#;
        let c = Config::parse(text, Path::new("/etc/ddl/calc.ddl.json")).unwrap();
        assert_eq!(c.new, PathBuf::from("/etc/ddl/build/calc-v2/libcalc.so.1"));
        assert_eq!(c.attach_exe, ["calc-app", "python3*"]);
        assert!(c.attaches_to("calc-app"));
        assert!(c.attaches_to("python3.11"));
        assert!(!c.attaches_to("bash"));
        assert!(c.types.lookup_struct("point").is_some());
        assert_eq!(c.functions.len(), 3);
        let lines: Vec<usize> = c.functions.iter().map(|f| f.line).collect();
        assert_eq!(lines, [8, 9, 10]);
        let sqrt = &c.functions[1].compare;
        assert_eq!(sqrt.func.ret, Some(Spec::Ulps(2)));
        assert_eq!(sqrt.defaults.float, Some(Spec::Ulps(0)));
        assert_eq!(sqrt.spec_for("ret", true), Spec::Ulps(2));
        assert_eq!(c.functions[0].compare.spec_for("ret", false), Spec::Exact);
        assert_eq!(c.functions[0].compare.spec_for("ret", true), Spec::Ulps(0));
        assert_eq!(c.functions[2].compare.func.all, Some(Spec::Ignore));
        assert_eq!(c.functions[2].compare.spec_for("ret", false), Spec::Ignore);
        assert_eq!(c.report_path(7), PathBuf::from("ddl-report.jsonl"));
        assert_eq!(c.key_lines["sampling"], 13);
        assert_eq!(
            c.key_error("new", "cannot load: nope").to_string(),
            "/etc/ddl/calc.ddl.json:3: new: cannot load: nope"
        );
        assert_eq!(
            c.function_error(1, "symbol calc_sqrt missing from the new build")
                .to_string(),
            "/etc/ddl/calc.ddl.json:9: functions[1]: symbol calc_sqrt missing from the new build"
        );
        assert_eq!(
            c.key_error("queue_bytes", "x").to_string(),
            "/etc/ddl/calc.ddl.json: queue_bytes: x"
        );
    }

    #[test]
    fn display_formats() {
        let text = "{\n  \"old\": \"libcalc.so.1\",\n  \"new\": \"n.so\",\n  \"sampling\": 2.5,\n  \"functions\": [\"int f(void)\"]\n}";
        assert_eq!(
            fail(text),
            "calc.ddl.json:4: sampling: expected a number from 0 to 1, found 2.5"
        );
        let text = "{\n  \"old\": \"libcalc.so.1\",\n  \"new\": \"n.so\",\n  \"functions\": [\n\n\n\n    \"int calc_add(int a, int b)\",\n    \"int calc_add(int a, intt b)\"\n  ]\n}";
        assert_eq!(
            fail(text),
            "calc.ddl.json:9: functions[1]: column 21 of \"int calc_add(int a, intt b)\": unknown type \"intt\""
        );
        let text = "{\n  \"old\": \"libcalc.so.1\",\n  \"new\": \"n.so\",\n  \"functions\": [\n    \"int f(void)\",\n    {\"sig\": \"int g(intt b)\"}\n  ]\n}";
        assert_eq!(
            fail(text),
            "calc.ddl.json:6: functions[1].sig: column 7 of \"int g(intt b)\": unknown type \"intt\""
        );
        let text = "{\n  \"old\": \"a\",\n  \"new\": \"b\",\n  \"types\": [\n    \"struct s { intt a; }\"\n  ],\n  \"functions\": [\"int f(void)\"]\n}";
        assert_eq!(
            fail(text),
            "calc.ddl.json:5: types[0]: column 12 of \"struct s { intt a; }\": unknown type \"intt\""
        );
        let text = "{\n  \"old\": \"a\",\n  \"new\": \"b\" \"x\"\n}";
        assert_eq!(
            fail(text),
            "calc.ddl.json:3:14: invalid JSON: expected `,` or `}`"
        );
        let e = Config::load(Path::new("/nonexistent/dir/calc.ddl.json")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/nonexistent/dir/calc.ddl.json: cannot read: No such file or directory (os error 2)"
        );
        assert_eq!(e.line, None);
    }

    #[test]
    fn load_from_disk() {
        let dir = std::env::temp_dir().join(format!("ddl-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.ddl.json");
        std::fs::write(&f, with("\"mode\": \"off\"")).unwrap();
        let c = Config::load(&f).unwrap();
        assert_eq!(c.mode, Mode::Off);
        assert_eq!(c.new, dir.join("build/libcalc.so.1"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn strict_json() {
        for (text, start) in [
            ("{ // comment\n}", "calc.ddl.json:1:3: invalid JSON: "),
            ("{\"old\": \"a\",}", "calc.ddl.json:1:13: invalid JSON: "),
            ("", "calc.ddl.json:1:0: invalid JSON: EOF while parsing"),
            ("{\"old\": \"a\", \"old\": \"b\"}", "calc.ddl.json:1:"),
        ] {
            let e = fail(text);
            assert!(e.starts_with(start), "{text:?}: {e}");
            assert!(!e.contains(" at line "), "{e}");
        }
        assert!(fail("{\"old\": \"a\", \"old\": \"b\"}").contains("duplicate key \"old\""));
        assert_eq!(
            fail("[1, 2]"),
            "calc.ddl.json:1: expected a JSON object at the top level, found [1, 2]"
        );
    }

    #[test]
    fn key_errors() {
        let cases: &[(&str, &str)] = &[
            ("\"sampling\": -0.1", "sampling: expected a number from 0 to 1, found -0.1"),
            ("\"sampling\": \"all\"", "sampling: expected a number from 0 to 1, found \"all\""),
            ("\"queue\": 0", "queue: expected a positive integer, found 0"),
            ("\"queue\": 1.5", "queue: expected a positive integer, found 1.5"),
            ("\"queue\": -3", "queue: expected a positive integer, found -3"),
            ("\"queue_bytes\": \"big\"", "queue_bytes: expected a positive integer"),
            ("\"timeout_ms\": 0", "timeout_ms: expected a positive integer, found 0"),
            ("\"summary_every_s\": null", "summary_every_s: expected a positive integer, found null"),
            ("\"records_per_signature\": 5000000000", "records_per_signature: expected an integer from 0 to 4294967295"),
            ("\"report\": 3", "report: expected a string, found 3"),
            ("\"report\": \"\"", "report: expected a non-empty string"),
            ("\"mode\": \"guarded\"", "mode: \"guarded\" arrives with the promotion issue"),
            ("\"mode\": \"promoted\"", "mode: \"promoted\" arrives with the promotion issue"),
            ("\"mode\": \"loud\"", "mode: expected \"shadow\" or \"off\", found \"loud\""),
            ("\"capture\": 3", "capture: expected an object, found 3"),
            ("\"capture\": \"\"", "capture: expected a non-empty string"),
            ("\"capture\": {}", "capture.path: missing (where the log goes)"),
            ("\"capture\": {\"path\": \"c\", \"keep\": 1}", "capture.keep: unknown key (capture takes path, max_buffer_bytes and hash)"),
            ("\"capture\": {\"path\": \"c\", \"max_buffer_bytes\": -1}", "capture.max_buffer_bytes: expected a number of bytes, found -1"),
            ("\"capture\": {\"path\": \"c\", \"hash\": [\"calc_add\"]}", "capture.hash[0]: expected function.output, found \"calc_add\""),
            ("\"capture\": {\"path\": \"c\", \"hash\": [\"nope.return\"]}", "capture.hash[0]: no function nope in functions"),
            ("\"capture\": {\"path\": \"c\", \"hash\": [\"calc_add.b\"]}", "capture.hash[0]: calc_add does not write b: only outputs are stored as a hash (inputs are needed to replay)"),
            ("\"capture\": {\"path\": \"c\", \"hash\": [\"calc_add.q\"]}", "capture.hash[0]: calc_add has no parameter q"),
            ("\"handles\": [{\"type\": \"calc_ctx *\", \"create\": [\"calc_new\"]}]", "handles[0].create[0]: calc_new is not in \"functions\""),
            ("\"handles\": [{\"type\": \"calc_ctx *\", \"destroy\": [\"calc_add\"]}]", "handles[0].destroy[0]: calc_add takes no calc_ctx *"),
            ("\"handles\": [{\"type\": \"calc_ctx *\", \"make\": []}]", "handles[0].make: unknown key (a handle takes type, create and destroy)"),
            ("\"handles\": [{\"create\": []}]", "handles[0]: missing \"type\""),
            ("\"handles\": [{\"type\": \"int *\"}]", "handles[0].type: column 1 of \"int *\": a handle type points to a named type"),
            ("\"classes\": [{\"name\": \"Shape\"}]", "classes[0]: expected {\"name\": …, \"size\": …}"),
            ("\"classes\": [{\"name\": \"Shape\", \"size\": 0}]", "classes[0].size: expected a size in bytes"),
            ("\"classes\": [{\"name\": \"Shape\", \"size\": 8, \"align\": 8}]", "classes[0].align: unknown key (a class takes name and size)"),
            ("\"sandbox\": {\"intercept\": [\"open(\"]}", "sandbox.intercept[0]: expected a function name"),
            ("\"sandbox\": {\"block\": []}", "sandbox.block: unknown key (sandbox takes intercept)"),
            ("\"colour\": true", "colour: unknown key (known keys: old, new, mode"),
            ("\"attach\": {\"exe\": \"calc\"}", "attach.exe: expected an array, found \"calc\""),
            ("\"attach\": {\"exe\": [\"[\"]}", "attach.exe[0]: invalid glob"),
            ("\"attach\": {\"pid\": 3}", "attach.pid: unknown key (attach takes exe)"),
            ("\"attach\": []", "attach: expected an object, found []"),
            ("\"types\": [3]", "types[0]: expected a string, found 3"),
            ("\"types\": \"struct a { int x; }\"", "types: expected an array"),
            ("\"defaults\": {\"compare\": {\"nope\": \"exact\"}}", "defaults.compare.nope: \"nope\" is not a parameter of any function"),
            ("\"defaults\": {\"comparator\": \"exact\"}", "defaults.comparator: unknown key (defaults takes compare)"),
            ("\"defaults\": {\"compare\": \"loose\"}", "defaults.compare: expected \"exact\", \"ignore\" or an object of specs, found \"loose\""),
        ];
        for (extra, msg) in cases {
            let e = fail(&with(extra));
            let want = format!("calc.ddl.json:5: {msg}");
            assert!(e.starts_with(&want), "{extra}: {e}\n   want: {want}");
        }
        // Harmless empty values of refused keys are accepted.
        parse(&with(
            "\"handles\": [], \"classes\": [], \"sandbox\": {}, \"capture\": null",
        ));
        let c = parse(&with("\"capture\": \"cap.%p.zst\""));
        let spec = c.capture.unwrap();
        assert_eq!(spec.path_for(7), PathBuf::from("cap.7.zst"));
        assert_eq!((spec.max_buffer_bytes, spec.hash.len()), (None, 0));
        let c = parse(&with(
            "\"capture\": {\"path\": \"c\", \"max_buffer_bytes\": 16, \"hash\": [\"calc_add.return\"]}",
        ));
        let spec = c.capture.unwrap();
        assert_eq!(
            (spec.max_buffer_bytes, spec.hash),
            (Some(16), vec![(0, None)])
        );
        // 1e3 is a whole number.
        assert_eq!(parse(&with("\"timeout_ms\": 1e3")).timeout_ms, 1000);
        assert_eq!(parse(&with("\"sampling\": 0")).sampling, 0.0);
        assert_eq!(
            parse(&with("\"records_per_signature\": 0")).records_per_signature,
            0
        );
    }

    #[test]
    fn required_keys() {
        assert_eq!(
            fail("{\"new\": \"b\", \"functions\": [\"int f(void)\"]}"),
            "calc.ddl.json: old: required key is missing"
        );
        assert_eq!(
            fail("{\"old\": \"a\", \"functions\": [\"int f(void)\"]}"),
            "calc.ddl.json: new: required key is missing"
        );
        assert_eq!(
            fail("{\"old\": \"a\", \"new\": \"b\"}"),
            "calc.ddl.json: functions: required key is missing"
        );
        assert!(fail("{\"old\": \"a\", \"new\": \"b\", \"functions\": []}")
            .starts_with("calc.ddl.json:1: functions: the boundary is empty"));
        assert_eq!(
            fail("{\"old\": \"\", \"new\": \"b\", \"functions\": [\"int f(void)\"]}"),
            "calc.ddl.json:1: old: expected a non-empty string"
        );
    }

    #[test]
    fn function_entries() {
        let text = r#"{
  "old": "a", "new": "/abs/b.so",
  "types": ["struct point { double x; double y; }"],
  "functions": [
    { "sig": "int div(int a, int b, int *rem [out])",
      "compare": { "ret": "exact", "errno": "exact", "rem": "ignore", "float": { "abs": 1e-9 } } },
    { "sig": "double norm(const struct point *p, double *out [out])",
      "compare": { "out": { "abs": 0.5, "rel": 1e-6 }, "float": { "rel": 0.01 } } },
    { "sig": "void reset(void)" },
    { "sig": "int v(void)", "compare": "exact" }
  ],
  "defaults": { "compare": { "errno": "exact", "rem": { "ulps": 3 } } }
}"#;
        let c = parse(text);
        assert_eq!(c.new, PathBuf::from("/abs/b.so"));
        let f0 = &c.functions[0];
        assert_eq!(f0.line, 5);
        assert_eq!(
            f0.sig.params[2].role,
            crate::types::Role::Buffer {
                dir: crate::types::Dir::Out,
                elem: Type::Scalar(crate::types::Scalar::I32),
                count: crate::types::Expr::Int(1),
                written: None,
                string: false,
                scalar_out: true,
            }
        );
        assert_eq!(f0.compare.func.ret, Some(Spec::Exact));
        assert_eq!(f0.compare.func.errno, Some(Spec::Exact));
        assert_eq!(f0.compare.func.params["rem"], Spec::Ignore);
        assert_eq!(
            f0.compare.func.float,
            Some(Spec::Tol {
                abs: 1e-9,
                rel: 0.0
            })
        );
        assert_eq!(f0.compare.spec_for("rem", false), Spec::Ignore);
        assert_eq!(f0.compare.errno_spec(), Some(Spec::Exact));
        let f1 = &c.functions[1];
        assert_eq!(f1.line, 7);
        assert_eq!(
            f1.compare.spec_for("out", true),
            Spec::Tol {
                abs: 0.5,
                rel: 1e-6
            }
        );
        assert_eq!(
            f1.compare.spec_for("ret", true),
            Spec::Tol {
                abs: 0.0,
                rel: 0.01
            }
        );
        assert_eq!(
            f1.compare.spec_for("rem", true),
            Spec::Tol {
                abs: 0.0,
                rel: 0.01
            }
        );
        assert_eq!(f1.compare.spec_for("p", false), Spec::Exact);
        assert_eq!(f1.compare.errno_spec(), Some(Spec::Exact));
        let f2 = &c.functions[2];
        assert_eq!(f2.sig.ret, Type::Void);
        assert_eq!(f2.compare.spec_for("rem", false), Spec::Ulps(3));
        let f3 = &c.functions[3];
        assert_eq!(f3.compare.func.all, Some(Spec::Exact));
        assert_eq!(f3.index, 3);
        assert!(matches!(
            c.functions[1].sig.params[0].role,
            Role::Buffer { .. }
        ));
    }

    #[test]
    fn function_entry_errors() {
        let f = |entry: &str| {
            fail(&format!(
            "{{\"old\": \"a\", \"new\": \"b\",\n\"functions\": [\"int f(int x, double *y)\",\n {entry}]}}"
        ))
        };
        let cases: &[(&str, &str)] = &[
            ("3", "calc.ddl.json:3: functions[1]: expected a prototype string or {\"sig\": …, \"compare\": …}, found 3"),
            ("{\"compare\": \"exact\"}", "calc.ddl.json:3: functions[1]: missing \"sig\""),
            ("{\"sig\": \"int g(void)\", \"cmp\": 1}", "calc.ddl.json:3: functions[1].cmp: unknown key (a function entry takes sig and compare)"),
            ("{\"sig\": 5}", "calc.ddl.json:3: functions[1].sig: expected a string, found 5"),
            ("\"int f(int z)\"", "calc.ddl.json:3: functions[1]: f is listed twice (also functions[0])"),
            ("{\"sig\": \"int g(int a)\", \"compare\": {\"b\": \"exact\"}}", "calc.ddl.json:3: functions[1].compare.b: \"b\" is not a parameter of g"),
            ("{\"sig\": \"void g(int a)\", \"compare\": {\"ret\": \"exact\"}}", "calc.ddl.json:3: functions[1].compare.ret: g returns void"),
            ("{\"sig\": \"int g(int a)\", \"compare\": {\"ret\": {\"oracle\": \"liboracle.so:cmp\"}}}", "calc.ddl.json:3: functions[1].compare.ret: oracle comparators arrive later"),
            ("{\"sig\": \"int g(int a)\", \"compare\": {\"ret\": {\"ulps\": -1}}}", "calc.ddl.json:3: functions[1].compare.ret.ulps: expected a whole number of units in the last place, found -1"),
            ("{\"sig\": \"int g(int a)\", \"compare\": {\"ret\": {\"ulps\": 1, \"abs\": 2}}}", "calc.ddl.json:3: functions[1].compare.ret: {\"ulps\": n} takes no other key"),
            ("{\"sig\": \"int g(int a)\", \"compare\": {\"ret\": {\"abs\": -1}}}", "calc.ddl.json:3: functions[1].compare.ret.abs: expected a number from 0 up, found -1"),
            ("{\"sig\": \"int g(int a)\", \"compare\": {\"ret\": {\"tol\": 1}}}", "calc.ddl.json:3: functions[1].compare.ret.tol: unknown key"),
            ("{\"sig\": \"int g(int a)\", \"compare\": {\"ret\": {}}}", "calc.ddl.json:3: functions[1].compare.ret: expected \"exact\", \"ignore\", {\"ulps\": n} or {\"abs\": x, \"rel\": y}, found {}"),
            ("{\"sig\": \"int g(int a)\", \"compare\": {\"ret\": \"close\"}}", "calc.ddl.json:3: functions[1].compare.ret: expected \"exact\""),
            ("{\"sig\": \"int g(int a)\", \"compare\": 1}", "calc.ddl.json:3: functions[1].compare: expected \"exact\", \"ignore\" or an object of specs, found 1"),
            ("\"int Shape::area(int &&x) const\"", "calc.ddl.json:3: functions[1]: column 21 of \"int Shape::area(int &&x) const\": "),
            ("\"int g(int *p [handle])\"", "calc.ddl.json:3: functions[1]: column 15 of \"int g(int *p [handle])\": [handle] needs a type listed in \"handles\""),
        ];
        for (entry, want) in cases {
            let e = f(entry);
            assert!(e.starts_with(want), "{entry}: {e}\n   want: {want}");
        }
        // A parameter name used in defaults.compare exists in some function.
        let c = parse(
            "{\"old\": \"a\", \"new\": \"b\", \"functions\": [\"int f(int x, double *y)\"], \
             \"defaults\": {\"compare\": {\"y\": {\"ulps\": 1}}}}",
        );
        assert_eq!(c.functions[0].compare.spec_for("y", true), Spec::Ulps(1));
    }

    #[test]
    fn multi_line_signature_is_shown_on_one_line() {
        let text =
            "{\"old\": \"a\", \"new\": \"b\",\n\"functions\": [\"int f(int a,\\n\\tintt b)\"]}";
        assert_eq!(
            fail(text),
            "calc.ddl.json:2: functions[0]: column 15 of \"int f(int a,  intt b)\": unknown type \"intt\""
        );
    }

    #[test]
    fn handles_give_roles_and_effects() {
        let c = parse(
            r#"{
  "old": "libcodec.so.1", "new": "x.so",
  "types": ["struct st { const uint8_t *next_in [in avail_in]; unsigned avail_in; void *state [private]; }"],
  "handles": [
    {"type": "codec_t *", "create": ["codec_new", "codec_open"], "destroy": ["codec_free"]},
    {"type": "struct st *", "create": ["st_init"], "destroy": ["st_end"]}
  ],
  "functions": [
    "codec_t *codec_new(int level)",
    "int codec_open(const char *name, codec_t **out)",
    "int codec_level(const codec_t *c)",
    "void codec_free(codec_t *c)",
    "int st_init(struct st *s)",
    "int st_end(struct st *s)"
  ]
}"#,
        );
        let f = |n: &str| &c.functions.iter().find(|f| f.sig.name == n).unwrap().sig;
        assert_eq!(f("codec_new").ret_role, Role::Handle { class: 0 });
        assert_eq!(f("codec_new").effect, Effect::Create { class: 0 });
        assert_eq!(f("codec_open").params[1].role, Role::HandleOut { class: 0 });
        assert_eq!(f("codec_level").params[0].role, Role::Handle { class: 0 });
        assert_eq!(f("codec_level").effect, Effect::None);
        assert!(!f("codec_level").sampled_per_call());
        assert!(f("codec_new").sampled_per_call());
        assert_eq!(f("codec_free").effect, Effect::Destroy { class: 0 });
        let init = f("st_init");
        assert_eq!(init.effect, Effect::Create { class: 1 });
        assert_eq!(init.params[0].handle, Some(1));
        assert!(matches!(init.params[0].role, Role::Buffer { .. }));
        assert_eq!(c.handles.len(), 2);
    }

    #[test]
    fn errno_resolution() {
        let mut c = Comparator::default();
        assert_eq!(c.errno_spec(), None);
        c.defaults.errno = Some(Spec::Exact);
        assert_eq!(c.errno_spec(), Some(Spec::Exact));
        c.func.errno = Some(Spec::Ignore);
        assert_eq!(c.errno_spec(), None);
        c.func.errno = None;
        c.func.all = Some(Spec::Ignore);
        assert_eq!(c.errno_spec(), None);
        c.func.all = Some(Spec::Exact);
        assert_eq!(c.errno_spec(), Some(Spec::Exact));
    }

    #[test]
    fn non_ascii_and_escapes_keep_lines() {
        let text = "{\n\"old\": \"lïb\\n.so\",\n\"new\": \"b\",\n\"functions\": [\n\"int f(void)\",\n\n\"int g(intt x)\"]}";
        assert_eq!(
            fail(text),
            "calc.ddl.json:7: functions[1]: column 7 of \"int g(intt x)\": unknown type \"intt\""
        );
        assert_eq!(parse(&text.replace("intt", "int")).old, "lïb\n.so");
    }
}
