# t/smtpd-tls.bats — bh-smtpd: STARTTLS, AUTH over TLS, tls=required, and
# the STARTTLS command-injection class of bugs.
load lib/root
load lib/smtpd

setup() {
	root_new
	smtpd_cert
	port=$(free_port)
	smtpd_user rfine rf@example.com pw1
}

tls_server() {
	smtpd_server default listen=127.0.0.1:$port cert=$BATS_TEST_TMPDIR/cert.pem \
		key=$BATS_TEST_TMPDIR/key.pem "$@"
	smtpd_start default 127.0.0.1 "$port"
}

@test "STARTTLS is offered with a certificate and swaks delivers over it" {
	tls_server
	run swaks -s 127.0.0.1 -p "$port" -tls -f a@target.example -t demo@example.com
	assert_success
	assert_output --partial '250-STARTTLS'
	assert_output --partial '220 2.0.0 Ready to start TLS'
	assert_output --regexp '250 2\.6\.0 <[^>]+> Queued mail for delivery'
	id=$(incoming_ids)
	grep -q 'with ESMTPS id' "$BH_ROOT/spool/msg/$id"
	grep -Eq '^	\(using TLSv1\.[23] with cipher ' "$BH_ROOT/spool/msg/$id"
	grep -q 'event=tls peer=127.0.0.1' "$BATS_TEST_TMPDIR/smtpd-default.log"
}

@test "AUTH is offered only under TLS (538 5.7.11 before); PLAIN and LOGIN work after STARTTLS" {
	tls_server
	run smtpd_chat 127.0.0.1 "$port" <<-EOF
	> EHLO x
	> AUTH PLAIN $(printf '\0rfine\0pw1' | base64 -w0)
	> QUIT
	EOF
	refute_line --partial '250-AUTH'
	assert_line --partial '538 5.7.11 Encryption required for requested authentication mechanism'
	run swaks -s 127.0.0.1 -p "$port" -tls -a PLAIN -au rf@example.com -ap pw1 -f rf@example.com -t far@target.example
	assert_success
	assert_output --partial '235 2.7.0 Authentication successful'
	assert_output --partial '250 2.1.5 Recipient <far@target.example> OK'
	run swaks -s 127.0.0.1 -p "$port" -tls -a LOGIN -au rfine -ap pw1 -f rf@example.com -t far@target.example
	assert_success
	assert_output --partial '235 2.7.0 Authentication successful'
	for id in $(incoming_ids); do
		grep -q 'with ESMTPSA id' "$BH_ROOT/spool/msg/$id"
	done
	assert_equal "$(queue_count incoming)" 2
}

@test "tls=required refuses MAIL before STARTTLS with 530 5.7.0" {
	tls_server tls=required
	run smtpd_chat 127.0.0.1 "$port" <<-EOF
	> EHLO x
	> MAIL FROM:<a@target.example>
	> QUIT
	EOF
	assert_line '530 5.7.0 Must issue a STARTTLS command first'
	run swaks -s 127.0.0.1 -p "$port" -tls -f a@target.example -t demo@example.com
	assert_success
}

@test "plaintext sent with STARTTLS is discarded, and TLS starts a fresh session" {
	tls_server
	run python3 - "$port" <<-'EOF'
	import socket, ssl, sys
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
	f = s.makefile("rb")
	def reply(f):
	    lines = []
	    while True:
	        line = f.readline().decode().rstrip("\r\n")
	        lines.append(line)
	        if len(line) < 4 or line[3] != "-":
	            return lines
	reply(f)
	s.sendall(b"EHLO x\r\n"); reply(f)
	s.sendall(b"STARTTLS\r\nMAIL FROM:<evil@target.example>\r\n")
	print(reply(f)[-1])
	ctx = ssl.create_default_context()
	ctx.check_hostname = False
	ctx.verify_mode = ssl.CERT_NONE
	t = ctx.wrap_socket(s)
	g = t.makefile("rb")
	t.sendall(b"NOOP\r\n"); print("after:", reply(g)[-1])
	t.sendall(b"MAIL FROM:<a@target.example>\r\n"); print("mail:", reply(g)[-1])
	t.sendall(b"EHLO y\r\n"); print("ehlo:", "\n".join(reply(g)))
	EOF
	assert_line '220 2.0.0 Ready to start TLS'
	assert_line 'after: 250 2.0.0 OK'
	assert_line 'mail: 503 5.5.1 Send HELO or EHLO first'
	refute_line '250-STARTTLS'
	assert_line '250-AUTH PLAIN LOGIN'
}

