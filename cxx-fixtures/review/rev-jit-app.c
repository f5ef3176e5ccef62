/* dlopen called from code outside every object (a JIT's stub in an
 * anonymous executable mapping): glibc takes the main program as the
 * caller, so the program's RUNPATH finds librev.so.1. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

int main(void)
{
    /* sub rsp,8; movabs rax,dlopen; call rax; add rsp,8; ret */
    unsigned char code[] = { 0x48, 0x83, 0xec, 0x08, 0x48, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0,
                             0xff, 0xd0, 0x48, 0x83, 0xc4, 0x08, 0xc3 };
    uint64_t f = (uint64_t)(uintptr_t)&dlopen;
    memcpy(code + 6, &f, 8);
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return 2;
    memcpy(page, code, sizeof code);
    mprotect(page, 4096, PROT_READ | PROT_EXEC);
    void *(*stub)(const char *, int) = (void *(*)(const char *, int))page;
    void *h = stub("librev.so.1", RTLD_NOW);
    printf("dlopen from JIT code: %s\n", h ? "found" : "not found");
    return 0;
}
