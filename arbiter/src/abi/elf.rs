//! What a build's ELF file says without debug info: its class and
//! machine, `DT_SONAME`, the functions and objects it exports (with their
//! symbol versions, `.gnu.version` / `.gnu.version_d`), and the slots of
//! the vtables it exports (`_ZTV…`), read from the dynamic relocations
//! that fill them (`R_X86_64_64` naming a symbol, `R_X86_64_RELATIVE`
//! naming an address that a symbol of `.symtab`/`.dynsym` starts at).
//!
//! Everything comes from `object`'s ELF reader; only symbol tables, the
//! dynamic section and relocation sections are touched, so this is cheap
//! enough for libddl's start-up.

use std::collections::{BTreeMap, HashMap};

use object::elf;
use object::read::elf::{Dyn, ElfFile, FileHeader, Rela, SectionHeader, Sym};
use object::Endianness;

/// One exported symbol (`STB_GLOBAL`/`STB_WEAK`, defined, visibility
/// default or protected) of the dynamic symbol table.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Export {
    /// The symbol's name, mangled for C++ (`_ZN5Shape4areaEv`).
    pub name: String,
    /// The version it is defined with (`VER_2`), if the build versions
    /// its symbols; the base version (the soname's own) is `None`.
    pub version: Option<String>,
    /// `name@@VERSION` (the default one a new link binds to) rather than
    /// `name@VERSION`; always true without a version.
    pub default: bool,
    /// `STT_FUNC` / `STT_GNU_IFUNC` (else an object: a vtable, data).
    pub function: bool,
}

impl Export {
    /// `name`, `name@VER` or `name@@VER`, as `readelf` and `nm -D` write it.
    pub fn spelled(&self) -> String {
        match &self.version {
            None => self.name.clone(),
            Some(v) if self.default => format!("{}@@{v}", self.name),
            Some(v) => format!("{}@{v}", self.name),
        }
    }
}

/// The facts of one ELF file that need no debug info.
#[derive(Clone, Debug, Default)]
pub struct ElfFacts {
    /// `ELFCLASS32` (1) or `ELFCLASS64` (2).
    pub class: u8,
    /// `e_machine` (`EM_X86_64` = 62).
    pub machine: u16,
    /// `DT_SONAME`, if any.
    pub soname: Option<String>,
    /// Exported symbols, sorted.
    pub exports: Vec<Export>,
    /// Exported vtables by class symbol (`_ZTV5Shape`): for each 8-byte
    /// word after the offset-to-top and typeinfo words, the symbol the
    /// word points at, when a relocation says so.
    pub vtables: BTreeMap<String, Vec<Option<String>>>,
    /// The file has a `.debug_info` section (compressed or not).
    pub has_debug_info: bool,
    /// Its size in the file (0 without one).
    pub debug_info_size: u64,
}

/// `ELFCLASS…` as `readelf` names it.
pub fn class_name(class: u8) -> &'static str {
    match class {
        elf::ELFCLASS32 => "ELF32",
        elf::ELFCLASS64 => "ELF64",
        _ => "ELF class unknown",
    }
}

/// `e_machine` as a short name (`x86-64`, `i386`), else its number.
pub fn machine_name(machine: u16) -> String {
    match machine {
        elf::EM_X86_64 => "x86-64".into(),
        elf::EM_386 => "i386".into(),
        elf::EM_AARCH64 => "aarch64".into(),
        elf::EM_ARM => "arm".into(),
        elf::EM_RISCV => "riscv".into(),
        elf::EM_PPC64 => "ppc64".into(),
        elf::EM_S390 => "s390".into(),
        elf::EM_IAMCU => "iamcu".into(),
        n => format!("machine {n}"),
    }
}

/// Reads the facts of the ELF file in `data`. `Err`: not an ELF file, or
/// one whose tables are malformed.
pub fn read(data: &[u8]) -> Result<ElfFacts, String> {
    match object::FileKind::parse(data).map_err(|e| e.to_string())? {
        object::FileKind::Elf32 => facts::<elf::FileHeader32<Endianness>>(data),
        object::FileKind::Elf64 => facts::<elf::FileHeader64<Endianness>>(data),
        k => Err(format!("not an ELF file ({k:?})")),
    }
}

