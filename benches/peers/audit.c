/* libaudit.so: an empty rtld auditor, for scripts/bench.sh.
 *
 *   LD_AUDIT=libaudit.so ./bench-app add 2000000 1
 *
 * It asks for every binding (la_objopen: LA_FLG_BINDTO | LA_FLG_BINDFROM),
 * leaves the symbol as it is (la_symbind64) and takes both PLT hooks, which
 * do nothing: la_pltenter returns the address it was given (and a frame
 * size of 0, so that ld.so also calls la_pltexit), la_pltexit returns. Every
 * PLT call of the program then goes through ld.so's _dl_runtime_profile:
 * the cost of the LD_AUDIT mechanism itself. LIBAUDIT_VERBOSE=1 prints
 * every binding (scripts/bench.sh checks that bench_add is bound through
 * the auditor). */
#define _GNU_SOURCE
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* LIBAUDIT_VERBOSE=1: say which symbols were bound through the auditor (at
 * binding time only; the PLT hooks stay empty). */
static int verbose;

unsigned int la_version(unsigned int version)
{
    (void)version;
    verbose = getenv("LIBAUDIT_VERBOSE") != NULL;
    return LAV_CURRENT;
}

char *la_objsearch(const char *name, uintptr_t *cookie, unsigned int flag)
{
    (void)cookie;
    (void)flag;
    return (char *)name;
}

unsigned int la_objopen(struct link_map *map, Lmid_t lmid, uintptr_t *cookie)
{
    (void)map;
    (void)lmid;
    (void)cookie;
    return LA_FLG_BINDTO | LA_FLG_BINDFROM;
}

uintptr_t la_symbind64(Elf64_Sym *sym, unsigned int ndx, uintptr_t *refcook, uintptr_t *defcook,
                       unsigned int *flags, const char *symname)
{
    (void)ndx;
    (void)refcook;
    (void)defcook;
    (void)flags;
    if (verbose)
        fprintf(stderr, "audit: bound %s\n", symname);
    return sym->st_value;
}

Elf64_Addr la_x86_64_gnu_pltenter(Elf64_Sym *sym, unsigned int ndx, uintptr_t *refcook,
                                  uintptr_t *defcook, La_x86_64_regs *regs, unsigned int *flags,
                                  const char *symname, long int *framesizep)
{
    (void)ndx;
    (void)refcook;
    (void)defcook;
    (void)regs;
    (void)flags;
    (void)symname;
    *framesizep = 0;
    return sym->st_value;
}

unsigned int la_x86_64_gnu_pltexit(Elf64_Sym *sym, unsigned int ndx, uintptr_t *refcook,
                                   uintptr_t *defcook, const La_x86_64_regs *inregs,
                                   La_x86_64_retval *outregs, const char *symname)
{
    (void)sym;
    (void)ndx;
    (void)refcook;
    (void)defcook;
    (void)inregs;
    (void)outregs;
    (void)symname;
    return 0;
}
