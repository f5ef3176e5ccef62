//! Captured values: what DDL copied out of a call on the caller's path (the
//! primary) or out of the shadow's own memory, in a form that outlives both.

use crate::types::{Scalar, Type};

/// One captured value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A NULL pointer (whatever its annotation; sizes are not evaluated for it).
    Null,
    /// Nothing was captured (a `void` return, an `[opaque]`, `[null]` or
    /// `[private]` slot, or an input-only parameter in an outcome).
    None,
    /// A signed integer of the given scalar type (also `bool` as 0/1).
    Int(Scalar, i64),
    /// An unsigned integer of the given scalar type.
    UInt(Scalar, u64),
    /// A `float`.
    F32(f32),
    /// A `double`.
    F64(f64),
    /// An opaque pointer, kept only to be passed on; never compared.
    Opaque(u64),
    /// A NUL-terminated string (without the NUL).
    Str(Vec<u8>),
    /// `count` elements of `elem`, stored as the raw bytes the callee saw or wrote.
    Buf {
        /// Element type (scalar or struct).
        elem: Type,
        /// Raw element bytes, `elem.size()` per element.
        bytes: Vec<u8>,
    },
    /// A struct, field by field, in declaration order (`Value::None` for
    /// private/opaque fields that are not compared).
    Struct(Vec<Value>),
}

impl Value {
    /// Number of bytes of captured data this value holds (for `queue_bytes`).
    pub fn heap_bytes(&self) -> usize {
        match self {
            Value::Str(b) => b.len(),
            Value::Buf { bytes, .. } => bytes.len(),
            Value::Struct(fs) => fs.iter().map(Value::heap_bytes).sum(),
            _ => 0,
        }
    }

    /// The value as an integer, for size expressions (`None` for non-scalars).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(_, v) => Some(v),
            Value::UInt(_, v) => Some(v as i64),
            Value::F32(v) => Some(v as i64),
            Value::F64(v) => Some(v as i64),
            Value::Opaque(p) => Some(p as i64),
            Value::Null => Some(0),
            _ => None,
        }
    }

    /// Reads a scalar of type `s` from `bytes` (little endian, `bytes.len() >= s.size()`).
    pub fn scalar_from_bytes(s: Scalar, bytes: &[u8]) -> Value {
        let mut w = [0u8; 8];
        w[..s.size()].copy_from_slice(&bytes[..s.size()]);
        let raw = u64::from_le_bytes(w);
        Value::scalar_from_bits(s, raw)
    }

    /// Builds a scalar value of type `s` from the low bits of a register or slot.
    pub fn scalar_from_bits(s: Scalar, raw: u64) -> Value {
        match s {
            Scalar::Bool => Value::UInt(s, (raw & 0xff != 0) as u64),
            Scalar::I8 => Value::Int(s, raw as u8 as i8 as i64),
            Scalar::U8 => Value::UInt(s, raw as u8 as u64),
            Scalar::I16 => Value::Int(s, raw as u16 as i16 as i64),
            Scalar::U16 => Value::UInt(s, raw as u16 as u64),
            Scalar::I32 => Value::Int(s, raw as u32 as i32 as i64),
            Scalar::U32 => Value::UInt(s, raw as u32 as u64),
            Scalar::I64 => Value::Int(s, raw as i64),
            Scalar::U64 => Value::UInt(s, raw),
            Scalar::F32 => Value::F32(f32::from_bits(raw as u32)),
            Scalar::F64 => Value::F64(f64::from_bits(raw)),
        }
    }

    /// The scalar's bits, zero- or sign-extended to 64 (inverse of [`Value::scalar_from_bits`]).
    pub fn scalar_bits(&self) -> u64 {
        match *self {
            Value::Int(_, v) => v as u64,
            Value::UInt(_, v) => v,
            Value::F32(v) => v.to_bits() as u64,
            Value::F64(v) => v.to_bits(),
            Value::Opaque(p) => p,
            _ => 0,
        }
    }
}
