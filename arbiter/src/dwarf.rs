//! Reading a build's DWARF: the size of a C++ class, so that the shadow can
//! construct its own object of the *new* build's size (issue 3, "C++
//! classes"; CONFIG.md `classes` is the fallback when this finds nothing).
//!
//! Only the file's own `.debug_info` is read (DWARF 2 to 5, as g++ and
//! clang write it); a build without it (stripped, or debug info in a
//! separate file through `.gnu_debuglink` / debuginfod, or compressed debug
//! sections) gives `Ok(None)`, never an error.

use std::borrow::Cow;
use std::path::Path;

use gimli::{EndianSlice, RunTimeEndian};
use object::{Object, ObjectSection};

/// `sizeof(class)` in the build at `path`: the `DW_AT_byte_size` of the
/// first `DW_TAG_class_type` / `DW_TAG_structure_type` named `class` that
/// is a definition (not `DW_AT_declaration`). `class` is qualified through
/// namespaces and enclosing classes (`tally::Counter`, `Outer::Inner`); a
/// leading `::` is allowed. `Ok(None)`: the file has no debug info, or no
/// definition of that class. `Err`: the file cannot be read or is not an
/// object file, or its DWARF is malformed.
pub fn class_size(path: &Path, class: &str) -> Result<Option<usize>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    with_dwarf(&data, |dwarf| find_class(dwarf, class))
        .map_err(|e| format!("{}: {e}", path.display()))
        .map(Option::flatten)
}

