//! Loaded objects, their dynamic symbols and relocations.
//!
//! The base namespace's objects come from ld.so's `_r_debug.r_map` chain,
//! walked under ld.so's write lock (inside a `dl_iterate_phdr` callback;
//! glibc's `dl_iterate_phdr` itself lists only its caller's namespace).
//! An object's slots are read in memory ([`object_info`]): its dynamic
//! section, which ld.so relocated in place, points at its relocation
//! tables, symbols, strings and version needs; its program headers are
//! ld.so's copy (`dl_iterate_phdr`), or, for another namespace's object,
//! the head of its file. The slots themselves live at `l_addr + r_offset`.

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};

#[cfg(test)]
use goblin::elf::program_header::{PF_X, PT_GNU_RELRO, PT_LOAD};
use goblin::elf::reloc::{R_X86_64_64, R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT};
#[cfg(test)]
use goblin::elf::Elf;

/// glibc's `struct link_map`, the public prefix of it (`<link.h>`).
#[repr(C)]
pub struct LinkMap {
    /// Difference between the addresses in the ELF file and in memory.
    pub l_addr: usize,
    /// Absolute file name ("" for the main program).
    pub l_name: *const libc::c_char,
    /// The dynamic section in memory.
    pub l_ld: *const libc::c_void,
    /// Next object in the namespace's chain, or NULL.
    pub l_next: *mut LinkMap,
    /// Previous object, or NULL.
    pub l_prev: *mut LinkMap,
}

/// glibc's `struct r_debug` (`<link.h>`), exported by ld.so as `_r_debug`.
#[repr(C)]
pub struct RDebug {
    /// Protocol version.
    pub r_version: libc::c_int,
    /// Head of the base namespace's chain of loaded objects.
    pub r_map: *mut LinkMap,
    /// Address debuggers break on.
    pub r_brk: usize,
    /// Consistency state.
    pub r_state: libc::c_int,
    /// ld.so's load address.
    pub r_ldbase: usize,
}

extern "C" {
    /// ld.so's debugger interface; valid for the whole life of the process.
    static _r_debug: RDebug;
}

/// One object of the base namespace, as ld.so knows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LoadedObject {
    /// Load bias (`l_addr`).
    pub base: usize,
    /// Name as ld.so recorded it ("" for the main program).
    pub name: String,
    /// The file to parse (`/proc/self/exe` for the main program).
    pub path: PathBuf,
    /// Address of its `link_map`.
    pub lmap: usize,
}

impl LoadedObject {
    /// True for the main program.
    pub fn is_main(&self) -> bool {
        self.name.is_empty()
    }

    /// A short name for messages and `caller` fields.
    pub fn short_name(&self) -> String {
        let p = if self.is_main() {
            exe_path()
        } else {
            self.path.clone()
        };
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The main program's path.
pub fn exe_path() -> PathBuf {
    std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| PathBuf::from("/proc/self/exe"))
}

/// The objects of the base namespace, in load order.
///
/// The chain is walked inside a `dl_iterate_phdr` callback, which holds
/// ld.so's `dl_load_write_lock`: objects are linked into and unlinked from
/// the chain under that lock, so no `link_map` read here is freed meanwhile
/// (another application thread may be in `dlopen`/`dlclose` at any time).
/// An object listed may still be unmapped right after: see
/// `runtime::pin_objects`.
pub fn base_namespace_objects() -> Vec<LoadedObject> {
    unsafe extern "C" fn walk(
        _info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the Vec passed below, on this thread.
        walk_chain(unsafe { &mut *(data as *mut Vec<LoadedObject>) });
        1 // once is enough
    }
    let mut out = Vec::new();
    // SAFETY: the callback only walks ld.so's chain into `out`.
    unsafe { libc::dl_iterate_phdr(Some(walk), &mut out as *mut Vec<LoadedObject> as *mut _) };
    out
}

/// ld.so's counters of loads and unloads (`dl_phdr_info::dlpi_adds` and
/// `dlpi_subs`, over every namespace): equal between two looks, no object
/// was loaded or unloaded meanwhile. (`dlpi_subs` alone is no count of
/// unloads with a `dlmopen` namespace loaded: glibc derives it from a sum
/// that counts other namespaces' objects more than once. The pair still
/// moves with every load, which counts in `dlpi_adds`, and every unload.)
pub fn load_generation() -> (u64, u64) {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the pair below; `info` is ld.so's, valid here.
        unsafe { *(data as *mut (u64, u64)) = ((*info).dlpi_adds, (*info).dlpi_subs) };
        1
    }
    let mut counters = (0u64, 0u64);
    // SAFETY: the callback only copies two counters out.
    unsafe { libc::dl_iterate_phdr(Some(first), &mut counters as *mut (u64, u64) as *mut _) };
    counters
}

