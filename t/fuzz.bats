# t/fuzz.bats — replays every regression input under t/fuzz/TARGET/ (and the
# hand-written seeds under fuzz/seeds/TARGET/) through the libFuzzer targets
# built with AddressSanitizer and UBSan (fuzz/fuzz.mk). A target given a list
# of files runs each once and fails on any crash, sanitizer report or broken
# invariant. Fuzzing itself is `make fuzz`, not part of the tests.
load lib/root

setup_file() {
	make -s -C "$TOP" -f fuzz/fuzz.mk fuzz-targets >/dev/null
}

# replay TARGET — every stored input of the target, once each.
replay() {
	local target=$1 files=()
	local bin="$TOP/build/fuzz/bin/fuzz-$target"
	[ -x "$bin" ]
	# nullglob only here: root_teardown's own glob must not be affected
	shopt -s nullglob
	files=("$TOP"/t/fuzz/"$target"/* "$TOP"/fuzz/seeds/"$target"/*)
	shopt -u nullglob
	[ "${#files[@]}" -gt 0 ]
	run "$bin" -runs=1 -timeout=10 "${files[@]}"
	assert_success
	refute_output --partial 'ERROR:'
	refute_output --partial 'runtime error'
}

@test "every fuzz target has seeds and builds" {
	local src n
	for src in "$TOP"/fuzz/*.c; do
		n=$(basename "$src" .c)
		[ -x "$TOP/build/fuzz/bin/fuzz-$n" ]
		[ -n "$(ls "$TOP/fuzz/seeds/$n")" ]
	done
}

@test "SMTP command lines and parameters replay clean" { replay smtp; }
@test "RFC 5321 addresses replay clean" { replay addr; }
@test "the DATA and BDAT reader replays clean (no smuggling)" { replay data; }
@test "header scanning (hops, Message-ID, priority) replays clean" { replay header; }
@test "envelope files replay clean" { replay envelope; }
@test "DSN xtext, status codes and report headers replay clean" { replay dsn; }
@test "configuration sources replay clean" { replay source; }
@test "DNS replies handed to lib/dns replay clean" { replay dns; }
@test "remote servers' replies to bh-remote's client replay clean" { replay reply; }
