# t/smtpd.bats — bh-smtpd: the protocol (commands, parameters, replies,
# the message as stored, the envelope handed to spool/incoming).
load lib/root
load lib/smtpd

setup() { root_new; }

msg='From: a@example.net\r\nTo: demo@example.com\r\nSubject: hello there\r\nMessage-ID: <m1@example.net>\r\n\r\nbody line\r\n'

@test "a plain session queues content and envelope and answers 250 2.6.0 with the id" {
	run smtpd_inetd 198.51.100.7 < <(printf "EHLO client.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\n${msg}.\r\nQUIT\r\n")
	assert_success
	assert_line --index 0 --regexp '^220 .* ESMTP bridgehead$'
	assert_line '250 2.1.0 Sender <a@example.net> OK'
	assert_line '250 2.1.5 Recipient <demo@example.com> OK'
	assert_line '354 End data with <CR><LF>.<CR><LF>'
	assert_line --regexp '^250 2\.6\.0 <[0-9]{16}-[0-9]+-[0-9]+> Queued mail for delivery$'
	assert_line --regexp '^221 2\.0\.0 '
	id=$(incoming_ids)
	[ -n "$id" ]
	assert_output --partial "<$id>"
	assert_equal "$(incoming_field "$id" sender)" "a@example.net"
	assert_equal "$(incoming_field "$id" helo)" "client.example"
	assert_equal "$(incoming_field "$id" peer)" "198.51.100.7"
	assert_equal "$(incoming_field "$id" server)" "default"
	assert_equal "$(incoming_field "$id" msgid)" "<m1@example.net>"
	assert_equal "$(incoming_field "$id" subject)" "hello there"
	assert_equal "$(incoming_field "$id" size)" "$(stat -c %s "$BH_ROOT/spool/msg/$id")"
	grep -qx 'rcpt demo@example.com state=new' "$BH_ROOT/spool/incoming/new/$id"
	# stored exactly as sent, CRLF and all, after our Received: line
	assert_equal "$(content_body "$id" | od -c)" "$(printf "$msg" | od -c)"
	head -c 200 "$BH_ROOT/spool/msg/$id" | grep -q '^Received: from client.example (\[198.51.100.7\])'
	grep -q 'with ESMTP id' "$BH_ROOT/spool/msg/$id"
	grep -q 'event=received' "$BH_ROOT"/log/track/*
}

@test "EHLO advertises the extensions; HELO gets a plain 250" {
	run smtpd_inetd < <(printf 'EHLO x.example\r\nHELO y.example\r\nQUIT\r\n')
	for ext in 'SIZE 10485760' PIPELINING DSN ENHANCEDSTATUSCODES 8BITMIME \
	    BINARYMIME CHUNKING SMTPUTF8 'AUTH PLAIN LOGIN' ETRN; do
		assert_line --regexp "^250[- ]$ext\$"
	done
	refute_line --regexp 'STARTTLS'
	assert_line --regexp '^250 [^ ]+ Hello y.example \[192.0.2.1\]$'
}

@test "wrong commands get 500 5.5.2, 503 5.5.1, 501 with the right enhanced code" {
	run smtpd_inetd < <(printf 'FOO\r\nMAIL FROM:<a@example.net>\r\nEHLO x\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nMAIL FROM:a@example.net\r\nMAIL FROM:<a@@example.net>\r\nMAIL FROM:<a@example.net>\r\nMAIL FROM:<b@example.net>\r\nRCPT TO:<demo@@example.com>\r\nRCPT TO demo@example.com\r\nDATA\r\nEHLO\r\nQUIT\r\n')
	assert_line --index 1 '500 5.5.2 Command unrecognized'
	assert_line --index 2 '503 5.5.1 Send HELO or EHLO first'
	assert_line '503 5.5.1 Need MAIL command first'
	assert_line '501 5.5.4 Syntax: MAIL FROM:<address>'
	assert_line '501 5.1.7 Bad sender address syntax'
	assert_line '503 5.5.1 Nested MAIL command'
	assert_line '501 5.1.3 Bad recipient address syntax'
	assert_line '501 5.5.4 Syntax: RCPT TO:<address>'
	assert_line '554 5.5.1 No valid recipients'
	assert_line '501 5.5.4 Syntax: EHLO hostname'
	assert_equal "$(queue_count incoming)" 0
}

@test "TURN, ATRN and EXPN answer 502 5.5.1; VRFY 252 unless vrfy=yes" {
	run smtpd_inetd < <(printf 'EHLO x\r\nTURN\r\nATRN\r\nEXPN staff\r\nVRFY demo@example.com\r\nQUIT\r\n')
	assert_equal "$(grep -c '^502 5.5.1 Command not implemented' <<<"$output")" 3
	assert_line '252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery'
	smtpd_server default listen=127.0.0.1:2525 vrfy=yes
	run smtpd_inetd < <(printf 'EHLO x\r\nVRFY <demo@example.com>\r\nVRFY nobody@example.com\r\nVRFY someone@far.example\r\nQUIT\r\n')
	assert_line '250 2.1.5 <demo@example.com>'
	assert_line '550 5.1.1 <nobody@example.com>: User unknown'
	assert_line '252 2.5.2 <someone@far.example>: not a local address; will accept message and attempt delivery'
}

@test "NOOP, RSET and HELP answer 250/214 and RSET forgets the transaction" {
	run smtpd_inetd < <(printf 'HELO x\r\nNOOP\r\nMAIL FROM:<a@example.net>\r\nRSET\r\nRCPT TO:<demo@example.com>\r\nHELP\r\nQUIT\r\n')
	assert_line --index 2 '250 2.0.0 OK'
	assert_line '503 5.5.1 Need MAIL command first'
	assert_line --regexp '^214 2\.0\.0 '
}

@test "MAIL and RCPT parameters are validated and kept in the envelope" {
	run smtpd_inetd < <(printf "EHLO x\r\nMAIL FROM:<a@example.net> SIZE=100 BODY=8BITMIME RET=HDRS ENVID=abc+2Bdef AUTH=<>\r\nRCPT TO:<demo@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;demo+40example.com\r\nRCPT TO:<postmaster@example.com> NOTIFY=NEVER\r\nDATA\r\n${msg}.\r\nQUIT\r\n")
	assert_line --regexp '^250 2\.6\.0 '
	id=$(incoming_ids)
	assert_equal "$(incoming_field "$id" body)" 8BITMIME
	assert_equal "$(incoming_field "$id" ret)" HDRS
	assert_equal "$(incoming_field "$id" envid)" abc+2Bdef
	grep -qx 'rcpt demo@example.com state=new notify=SUCCESS,FAILURE orcpt=rfc822;demo+40example.com' "$BH_ROOT/spool/incoming/new/$id"
	grep -qx 'rcpt postmaster@example.com state=new notify=NEVER' "$BH_ROOT/spool/incoming/new/$id"
}

@test "bad parameters get 501 5.5.4 and unknown ones 555 5.5.4" {
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@example.net> BODY=9BIT\r\nMAIL FROM:<a@example.net> RET=ALL\r\nMAIL FROM:<a@example.net> ENVID=a=b\r\nMAIL FROM:<a@example.net> SIZE=x\r\nMAIL FROM:<a@example.net> RET=FULL RET=HDRS\r\nMAIL FROM:<a@example.net> FOO=1\r\nMAIL FROM:<a@example.net> SMTPUTF8=yes\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<demo@example.com> NOTIFY=NEVER,SUCCESS\r\nRCPT TO:<demo@example.com> ORCPT=nosemicolon\r\nRCPT TO:<demo@example.com> XYZ=1\r\nQUIT\r\n')
	assert_equal "$(grep -c '^501 5.5.4 Bad MAIL parameter value' <<<"$output")" 5
	assert_equal "$(grep -c '^555 5.5.4 ' <<<"$output")" 3
	assert_line '501 5.5.4 Bad NOTIFY parameter'
	assert_line '501 5.5.4 Bad ORCPT parameter'
}

@test "the null sender, postmaster without a domain, and a source route are accepted" {
	run smtpd_inetd < <(printf "EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nRCPT TO:<@relay.example.net:demo@example.com>\r\nDATA\r\n${msg}.\r\nQUIT\r\n")
	assert_line '250 2.1.0 Sender <> OK'
	assert_line '250 2.1.5 Recipient <postmaster@example.com> OK'
	assert_line '250 2.1.5 Recipient <demo@example.com> OK'
	id=$(incoming_ids)
	assert_equal "$(incoming_field "$id" sender)" "<>"
}

@test "pipelined commands get their replies in order" {
	run smtpd_inetd < <(printf "EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<demo@example.com>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<postmaster@example.com>\r\nDATA\r\n${msg}.\r\nMAIL FROM:<b@example.net>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\n${msg}.\r\nQUIT\r\n")
	codes=$(sed -n 's/^\([0-9][0-9][0-9]\) .*/\1/p' <<<"$output" | tr '\n' ' ')
	assert_equal "$codes" "220 250 250 250 550 250 354 250 250 250 354 250 221 "
	assert_equal "$(queue_count incoming)" 2
}

