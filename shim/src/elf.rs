//! Loaded objects, their dynamic symbols and relocations.
//!
//! The base namespace's objects come from ld.so's `_r_debug.r_map` chain
//! (`dl_iterate_phdr` would also list the new build's namespace, which DDL
//! must never rebind). Each object's file is mapped read-only and parsed with
//! goblin; the slots themselves live at `l_addr + r_offset` in memory.

use std::collections::HashMap;
use std::ffi::CStr;
use std::path::{Path, PathBuf};

use goblin::elf::program_header::{PF_X, PT_GNU_RELRO, PT_LOAD};
use goblin::elf::reloc::{R_X86_64_64, R_X86_64_GLOB_DAT, R_X86_64_JUMP_SLOT};
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

/// Parses `obj`'s file and returns the slots that refer to names for which
/// `wanted` is true, plus its RELRO and executable ranges.
pub fn object_info(
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
            // A defined symbol in the object itself is not a reference to
            // another object (R_X86_64_64 to a local function, say).
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

/// Finds the default-version definition of each of `names` in `obj`
/// (by its file's dynamic symbol table) and returns their addresses.
///
/// DDL uses this to reach libc's own `dlsym`, `dlopen`… past its own
/// interposers: calling `dlsym` from libddl would find libddl's.
pub fn lookup_defined(obj: &LoadedObject, names: &[&str]) -> Result<Vec<Option<usize>>, String> {
    let map = Mapped::open(&obj.path).map_err(|e| format!("{}: {e}", obj.path.display()))?;
    let elf = Elf::parse(map.bytes()).map_err(|e| format!("{}: {e}", obj.path.display()))?;
    let mut out = vec![None; names.len()];
    for (i, sym) in elf.dynsyms.iter().enumerate() {
        if sym.st_shndx == 0 || sym.st_value == 0 {
            continue;
        }
        let hidden = elf
            .versym
            .as_ref()
            .and_then(|vs| vs.get_at(i))
            .map(|v| v.is_hidden())
            .unwrap_or(false);
        if hidden {
            continue;
        }
        let Some(name) = elf.dynstrtab.get_at(sym.st_name) else {
            continue;
        };
        if let Some(k) = names.iter().position(|n| *n == name) {
            out[k] = Some(obj.base + sym.st_value as usize);
        }
    }
    Ok(out)
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
                return Some(base + sym.st_value as usize);
            }
        }
        if ch & 1 != 0 {
            return None;
        }
        i += 1;
    }
}
