//! Comparators (CONFIG.md, "Comparators"): how a primary outcome and a shadow
//! outcome are judged equal or different, path by path.

use std::collections::BTreeMap;

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
