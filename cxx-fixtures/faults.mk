# --- faults: the fault-injection component (issue 4, item 7) ---------------
#
# faults/fault.h, faults/fault.c (old; new with -DNEW), soname libfault.so.1.
# Builds:
#   $(OUT)/faults/{old,new}/libfault.so.1
#   $(OUT)/faults/apps/fault-app          (PIE, lazy; RUNPATH to old)
#   $(OUT)/faults/include/fault.h
#
# int fault_do(int what, int x): the old build returns what * 1000 + x for
# every `what`; the new build misbehaves for these codes and returns the
# same value for every other one (faults/README.md has the table):
#    0 none            1 NULL deref       2 SIGBUS (mmap)   3 SIGFPE (div 0)
#    4 __builtin_trap  5 abort()          6 assert          7 stack overflow
#    8 double free     9 crash in printf 10 exit(3)        11 _exit(4)
#   12 _Exit(5)       13 quick_exit(6)   14 error(1,0,..)  15 hang (signals on)
#   16 hang (every signal blocked)       17 printf on stdout
#   18 write(1)       19 own SIGSEGV handler (_exit 97 if it runs)
#   20 raise(SIGSYS)  21 int3 (SIGTRAP)  22 blocks SIGSEGV/SIGALRM/SIGRT*, returns
#   23 hang (raw rt_sigprocmask)         24 a thread it starts faults (joined)
# int fault_write(int fd, const char *s): both builds write s to fd.
# fault-app [-o FILE] [CODE...]: one fault_do(CODE, 7) and one fault_write
# to FILE per code (all codes when none is given); code 100 is the app's own
# caught SIGSEGV; exits 0 on the old build.

FAULTS := $(OUT)/faults
FAULTS_ALL := $(FAULTS)/old/libfault.so.1 $(FAULTS)/new/libfault.so.1 \
              $(FAULTS)/apps/fault-app $(FAULTS)/apps/fault-soak $(FAULTS)/include/fault.h

all: $(FAULTS_ALL)

$(FAULTS)/old/libfault.so.1: faults/fault.c faults/fault.h faults.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LIBFLAGS) -Wl,-soname,libfault.so.1 -o $@ $<
$(FAULTS)/new/libfault.so.1: faults/fault.c faults/fault.h faults.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DNEW $(LIBFLAGS) -Wl,-soname,libfault.so.1 -o $@ $<

$(FAULTS)/apps/fault-app: faults/fault-app.c faults/fault.h $(FAULTS)/old/libfault.so.1 faults.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LAYOUT_pie-lazy) -Ifaults -o $@ $< $(FAULTS)/old/libfault.so.1 \
	    -Wl,--enable-new-dtags,-rpath,$(FAULTS)/old

$(FAULTS)/apps/fault-soak: faults/fault-soak.c faults/fault.h $(FAULTS)/old/libfault.so.1 faults.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LAYOUT_pie-now) -pthread -Ifaults -o $@ $< $(FAULTS)/old/libfault.so.1 \
	    -Wl,--enable-new-dtags,-rpath,$(FAULTS)/old

$(FAULTS)/include/fault.h: faults/fault.h
	@mkdir -p $(@D)
	cp $< $@

clean: clean-faults
.PHONY: clean-faults
clean-faults:
	rm -rf $(FAULTS)
