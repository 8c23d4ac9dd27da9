# t/pipeline.bats — the spine end to end: inject, categorize, route, local.
load lib/root

setup() { root_new; }

drain() {
	bh-categorize -1 && bh-route -1 && bh-local -1
}

@test "a message injected for demo@example.com reaches mailroot/demo/Maildir/new byte for byte" {
	printf 'Subject: spine\nFrom: a@example.net\n\nfirst line\n\n..dot line stays\n' |
		bh-inject -i -f a@example.net demo@example.com
	run drain
	assert_success
	assert_equal "$(maildir_count demo)" 1
	f=$(ls "$BH_ROOT"/mailroot/demo/Maildir/new/*)
	run sed -n '1,2p;/^Subject/,$p' "$f"
	assert_output "$(printf 'Return-Path: <a@example.net>\nDelivered-To: demo@example.com\nSubject: spine\nFrom: a@example.net\n\nfirst line\n\n..dot line stays')"
	for q in incoming route local remote ndr; do assert queue_empty $q; done
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 0
}

@test "an unknown recipient in example.com ends as a failure record in spool/ndr with 5.1.1" {
	printf 'Subject: x\n\nx\n' | bh-inject -f a@example.net nobody@example.com demo@example.com
	drain
	assert_equal "$(maildir_count demo)" 1
	assert_equal "$(queue_count ndr)" 1
	run cat "$BH_ROOT"/spool/ndr/new/*
	assert_line 'kind failure'
	assert_line --regexp '^rcpt nobody@example.com state=failed .*code=5.1.1'
	refute_line --partial 'rcpt demo@example.com'
	# the record keeps the content for the report
	name=$(ls "$BH_ROOT/spool/ndr/new/")
	test -s "$BH_ROOT/spool/msg/$name"
}

@test "an alias delivers to its target mailbox" {
	printf 'Subject: a\n\nx\n' | bh-inject root@example.com
	drain
	assert_equal "$(maildir_count postmaster)" 1
}

@test "mail for another domain is routed to spool/remote" {
	printf 'Subject: r\n\nx\n' | bh-inject -f demo@example.com someone@example.net
	drain
	assert_equal "$(queue_count remote)" 1
	run cat "$BH_ROOT"/spool/remote/new/*
	assert_line 'dest example.net'
	assert_line --regexp '^rcpt someone@example.net state=remote'
}

@test "a bad line in cdb/directory fails make with directory:LINE and mail flows on the old configuration" {
	sum=$(md5sum < "$BH_ROOT/cdb/directory.cdb")
	printf 'mailbox broken addresses=x@example.com quota=lots\n' >> "$BH_ROOT/cdb/directory"
	line=$(wc -l < "$BH_ROOT/cdb/directory")
	run make -s -C "$BH_ROOT/cdb"
	assert_failure
	assert_output --partial "directory:$line:"
	assert_equal "$(md5sum < "$BH_ROOT/cdb/directory.cdb")" "$sum"
	printf 'Subject: still\n\nx\n' | bh-inject demo@example.com
	drain
	assert_equal "$(maildir_count demo)" 1
}

@test "a running categorizer sees a new mailbox without a restart" {
	bh-categorize & kill_on_teardown $!
	bh-route & kill_on_teardown $!
	bh-local & kill_on_teardown $!
	printf 'mailbox newbie addresses=newbie@example.com\n' >> "$BH_ROOT/cdb/directory"
	config_make
	printf 'Subject: n\n\nx\n' | bh-inject newbie@example.com
	wait_until 10 maildir_is newbie 1
	assert queue_empty ndr
}

@test "two roots run side by side without touching each other" {
	first=$BH_ROOT
	second=$BATS_TEST_TMPDIR/second
	bh-init "$second" && make -s -C "$second/cdb" >/dev/null
	printf 'Subject: one\n\nx\n' | BH_ROOT=$first bh-inject demo@example.com
	printf 'Subject: two\n\nx\n' | BH_ROOT=$second bh-inject demo@example.com
	printf 'Subject: two\n\nx\n' | BH_ROOT=$second bh-inject demo@example.com
	drain
	BH_ROOT=$second bh-categorize -1 && BH_ROOT=$second bh-route -1 && BH_ROOT=$second bh-local -1
	assert_equal "$(maildir_count demo)" 1
	assert_equal "$(find "$second/mailroot/demo/Maildir/new" -type f | wc -l)" 2
}

@test "every stage writes its message tracking line" {
	printf 'Subject: t\n\nx\n' | bh-inject -f a@example.net demo@example.com
	drain
	id=$(grep -o 'event=received id=[^ ]*' "$BH_ROOT"/log/track/* | cut -d= -f3)
	run bh-track --id "$id"
	assert_success
	assert_output --partial 'received'
	assert_output --partial 'delivered'
}
