# t/ndr.bats — bh-ndr turns spool/ndr records into RFC 3464 reports,
# checked with Python's email package (t/lib/ndr.py).
load lib/root
load lib/ndr

ARRIVED=1764329156

setup() {
	root_new
	ndr_setting hostname mx1.example.com
}

teardown() {
	chattr -i "$BH_ROOT/spool/incoming/tmp" 2>/dev/null || true
	root_teardown
}

# An RFC 5322 date in UTC, as the reports write it.
date822() {
	LC_ALL=C date -u -d "@$1" '+%a, %-d %b %Y %H:%M:%S +0000'
}

# failure_record [EXTRA-FIELD...] — a failure of a@example.net (remote
# server said 550 5.1.1) for a message from demo@example.com.
failure_record() {
	ndr_original | envelope_put ndr 'sender demo@example.com' \
	    "arrived $ARRIVED" 'size 200' 'msgid <orig.1@example.com>' \
	    'subject quarterly numbers' 'kind failure' "$@" \
	    'rcpt a@example.net state=failed code=5.1.1 reason="550 5.1.1 <a@example.net>: no such user" remote-mta=mx.example.net last-attempt=1764329200'
}

@test "a failure record becomes one multipart/report from <> to the original sender" {
	id=$(failure_record)
	run bh-ndr -1
	assert_success
	assert_equal "$(queue_count ndr)" 0
	assert_equal "$(queue_count incoming)" 1
	[ ! -e "$BH_ROOT/spool/msg/$id" ]
	run ndr_envelope
	assert_line 'sender <>'
	assert_line 'rcpt demo@example.com state=new'
	assert_line 'report failure'
	assert_line 'subject Undeliverable: quarterly numbers'
	assert_line --regexp '^msgid <.+@mx1\.example\.com>$'
	assert_line "size $(stat -c %s "$BH_ROOT/spool/msg/$(ndr_reports)")"
	run ndr_facts
	assert_success
	assert_line 'type multipart/report'
	assert_line 'report-type=delivery-status'
	assert_line 'header From: Mail Delivery System <MAILER-DAEMON@mx1.example.com>'
	assert_line 'header To: demo@example.com'
	assert_line 'header Subject: Undeliverable: quarterly numbers'
	assert_line 'header In-Reply-To: <orig.1@example.com>'
	assert_line 'header References: <orig.1@example.com>'
	assert_line 'header Auto-Submitted: auto-replied'
	assert_line --regexp '^header Message-ID: <.+@mx1\.example\.com>$'
	assert_line --regexp '^header Date: [A-Z][a-z]{2}, [0-9]+ [A-Z][a-z]{2} 20[0-9]{2} '
	assert_line 'part 1 text/plain'
	assert_line 'part 2 message/delivery-status'
	assert_line 'part 3 message/rfc822'
	assert_line 'msg Reporting-MTA: dns; mx1.example.com'
	assert_line "msg Arrival-Date: $(date822 $ARRIVED)"
	assert_line 'rcpts 1'
	assert_line 'rcpt a@example.net Final-Recipient: rfc822; a@example.net'
	assert_line 'rcpt a@example.net Action: failed'
	assert_line 'rcpt a@example.net Status: 5.1.1'
	assert_line 'rcpt a@example.net Remote-MTA: dns; mx.example.net'
	assert_line 'rcpt a@example.net Diagnostic-Code: smtp; 550 5.1.1 <a@example.net>: no such user'
	assert_line "rcpt a@example.net Last-Attempt-Date: $(date822 1764329200)"
	refute_line --partial 'Will-Retry-Until'
	assert_line 'text   a@example.net'
	assert_line 'text     <mx.example.net #5.1.1> 550 5.1.1 <a@example.net>: no such user'
	assert_line "text     What happened: The recipient's mailbox does not exist at the"
	assert_line --partial 'text     What you can do: Check the spelling of the address'
	assert_line 'returned header Message-ID: <orig.1@example.com>'
	assert_line 'returned body first line of the body'
	assert_line 'returned body second line'
	assert_line 'defects 0'
	run cat "$BH_ROOT"/log/track/*
	assert_line --regexp "event=reported id=$id msgid=<orig.1@example.com> sender=demo@example.com rcpt=a@example.net .*code=5.1.1 status=\"failure report "
}

@test "a failure inside this server names this server before the code" {
	ndr_original | envelope_put ndr 'sender demo@example.com' \
	    "arrived $ARRIVED" 'kind failure' \
	    'rcpt nobody@example.com state=failed code=5.1.1 reason="550 5.1.1 unknown recipient"'
	run bh-ndr -1
	assert_success
	run ndr_facts
	assert_line 'text     <mx1.example.com #5.1.1> 550 5.1.1 unknown recipient'
	assert_line 'rcpt nobody@example.com Diagnostic-Code: smtp; 550 5.1.1 unknown recipient'
	refute_line --partial 'Remote-MTA'
	assert_line 'header Subject: Undeliverable: (no subject)'
	refute_line --partial 'header In-Reply-To'
}

@test "RET=HDRS returns only the original headers as text/rfc822-headers" {
	failure_record 'ret HDRS'
	run bh-ndr -1
	assert_success
	run ndr_facts
	assert_line 'part 3 text/rfc822-headers'
	assert_line 'returned header Subject: quarterly numbers'
	refute_line --partial 'returned body'
	refute_line --partial 'first line of the body'
	assert_line 'defects 0'
}

@test "a message larger than ndr-return-max comes back as headers only" {
	ndr_setting ndr-return-max 100
	failure_record
	run bh-ndr -1
	assert_success
	run ndr_facts
	assert_line 'part 3 text/rfc822-headers'
	assert_line 'returned header Message-ID: <orig.1@example.com>'
	refute_line --partial 'first line of the body'
}

@test "NOTIFY=NEVER yields no report and finishes the record" {
	id=$(ndr_original | envelope_put ndr 'sender demo@example.com' \
	    'kind failure' 'rcpt a@example.net state=failed code=5.1.1 notify=NEVER')
	run bh-ndr -1
	assert_success
	assert_equal "$(queue_count incoming)" 0
	assert_equal "$(queue_count ndr)" 0
	[ ! -e "$BH_ROOT/spool/msg/$id" ]
}

@test "NOTIFY=SUCCESS,FAILURE on a delivered message yields a delivered notice with headers" {
	ndr_original | envelope_put ndr 'sender demo@example.com' \
	    "arrived $ARRIVED" 'subject quarterly numbers' 'kind success' \
	    'rcpt demo2@example.com state=delivered code=2.0.0 notify=SUCCESS,FAILURE reason="delivered to mailbox demo2"'
	run bh-ndr -1
	assert_success
	run ndr_envelope
	assert_line 'report success'
	run ndr_facts
	assert_line 'header Subject: Delivered: quarterly numbers'
	assert_line 'rcpt demo2@example.com Action: delivered'
	assert_line 'rcpt demo2@example.com Status: 2.0.0'
	assert_line 'part 3 text/rfc822-headers'
	refute_line --partial 'first line of the body'
	assert_line "text     It was delivered to the recipient's mailbox."
	refute_line --partial 'What you can do'
	assert_line 'defects 0'
}

@test "a relayed record gives a relayed notice only when SUCCESS was asked" {
	ndr_original | envelope_put ndr 'sender demo@example.com' 'kind relayed' \
	    'rcpt x@example.net state=relayed code=2.0.0 notify=SUCCESS' \
	    'rcpt y@example.net state=relayed code=2.0.0'
	run bh-ndr -1
	assert_success
	run ndr_facts
	assert_line 'rcpts 1'
	assert_line 'rcpt x@example.net Action: relayed'
	assert_line 'header Subject: Relayed: (no subject)'
	refute_line --partial 'y@example.net'
}

@test "an expanded record gives an expanded notice" {
	ndr_original | envelope_put ndr 'sender demo@example.com' 'kind expanded' \
	    'rcpt sales@example.com state=expanded code=2.0.0 notify=SUCCESS'
	run bh-ndr -1
	assert_success
	run ndr_facts
	assert_line 'header Subject: Expanded: (no subject)'
	assert_line 'rcpt sales@example.com Action: expanded'
	assert_line 'rcpt sales@example.com Status: 2.0.0'
	assert_line --partial 'text     It was delivered to a list or alias'
}

@test "a long reply is folded in the report and unfolds to the same text" {
	long="550 5.7.1 <a@example.net>: message refused because the sending host is listed on several block lists that this server consults before accepting mail"
	ndr_original | envelope_put ndr 'sender demo@example.com' 'kind failure' \
	    "rcpt a@example.net state=failed code=5.7.1 reason=\"$long\""
	run bh-ndr -1
	assert_success
	run awk 'length($0) > 80' "$BH_ROOT/spool/msg/$(ndr_reports)"
	assert_output ''
	run ndr_facts
	assert_line "rcpt a@example.net Diagnostic-Code: smtp; $long"
	assert_line 'defects 0'
}

@test "records of another message are not merged into the report" {
	ndr_original | envelope_put ndr 'sender demo@example.com' 'kind failure' \
	    'rcpt a@example.net state=failed code=5.1.1'
	ndr_original | envelope_put ndr 'sender demo@example.com' 'kind failure' \
	    'rcpt b@example.net state=failed code=5.1.1'
	run bh-ndr -1
	assert_success
	assert_equal "$(queue_count incoming)" 2
}

@test "a success record without NOTIFY yields nothing" {
	ndr_original | envelope_put ndr 'sender demo@example.com' 'kind success' \
	    'rcpt demo2@example.com state=delivered code=2.0.0'
	run bh-ndr -1
	assert_success
	assert_equal "$(queue_count incoming)" 0
	assert_equal "$(queue_count ndr)" 0
}

@test "three recipients of which two fail yield one report naming exactly those two" {
	base="$(date +%s%N | cut -c1-16)-$$-1"
	ndr_original | ndr_put "$base.F1" 'sender demo@example.com' 'kind failure' \
	    'rcpt x@example.com state=failed code=5.1.1 reason="550 5.1.1 unknown recipient"'
	ndr_original | ndr_put "$base.R1.F2" 'sender demo@example.com' 'kind failure' \
	    'rcpt y@example.net state=failed code=5.7.1 reason="550 5.7.1 relaying denied" remote-mta=mx.example.net'
	ndr_original | ndr_put "$base.S3" 'sender demo@example.com' 'kind success' \
	    'rcpt z@example.com state=delivered code=2.0.0'
	run bh-ndr -1
	assert_success
	assert_equal "$(queue_count incoming)" 1
	assert_equal "$(queue_count ndr)" 0
	run ndr_facts
	assert_line 'rcpts 2'
	assert_line 'rcpt x@example.com Status: 5.1.1'
	assert_line 'rcpt y@example.net Status: 5.7.1'
	assert_line 'rcpt y@example.net Remote-MTA: dns; mx.example.net'
	refute_line --partial 'z@example.com'
	run ls "$BH_ROOT/spool/msg"
	refute_line --partial "$base"
}

@test "a failure of a message from <> goes to badmail with a note, and the postmaster hears of it" {
	id=$(ndr_original | envelope_put ndr 'sender <>' 'kind failure' \
	    'subject Undeliverable: lunch' \
	    'rcpt demo@example.net state=failed code=5.1.1 reason="550 5.1.1 no such user"')
	run bh-ndr -1
	assert_success
	assert_equal "$(queue_count ndr)" 0
	assert_equal "$(queue_count badmail)" 1
	run cat "$BH_ROOT/spool/badmail/new/$id"
	assert_line 'sender <>'
	assert_line --partial 'note failed message from the null sender <> is never reported'
	assert_line --partial 'rcpt demo@example.net state=failed'
	[ -e "$BH_ROOT/spool/msg/$id" ]
	run cat "$BH_ROOT"/log/track/*
	assert_line --regexp "event=badmail id=$id sender=<> rcpt=demo@example.net"
	# the default settings name postmaster@example.com: one notice, from <>
	run ndr_envelope
	assert_line 'sender <>'
	assert_line 'report postmaster'
	assert_line 'rcpt postmaster@example.com state=new'
	refute_line --partial 'rcpt demo@example.net'
	run ndr_facts
	assert_line 'header To: postmaster@example.com'
	assert_line --partial "text spool/badmail/new/$id"
	assert_line 'rcpt demo@example.net Status: 5.1.1'
	assert_line 'part 3 text/rfc822-headers'
}

@test "a failed postmaster notice goes to badmail without another notice" {
	ndr_original | envelope_put ndr 'sender <>' 'kind failure' 'report postmaster' \
	    'rcpt postmaster@example.com state=failed code=5.2.2 reason="mailbox full"'
	run bh-ndr -1
	assert_success
	assert_equal "$(queue_count badmail)" 1
	assert_equal "$(queue_count incoming)" 0
}

@test "without a postmaster setting a failure from <> only goes to badmail" {
	sed -i '/^postmaster/d' "$BH_ROOT/cdb/settings"
	config_make
	ndr_original | envelope_put ndr 'sender <>' 'kind failure' \
	    'rcpt demo@example.net state=failed code=5.1.1'
	run bh-ndr -1
	assert_success
	assert_equal "$(queue_count badmail)" 1
	assert_equal "$(queue_count incoming)" 0
}

@test "delay and success records of mail from <> are dropped" {
	ndr_original | envelope_put ndr 'sender <>' 'kind delay' \
	    'rcpt demo@example.net state=deferred code=4.4.1'
	ndr_original | envelope_put ndr 'sender <>' 'kind success' \
	    'rcpt demo@example.net state=delivered notify=SUCCESS'
	run bh-ndr -1
	assert_success
	assert_equal "$(queue_count ndr)" 0
	assert_equal "$(queue_count badmail)" 0
	assert_equal "$(queue_count incoming)" 0
}

@test "a delay record gives a Delayed notice with Will-Retry-Until from expire" {
	ndr_setting expire 3d
	ndr_original | envelope_put ndr 'sender demo@example.com' \
	    "arrived $ARRIVED" 'subject quarterly numbers' 'kind delay' \
	    'rcpt a@example.net state=deferred code=4.4.1 reason="421 4.4.1 connection refused" remote-mta=mx.example.net last-attempt=1764330000'
	run bh-ndr -1
	assert_success
	run ndr_envelope
	assert_line 'report delay'
	run ndr_facts
	assert_line 'header Subject: Delayed: quarterly numbers'
	assert_line 'rcpt a@example.net Action: delayed'
	assert_line 'rcpt a@example.net Status: 4.4.1'
	assert_line "rcpt a@example.net Will-Retry-Until: $(date822 $((ARRIVED + 3 * 86400)))"
	assert_line "rcpt a@example.net Last-Attempt-Date: $(date822 1764330000)"
	assert_line 'part 3 text/rfc822-headers'
	assert_line --partial 'text     What happened: The destination server did not answer'
}

@test "ndr-copy gets every failure report as a second recipient, but no delay notice" {
	ndr_setting ndr-copy admin@example.com
	failure_record
	run bh-ndr -1
	assert_success
	run ndr_envelope
	assert_line 'rcpt demo@example.com state=new'
	assert_line 'rcpt admin@example.com state=new'
	rm "$BH_ROOT"/spool/incoming/new/*
	ndr_original | envelope_put ndr 'sender demo@example.com' 'kind delay' \
	    'rcpt a@example.net state=deferred code=4.4.1'
	run bh-ndr -1
	run ndr_envelope
	refute_line --partial 'admin@example.com'
}

@test "mail that merely carries Auto-Submitted is reported like any other" {
	ndr_original 'Auto-Submitted: auto-generated' | envelope_put ndr \
	    'sender cron@example.com' 'kind failure' \
	    'rcpt a@example.net state=failed code=5.1.1'
	run bh-ndr -1
	assert_success
	run ndr_facts
	assert_line 'header To: cron@example.com'
	assert_line 'returned header Auto-Submitted: auto-generated'
}

@test "ENVID and ORCPT come back decoded from xtext" {
	ndr_original | envelope_put ndr 'sender demo@example.com' \
	    'envid QQ+2B1+3D2' 'kind failure' \
	    'rcpt a@example.net state=failed code=5.1.1 orcpt=rfc822;Alias+2Bx@example.net'
	run bh-ndr -1
	assert_success
	run ndr_facts
	assert_line 'msg Original-Envelope-Id: QQ+1=2'
	assert_line 'rcpt a@example.net Original-Recipient: rfc822;Alias+x@example.net'
}

@test "an 8-bit original is returned as 8bit and the report is marked 8BITMIME" {
	printf 'Subject: caf\xc3\xa9\r\n\r\ncr\xc3\xa8me br\xc3\xbbl\xc3\xa9e\r\n' |
	    envelope_put ndr 'sender demo@example.com' 'body 8BITMIME' \
	    'kind failure' 'rcpt a@example.net state=failed code=5.1.1'
	run bh-ndr -1
	assert_success
	run ndr_envelope
	assert_line 'body 8BITMIME'
	run grep -c 'Content-Transfer-Encoding: 8bit' "$BH_ROOT/spool/msg/$(ndr_reports)"
	assert_output 2
	run ndr_facts
	assert_line 'part 3 message/rfc822'
	assert_line 'returned body crème brûlée'
}

@test "codes outside the table get their class's explanation, bad codes 5.0.0" {
	ndr_original | envelope_put ndr 'sender demo@example.com' 'kind failure' \
	    'rcpt a@example.net state=failed code=5.6.9' \
	    'rcpt b@example.net state=failed code=bogus'
	run bh-ndr -1
	assert_success
	run ndr_facts
	assert_line 'rcpt a@example.net Status: 5.6.9'
	assert_line 'rcpt b@example.net Status: 5.0.0'
	assert_line 'text     What happened: The message content could not be handled.'
}

@test "a record that does not parse is moved to badmail" {
	printf 'no sender line here\n' > "$BH_ROOT/spool/ndr/new/1764329156000000-1-1.F1"
	run bh-ndr -1
	assert_success
	assert_equal "$(queue_count ndr)" 0
	assert_equal "$(queue_count badmail)" 1
	assert_equal "$(queue_count incoming)" 0
}

@test "the daemon reports a record within seconds of its arrival" {
	bh-ndr 2>"$BATS_TEST_TMPDIR/ndr.log" &
	kill_on_teardown $!
	failure_record
	wait_until 10 ndr_count_is incoming 1
	wait_until 10 queue_empty ndr
}

@test "a spool error defers the records to retry/, and the report goes later" {
	chattr +i "$BH_ROOT/spool/incoming/tmp" 2>/dev/null ||
	    skip "chattr +i is not available here"
	id=$(failure_record)
	run bh-ndr -1
	chattr -i "$BH_ROOT/spool/incoming/tmp"
	assert_success
	assert_output --partial 'event=deferred'
	assert_equal "$(queue_count incoming)" 0
	[ -e "$BH_ROOT/spool/ndr/retry/$id" ]
	[ "$(stat -c %Y "$BH_ROOT/spool/ndr/retry/$id")" -gt $(( $(date +%s) + 200 )) ]
	run ls "$BH_ROOT/spool/msg"
	assert_output "$id"
	touch -d @"$(date +%s)" "$BH_ROOT/spool/ndr/retry/$id"
	run bh-ndr -1
	assert_success
	assert_equal "$(queue_count ndr)" 0
	run ndr_facts
	assert_line 'rcpt a@example.net Status: 5.1.1'
}
