//! Finding `libddl.so` from the `ddl` binary.

use std::path::PathBuf;

/// Where `libddl.so` is: `$DDL_LIB` when set, else next to the `ddl`
/// executable (both are built into `target/release/`), else in `../lib/`
/// next to it (an installed layout).
pub fn path() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("DDL_LIB") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("DDL_LIB={} is not a file", p.display()))
        };
    }
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the ddl executable: {e}"))?;
    let dir = exe.parent().ok_or("the ddl executable has no folder")?;
    for cand in [dir.join("libddl.so"), dir.join("../lib/libddl.so")] {
        if cand.is_file() {
            return Ok(cand.canonicalize().unwrap_or(cand));
        }
    }
    Err(format!(
        "libddl.so is not next to {} (build it with `cargo build --release`, or set DDL_LIB)",
        exe.display()
    ))
}
