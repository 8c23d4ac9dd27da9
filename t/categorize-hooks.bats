# t/categorize-hooks.bats — the OnArrival hooks (transport event sinks) that
# bh-categorize runs on each message before categorizing it, and the two
# example hooks in examples/hooks.
load lib/root

# Compiles the changed sources. The stamp goes first: a change made in the
# same clock tick as the last compilation would look up to date to make.
recompile() {
	rm -f "$BH_ROOT/cdb/.compiled"
	config_make
}

setup() {
	root_new
	HOOKS="$TOP/examples/hooks"
}

# hooks_set VALUE — settings hooks VALUE (quoted), plus more settings lines.
hooks_set() {
	printf 'hooks "%s"\n' "$1" >> "$BH_ROOT/cdb/settings"
	shift
	for line in "$@"; do
		echo "$line" >> "$BH_ROOT/cdb/settings"
	done
	recompile
}

# A hook script in the test's folder: hook_write NAME BODY
hook_write() {
	printf '#!/bin/sh\n%s\n' "$2" > "$BATS_TEST_TMPDIR/$1"
	chmod +x "$BATS_TEST_TMPDIR/$1"
}

# message SUBJECT [HEADER-LINE] — a small message with CRLF line ends
message() {
	printf 'From: a@example.net\r\nSubject: %s\r\n' "$1"
	[ -z "$2" ] || printf '%s\r\n' "$2"
	printf '\r\nhello\r\n'
}