fn facts<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<ElfFacts, String> {
    let err = |e: object::Error| e.to_string();
    let file = ElfFile::<Elf>::parse(data).map_err(err)?;
    let endian = file.endian();
    let header = file.elf_header();
    let sections = file.elf_section_table();
    let mut out = ElfFacts {
        class: header.e_ident().class,
        machine: header.e_machine(endian),
        ..ElfFacts::default()
    };
    if let Some((_, s)) = sections.section_by_name(endian, b".debug_info") {
        out.has_debug_info = true;
        out.debug_info_size = s.sh_size(endian).into();
    }
    // DT_SONAME: a string of the dynamic section's linked string table.
    // `dynamic` gives the entries and the index of their string table.
    if let Some((dyns, link)) = sections.dynamic(endian, data).map_err(err)? {
        let strings = sections.strings(endian, data, link).map_err(err)?;
        for d in dyns {
            if d.tag32(endian) == Some(elf::DT_SONAME) {
                if let Ok(s) = d.string(endian, strings) {
                    out.soname = Some(String::from_utf8_lossy(s).into_owned());
                }
            }
        }
    }
    let dynsym = sections
        .symbols(endian, data, elf::SHT_DYNSYM)
        .map_err(err)?;
    let versions = sections.versions(endian, data).map_err(err)?;
    let mut objects: HashMap<String, (u64, u64)> = HashMap::new();
    for (index, sym) in dynsym.enumerate() {
        if sym.is_undefined(endian) {
            continue;
        }
        let bind = sym.st_bind();
        if bind != elf::STB_GLOBAL && bind != elf::STB_WEAK {
            continue;
        }
        if !matches!(sym.st_visibility(), elf::STV_DEFAULT | elf::STV_PROTECTED) {
            continue;
        }
        let kind = sym.st_type();
        let function = matches!(kind, elf::STT_FUNC | elf::STT_GNU_IFUNC);
        if !function && kind != elf::STT_OBJECT {
            continue;
        }
        let name =
            String::from_utf8_lossy(dynsym.symbol_name(endian, sym).map_err(err)?).into_owned();
        let (mut version, mut default) = (None, true);
        if let Some(v) = &versions {
            let vi = v.version_index(endian, index);
            // Index 1 is the base version (the soname itself): unversioned.
            if vi.index() > 1 {
                if let Some(ver) = v.version(vi).map_err(err)? {
                    version = Some(String::from_utf8_lossy(ver.name()).into_owned());
                    default = !vi.is_hidden();
                }
            }
        }
        // A version definition's own symbol (`VER_2@@VER_2`, SHN_ABS).
        if version.as_deref() == Some(name.as_str()) {
            continue;
        }
        if !function && name.starts_with("_ZTV") {
            objects.insert(
                name.clone(),
                (sym.st_value(endian).into(), sym.st_size(endian).into()),
            );
        }
        out.exports.push(Export {
            name,
            version,
            default,
            function,
        });
    }
    out.exports.sort();
    out.exports.dedup();
    if !objects.is_empty() && out.class == elf::ELFCLASS64 && out.machine == elf::EM_X86_64 {
        out.vtables = vtables(&file, &objects)?;
    }
    Ok(out)
}

/// The slots of the vtables in `objects` (name → address, size), from the
/// file's `SHT_RELA` sections (x86-64 only).
fn vtables<Elf: FileHeader<Endian = Endianness>>(
    file: &ElfFile<'_, Elf>,
    objects: &HashMap<String, (u64, u64)>,
) -> Result<BTreeMap<String, Vec<Option<String>>>, String> {
    let err = |e: object::Error| e.to_string();
    let endian = file.endian();
    let data = file.data();
    let sections = file.elf_section_table();
    // Addresses where a function symbol starts, for RELATIVE relocations.
    let mut by_addr: HashMap<u64, String> = HashMap::new();
    for kind in [elf::SHT_SYMTAB, elf::SHT_DYNSYM] {
        let table = sections.symbols(endian, data, kind).map_err(err)?;
        for sym in table.iter() {
            if sym.is_undefined(endian) || sym.st_type() != elf::STT_FUNC {
                continue;
            }
            if let Ok(n) = table.symbol_name(endian, sym) {
                by_addr
                    .entry(sym.st_value(endian).into())
                    .or_insert_with(|| String::from_utf8_lossy(n).into_owned());
            }
        }
    }
    // Slot address → what the relocation there names.
    let mut slots: HashMap<u64, String> = HashMap::new();
    for section in sections.iter() {
        let Some((relas, link)) = section.rela(endian, data).map_err(err)? else {
            continue;
        };
        let symtab = sections.symbol_table_by_index(endian, data, link).ok();
        for r in relas {
            let at: u64 = r.r_offset(endian).into();
            let named = match r.r_type(endian, false) {
                elf::R_X86_64_64 => r
                    .symbol(endian, false)
                    .and_then(|i| {
                        let t = symtab.as_ref()?;
                        let s = t.symbol(i).ok()?;
                        t.symbol_name(endian, s).ok()
                    })
                    .map(|n| String::from_utf8_lossy(n).into_owned()),
                elf::R_X86_64_RELATIVE => {
                    let addend: i64 = r.r_addend(endian).into();
                    by_addr.get(&(addend as u64)).cloned()
                }
                _ => None,
            };
            if let Some(n) = named {
                slots.insert(at, n);
            }
        }
    }
    let mut out = BTreeMap::new();
    for (name, &(addr, size)) in objects {
        let words = size / 8;
        let v: Vec<Option<String>> = (2..words)
            .map(|w| slots.get(&(addr + w * 8)).cloned())
            .collect();
        out.insert(name.clone(), v);
    }
    Ok(out)
}
