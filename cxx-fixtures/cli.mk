# --- cli: the `ddl run` fixture (cli/echo-app.c; tests/e2e/cli.rs) --------
# echo-app copies stdin to stdout, calls libcalc (old build, RUNPATH) per
# line, and exits with the status it is given; see its header comment.

CLI_APPS := $(OUT)/cli/echo-app

all: $(CLI_APPS)

$(OUT)/cli/echo-app: cli/echo-app.c calc/calc.h $(CALC)/old/libcalc.so.1 cli.mk
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LAYOUT_pie-lazy) -Icalc -o $@ $< $(CALC)/old/libcalc.so.1 \
	    -Wl,--enable-new-dtags,-rpath,$(CALC)/old

clean: clean-cli
.PHONY: clean-cli
clean-cli:
	rm -rf $(OUT)/cli
