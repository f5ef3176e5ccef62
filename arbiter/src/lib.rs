//! The component arbiter: everything in DDL that describes, captures,
//! compares and reports, with (almost) no `unsafe`. `libddl.so` (the `shim`
//! crate) is the thin preloaded part that feeds it.
#![warn(missing_docs)]

pub mod abi;
pub mod affinity;
pub mod bufpool;
pub mod capture;
pub mod compare;
pub mod config;
pub mod cxx;
pub mod dwarf;
pub mod handles;
pub mod invoke;
pub mod marshal;
pub mod report;
pub mod ring;
pub mod sandbox;
pub mod shadow;
pub mod signature;
pub mod types;
pub mod value;
