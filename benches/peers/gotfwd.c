/* libgotfwd.so: the floor of any GOT-rebinding tool, for scripts/bench.sh.
 *
 *   LD_PRELOAD=libgotfwd.so ./bench-app add 20000000 1
 *
 * Its constructor walks the loaded objects (dl_iterate_phdr), reads each
 * one's dynamic section (DT_JMPREL/DT_PLTRELSZ and DT_RELA/DT_RELASZ,
 * DT_SYMTAB, DT_STRTAB) and points every R_X86_64_JUMP_SLOT and
 * R_X86_64_GLOB_DAT slot naming bench_add, bench_f or bench_sum at a minimal
 * forwarder that calls the old function (resolved with dlsym). A slot inside
 * PT_GNU_RELRO gets its page made writable for the write, then read-only
 * again. Path of a call: GOT slot -> forwarder -> old function. Nothing else.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

static int (*real_add)(int, int);
static double (*real_f)(double);
static size_t (*real_sum)(const uint8_t *, size_t);

static int fwd_add(int a, int b) { return real_add(a, b); }
static double fwd_f(double x) { return real_f(x); }
static size_t fwd_sum(const uint8_t *buf, size_t len) { return real_sum(buf, len); }

static int patched;

static void *forwarder_for(const char *name)
{
    if (!strcmp(name, "bench_add"))
        return (void *)fwd_add;
    if (!strcmp(name, "bench_f"))
        return (void *)fwd_f;
    if (!strcmp(name, "bench_sum"))
        return (void *)fwd_sum;
    return NULL;
}

/* The dynamic section's pointers are relocated by ld.so on x86-64; be
 * tolerant of an unrelocated one anyway. */
static uintptr_t ptr(uintptr_t base, ElfW(Addr) v)
{
    return v < base ? base + v : v;
}

static void write_slot(struct dl_phdr_info *info, uintptr_t slot, void *value)
{
    long page = sysconf(_SC_PAGESIZE);
    int relro = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_GNU_RELRO && slot >= lo && slot < lo + ph->p_memsz)
            relro = 1;
    }
    uintptr_t pg = slot & ~(uintptr_t)(page - 1);
    if (relro && mprotect((void *)pg, (size_t)page, PROT_READ | PROT_WRITE) != 0) {
        perror("gotfwd: mprotect");
        return;
    }
    *(void **)slot = value;
    if (relro)
        mprotect((void *)pg, (size_t)page, PROT_READ);
    patched++;
}

static void patch_relocs(struct dl_phdr_info *info, const ElfW(Rela) *rel, size_t size,
                         const ElfW(Sym) *symtab, const char *strtab)
{
    for (size_t i = 0; i < size / sizeof *rel; i++) {
        unsigned type = ELF64_R_TYPE(rel[i].r_info);
        if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
            continue;
        const ElfW(Sym) *sym = &symtab[ELF64_R_SYM(rel[i].r_info)];
        void *fwd = forwarder_for(strtab + sym->st_name);
        if (fwd)
            write_slot(info, info->dlpi_addr + rel[i].r_offset, fwd);
    }
}

static int visit(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    (void)data;
    /* Leave ld.so, the vdso, the component itself and this library alone. */
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (strstr(name, "libbench.so") || strstr(name, "libgotfwd.so") || strstr(name, "ld-linux") ||
        strstr(name, "linux-vdso"))
        return 0;
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    if (!dyn)
        return 0;
    uintptr_t base = info->dlpi_addr;
    const ElfW(Rela) *jmprel = NULL, *rela = NULL;
    size_t pltrelsz = 0, relasz = 0;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_JMPREL: jmprel = (const ElfW(Rela) *)ptr(base, dyn->d_un.d_ptr); break;
        case DT_PLTRELSZ: pltrelsz = dyn->d_un.d_val; break;
        case DT_RELA: rela = (const ElfW(Rela) *)ptr(base, dyn->d_un.d_ptr); break;
        case DT_RELASZ: relasz = dyn->d_un.d_val; break;
        case DT_SYMTAB: symtab = (const ElfW(Sym) *)ptr(base, dyn->d_un.d_ptr); break;
        case DT_STRTAB: strtab = (const char *)ptr(base, dyn->d_un.d_ptr); break;
        }
    }
    if (!symtab || !strtab)
        return 0;
    if (jmprel)
        patch_relocs(info, jmprel, pltrelsz, symtab, strtab);
    if (rela)
        patch_relocs(info, rela, relasz, symtab, strtab);
    return 0;
}

__attribute__((constructor)) static void gotfwd_init(void)
{
    real_add = (int (*)(int, int))dlsym(RTLD_DEFAULT, "bench_add");
    real_f = (double (*)(double))dlsym(RTLD_DEFAULT, "bench_f");
    real_sum = (size_t(*)(const uint8_t *, size_t))dlsym(RTLD_DEFAULT, "bench_sum");
    if (!real_add || !real_f || !real_sum) {
        fprintf(stderr, "gotfwd: libbench.so.1 is not loaded; nothing patched\n");
        return;
    }
    dl_iterate_phdr(visit, NULL);
    if (getenv("GOTFWD_VERBOSE"))
        fprintf(stderr, "gotfwd: %d slot(s) patched\n", patched);
}