@test "dots are unstuffed and a lone dot line ends the data" {
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: dots\r\n\r\n..leading\r\n...\r\n.x\r\n\r\n.\r\nQUIT\r\n')
	assert_line --regexp '^250 2\.6\.0 '
	id=$(incoming_ids)
	assert_equal "$(content_body "$id" | od -c)" "$(printf 'Subject: dots\r\n\r\n.leading\r\n..\r\nx\r\n\r\n' | od -c)"
}

@test "SMTP smuggling: bare LF or CR never ends data, and such a message is refused" {
	for end in '\n.\n' '\r\n.\r' '\n.\r\n' '\r.\r\n' '\r\n\x00.\r\n' '\r\n.\n'; do
		rm -f "$BH_ROOT"/spool/incoming/new/*
		run smtpd_inetd < <(printf "EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: s\r\n\r\nfirst${end}MAIL FROM:<evil@example.net>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n")
		if [ "$end" = '\r\n\x00.\r\n' ]; then
			# a NUL line is data, not an end: one message holding it all
			assert_equal "$(grep -c '^250 2.6.0' <<<"$output")" 1
			refute_line '250 2.1.0 Sender <evil@example.net> OK'
			continue
		fi
		assert_line '554 5.6.0 Message refused: bare CR or LF in data (lines must end in CRLF)'
		refute_line --regexp '^250 2\.6\.0'
		refute_line '250 2.1.0 Sender <evil@example.net> OK'
		assert_equal "$(queue_count incoming)" 0
	done
}

@test "bare LF in a command is refused with 500 5.5.2" {
	run smtpd_inetd < <(printf 'EHLO x\nNOOP\r\nQUIT\r\n')
	assert_line --index 1 '500 5.5.2 Bare CR or LF not allowed; lines end in CRLF'
	assert_line --index 2 '250 2.0.0 OK'
}

@test "a data line over 1000 octets is refused with 554 5.6.0; a command line over 4 KB with 500" {
	long=$(head -c 1200 /dev/zero | tr '\0' a)
	run smtpd_inetd < <(printf "EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\n\r\n${long}\r\n.\r\nNOOP ${long}${long}${long}${long}\r\nQUIT\r\n")
	assert_line '554 5.6.0 Message refused: line longer than 1000 octets'
	assert_line '500 5.5.2 Line too long'
	assert_equal "$(queue_count incoming)" 0
}

@test "BDAT chunks make one message, binary bytes intact" {
	python3 - "$BATS_TEST_TMPDIR/in" <<-'EOF'
	import sys
	body = b"Subject: bin\r\n\r\n" + bytes(range(256)) + b"\n.\n\r.\r\n"
	first, second = body[:100], body[100:]
	s = b"EHLO x\r\nMAIL FROM:<a@example.net> BODY=BINARYMIME\r\nRCPT TO:<demo@example.com>\r\n"
	s += b"BDAT %d\r\n" % len(first) + first + b"BDAT %d LAST\r\n" % len(second) + second + b"QUIT\r\n"
	open(sys.argv[1], "wb").write(s)
	open(sys.argv[1] + ".body", "wb").write(body)
	EOF
	run smtpd_inetd < "$BATS_TEST_TMPDIR/in"
	assert_line '250 2.0.0 100 octets received'
	assert_line --regexp '^250 2\.6\.0 '
	id=$(incoming_ids)
	assert_equal "$(incoming_field "$id" body)" BINARYMIME
	cmp <(content_body "$id") "$BATS_TEST_TMPDIR/in.body"
}

@test "BDAT without a transaction still reads its chunk; DATA with BINARYMIME is refused" {
	run smtpd_inetd < <(printf 'HELO x\r\nBDAT 6\r\nNOOP\r\nMAIL FROM:<a@example.net> BODY=BINARYMIME\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nQUIT\r\n')
	assert_line --index 2 '503 5.5.1 Need MAIL command first'
	assert_line '503 5.5.1 BODY=BINARYMIME requires BDAT'
	refute_line '250 2.0.0 OK'
}

@test "too many Received lines: 554 5.4.6; the server's max-hops overrides settings" {
	hops=""
	for i in 1 2 3; do hops="${hops}Received: from h$i\r\n"; done
	smtpd_server default listen=127.0.0.1:2525 max-hops=3
	run smtpd_inetd < <(printf "EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\n${hops}Subject: loop\r\n\r\nx\r\n.\r\nQUIT\r\n")
	assert_line '554 5.4.6 Too many hops (3 Received: lines)'
	smtpd_server default listen=127.0.0.1:2525 max-hops=4
	run smtpd_inetd < <(printf "EHLO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\n${hops}Subject: loop\r\n\r\nx\r\n.\r\nQUIT\r\n")
	assert_line --regexp '^250 2\.6\.0 '
}

@test "ETRN moves held and retrying mail of the domain into spool/remote/new" {
	mkdir -p "$BH_ROOT/spool/remote/hold"
	printf 'sender a@example.com\ndest fourth\nrcpt x@fourthcoffee.com state=remote\n' > "$BH_ROOT/spool/remote/hold/m1"
	printf 'sender a@example.com\nrcpt y@fourthcoffee.com state=remote\n' > "$BH_ROOT/spool/remote/retry/m2"
	printf 'sender a@example.com\nrcpt z@other.example state=remote\n' > "$BH_ROOT/spool/remote/retry/m3"
	run smtpd_inetd < <(printf 'ETRN fourthcoffee.com\r\nEHLO x\r\nETRN nothing.example\r\nETRN fourthcoffee.com\r\nETRN example.com\r\nETRN #fourth\r\nETRN bad..domain\r\nQUIT\r\n')
	assert_line --index 1 '503 5.5.1 Send HELO or EHLO first'
	assert_line '251 2.0.0 OK, no messages waiting for node nothing.example'
	assert_line '250 2.0.0 Queuing for node fourthcoffee.com started'
	assert_line '459 4.7.1 example.com: node not allowed: a local domain'
	assert_line '501 5.5.4 Syntax: ETRN domain'
	assert [ -f "$BH_ROOT/spool/remote/new/m1" ]
	assert [ -f "$BH_ROOT/spool/remote/new/m2" ]
	assert [ -f "$BH_ROOT/spool/remote/retry/m3" ]
	smtpd_server default listen=127.0.0.1:2525 etrn=no
	run smtpd_inetd < <(printf 'EHLO x\r\nETRN other.example\r\nQUIT\r\n')
	assert_line '502 5.5.1 ETRN not available'
	refute_line '250-ETRN'
}

@test "the protocol log at log-level max shows commands and replies but no password" {
	echo 'log-level max' >> "$BH_ROOT/cdb/settings"
	config_make
	run smtpd_inetd < <(printf 'EHLO x\r\nAUTH PLAIN AGRlbW8Ac2VjcmV0\r\nQUIT\r\n')
	grep -q 'event=protocol .* in "EHLO x"' "$BATS_TEST_TMPDIR/smtpd-inetd.log"
	grep -q 'event=protocol .* out "250 HELP"' "$BATS_TEST_TMPDIR/smtpd-inetd.log"
	grep -q 'in "AUTH PLAIN \*\*\*"' "$BATS_TEST_TMPDIR/smtpd-inetd.log"
	run grep -c AGRlbW8Ac2VjcmV0 "$BATS_TEST_TMPDIR/smtpd-inetd.log"
	assert_output 0
}

@test "SMTPUTF8: UTF-8 addresses need the parameter (553 5.6.7), and the envelope records it" {
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<j\xc3\xb6e@ex\xc3\xa4mple.net>\r\nMAIL FROM:<j\xc0\xafe@example.net> SMTPUTF8\r\nMAIL FROM:<j\xc3\xb6e@ex\xc3\xa4mple.net> SMTPUTF8\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: \xc3\xa9t\xc3\xa9\r\n\r\nx\r\n.\r\nQUIT\r\n')
	assert_line '553 5.6.7 Non-ASCII sender address needs SMTPUTF8'
	assert_line '501 5.1.7 Bad sender address syntax'
	assert_line "$(printf '250 2.1.0 Sender <j\xc3\xb6e@ex\xc3\xa4mple.net> OK')"
	assert_line --regexp '^250 2\.6\.0 '
	id=$(incoming_ids)
	assert_equal "$(incoming_field "$id" smtputf8)" yes
	assert_equal "$(incoming_field "$id" sender)" "$(printf 'j\xc3\xb6e@ex\xc3\xa4mple.net')"
	grep -q 'with UTF8SMTP id' "$BH_ROOT/spool/msg/$id"
}

@test "ETRN for a connector with trigger-accounts needs one of those accounts (459 4.7.1)" {
	printf 'fourth address-space=fourthcoffee.example cost=1 smarthost=[127.0.0.1]:2600 hold=yes trigger-accounts=fourthadmin\n' >> "$BH_ROOT/cdb/connectors"
	smtpd_user fourthadmin fa@example.com pw
	mkdir -p "$BH_ROOT/spool/remote/hold"
	printf 'sender a@example.com\ndest fourth\nconnector fourth\nrcpt x@fourthcoffee.example state=remote\n' > "$BH_ROOT/spool/remote/hold/m1"
	run smtpd_inetd < <(printf 'EHLO x\r\nETRN fourthcoffee.example\r\nQUIT\r\n')
	assert_line '459 4.7.1 fourthcoffee.example: node not allowed: authenticate as a trigger account'
	assert [ -f "$BH_ROOT/spool/remote/hold/m1" ]
	auth=$(printf '\0fa@example.com\0pw' | base64 -w0)
	run smtpd_inetd < <(printf 'EHLO x\r\nAUTH PLAIN %s\r\nETRN #fourth\r\nQUIT\r\n' "$auth")
	assert_line '250 2.0.0 Queuing for node fourth started'
	assert [ -f "$BH_ROOT/spool/remote/new/m1" ]
}

@test "random junk and half-valid sessions never crash it (sanitizers watch)" {
	for seed in $(seq 1 15); do
		python3 - "$seed" > "$BATS_TEST_TMPDIR/junk" <<-'EOF'
		import random, sys
		r = random.Random(int(sys.argv[1]))
		cmds = [b"EHLO x", b"HELO y", b"MAIL FROM:<a@b.example>", b"MAIL FROM:<>",
		        b"RCPT TO:<demo@example.com>", b"RCPT TO:<\"a b\"@example.com>",
		        b"RCPT TO:<@a,@b:c@d.example>", b"DATA", b"BDAT 5", b"BDAT 3 LAST",
		        b"RSET", b"NOOP", b"VRFY x", b"ETRN a.example", b"ETRN #q",
		        b"*", b"STARTTLS", b"HELP", b".",
		        b"MAIL FROM:<a@b> SIZE=99999999999999999999", b"RCPT TO:<x@y> NOTIFY=SUCCESS,,",
		        b"RCPT TO:<x@y> ORCPT=rfc822;a+4", b"MAIL FROM:<a@[IPv6:::1]> ENVID=+41",
		        b"Subject: x", b"", b"RCPT TO:<postmaster>", b"BDAT 0 LAST", b"MAIL FROM:<\xc3\xa9@x> SMTPUTF8"]
		out = b""
		for _ in range(r.randint(1, 60)):
		    c = r.choice(cmds)
		    if r.random() < 0.2:
		        c = bytes(r.getrandbits(8) for _ in range(r.randint(0, 300)))
		    if r.random() < 0.1:
		        c = c * r.randint(2, 50)
		    out += c + r.choice([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""])
		sys.stdout.buffer.write(out)
		EOF
		run smtpd_inetd < "$BATS_TEST_TMPDIR/junk"
		assert_success
		assert_line --index 0 --regexp '^220 '
	done
}

@test "the Received line of a message to several recipients is one well-formed header field" {
	run smtpd_inetd 198.51.100.7 < <(printf "EHLO client.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<demo@example.com>\r\nRCPT TO:<postmaster@example.com>\r\nDATA\r\n${msg}.\r\nQUIT\r\n")
	assert_success
	id=$(incoming_ids)
	run python3 -c '
import email, email.policy, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
print(len(m.get_all("Received")), m["Subject"], m["Message-ID"])
print(m["Received"].split(";")[-1].strip()[:4])
' "$BH_ROOT/spool/msg/$id"
	assert_line --index 0 '1 hello there <m1@example.net>'
	assert_line --index 1 --regexp '^(Mon|Tue|Wed|Thu|Fri|Sat|Sun),$'
}
