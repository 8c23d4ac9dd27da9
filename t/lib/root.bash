# t/lib/root.bash — shared helpers for the Bats tests.
#   load lib/root
#   setup() { root_new; }
# Each test gets its own root in $BATS_TEST_TMPDIR/root. Programs come from
# the AddressSanitizer build ($BH_BIN, set by t/run); a sanitizer report in
# any program fails the test in teardown.
load /usr/lib/bats/bats-support/load.bash
load /usr/lib/bats/bats-assert/load.bash

TOP=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
export BH_BIN=${BH_BIN:-$TOP/build/asan/bin}
export PATH="$BH_BIN:$TOP/bin:$PATH"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:log_path=$BATS_TEST_TMPDIR/asan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$BATS_TEST_TMPDIR/asan"

# A fresh root with the default configuration, compiled.
root_new() {
	export BH_ROOT="$BATS_TEST_TMPDIR/root"
	bh-init "$BH_ROOT"
	make -s -C "$BH_ROOT/cdb" >/dev/null
	config_age_stamp
}

# File times are as coarse as the kernel tick: a source edited within the
# same few milliseconds as the last compile would look unchanged to make.
# Dating the stamp back keeps every later edit newer than it.
config_age_stamp() {
	touch -d '-2 seconds' "$BH_ROOT/cdb/.compiled" 2>/dev/null || true
}

# Compiles the root's configuration after a test changed its sources.
config_make() {
	make -s -C "$BH_ROOT/cdb" && config_age_stamp
}

# A free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_until SECONDS COMMAND... — polls COMMAND every 50 ms until it succeeds
# or the deadline passes (then fails, printing what it waited for).
wait_until() {
	local limit=$1 end
	shift
	end=$(( $(date +%s%N) + limit * 1000000000 ))
	until "$@"; do
		if [ "$(date +%s%N)" -gt "$end" ]; then
			echo "timed out after ${limit}s waiting for: $*" >&2
			return 1
		fi
		sleep 0.05
	done
}

# Number of envelopes in a queue (everything but tmp/).
queue_count() {
	find "$BH_ROOT/spool/$1" -path '*/tmp' -prune -o -type f -print | wc -l
}

queue_empty() {
	[ "$(queue_count "$1")" -eq 0 ]
}

# Number of messages in a mailbox's Maildir/new.
maildir_count() {
	find "$BH_ROOT/mailroot/$1/Maildir/new" -type f 2>/dev/null | wc -l
}

# maildir_is BOX N — true when the mailbox holds exactly N new messages
# (for wait_until, which must re-run the count on every try).
maildir_is() {
	[ "$(maildir_count "$1")" -eq "$2" ]
}

# envelope_put QUEUE LINE... — queues an envelope (and content from stdin,
# or a small default message) directly, as an earlier stage would.
envelope_put() {
	local q=$1 id
	shift
	id="$(date +%s%N | cut -c1-16)-$$-$RANDOM"
	if [ -t 0 ]; then
		printf 'Subject: test\r\n\r\nhello\r\n' > "$BH_ROOT/spool/msg/$id"
	else
		cat > "$BH_ROOT/spool/msg/$id"
	fi
	printf '%s\n' "$@" > "$BH_ROOT/spool/$q/tmp/$id"
	mv "$BH_ROOT/spool/$q/tmp/$id" "$BH_ROOT/spool/$q/new/$id"
	echo "$id"
}

# Stops every process this test started in the background (kill_on_teardown
# PID...) and fails the test if a sanitizer reported anything.
BH_KILL=()
kill_on_teardown() {
	BH_KILL+=("$@")
}

root_teardown() {
	local pid
	for pid in "${BH_KILL[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${BH_KILL[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	if ls "$BATS_TEST_TMPDIR"/asan.* >/dev/null 2>&1; then
		cat "$BATS_TEST_TMPDIR"/asan.* >&2
		return 1
	fi
}

teardown() {
	root_teardown
}
