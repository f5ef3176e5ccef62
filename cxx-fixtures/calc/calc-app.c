/* calc-app: uses libcalc deterministically and prints every result, one line
 * per boundary call, starting with the function's name.
 *
 * Boundary calls made by this app (and the inputs where the new build differs):
 *   calc_add      6  (4 direct, 2 through the data table `int_ops`)  differs: never
 *   calc_div      7  (5 direct, 2 through `int_ops`)   differs: b == 0 -> (7,0) (0,0) (8,0): 3
 *   calc_add3     2  differs: never (its inner calc_add calls are the component's own
 *                    calls, not the app's: not counted, not mirrored)
 *   calc_sqrt     6  (3 direct, 3 through the RELRO table `unary_ops`)
 *                    differs by 1 ulp for x > 100 -> 144, 1e6, 12345.678: 3
 *   calc_norm2    2  differs by 1 ulp when x*x+y*y > 100 -> (30,40): 1 (its inner calc_sqrt
 *                    call is the component's own: not counted, not mirrored, also
 *                    in the non-PIE layout where it comes back through the app's PLT)
 *   calc_scale    3  differs: never
 *   calc_is_even  4  differs: never
 *   calc_sign     3  differs: never
 *   calc_clamp8   3  differs: never
 *   calc_swap16   2  differs: never
 *   calc_mul64    4  differs on overflow -> (2^40,2^30) (ULLONG_MAX,2): 2
 *   calc_hash     5  differs with upper case -> "Hello" "abc-XYZ": 2
 *   calc_name     6  differs for code 3 (called twice): 2
 *   calc_version  1  differs always (1 vs 2) but is compared with "ignore": 0
 * The "pages" lines print whether the first and last pages of the
 * executable's PT_GNU_RELRO segment (which holds the GOT in the full-RELRO
 * layouts), the RELRO table and the writable table are writable (from
 * /proc/self/maps): after rebinding, RELRO must be read-only again and the
 * rest as it was (the app also writes to the data table).
 * The "identity:" lines check that function pointers stay equal however the
 * app obtains them (GOT, data table, dlsym): rebinding must keep them so.
 * Total: 54 calls; 14 of them differ, 13 mismatches (calc_version is ignored),
 * 10 when calc_sqrt is compared with {"ret": {"ulps": 2}}.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "calc.h"

/* Function addresses in writable data: R_X86_64_64 in a PIE, the canonical
 * PLT entry in a non-PIE executable. Not static, so the compiler cannot
 * fold the calls through it into direct calls. */
int (*int_ops[2])(int, int) = { calc_add, calc_div };

/* ... and in RELRO data (.data.rel.ro in a PIE). */
static const struct {
    const char *name;
    double (*fn)(double);
} unary_ops[1] = { { "calc_sqrt", calc_sqrt } };

static int find_relro(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    uintptr_t *r = data;
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_GNU_RELRO) {
            r[0] = info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
            r[1] = r[0] + info->dlpi_phdr[i].p_memsz;
        }
    return 1; /* the first object is the executable */
}

/* "rw" / "r-" / "?" for the mapping that holds p, into res[3]. */
static const char *prot_of(const void *p, char *res)
{
    uintptr_t a = (uintptr_t)p;
    FILE *f = fopen("/proc/self/maps", "r");
    strcpy(res, "?");
    if (!f)
        return res;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[5];
        if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 && a >= lo && a < hi) {
            res[0] = perms[0];
            res[1] = perms[1];
            res[2] = 0;
            break;
        }
    }
    fclose(f);
    return res;
}

static void pages(const char *when)
{
    uintptr_t relro[2] = { 0, 0 };
    dl_iterate_phdr(find_relro, relro);
    char a[3], b[3], r[3], d[3];
    printf("pages %s: RELRO first %s last %s, RELRO table %s, data table %s\n", when,
           relro[1] ? prot_of((void *)relro[0], a) : "none",
           relro[1] ? prot_of((void *)(relro[1] - 1), b) : "none",
           prot_of(unary_ops, r), prot_of(int_ops, d));
}

