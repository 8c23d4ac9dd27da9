# t/smtpd-fsync.bats — 250 means on disk: when any of the fsyncs before
# the reply fails (the content, its spool/msg entry, the envelope — the
# last two in bh-smtpd's helper threads — or incoming/new after the
# rename), the client gets 452 4.3.1. Before the envelope is in
# incoming/new nothing is left behind; after, the message stays queued
# whole (the client may send it again: at worst it is delivered twice).
load lib/root
load lib/smtpd

setup_file() {
	gcc -shared -fPIC -o "$BATS_FILE_TMPDIR/failfsync.so" "$TOP/t/lib/failfsync.c" -ldl
}

setup() { root_new; }

# one_message WHERE — a session with one message while fsync fails for
# paths containing WHERE; prints the replies.
one_message() {
	printf 'EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: f\r\n\r\nx\r\n.\r\nQUIT\r\n' |
		ASAN_OPTIONS="$ASAN_OPTIONS:verify_asan_link_order=0" \
		LD_PRELOAD="$BATS_FILE_TMPDIR/failfsync.so" BH_FAIL_FSYNC="$1" \
		TCPREMOTEIP=192.0.2.1 bh-smtpd -i 2>>"$BATS_TEST_TMPDIR/smtpd.log" | tr -d '\r'
}

count() { ls "$BH_ROOT/spool/$1" | wc -l; }

@test "the content's fsync fails: 452 4.3.1, nothing queued, no content left" {
	run one_message "/spool/msg/"
	assert_line '452 4.3.1 Insufficient system storage'
	refute_line --regexp '^250 2\.6\.0'
	assert_equal "$(count incoming/new)" 0
	assert_equal "$(count incoming/tmp)" 0
	assert_equal "$(count msg)" 0
}

@test "the envelope's fsync fails (a helper thread's): 452 4.3.1, nothing queued, no content left" {
	run one_message "/spool/incoming/tmp/"
	assert_line '452 4.3.1 Insufficient system storage'
	assert_equal "$(count incoming/new)" 0
	assert_equal "$(count incoming/tmp)" 0
	assert_equal "$(count msg)" 0
}

@test "incoming/new's fsync fails after the rename: 452 4.3.1, and the message stays queued whole" {
	run one_message "/spool/incoming/new"
	assert_line '452 4.3.1 Insufficient system storage'
	assert_equal "$(count incoming/new)" 1
	id=$(ls "$BH_ROOT/spool/incoming/new")
	grep -qx "$(printf 'Subject: f\r')" "$BH_ROOT/spool/msg/$id"
	grep -q "id=$id msg=\"queued although the client was told 452\"" "$BATS_TEST_TMPDIR/smtpd.log"
}

@test "without a failing fsync the same session gets 250 2.6.0 (the shim is inert)" {
	run one_message "/no/such/path/"
	assert_line --regexp '^250 2\.6\.0 '
	assert_equal "$(count incoming/new)" 1
}