/// Runs `f` on the DWARF of the ELF file in `data`. `Ok(None)`: the file
/// has no (uncompressed) `.debug_info`. The one place a build's DWARF is
/// opened (class sizes here, prototypes and layouts in `abi::debug`).
pub fn with_dwarf<T>(
    data: &[u8],
    f: impl FnOnce(&gimli::Dwarf<Reader<'_>>) -> Result<T, String>,
) -> Result<Option<T>, String> {
    let file = object::File::parse(data).map_err(|e| e.to_string())?;
    // Compressed sections (SHF_COMPRESSED) are not supported: no debug info.
    let plain = |s: &object::Section<'_, '_>| matches!(s.compressed_file_range(), Ok(r) if r.format == object::CompressionFormat::None);
    if !file
        .section_by_name(".debug_info")
        .is_some_and(|s| plain(&s))
    {
        return Ok(None);
    }
    let endian = if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let load = |id: gimli::SectionId| -> Result<Cow<[u8]>, gimli::Error> {
        Ok(match file.section_by_name(id.name()) {
            Some(s) if plain(&s) => Cow::Borrowed(s.data().unwrap_or(&[])),
            _ => Cow::Borrowed(&[][..]),
        })
    };
    let owned = gimli::DwarfSections::load(load).map_err(|e| e.to_string())?;
    let dwarf = owned.borrow(|s| EndianSlice::new(s, endian));
    f(&dwarf).map(Some)
}

/// [`class_size`] on an opened DWARF.
fn find_class(dwarf: &gimli::Dwarf<Reader<'_>>, class: &str) -> Result<Option<usize>, String> {
    let want: Vec<&str> = class.trim_start_matches("::").split("::").collect();
    let mut units = dwarf.units();
    while let Some(header) = units.next().map_err(|e| e.to_string())? {
        let unit = dwarf.unit(header).map_err(|e| e.to_string())?;
        let mut tree = unit.entries_tree(None).map_err(|e| e.to_string())?;
        let root = tree.root().map_err(|e| e.to_string())?;
        let mut path = Vec::new();
        if let Some(size) = walk(dwarf, &unit, root, &mut path, &want)? {
            return Ok(Some(size));
        }
    }
    Ok(None)
}

/// How DDL reads DWARF sections: borrowed bytes, the file's endianness.
pub type Reader<'a> = EndianSlice<'a, RunTimeEndian>;

/// Depth-first search under `node` for the class named `want`, `path`
/// holding the names of the enclosing namespaces and classes.
fn walk<'a>(
    dwarf: &gimli::Dwarf<Reader<'a>>,
    unit: &gimli::Unit<Reader<'a>>,
    node: gimli::EntriesTreeNode<'_, '_, '_, Reader<'a>>,
    path: &mut Vec<String>,
    want: &[&str],
) -> Result<Option<usize>, String> {
    let mut children = node.children();
    while let Some(child) = children.next().map_err(|e| e.to_string())? {
        let entry = child.entry();
        let tag = entry.tag();
        let scope = matches!(
            tag,
            gimli::DW_TAG_namespace | gimli::DW_TAG_class_type | gimli::DW_TAG_structure_type
        );
        if !scope {
            continue;
        }
        let name = match entry
            .attr_value(gimli::DW_AT_name)
            .map_err(|e| e.to_string())?
        {
            Some(v) => Some(
                dwarf
                    .attr_string(unit, v)
                    .map_err(|e| e.to_string())?
                    .to_string_lossy()
                    .into_owned(),
            ),
            None => None,
        };
        // Only descend where the path can still lead to `want`; an
        // anonymous namespace is transparent.
        let depth = path.len();
        let matches_here = match &name {
            Some(n) => depth < want.len() && want[depth] == n,
            None => tag == gimli::DW_TAG_namespace,
        };
        if !matches_here {
            continue;
        }
        if tag != gimli::DW_TAG_namespace && name.is_some() && depth + 1 == want.len() {
            let decl = matches!(
                entry
                    .attr_value(gimli::DW_AT_declaration)
                    .map_err(|e| e.to_string())?,
                Some(gimli::AttributeValue::Flag(true))
            );
            if !decl {
                if let Some(size) = entry
                    .attr_value(gimli::DW_AT_byte_size)
                    .map_err(|e| e.to_string())?
                    .and_then(|v| v.udata_value())
                {
                    return Ok(Some(size as usize));
                }
            }
            continue;
        }
        let pushed = name.is_some();
        if let Some(n) = name {
            path.push(n);
        }
        let found = walk(dwarf, unit, child, path, want)?;
        if pushed {
            path.pop();
        }
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Compiles `src` with g++ into a shared object in a fresh temp folder.
    fn build(tag: &str, src: &str, flags: &[&str]) -> Option<std::path::PathBuf> {
        let dir = std::env::temp_dir().join(format!("ddl-dwarf-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cc = dir.join("t.cc");
        std::fs::write(&cc, src).unwrap();
        let so = dir.join("libt.so");
        let st = Command::new("g++")
            .args(["-O2", "-fPIC", "-shared"])
            .args(flags)
            .arg("-o")
            .arg(&so)
            .arg(&cc)
            .status();
        match st {
            Ok(s) if s.success() => Some(so),
            _ => {
                eprintln!("g++ not usable: skipped");
                None
            }
        }
    }

    const SRC: &str = r#"
        struct Small { int a; };
        namespace tally {
            class Counter { public: Counter(int); int v_; long h_[4]; };
            Counter::Counter(int s) : v_(s), h_{} {}
            namespace deep { struct Big { char b[100]; Big(); }; Big::Big() : b{} {} }
            struct Outer { struct Inner { double d[3]; }; Inner i; int x; };
            Outer make_outer() { return Outer{}; }
        }
        class Forward;
        Forward *keep(Forward *f) { return f; }
        struct Shape { virtual ~Shape(); double w, h; };
        Shape::~Shape() {}
        namespace { struct Hidden { int q[5]; }; }
        int use_hidden() { Hidden h{}; return h.q[0]; }
        int use_small(Small s) { return s.a; }
    "#;

    #[test]
    fn sizes_from_debug_info() {
        let Some(so) = build("g", SRC, &["-g"]) else {
            return;
        };
        let size = |c: &str| class_size(&so, c).unwrap();
        assert_eq!(size("tally::Counter"), Some(40));
        assert_eq!(size("::tally::Counter"), Some(40));
        assert_eq!(size("tally::deep::Big"), Some(100));
        assert_eq!(size("tally::Outer"), Some(32));
        assert_eq!(size("tally::Outer::Inner"), Some(24));
        assert_eq!(size("Shape"), Some(24));
        assert_eq!(size("Small"), Some(4));
        // Anonymous namespaces are transparent.
        assert_eq!(size("Hidden"), Some(20));
        // Wrong qualification, a declaration only, or nothing by that name.
        assert_eq!(size("Counter"), None);
        assert_eq!(size("Big"), None);
        assert_eq!(size("Forward"), None);
        assert_eq!(size("Nope"), None);
        assert_eq!(size("tally"), None);
    }

    #[test]
    fn without_debug_info_is_none() {
        let Some(so) = build("nog", SRC, &["-g0"]) else {
            return;
        };
        assert_eq!(class_size(&so, "tally::Counter"), Ok(None));
    }

    #[test]
    fn dwarf4_too() {
        let Some(so) = build("g4", SRC, &["-gdwarf-4"]) else {
            return;
        };
        assert_eq!(class_size(&so, "tally::Counter"), Ok(Some(40)));
    }

    #[test]
    fn unreadable_files_are_errors() {
        assert!(class_size(Path::new("/nonexistent/libx.so"), "A").is_err());
        let dir = std::env::temp_dir().join(format!("ddl-dwarf-{}-txt", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("not-elf");
        std::fs::write(&f, b"hello").unwrap();
        assert!(class_size(&f, "A").is_err());
    }

    /// The shapes fixture, when it has been built (`make -C cxx-fixtures`):
    /// the new build's Counter is bigger.
    #[test]
    fn shapes_fixture_if_built() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fixtures/shapes");
        let (old, new) = (
            root.join("old/libshapes.so.1"),
            root.join("new/libshapes.so.1"),
        );
        if !old.exists() || !new.exists() {
            return;
        }
        assert_eq!(class_size(&old, "tally::Counter"), Ok(Some(8)));
        assert_eq!(class_size(&new, "tally::Counter"), Ok(Some(48)));
        assert_eq!(class_size(&new, "Rect"), Ok(Some(24)));
    }
}