fn walk_chain(out: &mut Vec<LoadedObject>) {
    // SAFETY: `_r_debug` is ld.so's; its chain is only changed under ld.so's
    // write lock, which the caller holds.
    unsafe {
        let mut l = std::ptr::addr_of!(_r_debug).read_volatile().r_map;
        while !l.is_null() {
            let name = if (*l).l_name.is_null() {
                String::new()
            } else {
                CStr::from_ptr((*l).l_name).to_string_lossy().into_owned()
            };
            let path = if name.is_empty() {
                PathBuf::from("/proc/self/exe")
            } else {
                PathBuf::from(&name)
            };
            out.push(LoadedObject {
                base: (*l).l_addr,
                name,
                path,
                lmap: l as usize,
            });
            l = (*l).l_next;
        }
    }
}

/// A read-only mapping of a whole file.
pub struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapped {
    /// Maps `path` read-only.
    pub fn open(path: &Path) -> std::io::Result<Mapped> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
        // SAFETY: plain syscalls on a path we own; the fd is closed below.
        unsafe {
            let fd = libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 {
                let e = std::io::Error::last_os_error();
                libc::close(fd);
                return Err(e);
            }
            let len = st.st_size as usize;
            let ptr = libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd,
                0,
            );
            libc::close(fd);
            if ptr == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            Ok(Mapped { ptr, len })
        }
    }

    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `open` mapped.
        unsafe { libc::munmap(self.ptr, self.len.max(1)) };
    }
}

/// A relocated slot of an object that refers to a symbol by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SymbolSlot {
    /// Address of the slot in memory (`l_addr + r_offset`).
    pub addr: usize,
    /// `R_X86_64_JUMP_SLOT`, `R_X86_64_GLOB_DAT` or `R_X86_64_64`.
    pub r_type: u32,
    /// The symbol it refers to.
    pub name: String,
    /// The symbol version the reference carries (`GLIBC_2.2.5`), if any.
    pub version: Option<String>,
}

/// What rebinding needs to know about one object.
#[derive(Clone, Debug, Default)]
pub struct ObjectInfo {
    /// Slots referring to symbols whose name passed the filter.
    pub slots: Vec<SymbolSlot>,
    /// `[start, end)` in memory that ld.so made read-only after relocation
    /// (page-rounded the way `_dl_protect_relro` rounds: both ends down).
    pub relro: Option<(usize, usize)>,
    /// Executable ranges in memory.
    pub exec: Vec<(usize, usize)>,
    /// `[start, end)` of the whole mapping in memory.
    pub span: (usize, usize),
}

fn page_down(a: usize) -> usize {
    a & !(4095)
}

