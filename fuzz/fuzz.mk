# fuzz/fuzz.mk — libFuzzer targets for every parser that sees untrusted bytes.
#
#   make fuzz                  build, then run each target FUZZ_SECONDS (60)
#   make fuzz FUZZ_SECONDS=10  shorter runs
#   make fuzz-targets          build only: build/fuzz/bin/fuzz-NAME
#
# Included by the top Makefile, or used alone: make -f fuzz/fuzz.mk fuzz.
# The library is compiled a third time, with clang and the fuzzer's
# coverage instrumentation plus ASan and UBSan, into build/fuzz/lib. Each
# fuzz/NAME.c is one target; its seeds are fuzz/seeds/NAME/ (small, written
# by hand) and its regression inputs t/fuzz/NAME/ (minimized crashes, replayed
# by t/fuzz.bats). A run's new corpus goes to build/fuzz/corpus/NAME, never
# into the tree; a crash is written to build/fuzz/crash/NAME/ and fails make.
# Included anywhere in the top Makefile, this file must not take its
# default goal: remember it here, give it back at the end.
FUZZ_SAVED_GOAL := $(.DEFAULT_GOAL)

FUZZ_CC       ?= clang
FUZZ_SECONDS  ?= 60
FUZZ_DIR       = build/fuzz
FUZZ_SAN       = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS    = -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) -std=c11 \
                 -D_GNU_SOURCE -Ilib -Wall -Wextra -Wno-unused-parameter
FUZZ_LDLIBS    = -lcdb -ludns -lssl -lcrypto -lcrypt -lpthread
FUZZ_NAMES     = $(patsubst fuzz/%.c,%,$(wildcard fuzz/*.c))
FUZZ_BINS      = $(FUZZ_NAMES:%=$(FUZZ_DIR)/bin/fuzz-%)
FUZZ_LIB_OBJ   = $(patsubst lib/%.c,$(FUZZ_DIR)/lib/%.o,$(wildcard lib/*.c))

.PHONY: fuzz fuzz-targets

fuzz-targets: $(FUZZ_BINS)

$(FUZZ_DIR)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_DIR)/libbh.a: $(FUZZ_LIB_OBJ)
	rm -f $@.$$$$.tmp && ar rcs $@.$$$$.tmp $^ && mv $@.$$$$.tmp $@

# A target may #include a library file to reach its static parsers,
# hence those dependencies.
$(FUZZ_DIR)/bin/fuzz-%: fuzz/%.c fuzz/fuzz.h $(FUZZ_DIR)/libbh.a \
    $(wildcard lib/*.h lib/*.c)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@.$$$$.tmp $< \
	    $(FUZZ_DIR)/libbh.a $(FUZZ_LDLIBS) && mv $@.$$$$.tmp $@

# Each target for FUZZ_SECONDS from its seeds and the regression inputs;
# the last status line (exec/s, cov:, ft:) is kept in build/fuzz/NAME.log.
fuzz: fuzz-targets
	@for n in $(FUZZ_NAMES); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$n $(FUZZ_DIR)/crash/$$n; \
		dirs="$(FUZZ_DIR)/corpus/$$n"; \
		for d in fuzz/seeds/$$n t/fuzz/$$n; do [ -d $$d ] && dirs="$$dirs $$d"; done; \
		$(FUZZ_DIR)/bin/fuzz-$$n -max_total_time=$(FUZZ_SECONDS) \
		    -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
		    -artifact_prefix=$(FUZZ_DIR)/crash/$$n/ $$dirs \
		    > $(FUZZ_DIR)/$$n.log 2>&1; rc=$$?; \
		stats=$$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' $(FUZZ_DIR)/$$n.log | tail -1); \
		eps=$$(grep -o 'stat::average_exec_per_sec: *[0-9]*' $(FUZZ_DIR)/$$n.log | grep -o '[0-9]*$$'); \
		echo "fuzz-$$n: $$stats exec/s=$$eps"; \
		if [ $$rc -ne 0 ]; then tail -40 $(FUZZ_DIR)/$$n.log; \
			echo "fuzz-$$n: FAILED, input in $(FUZZ_DIR)/crash/$$n/"; exit 1; fi; \
	done

.DEFAULT_GOAL := $(FUZZ_SAVED_GOAL)
