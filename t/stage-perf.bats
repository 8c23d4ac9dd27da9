# t/stage-perf.bats — what keeps the queue stages cheap per message, and
# keeps it safe: recycled envelope files (lib/recycle), moves without a
# rewrite, configuration looked at once per message, the tracking file
# kept open.
load lib/root

setup() { root_new; }

inode() { stat -c %i "$1"; }

# incoming_msg ADDR — queues a message in spool/incoming as bh-smtpd would.
incoming_msg() {
	envelope_put incoming 'sender a@example.com' "arrived $(date +%s)" \
	    "rcpt $1"
}

# tracked ID — the message has a line in the tracking log.
tracked() {
	grep -qs "id=$1 " "$BH_ROOT"/log/track/*
}

@test "bh-route hands an unchanged envelope to spool/local by a rename, not a rewrite" {
	id=$(envelope_put route 'sender a@example.com' \
	    'rcpt demo@example.com state=local box=demo')
	before=$(inode "$BH_ROOT/spool/route/new/$id")
	run bh-route -1
	assert_success
	assert_equal "$(inode "$BH_ROOT/spool/local/new/$id")" "$before"
	assert_equal "$(cat "$BH_ROOT/spool/local/new/$id")" \
	    "$(printf 'sender a@example.com\nrcpt demo@example.com state=local box=demo')"
}

@test "bh-categorize writes its next envelope into the file of an input it finished" {
	a=$(incoming_msg demo@example.com)
	first=$(inode "$BH_ROOT/spool/incoming/new/$a")
	run bh-categorize -1
	assert_success
	grep -q '^rcpt demo@example.com state=local box=demo$' \
	    "$BH_ROOT/spool/route/new/$a"
	# the input's file waits in the pool; the next run takes it up again
	b=$(incoming_msg demo@example.com)
	run bh-categorize -1
	assert_success
	assert_equal "$(inode "$BH_ROOT/spool/route/new/$b")" "$first"
	grep -q '^rcpt demo@example.com state=local box=demo$' \
	    "$BH_ROOT/spool/route/new/$b"
	assert_equal "$(queue_count incoming)" 0
	assert_equal "$(queue_count route)" 2
}

@test "a recycled file that has a second link is never written into" {
	printf 'keep me\n' > "$BATS_TEST_TMPDIR/sentinel"
	mkdir -p "$BH_ROOT/spool/recycle/incoming"
	ln "$BATS_TEST_TMPDIR/sentinel" "$BH_ROOT/spool/recycle/incoming/.recycle.1.1"
	id=$(incoming_msg demo@example.com)
	run bh-categorize -1
	assert_success
	assert_equal "$(cat "$BATS_TEST_TMPDIR/sentinel")" "keep me"
	[ ! -e "$BH_ROOT/spool/recycle/incoming/.recycle.1.1" ]
	grep -q '^rcpt demo@example.com state=local box=demo$' \
	    "$BH_ROOT/spool/route/new/$id"
}

@test "bh-local writes a Maildir copy into a recycled spool file, renamed into new/" {
	# a long first envelope: the copy written into its file is shorter
	a=$(printf 'Subject: one\r\n\r\nfirst\r\n' | envelope_put local \
	    'sender a@example.com' "subject $(printf '%0300d' 0)" \
	    'rcpt demo@example.com state=local box=demo')
	first=$(inode "$BH_ROOT/spool/local/new/$a")
	run bh-local -1
	assert_success
	b=$(printf 'Subject: test\r\n\r\nhello\r\n' | envelope_put local \
	    'sender b@example.com' 'rcpt demo@example.com state=local box=demo')
	run bh-local -1
	assert_success
	maildir_is demo 2
	f=$(grep -l '^Return-Path: <b@example.com>$' \
	    "$BH_ROOT"/mailroot/demo/Maildir/new/*)
	assert_equal "$(inode "$f")" "$first"
	assert_equal "$(cat "$f")" "$(printf 'Return-Path: <b@example.com>\nDelivered-To: demo@example.com\nSubject: test\n\nhello')"
	assert_equal "$(ls -A "$BH_ROOT/mailroot/demo/Maildir/tmp")" ""
	assert_equal "$(queue_count local)" 0
}

@test "a settings change reaches a running bh-categorize at its next message" {
	bh-categorize 2>"$BATS_TEST_TMPDIR/err" &
	kill_on_teardown $!
	a=$(incoming_msg demo@example.com)
	wait_until 10 queue_empty incoming
	tracked "$a"
	printf 'tracking no\n' >> "$BH_ROOT/cdb/settings"
	config_make
	b=$(incoming_msg demo@example.com)
	wait_until 10 queue_empty incoming
	run tracked "$b"
	assert_failure
}

# put_and_tracked — queues a message and tells whether its line was
# tracked (for wait_until: one more message each try).
put_and_tracked() {
	local id
	id=$(incoming_msg demo@example.com)
	wait_until 10 queue_empty incoming && tracked "$id"
}

@test "message tracking goes on in a new file when the day's file was removed" {
	bh-categorize 2>"$BATS_TEST_TMPDIR/err" &
	kill_on_teardown $!
	a=$(incoming_msg demo@example.com)
	wait_until 10 queue_empty incoming
	tracked "$a"
	rm "$BH_ROOT"/log/track/*
	wait_until 10 put_and_tracked
}

@test "a second copy of a stage runs without the pool and leaves its files alone" {
	mkdir -p "$BH_ROOT/spool/recycle/local"
	printf 'keep me\n' > "$BH_ROOT/spool/recycle/local/.recycle.1.1"
	# the pool is another process's (here: this shell's) by the folder's lock
	exec {held}<"$BH_ROOT/spool/recycle/local"
	flock -n "$held"
	id=$(envelope_put local 'sender a@example.com' \
	    'rcpt demo@example.com state=local box=demo')
	run bh-local -1
	exec {held}<&-
	assert_success
	refute_output --partial warning
	maildir_is demo 1
	assert_equal "$(cat "$BH_ROOT/spool/recycle/local/.recycle.1.1")" "keep me"
	assert_equal "$(queue_count local)" 0
}

@test "files an earlier run left in the pool are used only after one flush of the file system" {
	mkdir -p "$BH_ROOT/spool/recycle/incoming"
	printf 'old text\n' > "$BH_ROOT/spool/recycle/incoming/.recycle.1.1"
	left=$(inode "$BH_ROOT/spool/recycle/incoming/.recycle.1.1")
	id=$(incoming_msg demo@example.com)
	run strace -f -e trace=syncfs,openat -o "$BATS_TEST_TMPDIR/trace" bh-categorize -1
	assert_success
	assert_equal "$(inode "$BH_ROOT/spool/route/new/$id")" "$left"
	grep -q '^rcpt demo@example.com state=local box=demo$' "$BH_ROOT/spool/route/new/$id"
	# the flush comes before the adopted file is opened for writing
	run grep -n -e 'syncfs(' -e 'recycle.1.1.*O_WRONLY' "$BATS_TEST_TMPDIR/trace"
	assert_line --index 0 --partial 'syncfs('
	assert_line --index 1 --partial '.recycle.1.1'
}