int main(void)
{
    pages("at start");

    static const int add_in[4][2] = { { 1, 2 }, { -5, 5 }, { 100000, 23 }, { 7, -9 } };
    for (int i = 0; i < 4; i++)
        printf("calc_add(%d, %d) = %d\n", add_in[i][0], add_in[i][1], calc_add(add_in[i][0], add_in[i][1]));

    static const int div_in[5][2] = { { 7, 2 }, { 7, 0 }, { -9, 3 }, { 0, 0 }, { 100, 7 } };
    for (int i = 0; i < 5; i++)
        printf("calc_div(%d, %d) = %d\n", div_in[i][0], div_in[i][1], calc_div(div_in[i][0], div_in[i][1]));

    static const int tab_in[2][2] = { { 3, 4 }, { 8, 0 } };
    for (int i = 0; i < 2; i++) {
        printf("calc_add(%d, %d) = %d [table]\n", tab_in[i][0], tab_in[i][1], int_ops[0](tab_in[i][0], tab_in[i][1]));
        printf("calc_div(%d, %d) = %d [table]\n", tab_in[i][0], tab_in[i][1], int_ops[1](tab_in[i][0], tab_in[i][1]));
    }

    printf("calc_add3(1, 2, 3) = %d\n", calc_add3(1, 2, 3));
    printf("calc_add3(10, -20, 30) = %d\n", calc_add3(10, -20, 30));

    static const double sqrt_direct[3] = { 4.0, 144.0, 1e6 };
    for (int i = 0; i < 3; i++)
        printf("calc_sqrt(%a) = %a\n", sqrt_direct[i], calc_sqrt(sqrt_direct[i]));
    static const double sqrt_table[3] = { 2.0, 100.0, 12345.678 };
    const __typeof__(unary_ops[0]) *unary = unary_ops;
    __asm__("" : "+r"(unary)); /* really load the pointer from the table */
    for (int i = 0; i < 3; i++)
        printf("calc_sqrt(%a) = %a [table]\n", sqrt_table[i], unary[0].fn(sqrt_table[i]));

    printf("calc_norm2(3, 4) = %a\n", calc_norm2(3.0, 4.0));
    printf("calc_norm2(30, 40) = %a\n", calc_norm2(30.0, 40.0));

    static const float scale_in[3][2] = { { 1.5f, 2.0f }, { 3.25f, -0.5f }, { 1e30f, 1e10f } };
    for (int i = 0; i < 3; i++)
        printf("calc_scale(%a, %a) = %a\n", (double)scale_in[i][0], (double)scale_in[i][1],
               (double)calc_scale(scale_in[i][0], scale_in[i][1]));

    static const long even_in[4] = { 0, 7, -4, 123456789012L };
    for (int i = 0; i < 4; i++)
        printf("calc_is_even(%ld) = %d\n", even_in[i], (int)calc_is_even(even_in[i]));

    static const int sign_in[3] = { -3, 0, 9 };
    for (int i = 0; i < 3; i++)
        printf("calc_sign(%d) = %d\n", sign_in[i], (int)calc_sign(sign_in[i]));

    static const int clamp_in[3] = { -1000, 5, 300 };
    for (int i = 0; i < 3; i++)
        printf("calc_clamp8(%d) = %d\n", clamp_in[i], (int)calc_clamp8(clamp_in[i]));

    static const uint16_t swap_in[2] = { 0x1234, 0xff00 };
    for (int i = 0; i < 2; i++)
        printf("calc_swap16(%#x) = %#x\n", (unsigned)swap_in[i], (unsigned)calc_swap16(swap_in[i]));

    static const unsigned long long mul_in[4][2] = {
        { 3, 5 }, { 1ULL << 40, 1ULL << 30 }, { 0, ULLONG_MAX }, { ULLONG_MAX, 2 } };
    for (int i = 0; i < 4; i++)
        printf("calc_mul64(%llu, %llu) = %llu\n", mul_in[i][0], mul_in[i][1], calc_mul64(mul_in[i][0], mul_in[i][1]));

    static const char *const hash_in[5] = { "hello", "Hello", "", "abc-XYZ", "lower only" };
    for (int i = 0; i < 5; i++)
        printf("calc_hash(\"%s\") = %#llx\n", hash_in[i], (unsigned long long)calc_hash(hash_in[i]));

    static const int name_in[6] = { 0, 1, 2, 3, 4, 3 };
    for (int i = 0; i < 6; i++)
        printf("calc_name(%d) = \"%s\"\n", name_in[i], calc_name(name_in[i]));

    void *d_add = dlsym(RTLD_DEFAULT, "calc_add");
    void *d_sqrt = dlsym(RTLD_DEFAULT, "calc_sqrt");
    printf("identity: int_ops[0] == calc_add: %d\n", (void *)int_ops[0] == (void *)calc_add);
    printf("identity: dlsym(calc_add) == calc_add: %d\n", d_add == (void *)calc_add);
    printf("identity: dlsym(calc_sqrt) == unary_ops[0].fn: %d\n", d_sqrt == (void *)unary[0].fn);
    printf("identity: calc_sqrt == unary_ops[0].fn: %d\n", (void *)calc_sqrt == (void *)unary[0].fn);

    /* the data table stays writable */
    int (*volatile *slot)(int, int) = &int_ops[1];
    *slot = *slot;
    pages("at end");

    printf("calc_version() = %d\n", calc_version());
    puts("calc-app: done");
    return 0;
}
