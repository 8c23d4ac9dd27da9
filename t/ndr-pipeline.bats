# t/ndr-pipeline.bats — reports travel the whole pipeline: bh-inject,
# bh-categorize, bh-ndr, bh-route, bh-local; and two roots that bounce to
# each other do not loop (the <> rule).
load lib/root
load lib/ndr

setup() {
	root_new
	ndr_setting hostname mx1.example.com
}

@test "an unknown recipient at example.com ends as a report in demo's Maildir" {
	printf 'Subject: hello there\n\nbody\n' |
	    bh-inject -f demo@example.com nosuch@example.com
	ndr_pipeline
	assert_equal "$(maildir_count demo)" 1
	report=$(ndr_maildir_report demo)
	run python3 "$TOP/t/lib/ndr.py" "$report"
	assert_success
	assert_line 'header From: Mail Delivery System <MAILER-DAEMON@mx1.example.com>'
	assert_line 'header To: demo@example.com'
	assert_line 'header Return-Path: <>'
	assert_line 'header Subject: Undeliverable: hello there'
	assert_line 'rcpts 1'
	assert_line 'rcpt nosuch@example.com Action: failed'
	assert_line 'rcpt nosuch@example.com Status: 5.1.1'
	assert_line --regexp '^rcpt nosuch@example.com Diagnostic-Code: smtp; 550 5\.1\.1 '
	assert_line 'returned header Subject: hello there'
	assert_line 'returned body body'
	assert_line 'defects 0'
	run cat "$BH_ROOT"/log/track/*
	assert_line --regexp 'event=reported .*rcpt=nosuch@example.com '
	assert_line --regexp 'event=delivered .*sender=<> rcpt=demo@example.com '
}

@test "a message to three recipients of which two fail brings one report naming those two" {
	printf 'Subject: team\n\nbody\n' | bh-inject -f demo@example.com \
	    postmaster@example.com gone1@example.com gone2@example.com
	ndr_pipeline
	assert_equal "$(maildir_count postmaster)" 1
	assert_equal "$(maildir_count demo)" 1
	run python3 "$TOP/t/lib/ndr.py" "$(ndr_maildir_report demo)"
	assert_line 'rcpts 2'
	assert_line 'rcpt gone1@example.com Status: 5.1.1'
	assert_line 'rcpt gone2@example.com Status: 5.1.1'
	refute_line --partial 'rcpt postmaster@example.com'
}

@test "NOTIFY=SUCCESS,FAILURE on a delivered message brings a delivered notice" {
	printf 'Subject: receipt\r\n\r\nbody\r\n' | envelope_put incoming \
	    'sender postmaster@example.com' "arrived $(date +%s)" 'subject receipt' \
	    'rcpt demo@example.com state=new notify=SUCCESS,FAILURE'
	ndr_pipeline
	assert_equal "$(maildir_count demo)" 1
	assert_equal "$(maildir_count postmaster)" 1
	run python3 "$TOP/t/lib/ndr.py" "$(ndr_maildir_report postmaster)"
	assert_line 'header Subject: Delivered: receipt'
	assert_line 'rcpt demo@example.com Action: delivered'
	assert_line --regexp '^rcpt demo@example.com Status: 2\.'
	assert_line 'part 3 text/rfc822-headers'
}

@test "two roots that bounce to each other do not loop: the bounce of a bounce is badmail" {
	ndr_root a a.test
	ndr_root b b.test
	A="$BATS_TEST_TMPDIR/a" B="$BATS_TEST_TMPDIR/b"
	# at A, mail from a user B does not know fails: A reports it to B
	BH_ROOT=$A
	printf 'Subject: ping\n\nbody\n' | bh-inject -f ghost@b.test nobody@a.test
	BH_ROOT=$A ndr_pipeline
	run cat "$A"/spool/remote/new/*
	assert_line 'sender <>'
	assert_line --partial 'rcpt ghost@b.test'
	for round in 1 2 3 4; do
		BH_ROOT=$B
		carried=$(ndr_carry "$A" "$B")
		ndr_pipeline
		BH_ROOT=$A
		carried=$((carried + $(ndr_carry "$B" "$A")))
		ndr_pipeline
		[ "$round" -eq 1 ] || assert_equal "$carried" 0
	done
	# B kept the failed report in badmail and told its own postmaster
	BH_ROOT=$B
	assert_equal "$(queue_count badmail)" 1
	run cat "$B"/spool/badmail/new/*
	assert_line 'sender <>'
	assert_line --partial 'note failed message from the null sender'
	assert_equal "$(maildir_count postmaster)" 1
	run python3 "$TOP/t/lib/ndr.py" "$(ndr_maildir_report postmaster)"
	assert_line 'header Subject: Postmaster notice: undeliverable mail from <>: Undeliverable: ping'
	assert_line 'rcpt ghost@b.test Status: 5.1.1'
	BH_ROOT=$A
	assert_equal "$(queue_count badmail)" 0
	assert_equal "$(queue_count remote)" 0
}

@test "a recipient the remote server refuses comes back with Remote-MTA and its reply" {
	ndr_peer
	printf 'Subject: out\n\nbody\n' |
	    bh-inject -f demo@example.com bad@example.net good@example.net
	ndr_pipeline remote
	assert_equal "$(maildir_count demo)" 1
	run python3 "$TOP/t/lib/ndr.py" "$(ndr_maildir_report demo)"
	assert_line 'header Subject: Undeliverable: out'
	assert_line 'rcpts 1'
	assert_line 'rcpt bad@example.net Action: failed'
	assert_line 'rcpt bad@example.net Status: 5.1.1'
	assert_line 'rcpt bad@example.net Remote-MTA: dns; [127.0.0.1]'
	assert_line 'rcpt bad@example.net Diagnostic-Code: smtp; 550 5.1.1 <bad@example.net>: no such user here'
	assert_line 'text     <[127.0.0.1] #5.1.1> 550 5.1.1 <bad@example.net>: no such user here'
	refute_line --partial 'good@example.net'
}

@test "NOTIFY=SUCCESS to a server without DSN brings a relayed notice" {
	ndr_peer
	printf 'Subject: hop\r\n\r\nbody\r\n' | envelope_put incoming \
	    'sender demo@example.com' "arrived $(date +%s)" 'subject hop' \
	    'rcpt good@example.net state=new notify=SUCCESS'
	ndr_pipeline remote
	assert_equal "$(maildir_count demo)" 1
	run python3 "$TOP/t/lib/ndr.py" "$(ndr_maildir_report demo)"
	assert_line 'header Subject: Relayed: hop'
	assert_line 'rcpt good@example.net Action: relayed'
	assert_line 'rcpt good@example.net Remote-MTA: dns; [127.0.0.1]'
	assert_line 'part 3 text/rfc822-headers'
}

@test "two instances over SMTP: a report the other refuses ends in badmail, no loop" {
	PA=$(free_port) PB=$(free_port)
	while [ "$PB" = "$PA" ]; do PB=$(free_port); done
	ndr_smtp_root a a.test "$PA" b.test "$PB"
	ndr_smtp_root b b.test "$PB" a.test "$PA"
	A="$BATS_TEST_TMPDIR/a" B="$BATS_TEST_TMPDIR/b"
	# at B, a message from a user A does not know fails: B reports it to A,
	# A refuses the report, and B's report of that is never written
	BH_ROOT=$B
	printf 'Subject: ping\n\nbody\n' | bh-inject -f ghost@a.test nobody@b.test
	for round in 1 2 3; do
		BH_ROOT=$B ndr_pipeline remote
		BH_ROOT=$A ndr_pipeline remote
	done
	BH_ROOT=$B
	assert_equal "$(grep -c 'event=report ' "$BATS_TEST_TMPDIR/stages.log")" 1
	assert_equal "$(grep -c 'event=postmaster ' "$BATS_TEST_TMPDIR/stages.log")" 1
	assert_equal "$(queue_count badmail)" 1
	run cat "$B"/spool/badmail/new/*
	assert_line 'sender <>'
	assert_line --regexp '^rcpt ghost@a.test state=failed .*code=5\.1\.1'
	assert_equal "$(maildir_count postmaster)" 1
	for q in incoming route local remote ndr; do
		assert_equal "$(BH_ROOT=$A queue_count $q)$(BH_ROOT=$B queue_count $q)" 00
	done
	BH_ROOT=$A
	assert_equal "$(queue_count badmail)" 0
	assert_equal "$(find "$A/mailroot" -type f | wc -l)" 0
}

@test "ENVID, ORCPT, NOTIFY and RET given over SMTP shape the report" {
	ndr_peer
	port=$(free_port)
	printf 'default listen=127.0.0.1:%s relay-from=127.0.0.0/8\n' "$port" \
	    > "$BH_ROOT/cdb/servers"
	config_make
	bh-smtpd 2>>"$BATS_TEST_TMPDIR/smtpd.log" &
	kill_on_teardown $!
	wait_until 10 ndr_listening "$port"
	python3 - "$port" <<'PY'
import smtplib, sys
s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))
s.ehlo('client.example.com')
s.mail('demo@example.com', ['RET=HDRS', 'ENVID=QQ+2B1'])
assert s.rcpt('bad1@example.net', ['NOTIFY=FAILURE',
    'ORCPT=rfc822;Bad1+2Bx@example.net'])[0] == 250
assert s.rcpt('bad2@example.net', ['NOTIFY=NEVER'])[0] == 250
s.data(b'Subject: dsn\r\n\r\nsecret body\r\n')
s.quit()
PY
	ndr_pipeline remote
	assert_equal "$(maildir_count demo)" 1
	run python3 "$TOP/t/lib/ndr.py" "$(ndr_maildir_report demo)"
	assert_line 'msg Original-Envelope-Id: QQ+1'
	assert_line 'rcpts 1'
	assert_line 'rcpt bad1@example.net Original-Recipient: rfc822;Bad1+x@example.net'
	assert_line 'rcpt bad1@example.net Status: 5.1.1'
	refute_line --partial 'bad2@example.net'
	assert_line 'part 3 text/rfc822-headers'
	assert_line --partial 'returned header Received: from client.example.com'
	refute_line --partial 'secret body'
}
