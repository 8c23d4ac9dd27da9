# bridgehead — build, install dependencies, run, test.
#
#   make          build the programs into bin/
#   make deps     install the missing Debian packages (and nothing else)
#   make run      build, compile the default config, run the MTA in the foreground
#   make test     AddressSanitizer+UBSan build, then every Bats test in t/;
#                 ends with the line "N passed, N failed"
#   make bench    the benchmarks side by side with Postfix
#   make lint     cppcheck and clang-tidy (also run by make test)
#   make fuzz     each libFuzzer target for FUZZ_SECONDS (60)
.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all deps run test check lint bench clean asan fuzz

CC      ?= cc
WARN     = -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CPPFLAGS = -std=c11 -D_GNU_SOURCE -Ilib
LDLIBS   = -lcdb -ludns -lssl -lcrypto -lcrypt

BUILD   ?= build/release
BINDIR  ?= bin

LIB_SRC = $(wildcard lib/*.c)
LIB_OBJ = $(patsubst lib/%.c,$(BUILD)/lib/%.o,$(LIB_SRC))
PROGS   = $(patsubst stages/%.c,$(BINDIR)/bh-%,$(wildcard stages/*.c))

all: $(PROGS)

$(BUILD)/lib/%.o: lib/%.c $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(BUILD)/stages/%.o: stages/%.c $(wildcard lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(BUILD)/libbh.a: $(LIB_OBJ)
	rm -f $@.$$$$.tmp && ar rcs $@.$$$$.tmp $^ && mv $@.$$$$.tmp $@

$(BINDIR)/bh-%: $(BUILD)/stages/%.o $(BUILD)/libbh.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@.$$$$.tmp $< $(BUILD)/libbh.a $(LDLIBS) && mv $@.$$$$.tmp $@

# bh-init carries the default configuration (cdb/ sources and Makefile).
DEFAULT_FILES = cdb/settings cdb/servers cdb/domains cdb/directory \
                cdb/connectors cdb/filters cdb/Makefile
$(BUILD)/defaults.c: $(DEFAULT_FILES) tools/embed.sh
	@mkdir -p $(@D)
	tools/embed.sh $(DEFAULT_FILES) > $@.$$$$.tmp && mv $@.$$$$.tmp $@

$(BUILD)/defaults.o: $(BUILD)/defaults.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BINDIR)/bh-init: $(BUILD)/stages/init.o $(BUILD)/defaults.o $(BUILD)/libbh.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@.$$$$.tmp $^ $(LDLIBS) && mv $@.$$$$.tmp $@

# Debian packages: build, run and test. Only what is missing is installed,
# and the package lists are refreshed once, only when something is missing.
# A temporary policy-rc.d keeps the packages' own daemons (dovecot) from
# starting: tests run private instances on loopback.
DEB_BUILD = gcc make libssl-dev libudns-dev libcdb-dev tinycdb runit
DEB_TEST  = bats bats-support bats-assert swaks dnsmasq-base python3 openssl \
            procps postfix clang libclang-rt-14-dev msmtp dovecot-imapd \
            cppcheck clang-tidy
deps:
	@missing=$$(for p in $(DEB_BUILD) $(DEB_TEST); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
		norc=; if [ ! -e /usr/sbin/policy-rc.d ]; then norc=1; \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		rc=$$?; [ -z "$$norc" ] || rm -f /usr/sbin/policy-rc.d; exit $$rc; \
	fi

# The repository is itself a root: cdb/ holds the default configuration.
run: deps all
	@bin/bh-init .
	$(MAKE) -C cdb BH_CONFIG=$(CURDIR)/bin/bh-config
	BH_ROOT=$(CURDIR) exec bin/bh-supervise

# AddressSanitizer + UBSan build, used by the tests.
SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
asan:
	$(MAKE) BUILD=build/asan BINDIR=build/asan/bin CFLAGS="$(SAN_FLAGS)"

test: deps
	@$(MAKE) --no-print-directory all asan
	@t/run

bench: deps all
	bench/run

# Static analysis (cppcheck, clang-tidy); t/lint.bats runs it in make test.
lint: deps
	tools/lint

# libFuzzer targets for every parser (fuzz/fuzz.mk): make fuzz FUZZ_SECONDS=60
include fuzz/fuzz.mk

clean:
	rm -rf build $(PROGS)
