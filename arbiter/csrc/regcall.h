/* The shadow's specialised call (regcall.c); mirrored in arbiter/src/invoke.rs. */
#ifndef DDL_REGCALL_H
#define DDL_REGCALL_H

#define DDL_REG_NONE 0 /* a void return */
#define DDL_REG_INT 1  /* integer class: rdi.. / rax */
#define DDL_REG_SSE 2  /* SSE class: xmm0.. */
#define DDL_REG_MAX_ARGS 14

struct ddl_regsig {
    unsigned char nargs;
    unsigned char ret;
    unsigned char cls[DDL_REG_MAX_ARGS];
};

/* ffi_call's signature: `cif` is a struct ddl_regsig. */
void ddl_reg_call(void *cif, void (*fn)(void), void *rvalue, void **avalue);

#endif
