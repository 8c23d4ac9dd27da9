# t/attack.bats — the attacker-model battery: what a hostile client sends
# to port 25 (oversized and endless input, slow input, connection floods,
# password guessing, injection into the envelope or a hook's command line)
# must end in the documented refusals with memory bounded per session.
# Memory is the VmRSS of the session process, read from /proc while the
# attack runs, with the release build (ASan keeps freed memory in a
# quarantine of up to 256 MB, which would hide the figure); every other
# test runs the sanitizer build. The open-relay tricks and STARTTLS command
# injection have their own batteries in t/smtpd-relay.bats and
# t/smtpd-tls.bats.
load lib/root
load lib/smtpd
load lib/hardening

setup() { root_new; }

@test "a 10 MB command line is refused 500 5.5.2 and the session goes on in bounded memory" {
	hard_server
	hard_start "$TOP/bin/bh-smtpd"
	run attack longline "$HARD_PORT" "$HARD_PID"
	assert_success
	assert_line 'longline 500 5.5.2 Line too long'
	assert_line 'noop 250 2.0.0 OK'
	assert_line --regexp '^quit 221 2\.0\.0 '
	[ "$(value rss_growth_kb)" -lt 1024 ]
}

@test "a million pipelined RCPTs: max-recipients accepted, the rest 452 4.5.3, memory bounded" {
	hard_server relay-from=127.0.0.0/8 max-recipients=100
	hard_start "$TOP/bin/bh-smtpd"
	run attack rcpts "$HARD_PORT" "$HARD_PID" 1000000
	assert_success
	assert_line 'reply 250_2.1.5 100'
	assert_line 'reply 452_4.5.3 999900'
	assert_line 'replies 1000000'
	[ "$(value rss_growth_kb)" -lt 2048 ]
	# and nothing was queued: there was no DATA
	assert_equal "$(queue_count incoming)" 0
}

@test "a BDAT chunk shorter than what follows: the rest is read as commands, not as message" {
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nBDAT 5 LAST\r\nhello world\r\nMAIL FROM:<b@ok.example>\r\nQUIT\r\n')
	assert_line --regexp '^250 2\.6\.0 <'
	assert_line '500 5.5.2 Command unrecognized'
	assert_line '250 2.1.0 Sender <b@ok.example> OK'
	id=$(incoming_ids)
	assert_equal "$(content_body "$id")" "hello"
	assert_equal "$(queue_count incoming)" 1
}

@test "a 50 MB BDAT chunk over max-size is read through: 552 5.3.4, memory bounded, nothing queued" {
	hard_server max-size=1M
	hard_start "$TOP/bin/bh-smtpd"
	run attack bdat-big "$HARD_PORT" "$HARD_PID" $((50 << 20))
	assert_success
	assert_line --regexp '^bdat 552 5\.3\.4 '
	assert_line 'noop 250 2.0.0 OK'
	[ "$(value rss_growth_kb)" -lt 1024 ]
	assert_equal "$(queue_count incoming)" 0
	[ -z "$(ls "$BH_ROOT/spool/msg")" ]
}

@test "a BDAT size past 64 bits is a syntax error, not a wrapped number" {
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nBDAT 99999999999999999999 LAST\r\nBDAT 18446744073709551616\r\nQUIT\r\n')
	assert_equal "$(grep -c '^501 5.5.4 Syntax: BDAT size \[LAST\]' <<<"$output")" 2
	assert_line --regexp '^221 2\.0\.0 '
	assert_equal "$(queue_count incoming)" 0
}

@test "a client sending one byte at a time is dropped by the command timeout" {
	hard_server timeout=3s
	hard_start
	run attack slow "$HARD_PORT" 1
	assert_success
	assert_line --regexp '^answer 421 4\.4\.2 '
	sec=$(value seconds)
	[ "${sec%.*}" -le 6 ]
}

@test "one address cannot take every connection: per-IP limit first, then the total" {
	hard_server max-connections=4 max-connections-per-ip=2
	hard_start
	coproc A { attack hold "$HARD_PORT" 127.0.0.5 3; }
	read -r -t 10 l1 <&"${A[0]}"; read -r -t 10 l2 <&"${A[0]}"; read -r -t 10 l3 <&"${A[0]}"
	assert_equal "$l1 $l2 $l3" "greeting 220_vm greeting 220_vm greeting 421_4.7.0" ||
		assert_equal "${l1% *} ${l3}" "greeting greeting 421_4.7.0"
	coproc B { attack hold "$HARD_PORT" 127.0.0.6 2; }
	read -r -t 10 m1 <&"${B[0]}"; read -r -t 10 m2 <&"${B[0]}"
	assert_equal "${m1:0:12} ${m2:0:12}" "greeting 220 greeting 220"
	run attack hold "$HARD_PORT" 127.0.0.7 1 </dev/null
	assert_output 'greeting 421_4.7.0'
}

