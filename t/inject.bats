# t/inject.bats — bh-inject and bin/sendmail: local submission.
load lib/root

setup() { root_new; }

@test "inject queues the message in spool/incoming with CRLF lines and the added headers" {
	printf 'Subject: hello\n\nbody\n' | bh-inject -f sender@example.com demo@example.com
	assert_equal "$(queue_count incoming)" 1
	env=$(ls "$BH_ROOT"/spool/incoming/new/)
	run cat "$BH_ROOT/spool/incoming/new/$env"
	assert_line 'sender sender@example.com'
	assert_line 'rcpt demo@example.com state=new'
	assert_line 'subject hello'
	run cat "$BH_ROOT/spool/msg/$env"
	assert_line --regexp '^Received: \(bridgehead [0-9]+ invoked by uid [0-9]+\);'
	assert_line --regexp "^Message-ID: <$env@.*>"
	assert_line --regexp '^Date: '
	assert_line --regexp '^From: sender@example.com'
	assert_equal "$(grep -c $'\r$' "$BH_ROOT/spool/msg/$env")" "$(wc -l < "$BH_ROOT/spool/msg/$env")"
}

@test "inject keeps an existing Message-ID and Date" {
	printf 'Message-ID: <mine@x>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\nb\n' | bh-inject demo@example.com
	f=$(ls "$BH_ROOT"/spool/msg/*)
	assert_equal "$(grep -c '^Message-ID' "$f")" 1
	assert_equal "$(grep -c '^Date' "$f")" 1
	grep -q 'msgid <mine@x>' "$BH_ROOT"/spool/incoming/new/*
}

@test "sendmail -t takes recipients from To, Cc and Bcc and removes Bcc" {
	printf 'To: "Demo, User" <demo@example.com>\nCc: a@example.net, b@example.net\nBcc: secret@example.com\nSubject: t\n\nbody\n' |
		sendmail -t -i -f me@example.com
	run cat "$BH_ROOT"/spool/incoming/new/*
	assert_line 'rcpt demo@example.com state=new'
	assert_line 'rcpt a@example.net state=new'
	assert_line 'rcpt b@example.net state=new'
	assert_line 'rcpt secret@example.com state=new'
	run grep -c '^Bcc' "$BH_ROOT"/spool/msg/*
	assert_output 0
}

@test "inject ends the message at a lone dot unless -i is given" {
	printf 'Subject: d\n\nbefore\n.\nafter\n' | bh-inject demo@example.com
	run grep -c after "$BH_ROOT"/spool/msg/*
	assert_output 0
	rm -f "$BH_ROOT"/spool/msg/* "$BH_ROOT"/spool/incoming/new/*
	printf 'Subject: d\n\nbefore\n.\nafter\n' | bh-inject -oi demo@example.com
	run grep -c after "$BH_ROOT"/spool/msg/*
	assert_output 1
}

@test "inject completes an unqualified recipient with the default domain" {
	printf 'x\n' | bh-inject demo
	grep -q '^rcpt demo@localhost state=new' "$BH_ROOT"/spool/incoming/new/*
}

@test "inject refuses to run without recipients (exit 100) and queues nothing" {
	run bh-inject -f a@example.com < /dev/null
	assert_equal "$status" 100
	assert_output --partial 'no recipients'
	assert queue_empty incoming
}

@test "inject writes a received line to the message tracking log" {
	printf 'Subject: tracked\n\nx\n' | bh-inject -f a@example.com demo@example.com
	run cat "$BH_ROOT"/log/track/*
	assert_output --regexp 'event=received id=[0-9-]+ msgid=<[^ ]+> sender=a@example.com size=[0-9]+ server=inject'
}
