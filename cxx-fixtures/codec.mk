# --- codec: handles and a caller-owned stream struct (codec/codec.h) -------
# Apps: codec-app-<layout> (every layout), codec-threads (PIE, lazy).
# Expected verdicts of codec-app under codec.ddl.json: tests/e2e/stateful.rs.

CODEC := $(OUT)/codec
CODEC_LIBS := $(CODEC)/old/libcodec.so.1 $(CODEC)/new/libcodec.so.1
CODEC_APPS := $(foreach l,$(LAYOUTS),$(CODEC)/apps/codec-app-$(l)) $(CODEC)/apps/codec-threads

all: $(CODEC_LIBS) $(CODEC_APPS)

$(CODEC)/old/libcodec.so.1: codec/codec.c codec/codec.h codec.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LIBFLAGS) -Wl,-soname,libcodec.so.1 -o $@ $<
$(CODEC)/new/libcodec.so.1: codec/codec.c codec/codec.h codec.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -DNEW $(LIBFLAGS) -Wl,-soname,libcodec.so.1 -o $@ $<

$(CODEC)/apps/codec-app-%: codec/codec-app.c codec/codec.h $(CODEC)/old/libcodec.so.1 codec.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LAYOUT_$*) -Icodec -o $@ $< $(CODEC)/old/libcodec.so.1 \
	    -Wl,--enable-new-dtags,-rpath,$(CODEC)/old

$(CODEC)/apps/codec-threads: codec/codec-threads.c codec/codec.h $(CODEC)/old/libcodec.so.1 codec.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -pthread -Icodec -o $@ $< $(CODEC)/old/libcodec.so.1 \
	    -Wl,--enable-new-dtags,-rpath,$(CODEC)/old

clean: clean-codec
.PHONY: clean-codec
clean-codec:
	rm -rf $(CODEC)