/// The program headers of the loaded object whose dynamic section is at
/// `l_ld` in memory: ld.so's copy, as `dl_iterate_phdr` reports it, for an
/// object of the caller's (the base) namespace.
fn program_headers(l_ld: usize) -> Option<Vec<libc::Elf64_Phdr>> {
    struct Find {
        l_ld: usize,
        found: Option<Vec<libc::Elf64_Phdr>>,
    }
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: usize,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Find` below, on this thread; `info` and
        // its headers are ld.so's, valid during the callback.
        unsafe {
            let f = &mut *(data as *mut Find);
            let info = &*info;
            let phdrs = std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize);
            let dynamic = phdrs.iter().any(|ph| {
                ph.p_type == libc::PT_DYNAMIC
                    && (info.dlpi_addr as usize).wrapping_add(ph.p_vaddr as usize) == f.l_ld
            });
            if dynamic {
                f.found = Some(phdrs.to_vec());
                return 1;
            }
        }
        0
    }
    let mut f = Find { l_ld, found: None };
    // SAFETY: the callback only reads ld.so's descriptions into `f`.
    unsafe { libc::dl_iterate_phdr(Some(each), &mut f as *mut Find as *mut _) };
    f.found
}

/// The program headers of an object of another namespace, which
/// `dl_iterate_phdr` does not list: read from the head of its file (the
/// ELF header and the headers, not the rest), and taken only if the file's
/// dynamic section lands at `l_ld` for an object loaded at `base` (a
/// `/proc/self/fd/N` that now names another file does not pass).
fn file_program_headers(
    path: &Path,
    base: usize,
    l_ld: usize,
) -> Result<Vec<libc::Elf64_Phdr>, String> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut eh = [0u8; std::mem::size_of::<libc::Elf64_Ehdr>()];
    f.read_exact_at(&mut eh, 0).map_err(|e| e.to_string())?;
    // SAFETY: Elf64_Ehdr is plain integers; any bytes are a value.
    let eh: libc::Elf64_Ehdr = unsafe { std::ptr::read_unaligned(eh.as_ptr().cast()) };
    let phentsize = std::mem::size_of::<libc::Elf64_Phdr>();
    if eh.e_ident[..4] != *b"\x7fELF"
        || eh.e_ident[4] != 2 // ELFCLASS64
        || eh.e_phentsize as usize != phentsize
    {
        return Err("not a 64-bit ELF file".into());
    }
    let n = eh.e_phnum as usize;
    let mut raw = vec![0u8; n * phentsize];
    f.read_exact_at(&mut raw, eh.e_phoff)
        .map_err(|e| e.to_string())?;
    let phdrs: Vec<libc::Elf64_Phdr> = (0..n)
        // SAFETY: within `raw`; Elf64_Phdr is plain integers.
        .map(|i| unsafe { std::ptr::read_unaligned(raw.as_ptr().add(i * phentsize).cast()) })
        .collect();
    let matches = phdrs
        .iter()
        .any(|ph| ph.p_type == libc::PT_DYNAMIC && base.wrapping_add(ph.p_vaddr as usize) == l_ld);
    if !matches {
        return Err("the file does not match the object in memory".into());
    }
    Ok(phdrs)
}

/// The symbol names rebinding looks for: `wanted` decides, after a quick
/// test (the names' lengths and last bytes) that turns most other names
/// away without hashing them or checking their UTF-8.
pub struct NameFilter<'a> {
    /// Bit `len % 64` for every name's length.
    lens: u64,
    /// Bit `b` for every name's last byte `b`.
    last: [u64; 4],
    wanted: &'a dyn Fn(&str) -> bool,
}

impl<'a> NameFilter<'a> {
    /// A filter that admits exactly the names `wanted` accepts, all of
    /// which must be among `names`.
    pub fn new<'n>(
        names: impl IntoIterator<Item = &'n str>,
        wanted: &'a dyn Fn(&str) -> bool,
    ) -> Self {
        let mut f = NameFilter {
            lens: 0,
            last: [0; 4],
            wanted,
        };
        for n in names {
            f.lens |= 1 << (n.len() % 64);
            if let Some(&b) = n.as_bytes().last() {
                f.last[b as usize / 64] |= 1 << (b % 64);
            }
        }
        f
    }

    /// Every name (the tests' reference reading).
    #[cfg(test)]
    pub fn all(wanted: &'a dyn Fn(&str) -> bool) -> Self {
        NameFilter {
            lens: u64::MAX,
            last: [u64::MAX; 4],
            wanted,
        }
    }

    /// Is `name` one of the names looked for?
    pub fn admits(&self, name: &[u8]) -> bool {
        let Some(&b) = name.last() else {
            return false;
        };
        self.lens & (1 << (name.len() % 64)) != 0
            && self.last[b as usize / 64] & (1 << (b % 64)) != 0
            && std::str::from_utf8(name).is_ok_and(|n| (self.wanted)(n))
    }
}

/// Reads `obj`'s relocations from memory (its dynamic section, as ld.so
/// relocated it, and the tables it points at) and returns the slots that
/// refer to names `names` admits, plus its RELRO, executable
/// ranges and span (from its program headers: ld.so's copy, as
/// `dl_iterate_phdr` gives it, for the base namespace; the head of its file
/// for another namespace's object). Nothing else is read from the file, and
/// nothing rebinding does not need is parsed.
///
/// `obj` must stay loaded meanwhile (held open, or ld.so's never-unloaded
/// objects): `obj.lmap` is read as a live `link_map`. Not for the vdso.
pub fn object_info(obj: &LoadedObject, names: &NameFilter) -> Result<ObjectInfo, String> {
    if obj.lmap == 0 {
        return Err(format!("{}: no link_map", obj.name));
    }
    // SAFETY: the caller keeps the object loaded: its link_map is live.
    let l_ld = unsafe { (*(obj.lmap as *const LinkMap)).l_ld } as usize;
    let phdrs = match program_headers(l_ld) {
        Some(p) => p,
        None => file_program_headers(&obj.path, obj.base, l_ld)
            .map_err(|e| format!("{}: {e}", obj.path.display()))?,
    };
    let mut info = ObjectInfo::default();
    let (mut lo, mut hi) = (usize::MAX, 0usize);
    for ph in &phdrs {
        let start = obj.base.wrapping_add(ph.p_vaddr as usize);
        let end = start + ph.p_memsz as usize;
        if ph.p_type == libc::PT_LOAD {
            lo = lo.min(start);
            hi = hi.max(end);
            if ph.p_flags & libc::PF_X != 0 {
                info.exec.push((start, end));
            }
        } else if ph.p_type == libc::PT_GNU_RELRO {
            let (s, e) = (page_down(start), page_down(end));
            if e > s {
                info.relro = Some((s, e));
            }
        }
    }
    info.span = (lo, hi);
    // SAFETY: the dynamic section and the tables it points at are mapped
    // for as long as the object is loaded.
    unsafe { dynamic_slots(obj.base, l_ld, names, &mut info.slots) };
    Ok(info)
}

/// `Elf64_Verneed` (`<elf.h>`): one needed file's version requirements.
#[repr(C)]
struct Verneed {
    vn_version: u16,
    vn_cnt: u16,
    vn_file: u32,
    vn_aux: u32,
    vn_next: u32,
}

/// `Elf64_Vernaux` (`<elf.h>`): one needed version.
#[repr(C)]
struct Vernaux {
    vna_hash: u32,
    vna_flags: u16,
    vna_other: u16,
    vna_name: u32,
    vna_next: u32,
}

/// The `JUMP_SLOT`, `GLOB_DAT` and `R_X86_64_64` relocations of the object
/// loaded at `base` whose dynamic section is at `l_ld`, for names `names`
/// admits, appended to `out`.
///
/// # Safety
/// `l_ld` must be the dynamic section of an object loaded (and staying
/// loaded) at `base` by ld.so (not the vdso).
unsafe fn dynamic_slots(base: usize, l_ld: usize, names: &NameFilter, out: &mut Vec<SymbolSlot>) {
    use goblin::elf::dynamic::dyn64::Dyn;
    use goblin::elf::dynamic::*;
    // ld.so relocates most of the dynamic section's pointers in place on
    // x86-64 (not DT_VERNEED); an unrelocated one is an offset below the
    // load address.
    let fix = |p: u64| {
        let p = p as usize;
        if p < base {
            p + base
        } else {
            p
        }
    };
    let (mut symtab, mut strtab, mut strsz) = (0usize, 0usize, 0usize);
    let (mut rela, mut relasz, mut relaent) = (0usize, 0usize, 24usize);
    let (mut jmprel, mut pltrelsz, mut pltrel) = (0usize, 0usize, DT_RELA);
    let (mut versym, mut verneed, mut verneednum) = (0usize, 0usize, 0usize);
    let mut d = l_ld as *const Dyn;
    while (*d).d_tag != DT_NULL {
        let v = (*d).d_val;
        match (*d).d_tag {
            DT_SYMTAB => symtab = fix(v),
            DT_STRTAB => strtab = fix(v),
            DT_STRSZ => strsz = v as usize,
            DT_RELA => rela = fix(v),
            DT_RELASZ => relasz = v as usize,
            DT_RELAENT => relaent = v as usize,
            DT_JMPREL => jmprel = fix(v),
            DT_PLTRELSZ => pltrelsz = v as usize,
            DT_PLTREL => pltrel = v,
            DT_VERSYM => versym = fix(v),
            DT_VERNEED => verneed = fix(v),
            DT_VERNEEDNUM => verneednum = v as usize,
            _ => {}
        }
        d = d.add(1);
    }
    if symtab == 0 || strtab == 0 || relaent < 24 {
        return;
    }
    let name_at = |off: usize| -> Option<&[u8]> {
        if off >= strsz {
            return None;
        }
        Some(CStr::from_ptr((strtab + off) as *const libc::c_char).to_bytes())
    };
    // Version indexes the object needs → their names.
    let mut versions: HashMap<u16, String> = HashMap::new();
    if verneed != 0 {
        let mut need = verneed;
        for _ in 0..verneednum {
            let n = &*(need as *const Verneed);
            let mut aux = need + n.vn_aux as usize;
            for _ in 0..n.vn_cnt {
                let a = &*(aux as *const Vernaux);
                if let Some(name) = name_at(a.vna_name as usize) {
                    versions.insert(
                        a.vna_other & 0x7fff,
                        String::from_utf8_lossy(name).into_owned(),
                    );
                }
                if a.vna_next == 0 {
                    break;
                }
                aux += a.vna_next as usize;
            }
            if n.vn_next == 0 {
                break;
            }
            need += n.vn_next as usize;
        }
    }
    let tables = [(rela, relasz, false), (jmprel, pltrelsz, true)];
    for (at, size, is_plt) in tables {
        if at == 0 || (is_plt && pltrel != DT_RELA) {
            continue;
        }
        for i in 0..size / relaent {
            let r = &*((at + i * relaent) as *const libc::Elf64_Rela);
            let r_type = (r.r_info & 0xffff_ffff) as u32;
            let r_sym = (r.r_info >> 32) as usize;
            let ok = match r_type {
                R_X86_64_JUMP_SLOT => true,
                R_X86_64_GLOB_DAT | R_X86_64_64 => !is_plt,
                _ => false,
            };
            if !ok || r_sym == 0 {
                continue;
            }
            let sym = &*(symtab as *const libc::Elf64_Sym).add(r_sym);
            // A defined symbol in the object itself is not a reference to
            // another object (R_X86_64_64 to a local function, say).
            if sym.st_shndx != 0 && r_type == R_X86_64_64 {
                continue;
            }
            let Some(name) = name_at(sym.st_name as usize) else {
                continue;
            };
            if !names.admits(name) {
                continue;
            }
            // SAFETY: `admits` accepted it, which checked its UTF-8.
            let name = std::str::from_utf8_unchecked(name);
            let version = if versym != 0 {
                let v = *(versym as *const u16).add(r_sym) & 0x7fff;
                versions.get(&v).cloned()
            } else {
                None
            };
            out.push(SymbolSlot {
                addr: base.wrapping_add(r.r_offset as usize),
                r_type,
                name: name.to_string(),
                version,
            });
        }
    }
}

/// Parses `obj`'s file with goblin and returns what [`object_info`] reads
/// from memory: the tests' reference for it.
#[cfg(test)]
pub fn object_info_from_file(
    obj: &LoadedObject,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<ObjectInfo, String> {
    let map = Mapped::open(&obj.path).map_err(|e| format!("{}: {e}", obj.path.display()))?;
    let elf = Elf::parse(map.bytes()).map_err(|e| format!("{}: {e}", obj.path.display()))?;
    let mut info = ObjectInfo::default();
    let (mut lo, mut hi) = (usize::MAX, 0usize);
    for ph in &elf.program_headers {
        let start = obj.base + ph.p_vaddr as usize;
        let end = start + ph.p_memsz as usize;
        if ph.p_type == PT_LOAD {
            lo = lo.min(start);
            hi = hi.max(end);
            if ph.p_flags & PF_X != 0 {
                info.exec.push((start, end));
            }
        } else if ph.p_type == PT_GNU_RELRO {
            let (s, e) = (page_down(start), page_down(end));
            if e > s {
                info.relro = Some((s, e));
            }
        }
    }
    info.span = (lo, hi);
    let versions = version_names(&elf);
    for (relocs, is_plt) in [(&elf.dynrelas, false), (&elf.pltrelocs, true)] {
        for r in relocs.iter() {
            let ok = match r.r_type {
                R_X86_64_JUMP_SLOT => true,
                R_X86_64_GLOB_DAT | R_X86_64_64 => !is_plt,
                _ => false,
            };
            if !ok || r.r_sym == 0 {
                continue;
            }
            let Some(sym) = elf.dynsyms.get(r.r_sym) else {
                continue;
            };
            let Some(name) = elf.dynstrtab.get_at(sym.st_name) else {
                continue;
            };
            if !wanted(name) {
                continue;
            }
            if sym.st_shndx != 0 && r.r_type == R_X86_64_64 {
                continue;
            }
            let version = elf
                .versym
                .as_ref()
                .and_then(|vs| vs.get_at(r.r_sym))
                .and_then(|v| versions.get(&v.version()).cloned());
            info.slots.push(SymbolSlot {
                addr: obj.base + r.r_offset as usize,
                r_type: r.r_type,
                name: name.to_string(),
                version,
            });
        }
    }
    Ok(info)
}

/// Maps version indexes needed by an object to their names.
#[cfg(test)]
fn version_names(elf: &Elf) -> HashMap<u16, String> {
    let mut out = HashMap::new();
    if let Some(vn) = &elf.verneed {
        for need in vn.iter() {
            for aux in need.iter() {
                if let Some(n) = elf.dynstrtab.get_at(aux.vna_name) {
                    out.insert(aux.vna_other & 0x7fff, n.to_string());
                }
            }
        }
    }
    out
}

/// GNU symbol hash (`dl_new_hash`).
fn gnu_hash(name: &[u8]) -> u32 {
    name.iter()
        .fold(5381u32, |h, c| h.wrapping_mul(33).wrapping_add(*c as u32))
}

/// Looks `name` up in a loaded object's own dynamic symbol table, in
/// memory, through its `DT_GNU_HASH` table, and returns the address of its
/// default-version definition. Allocation-free.
///
/// # Safety
/// `l` must be a live `link_map` of the base namespace.
pub unsafe fn gnu_lookup(l: *const LinkMap, name: &[u8]) -> Option<usize> {
    gnu_symbol(l, name).map(|(addr, _)| addr)
}

/// Is `name` a function (`STT_FUNC`) a loaded object defines and exports
/// under its default version ([`gnu_lookup`], in memory)?
///
/// # Safety
/// `l` must be a live `link_map` of the base namespace.
pub unsafe fn gnu_defines_function(l: *const LinkMap, name: &[u8]) -> bool {
    gnu_symbol(l, name).is_some_and(|(_, info)| info & 0xf == goblin::elf::sym::STT_FUNC)
}

/// [`gnu_lookup`]'s search: the address and `st_info` of the definition.
///
/// # Safety
/// As [`gnu_lookup`].
unsafe fn gnu_symbol(l: *const LinkMap, name: &[u8]) -> Option<(usize, u8)> {
    const DT_GNU_HASH: i64 = 0x6fff_fef5;
    const DT_VERSYM: i64 = 0x6fff_fff0;
    let base = (*l).l_addr;
    // ld.so relocates the dynamic section's pointers in place on x86-64;
    // an unrelocated one is still an offset below the load address.
    let fix = |p: usize| if p < base { p + base } else { p };
    let (mut symtab, mut strtab, mut hash, mut versym) = (0usize, 0usize, 0usize, 0usize);
    use goblin::elf::dynamic::{dyn64::Dyn, DT_NULL, DT_STRTAB, DT_SYMTAB};
    let mut d = (*l).l_ld as *const Dyn;
    while (*d).d_tag != DT_NULL {
        let v = (*d).d_val as usize;
        match (*d).d_tag as i64 {
            t if t == DT_SYMTAB as i64 => symtab = fix(v),
            t if t == DT_STRTAB as i64 => strtab = fix(v),
            DT_GNU_HASH => hash = fix(v),
            DT_VERSYM => versym = fix(v),
            _ => {}
        }
        d = d.add(1);
    }
    if symtab == 0 || strtab == 0 || hash == 0 {
        return None;
    }
    let h = gnu_hash(name);
    let hdr = hash as *const u32;
    let (nbuckets, symoffset, bloom_size) =
        (*hdr as usize, *hdr.add(1) as usize, *hdr.add(2) as usize);
    let buckets = (hdr.add(4) as *const u64).add(bloom_size) as *const u32;
    let chain = buckets.add(nbuckets);
    let mut i = *buckets.add(h as usize % nbuckets) as usize;
    if i < symoffset {
        return None;
    }
    loop {
        let ch = *chain.add(i - symoffset);
        if (ch | 1) == (h | 1) {
            let sym = &*(symtab as *const libc::Elf64_Sym).add(i);
            let s = CStr::from_ptr((strtab + sym.st_name as usize) as *const libc::c_char);
            let hidden = versym != 0 && *(versym as *const u16).add(i) & 0x8000 != 0;
            if s.to_bytes() == name && sym.st_shndx != 0 && !hidden {
                return Some((base + sym.st_value as usize, sym.st_info));
            }
        }
        if ch & 1 != 0 {
            return None;
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reading an object's relocations from memory gives exactly what
    /// parsing its file gives, for every object of this process (the test
    /// binary, libc, libm, libgcc_s, ld.so…).
    #[test]
    fn memory_reading_matches_the_files() {
        let yes = |_: &str| true;
        let all = NameFilter::all(&yes);
        let mut checked = 0;
        let mut versioned = 0;
        for obj in base_namespace_objects() {
            if obj.name.contains("linux-vdso") {
                continue;
            }
            let mem = object_info(&obj, &all).expect("from memory");
            let file = object_info_from_file(&obj, &yes).expect("from the file");
            assert_eq!(mem.slots, file.slots, "{}", obj.path.display());
            assert_eq!(mem.relro, file.relro, "{}", obj.path.display());
            assert_eq!(mem.exec, file.exec, "{}", obj.path.display());
            assert_eq!(mem.span, file.span, "{}", obj.path.display());
            versioned += mem.slots.iter().filter(|s| s.version.is_some()).count();
            checked += 1;
        }
        assert!(checked >= 3, "only {checked} objects");
        assert!(versioned > 0, "no versioned reference read");
    }

    /// The same for the objects of another namespace (`dl_iterate_phdr`
    /// does not list them: their program headers come from their files).
    #[test]
    fn memory_reading_matches_the_files_in_another_namespace() {
        // SAFETY: plain dlmopen/dlinfo on a system library; the namespace
        // is closed at the end.
        unsafe {
            let h = libc::dlmopen(libc::LM_ID_NEWLM, c"libm.so.6".as_ptr(), libc::RTLD_NOW);
            assert!(!h.is_null(), "dlmopen libm.so.6");
            let mut l: *mut LinkMap = std::ptr::null_mut();
            assert_eq!(
                libc::dlinfo(
                    h,
                    libc::RTLD_DI_LINKMAP,
                    &mut l as *mut _ as *mut libc::c_void
                ),
                0
            );
            while !(*l).l_prev.is_null() {
                l = (*l).l_prev;
            }
            let yes = |_: &str| true;
            let all = NameFilter::all(&yes);
            let mut checked = 0;
            while !l.is_null() {
                let name = CStr::from_ptr((*l).l_name).to_string_lossy().into_owned();
                let obj = LoadedObject {
                    base: (*l).l_addr,
                    path: PathBuf::from(&name),
                    name,
                    lmap: l as usize,
                };
                l = (*l).l_next;
                if obj.name.is_empty() {
                    continue;
                }
                let mem = object_info(&obj, &all).expect("from memory");
                let file = object_info_from_file(&obj, &yes).expect("from the file");
                assert_eq!(mem.slots, file.slots, "{}", obj.name);
                assert_eq!(mem.relro, file.relro, "{}", obj.name);
                assert_eq!(mem.span, file.span, "{}", obj.name);
                checked += 1;
            }
            assert!(checked >= 2, "only {checked} objects");
            libc::dlclose(h);
        }
    }

    /// `load_generation` moves with a load and with an unload (of another
    /// namespace's objects too), and stays put otherwise.
    #[test]
    fn load_generation_moves_with_loads_and_unloads() {
        let before = load_generation();
        assert_eq!(load_generation(), before);
        // SAFETY: a plain dlmopen/dlclose of a system library in a
        // namespace of its own.
        unsafe {
            let h = libc::dlmopen(libc::LM_ID_NEWLM, c"libm.so.6".as_ptr(), libc::RTLD_NOW);
            assert!(!h.is_null());
            let loaded = load_generation();
            assert_ne!(loaded, before, "a load");
            assert_eq!(load_generation(), loaded);
            libc::dlclose(h);
            assert_ne!(load_generation(), loaded, "an unload");
        }
    }

    /// The name filter is applied, and a program's references to libc
    /// are found with their versions.
    #[test]
    fn memory_reading_filters_by_name() {
        let main = base_namespace_objects()
            .into_iter()
            .find(|o| o.is_main())
            .expect("main program");
        let is_malloc = |n: &str| n == "malloc";
        let info = object_info(&main, &NameFilter::new(["malloc"], &is_malloc)).expect("read");
        assert!(!info.slots.is_empty(), "the test binary references malloc");
        for s in &info.slots {
            assert_eq!(s.name, "malloc");
            assert_eq!(s.version.as_deref(), Some("GLIBC_2.2.5"));
        }
        assert!(info.span.0 < info.span.1);
        assert!(!info.exec.is_empty());
    }

    /// libc, looked up in memory: `malloc` is a function it exports,
    /// `environ` an object, `ddl_no_such_function` nothing.
    #[test]
    fn in_memory_lookup_tells_functions() {
        let libc_obj = base_namespace_objects()
            .into_iter()
            .find(|o| o.name.contains("libc.so"))
            .expect("libc is loaded");
        let l = libc_obj.lmap as *const LinkMap;
        // SAFETY: libc's link_map, loaded for the process's life.
        unsafe {
            assert!(gnu_defines_function(l, b"malloc"));
            assert!(gnu_lookup(l, b"environ").is_some());
            assert!(!gnu_defines_function(l, b"environ"));
            assert!(!gnu_defines_function(l, b"ddl_no_such_function"));
        }
    }
}
