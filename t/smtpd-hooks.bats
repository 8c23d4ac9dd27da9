# t/smtpd-hooks.bats — bh-smtpd: protocol hooks (event sinks at connect,
# MAIL, RCPT and end of data), with the example hook of examples/hooks.
load lib/root
load lib/smtpd

setup() {
	root_new
	policy="$TOP/examples/hooks/smtp-policy"
	smtpd_server default listen=127.0.0.1:2525 hooks=$policy
}

@test "the example hook refuses a blocked network at connect with 554 5.7.1" {
	run smtpd_inetd 192.0.2.66 < <(printf 'EHLO x\r\nQUIT\r\n')
	assert_line --index 0 --regexp '^554 5\.7\.1 [^ ]+ Your network is blocked here$'
	assert_line --index 1 '503 5.7.1 Connection refused; send QUIT'
	run smtpd_inetd 192.0.2.67 < <(printf 'QUIT\r\n')
	assert_line --index 0 --regexp '^220 '
}

@test "hooks at MAIL and RCPT reject and defer with their own reply lines" {
	echo 'shared.example type=shared' >> "$BH_ROOT/cdb/domains"
	config_make
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@spam.example>\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<closed@shared.example>\r\nRCPT TO:<greylist@shared.example>\r\nRCPT TO:<demo@example.com>\r\nQUIT\r\n')
	assert_line '550 5.7.1 Mail from spam.example is refused'
	assert_line '250 2.1.0 Sender <a@ok.example> OK'
	assert_line '550 5.7.1 Mailbox closed'
	assert_line '451 4.7.1 Greylisted, please try again later'
	assert_line '250 2.1.5 Recipient <demo@example.com> OK'
}

@test "the data hook reads the message on stdin; its refusal leaves nothing queued" {
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: buy\r\nX-Spam-Flag: YES\r\n\r\nx\r\n.\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: fine\r\n\r\nX-Spam-Flag: YES in the body is fine\r\n.\r\nQUIT\r\n')
	assert_line '554 5.7.1 Message looks like spam'
	assert_equal "$(grep -c '^250 2.6.0 ' <<<"$output")" 1
	assert_equal "$(queue_count incoming)" 1
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 1
}

@test "a hook sees the session facts in its environment, and no shell is involved" {
	cat > "$BATS_TEST_TMPDIR/facts" <<-EOF
	#!/bin/sh
	env | grep '^BH_' | sort >> "$BATS_TEST_TMPDIR/seen.\$1"
	exit 0
	EOF
	chmod +x "$BATS_TEST_TMPDIR/facts"
	smtpd_server default listen=127.0.0.1:2525 "hooks=$BATS_TEST_TMPDIR/facts"
	run smtpd_inetd 198.51.100.4 < <(printf 'EHLO client.example\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: s\r\n\r\nx\r\n.\r\nQUIT\r\n')
	assert_line --regexp '^250 2\.6\.0 '
	grep -qx 'BH_PEER=198.51.100.4' "$BATS_TEST_TMPDIR/seen.connect"
	grep -qx 'BH_SERVER=default' "$BATS_TEST_TMPDIR/seen.connect"
	grep -qx 'BH_SENDER=a@ok.example' "$BATS_TEST_TMPDIR/seen.mail"
	grep -qx 'BH_HELO=client.example' "$BATS_TEST_TMPDIR/seen.mail"
	grep -qx 'BH_RCPT=demo@example.com' "$BATS_TEST_TMPDIR/seen.rcpt"
	grep -qx 'BH_RCPTS=demo@example.com' "$BATS_TEST_TMPDIR/seen.data"
	grep -qx "BH_ID=$(incoming_ids)" "$BATS_TEST_TMPDIR/seen.data"
	grep -qx "BH_EVENT=data" "$BATS_TEST_TMPDIR/seen.data"
}

@test "a hook past its time limit is killed and the command deferred with 451 4.3.0" {
	printf '#!/bin/sh\n[ "$1" = mail ] && sleep 30\nexit 0\n' > "$BATS_TEST_TMPDIR/slow"
	chmod +x "$BATS_TEST_TMPDIR/slow"
	echo 'hook-timeout 1s' >> "$BH_ROOT/cdb/settings"
	smtpd_server default listen=127.0.0.1:2525 "hooks=$BATS_TEST_TMPDIR/slow"
	start=$(date +%s)
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@ok.example>\r\nQUIT\r\n')
	assert_line '451 4.3.0 Temporary failure in a protocol hook'
	[ $(( $(date +%s) - start )) -lt 10 ]
	run pgrep -f "$BATS_TEST_TMPDIR/slow"
	assert_failure
}

@test "a hook that cannot run defers: 421 4.7.0 at connect" {
	smtpd_server default listen=127.0.0.1:2525 hooks=/nonexistent/hook
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@ok.example>\r\nQUIT\r\n')
	assert_line --index 0 --regexp '^421 4\.7\.0 '
}