@test "openssl s_client -starttls smtp talks to the server; STARTTLS twice is 503" {
	tls_server
	run bash -c "printf 'EHLO x\r\nSTARTTLS\r\nQUIT\r\n' | timeout 10 openssl s_client -quiet -starttls smtp -connect 127.0.0.1:$port 2>&1"
	assert_output --partial '503 5.5.1 TLS already active'
	assert_output --partial '221 2.0.0'
}

@test "without a certificate STARTTLS is not offered (502 5.5.1) and AUTH works in plaintext" {
	smtpd_server default listen=127.0.0.1:$port
	smtpd_start default 127.0.0.1 "$port"
	run smtpd_chat 127.0.0.1 "$port" <<-EOF
	> EHLO x
	> STARTTLS
	> QUIT
	EOF
	refute_line '250-STARTTLS'
	assert_line '502 5.5.1 STARTTLS not available'
	assert_line '250-AUTH PLAIN LOGIN'
}

@test "messages sent over STARTTLS + AUTH PLAIN and LOGIN arrive byte for byte in the Maildir" {
	tls_server
	printf 'From: rf@example.com\r\nTo: demo@example.com\r\nSubject: bytes\r\n\r\n8bit: \xc3\xa9t\xc3\xa9\r\n.dot\r\nend\r\n' > "$BATS_TEST_TMPDIR/msg"
	cp "$BATS_TEST_TMPDIR/msg" "$BATS_TEST_TMPDIR/sent"
	run swaks -s 127.0.0.1 -p "$port" -tls -a PLAIN -au rfine -ap pw1 -f rf@example.com -t demo@example.com --data "$BATS_TEST_TMPDIR/msg"
	assert_success
	# swaks ends the data with one more CRLF before the dot: that is the
	# message it sent
	printf '\r\n' >> "$BATS_TEST_TMPDIR/msg"
	id=$(incoming_ids)
	cmp <(content_body "$id") "$BATS_TEST_TMPDIR/msg"
	bh-categorize -1 && bh-route -1 && bh-local -1
	file=$(find "$BH_ROOT/mailroot/demo/Maildir/new" -type f)
	[ -n "$file" ]
	# the delivered file (Maildir: LF line ends) ends with the message
	tr -d '\r' < "$BATS_TEST_TMPDIR/msg" > "$BATS_TEST_TMPDIR/msg.lf"
	tail -c "$(stat -c %s "$BATS_TEST_TMPDIR/msg.lf")" "$file" | cmp - "$BATS_TEST_TMPDIR/msg.lf"
	grep -q 'with ESMTPSA id' "$file"
	# and once more with AUTH LOGIN
	rm -f "$file"
	run swaks -s 127.0.0.1 -p "$port" -tls -a LOGIN -au rf@example.com -ap pw1 -f rf@example.com -t demo@example.com --data "$BATS_TEST_TMPDIR/sent"
	assert_success
	bh-categorize -1 && bh-route -1 && bh-local -1
	file=$(find "$BH_ROOT/mailroot/demo/Maildir/new" -type f)
	tail -c "$(stat -c %s "$BATS_TEST_TMPDIR/msg.lf")" "$file" | cmp - "$BATS_TEST_TMPDIR/msg.lf"
}

@test "plaintext-auth=yes offers AUTH before STARTTLS on a TLS server" {
	tls_server plaintext-auth=yes
	run smtpd_chat 127.0.0.1 "$port" <<-EOF
	> EHLO x
	> AUTH PLAIN $(printf '\0rfine\0pw1' | base64 -w0)
	> QUIT
	EOF
	assert_line '250-STARTTLS'
	assert_line '250-AUTH PLAIN LOGIN'
	assert_line '235 2.7.0 Authentication successful'
}

@test "relaying stays refused after STARTTLS without AUTH" {
	tls_server
	run python3 - "$port" <<-'EOF'
	import smtplib, sys
	c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
	c.starttls()
	c.ehlo("x")
	c.mail("a@target.example")
	for rcpt in ("relaytest@target.example", "relaytest%target.example@example.com",
	             "@example.com:relaytest@target.example", "relaytest@[127.0.0.1]"):
	    print(*c.docmd("RCPT TO:<%s>" % rcpt))
	c.quit()
	EOF
	assert_equal "$(grep -c "^550 b'5.7.1 <.*>: Unable to relay'" <<<"$output")" 4
}
