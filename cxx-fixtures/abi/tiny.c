/* libtiny.so: no headers, no libc, so that it builds for -m32 and -mx32
 * without multilib packages (abi.mk: ELF class and machine pairs). */
int tiny(int x) { return x + 1; }
