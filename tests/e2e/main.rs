//! End-to-end tests: the fixture apps of `cxx-fixtures/` (and Debian's numpy)
//! run without and with `libddl.so` preloaded.
//!
//! Every test builds the fixtures once (`make -C cxx-fixtures`, into
//! `<target>/fixtures`), finds `libddl.so` (`$DDL_LIB`, else
//! `<target>/release/libddl.so`, else `<repo>/target/release/libddl.so`),
//! writes its config into a fresh temporary folder and asserts:
//!
//! - the app's stdout and exit status are the same as without libddl, and
//!   stderr has no `ddl: error`;
//! - the report's last summary line gives, per function, exactly the
//!   `calls`, `mirrored`, `match` and `mismatch` that the fixtures' known
//!   differences predict (zero faults, timeouts, drops), and the counts add up;
//! - the functions with mismatch records are exactly the ones expected.
//!
//! `fixtures_agree_with_expectations` checks the expectation tables
//! themselves without libddl: it runs each app on the old build and on the
//! new one (`LD_LIBRARY_PATH`, same soname) and compares per-call outputs.
//!
//! Modules: `apps` (every app in every link layout, dlopen, plugins,
//! RTLD_NEXT, symbol versions, comparators, modes, records), `stress`
//! (threads, exits, signals, errno, fork/exec, fds, slow builds),
//! `config_errors` (one test per kind of config error), `cli` (the `ddl`
//! command line: run, report, demo), `numpy` (Debian's
//! numpy on reference BLAS mirrored into OpenBLAS). `DDL_E2E_KEEP=1` keeps
//! every test's temporary folder (config, report) for inspection.

mod apps;
mod capture;
mod check;
mod cli;
mod config_errors;
mod cxx;
mod expect;
mod harness;
mod inspect;
mod numpy;
mod outgoing;
mod paths;
mod review;
mod sandbox;
mod stateful;
mod stress;