@test "the reject-header example rejects a flagged message with 5.7.1 and its reason" {
	hooks_set "$HOOKS/reject-header"
	id=$(message flagged 'X-Spam-Flag: YES' | envelope_put incoming \
		'sender a@example.net' 'rcpt demo@example.com state=new' \
		'rcpt b@example.net state=new')
	run bh-categorize -1
	assert_success
	assert_equal "$(queue_count route)" 0
	assert_equal "$(queue_count incoming)" 0
	run cat "$BH_ROOT"/spool/ndr/new/*
	assert_line 'rcpt demo@example.com state=failed code=5.7.1 reason="550 5.7.1 message refused by policy: a header line matches ^X-Spam-Flag:[[:space:]]*YES"'
	assert_line --regexp '^rcpt b@example.net state=failed code=5.7.1 '
	[ ! -e "$BH_ROOT/spool/msg/$id" ]
}

@test "the reject-header example lets other messages pass unchanged" {
	hooks_set "$HOOKS/reject-header"
	id=$(message clean 'X-Spam-Flag: NO' | envelope_put incoming \
		'sender a@example.net' 'rcpt demo@example.com state=new')
	run bh-categorize -1
	assert_success
	run cat "$BH_ROOT/spool/route/new/$id"
	assert_line 'rcpt demo@example.com state=local box=demo'
	assert_equal "$(queue_count ndr)" 0
}

@test "a hook's arguments come from the settings value" {
	hooks_set "$HOOKS/reject-header ^Subject:.*forbidden"
	message 'a forbidden word' '' | envelope_put incoming \
		'sender a@example.net' 'rcpt demo@example.com state=new'
	run bh-categorize -1
	assert_success
	run cat "$BH_ROOT"/spool/ndr/new/*
	assert_line --partial 'code=5.7.1 reason="550 5.7.1 message refused by policy: a header line matches ^Subject:.*forbidden"'
}

@test "the disclaimer example replaces the message: it travels on as NAME.h1" {
	hooks_set "$HOOKS/reject-header,$HOOKS/disclaimer"
	id=$(message signed '' | envelope_put incoming 'sender a@example.net' \
		'size 45' 'rcpt demo@example.com state=new')
	run bh-categorize -1
	assert_success
	[ ! -e "$BH_ROOT/spool/route/new/$id" ]
	[ ! -e "$BH_ROOT/spool/msg/$id" ]
	run cat "$BH_ROOT/spool/route/new/$id.h2"
	assert_line 'rcpt demo@example.com state=local box=demo'
	size=$(stat -c %s "$BH_ROOT/spool/msg/$id.h2")
	assert_line "size $size"
	expected=$(printf 'From: a@example.net\r\nSubject: signed\r\n\r\nhello\r\n\r\n-- \r\nThis message and any attachments are confidential and intended only for the addressee.\r\n' | od -c)
	assert_equal "$(od -c < "$BH_ROOT/spool/msg/$id.h2")" "$expected"
	ls "$BH_ROOT/spool/msg"
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 1
}

@test "the disclaimer example leaves multipart messages alone" {
	hooks_set "$HOOKS/disclaimer"
	id=$(message multi 'Content-Type: multipart/mixed; boundary=x' | \
		envelope_put incoming 'sender a@example.net' 'rcpt demo@example.com state=new')
	run bh-categorize -1
	assert_success
	[ -e "$BH_ROOT/spool/route/new/$id" ]
	[ -e "$BH_ROOT/spool/msg/$id" ]
}

@test "a hook sees the message on stdin and the envelope facts in its environment" {
	hook_write facts "env | grep '^BH_' | sort > $BATS_TEST_TMPDIR/env; cat > $BATS_TEST_TMPDIR/stdin"
	hooks_set "$BATS_TEST_TMPDIR/facts"
	id=$(message facts '' | envelope_put incoming 'sender a@example.net' \
		'size 44' 'peer 127.0.0.5' 'rcpt demo@example.com state=new' \
		'rcpt b@example.net state=new')
	run bh-categorize -1
	assert_success
	run cat "$BATS_TEST_TMPDIR/env"
	assert_line "BH_ID=$id"
	assert_line 'BH_SENDER=a@example.net'
	assert_line 'BH_RCPTS=demo@example.com b@example.net'
	assert_line 'BH_SIZE=44'
	assert_line 'BH_PEER=127.0.0.5'
	assert_line "BH_ROOT=$BH_ROOT"
	cmp "$BATS_TEST_TMPDIR/stdin" "$BH_ROOT/spool/msg/$id"
	[ -e "$BH_ROOT/spool/route/new/$id" ]
}

@test "a hook that exits 99 drops the message silently" {
	hook_write drop 'exit 99'
	hooks_set "$BATS_TEST_TMPDIR/drop"
	id=$(message drop '' | envelope_put incoming 'sender a@example.net' \
		'rcpt demo@example.com state=new')
	run bh-categorize -1
	assert_success
	assert_equal "$(queue_count route)" 0
	assert_equal "$(queue_count ndr)" 0
	assert_equal "$(queue_count incoming)" 0
	[ ! -e "$BH_ROOT/spool/msg/$id" ]
	grep -q "event=dropped id=$id " "$BH_ROOT"/log/track/*
}

@test "a hook that exits 111 leaves the message for a later try" {
	hook_write later 'echo "scanner busy"; exit 111'
	hooks_set "$BATS_TEST_TMPDIR/later"
	id=$(message later '' | envelope_put incoming 'sender a@example.net' \
		'rcpt demo@example.com state=new')
	run bh-categorize -1
	assert_success
	assert_equal "$(queue_count route)" 0
	assert_equal "$(queue_count ndr)" 0
	run cat "$BH_ROOT/spool/incoming/retry/$id"
	assert_line 'tries 1'
	assert_line 'rcpt demo@example.com state=new'
	[ "$(stat -c %Y "$BH_ROOT/spool/incoming/retry/$id")" -gt "$(date +%s)" ]
	[ -e "$BH_ROOT/spool/msg/$id" ]
}

@test "a hook that hangs is killed after hook-timeout and the message retried" {
	hook_write hang "echo \$\$ > $BATS_TEST_TMPDIR/pid; sleep 60 & echo \$! > $BATS_TEST_TMPDIR/child; wait"
	hooks_set "$BATS_TEST_TMPDIR/hang" 'hook-timeout 1s'
	id=$(message hang '' | envelope_put incoming 'sender a@example.net' \
		'rcpt demo@example.com state=new')
	start=$(date +%s)
	run bh-categorize -1
	assert_success
	[ $(( $(date +%s) - start )) -lt 10 ]
	assert_output --partial 'exit=-2'
	[ -e "$BH_ROOT/spool/incoming/retry/$id" ]
	[ -e "$BH_ROOT/spool/msg/$id" ]
	assert_equal "$(queue_count route)" 0
	! kill -0 "$(cat "$BATS_TEST_TMPDIR/pid")" 2>/dev/null
	! kill -0 "$(cat "$BATS_TEST_TMPDIR/child")" 2>/dev/null
	grep -q "event=deferred id=$id .*did not finish within 1s" "$BH_ROOT"/log/track/*
}

@test "a hook that cannot be run defers the message, never loses it" {
	hooks_set "$BATS_TEST_TMPDIR/missing"
	id=$(message missing '' | envelope_put incoming 'sender a@example.net' \
		'rcpt demo@example.com state=new')
	run bh-categorize -1
	assert_success
	[ -e "$BH_ROOT/spool/incoming/retry/$id" ]
	[ -e "$BH_ROOT/spool/msg/$id" ]
}

@test "a virtual server's hooks= run after the global hooks, on its mail only" {
	hook_write mark1 "echo one >> $BATS_TEST_TMPDIR/order"
	hook_write mark2 "echo two >> $BATS_TEST_TMPDIR/order"
	port=$(free_port)
	echo "inbound listen=127.0.0.1:$port hooks=$BATS_TEST_TMPDIR/mark2" \
		>> "$BH_ROOT/cdb/servers"
	hooks_set "$BATS_TEST_TMPDIR/mark1"
	message one '' | envelope_put incoming 'sender a@example.net' \
		'server inbound' 'rcpt demo@example.com state=new'
	run bh-categorize -1
	assert_success
	assert_equal "$(cat "$BATS_TEST_TMPDIR/order")" "$(printf 'one\ntwo')"
	message two '' | envelope_put incoming 'sender a@example.net' \
		'server default' 'rcpt demo@example.com state=new'
	run bh-categorize -1
	assert_success
	assert_equal "$(cat "$BATS_TEST_TMPDIR/order")" "$(printf 'one\ntwo\none')"
	assert_equal "$(queue_count route)" 2
}

@test "a retry throws away what earlier hooks made: every hook runs again on the original" {
	hook_write later 'exit 111'
	hooks_set "$HOOKS/disclaimer,$BATS_TEST_TMPDIR/later"
	id=$(message again '' | envelope_put incoming 'sender a@example.net' \
		'rcpt demo@example.com state=new')
	cp "$BH_ROOT/spool/msg/$id" "$BATS_TEST_TMPDIR/original"
	run bh-categorize -1
	assert_success
	[ -e "$BH_ROOT/spool/incoming/retry/$id" ]
	assert_equal "$(ls "$BH_ROOT/spool/msg")" "$id"
	cmp "$BH_ROOT/spool/msg/$id" "$BATS_TEST_TMPDIR/original"
}

@test "a message a hook keeps deferring past settings expire fails with 4.4.7" {
	hook_write later 'echo "scanner down"; exit 111'
	hooks_set "$BATS_TEST_TMPDIR/later" 'expire 1h'
	id=$(message old '' | envelope_put incoming 'sender a@example.net' \
		"arrived $(( $(date +%s) - 7200 ))" 'rcpt demo@example.com state=new')
	run bh-categorize -1
	assert_success
	assert_equal "$(queue_count incoming)" 0
	run cat "$BH_ROOT"/spool/ndr/new/*
	assert_line --regexp '^rcpt demo@example.com state=failed code=4.4.7 reason="message expired while an arrival hook deferred it \(hook exited 111: scanner down\)"'
}
