# t/local.bats — bh-local: Maildir delivery.
load lib/root

setup() { root_new; }

@test "local delivers into mailroot/BOX/Maildir/new with Return-Path and Delivered-To first" {
	printf 'Subject: one\r\n\r\nline 1\r\nline 2\r\n' |
		envelope_put local 'sender a@example.net' 'size 32' \
		'rcpt demo@example.com state=local box=demo'
	run bh-local -1
	assert_success
	assert_equal "$(maildir_count demo)" 1
	f=$(ls "$BH_ROOT"/mailroot/demo/Maildir/new/*)
	run cat "$f"
	assert_output "$(printf 'Return-Path: <a@example.net>\nDelivered-To: demo@example.com\nSubject: one\n\nline 1\nline 2')"
	assert queue_empty local
	# the content is freed with its last envelope
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 0
}

@test "local Maildir files are readable by Python's mailbox.Maildir" {
	printf 'Subject: py\r\nFrom: a@example.net\r\n\r\nhello\r\n' |
		envelope_put local 'sender a@example.net' \
		'rcpt demo@example.com state=local box=demo'
	bh-local -1
	run python3 -c '
import mailbox, sys
box = mailbox.Maildir(sys.argv[1], create=False)
for m in box: print(m["Subject"], m["Return-Path"], m.get_payload().strip())
' "$BH_ROOT/mailroot/demo/Maildir"
	assert_output "py <a@example.net> hello"
}

@test "local gives each recipient its own copy and names never collide" {
	envelope_put local 'sender a@example.net' \
		'rcpt demo@example.com state=local box=demo' \
		'rcpt postmaster@example.com state=local box=postmaster'
	for i in 1 2 3; do
		envelope_put local 'sender a@example.net' 'rcpt demo@example.com state=local box=demo' >/dev/null
	done
	run bh-local -1
	assert_success
	assert_equal "$(maildir_count demo)" 4
	assert_equal "$(maildir_count postmaster)" 1
}

@test "local skips recipients already delivered on an earlier attempt" {
	envelope_put local 'sender a@example.net' \
		'rcpt demo@example.com state=delivered box=demo' \
		'rcpt postmaster@example.com state=local box=postmaster'
	bh-local -1
	assert_equal "$(maildir_count demo)" 0
	assert_equal "$(maildir_count postmaster)" 1
}

@test "local fails an unknown mailbox with 5.1.1 into spool/ndr" {
	envelope_put local 'sender a@example.net' \
		'rcpt ghost@example.com state=local box=ghost'
	run bh-local -1
	assert_success
	assert queue_empty local
	run cat "$BH_ROOT"/spool/ndr/new/*
	assert_line --partial 'kind failure'
	assert_line --regexp '^rcpt ghost@example.com state=failed .*code=5.1.1 reason="550 5.1.1 '
}

@test "local fails with 5.2.2 when the mailbox is over its quota" {
	cat >> "$BH_ROOT/cdb/directory" <<-'EOF2'
	mailbox small addresses=small@example.com quota=100
	EOF2
	config_make
	head -c 300 /dev/zero | tr '\0' x | envelope_put local 'sender a@example.net' 'size 300' \
		'rcpt small@example.com state=local box=small'
	bh-local -1
	assert_equal "$(maildir_count small)" 0
	run cat "$BH_ROOT"/spool/ndr/new/*
	assert_line --partial 'code=5.2.2'
}

@test "local keeps the message queued when the Maildir cannot be written, and delivers on retry" {
	mkdir -p "$BH_ROOT/mailroot/demo/Maildir"
	chmod 500 "$BH_ROOT/mailroot/demo/Maildir"
	touch "$BH_ROOT/mailroot/demo/Maildir/new" # a file where new/ must be
	envelope_put local 'sender a@example.net' \
		'rcpt demo@example.com state=local box=demo'
	run bh-local -1
	assert_success
	assert_equal "$(ls "$BH_ROOT/spool/local/retry" | wc -l)" 1
	run cat "$BH_ROOT"/spool/local/retry/*
	assert_line --regexp '^rcpt demo@example.com state=deferred .*code=4'
	assert queue_empty ndr
	# the administrator repairs the Maildir; the retry delivers
	chmod 700 "$BH_ROOT/mailroot/demo/Maildir"
	rm "$BH_ROOT/mailroot/demo/Maildir/new"
	touch -d '1 minute ago' "$BH_ROOT"/spool/local/retry/*
	bh-local -1
	assert_equal "$(maildir_count demo)" 1
	assert queue_empty local
}

@test "local sends a success notice when NOTIFY asks for one" {
	envelope_put local 'sender a@example.net' \
		'rcpt demo@example.com state=local box=demo notify=SUCCESS,FAILURE'
	bh-local -1
	assert_equal "$(maildir_count demo)" 1
	run cat "$BH_ROOT"/spool/ndr/new/*
	assert_line 'kind success'
	assert_line --regexp '^rcpt demo@example.com state=delivered .*code=2.0.0'
}

@test "local wakes on new work without polling and stops on SIGTERM" {
	bh-local &
	pid=$!
	kill_on_teardown $pid
	envelope_put local 'sender a@example.net' 'rcpt demo@example.com state=local box=demo'
	wait_until 5 maildir_is demo 1
	kill -TERM $pid
	wait_until 5 sh -c "! kill -0 $pid 2>/dev/null"
}

@test "local logs one line per message at log-level min, one per recipient at medium, nothing but errors at none" {
	envelope_put local 'sender a@example.net' 'rcpt demo@example.com state=local box=demo' >/dev/null
	run bh-local -1
	assert_line --regexp '^stage=local event=done id=[^ ]+ rcpts=1 pending=0$'
	refute_line --partial 'event=delivered'
	echo 'log-level local=medium' >> "$BH_ROOT/cdb/settings"
	config_make
	envelope_put local 'sender a@example.net' 'rcpt demo@example.com state=local box=demo' >/dev/null
	run bh-local -1
	assert_line --regexp '^stage=local event=delivered id=[^ ]+ rcpt=demo@example.com code=2.0.0 '
	echo 'log-level local=none' >> "$BH_ROOT/cdb/settings"
	config_make
	envelope_put local 'sender a@example.net' 'rcpt demo@example.com state=local box=demo' >/dev/null
	run bh-local -1
	assert_output ''
	assert_equal "$(maildir_count demo)" 3
}
