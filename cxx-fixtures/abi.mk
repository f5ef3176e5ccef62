# --- abi: the `ddl check` / `ddl inspect` fixture pairs (issue 5) ----------
#
# One C component (abi/abi.c, abi/abi.h, soname libabi.so.1, -g) built as
# the old build and as new builds that each differ in one way, one C++
# component (abi/widget.cc, libwidget.so.1) likewise, and a libc-free
# libtiny.so for ELF class, machine and symbol-version pairs. Expected
# `ddl check OLD NEW` exit bits (tests/e2e/check.rs; docs/CHECK.md):
#
#   $(ABI)/old/libabi.so.1 against
#     same/     identical source and flags                         0
#     missing/  -DMISSING: abi_gone removed                         8
#     proto/    -DPROTO: abi_scale(int, int) -> long (long, int)    8
#     byvalue/  -DBYVALUE: struct abi_pair (by value) grows         8
#     stream/   -DSTREAM: struct abi_stream (by pointer) grows      0, and 8 with
#               a config that declares it (abi.ddl.json in the test)
#     soname/   soname libabi.so.2                                  4
#     added/    -DADDED: abi_extra added                            4
#     diff/     -DDIFF: abi_sum(xs, n > 3) is one more (behaviour)  0
#   $(ABI)/widget-old/libwidget.so.1 against
#     widget-vslot/  -DVSLOT: two virtual methods swap slots        8
#     widget-csize/  -DCSIZE: class Widget 16 -> 48 bytes           4
#   $(ABI)/tiny64/libtiny.so against tiny32/ (-m32: class and
#     machine) 8, tinyx32/ (-mx32: class) 8; tiny32 against tinyx32
#     (machine) 8; tinyv1/ (version TINY_1) against tinyv2/ (TINY_2) 12.
#
# Apps: $(ABI)/apps/abi-app (linked against old/, RUNPATH) makes the calls
# listed in abi/abi-app.c. $(ABI)/widget-nodebug/libwidget.so.1 is the old
# widget without debug info (for `ddl inspect`'s demangled declarations).

ABI := $(OUT)/abi
ABI_CFLAGS := -O2 -g -Wall -Wextra -Werror -std=gnu11
ABI_VARIANTS := same missing proto byvalue stream soname added diff
ABI_ALL := $(ABI)/old/libabi.so.1 $(foreach v,$(ABI_VARIANTS),$(ABI)/$(v)/libabi.so.1) \
           $(ABI)/apps/abi-app \
           $(foreach v,old vslot csize nodebug,$(ABI)/widget-$(v)/libwidget.so.1) \
           $(foreach v,64 32 x32 v1 v2,$(ABI)/tiny$(v)/libtiny.so)

all: $(ABI_ALL)

.PHONY: clean-abi
clean: clean-abi
clean-abi:
	rm -rf $(ABI)

ABI_DEF_same :=
ABI_DEF_missing := -DMISSING
ABI_DEF_proto := -DPROTO
ABI_DEF_byvalue := -DBYVALUE
ABI_DEF_stream := -DSTREAM
ABI_DEF_soname :=
ABI_DEF_added := -DADDED
ABI_DEF_diff := -DDIFF
ABI_SONAME = libabi.so.$(if $(filter soname,$(1)),2,1)

$(ABI)/old/libabi.so.1: abi/abi.c abi/abi.h abi.mk
	@mkdir -p $(@D)
	$(CC) $(ABI_CFLAGS) $(LIBFLAGS) -Wl,-soname,libabi.so.1 -o $@ $<

$(ABI)/%/libabi.so.1: abi/abi.c abi/abi.h abi.mk
	@mkdir -p $(@D)
	$(CC) $(ABI_CFLAGS) $(ABI_DEF_$*) $(LIBFLAGS) -Wl,-soname,$(call ABI_SONAME,$*) -o $@ $<

$(ABI)/apps/abi-app: abi/abi-app.c abi/abi.h $(ABI)/old/libabi.so.1 abi.mk
	@mkdir -p $(@D)
	$(CC) $(ABI_CFLAGS) $(LAYOUT_pie-lazy) -Iabi -o $@ $< $(ABI)/old/libabi.so.1 \
	    -Wl,--enable-new-dtags,-rpath,$(ABI)/old

ABI_WIDGET_old := -g
ABI_WIDGET_vslot := -g -DVSLOT
ABI_WIDGET_csize := -g -DCSIZE
ABI_WIDGET_nodebug := -g0

$(ABI)/widget-%/libwidget.so.1: abi/widget.cc abi/widget.h abi.mk
	@mkdir -p $(@D)
	g++ -O2 -Wall -Wextra -Werror -std=c++17 $(ABI_WIDGET_$*) $(LIBFLAGS) -Wl,-soname,libwidget.so.1 -o $@ $<

# libtiny.so: freestanding (-nostdlib), so -m32 / -mx32 need no multilib.
ABI_TINY_64 := -m64
ABI_TINY_32 := -m32
ABI_TINY_x32 := -mx32
ABI_TINY_v1 := -m64 -Wl,--version-script,abi/tiny1.map
ABI_TINY_v2 := -m64 -Wl,--version-script,abi/tiny2.map

$(ABI)/tiny%/libtiny.so: abi/tiny.c abi/tiny1.map abi/tiny2.map abi.mk
	@mkdir -p $(@D)
	$(CC) -O2 -g -Wall -Werror $(ABI_TINY_$*) -fPIC -shared -nostdlib -Wl,-soname,libtiny.so -o $@ $<
# --- end of abi ---
