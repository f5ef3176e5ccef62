//! GOT slot patching, RELRO protection.
//!
//! A slot is patched by: one process-wide lock (held by the caller, the
//! runtime's state lock); if the slot lies in the object's `PT_GNU_RELRO`
//! range, make its page writable; write one aligned word; put the
//! protection back. Only pages inside `PT_GNU_RELRO` (rounded the way ld.so
//! rounds it) go back to read-only: a lazily bound `.got.plt` shares its
//! page with `.data`/`.bss`, and making that read-only crashes the process
//! (plthook does the same dance).

use std::sync::atomic::{AtomicUsize, Ordering};

/// Reads a slot.
///
/// # Safety
/// `slot` must be the address of a relocated, mapped, 8-byte-aligned slot.
pub unsafe fn read_slot(slot: usize) -> usize {
    (*(slot as *const AtomicUsize)).load(Ordering::Relaxed)
}

/// Writes `value` into `slot`, lifting RELRO protection for the write.
///
/// # Safety
/// `slot` must be a GOT (or data) slot of a loaded object that holds a
/// function address, and `relro` that object's RELRO range.
pub unsafe fn write_slot(
    slot: usize,
    value: usize,
    relro: Option<(usize, usize)>,
) -> Result<(), String> {
    let protected = matches!(relro, Some((s, e)) if slot >= s && slot < e);
    let page = (slot & !4095) as *mut libc::c_void;
    if protected && libc::mprotect(page, 4096, libc::PROT_READ | libc::PROT_WRITE) != 0 {
        return Err(format!(
            "mprotect({page:p}, RW): {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: aligned word inside a writable page; an atomic store so that a
    // thread calling through the slot sees either the old or the new address.
    (*(slot as *const AtomicUsize)).store(value, Ordering::Release);
    if protected && libc::mprotect(page, 4096, libc::PROT_READ) != 0 {
        return Err(format!(
            "mprotect({page:p}, R): {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