@test "password guessing: each failure is delayed, the third ends the session with 421 4.7.0" {
	smtpd_user guessed guessed@example.com right-password
	hard_server
	hard_start
	start=$(date +%s%N)
	run smtpd_chat 127.0.0.1 "$HARD_PORT" <<-EOF
	> EHLO guesser.example
	> AUTH PLAIN $(printf '\0guessed\0guess1' | base64)
	> AUTH PLAIN $(printf '\0guessed\0guess2' | base64)
	> AUTH PLAIN $(printf '\0guessed\0guess3' | base64)
	> AUTH PLAIN $(printf '\0guessed\0right-password' | base64)
	EOF
	elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
	assert_equal "$(grep -c '^535 5.7.8' <<<"$output")" 3
	assert_line --regexp '^421 4\.7\.0 '
	refute_line --regexp '^235 '
	# delays of 1 s and 2 s before the second and third answers, at least
	[ "$elapsed" -ge 3000 ]
}

@test "a quoted local part cannot inject envelope attributes" {
	hard_server relay-from=127.0.0.0/8
	run smtpd_inetd 127.0.0.1 < <(printf 'EHLO x\r\nMAIL FROM:<"a state=local box=demo"@ok.example>\r\nRCPT TO:<"x state=local box=demo"@example.net>\r\nRCPT TO:<"y\\" box=root"@example.net>\r\nDATA\r\nSubject: t\r\n\r\nhi\r\n.\r\nQUIT\r\n')
	assert_line --regexp '^250 2\.6\.0 '
	id=$(incoming_ids)
	env="$BH_ROOT/spool/incoming/new/$id"
	assert_equal "$(grep -c '^rcpt ' "$env")" 2
	grep -qxF 'rcpt "\"x state=local box=demo\"@example.net" state=new' "$env"
	grep -qxF 'rcpt "\"y\\\" box=root\"@example.net" state=new' "$env"
	grep -qxF 'sender "a state=local box=demo"@ok.example' "$env"
	# the categorizer reads them back as remote recipients, nothing local
	run bh-categorize -1
	assert_success
	run grep -h '^rcpt ' "$BH_ROOT"/spool/route/new/*
	assert_line --index 0 'rcpt "\"x state=local box=demo\"@example.net" state=remote'
	assert_line --index 1 'rcpt "\"y\\\" box=root\"@example.net" state=remote'
}

@test "shell metacharacters in a hook's arguments and in the sender are never interpreted" {
	local hook="$BATS_TEST_TMPDIR/hook" pwned="$BATS_TEST_TMPDIR/pwned"
	cat > "$hook" <<-EOF
	#!/bin/sh
	for a in "\$@"; do printf '%s\n' "\$a"; done > "$BATS_TEST_TMPDIR/args"
	printf '%s\n' "\$BH_SENDER" > "$BATS_TEST_TMPDIR/sender"
	exit 0
	EOF
	chmod +x "$hook"
	printf 'hooks "%s"\n' "$hook \$(touch\${IFS}$pwned) ;touch\${IFS}$pwned |id \`id\` >$pwned &&x" \
		>> "$BH_ROOT/cdb/settings"
	config_make
	envelope_put incoming "sender \"\`touch $pwned\`;\$(touch $pwned)\"@ok.example" \
		'rcpt demo@example.com state=new' >/dev/null
	run bh-categorize -1
	assert_success
	[ ! -e "$pwned" ]
	run cat "$BATS_TEST_TMPDIR/args"
	assert_line --index 0 "\$(touch\${IFS}$pwned)"
	assert_line --index 1 ";touch\${IFS}$pwned"
	assert_line --index 2 '|id'
	assert_line --index 3 '`id`'
	assert_line --index 4 ">$pwned"
	assert_line --index 5 '&&x'
	assert_equal "$(cat "$BATS_TEST_TMPDIR/sender")" "\"\`touch $pwned\`;\$(touch $pwned)\"@ok.example"
	[ "$(queue_count route)" -eq 1 ]
}

@test "other local users cannot read mail: content, envelopes and deliveries 0600, maildirs 0700" {
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: secret\r\n\r\nhi\r\n.\r\nQUIT\r\n')
	assert_line --regexp '^250 2\.6\.0 '
	id=$(incoming_ids)
	assert_equal "$(stat -c %a "$BH_ROOT/spool/msg/$id")" 600
	assert_equal "$(stat -c %a "$BH_ROOT/spool/incoming/new/$id")" 600
	bh-categorize -1 && bh-route -1 && bh-local -1
	assert_equal "$(maildir_count demo)" 1
	assert_equal "$(stat -c %a "$BH_ROOT"/mailroot/demo/Maildir/new/*)" 600
	assert_equal "$(stat -c %a "$BH_ROOT/mailroot/demo/Maildir")" 700
	assert_equal "$(stat -c %a "$BH_ROOT/mailroot/demo")" 700
}
