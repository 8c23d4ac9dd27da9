# t/smtpd-delivery.bats — bh-smtpd end to end: messages sent by real clients
# (swaks plain and pipelined, a BDAT client) arrive byte for byte in the
# Maildir after bh-categorize, bh-route and bh-local.
load lib/root
load lib/smtpd

setup() {
	root_new
	port=$(free_port)
	smtpd_server default listen=127.0.0.1:$port
	smtpd_start default 127.0.0.1 "$port"
	printf 'From: a@target.example\r\nTo: demo@example.com\r\nSubject: intact\r\n\r\nline one\r\n.starts with a dot\r\n\xe2\x82\xac 8-bit\r\n\ttab\r\n' > "$BATS_TEST_TMPDIR/msg"
}

# deliver_and_compare FILE [binary] — runs the local pipeline once and
# checks that the one Maildir message ends with FILE (CRLF become LF in the
# Maildir, except for BINARYMIME content, which is kept as it is).
deliver_and_compare() {
	bh-categorize -1 && bh-route -1 && bh-local -1
	local file want=$1.want
	file=$(find "$BH_ROOT/mailroot/demo/Maildir/new" -type f)
	[ "$(wc -l <<<"$file")" -eq 1 ] && [ -n "$file" ]
	if [ "$2" = binary ]; then cp "$1" "$want"; else tr -d '\r' < "$1" > "$want"; fi
	tail -c "$(stat -c %s "$want")" "$file" | cmp - "$want"
	grep -q '^Received: from ' "$file"
}

@test "swaks: a plain message arrives intact" {
	run swaks -s 127.0.0.1 -p "$port" -f a@target.example -t demo@example.com --data "$BATS_TEST_TMPDIR/msg"
	assert_success
	printf '\r\n' >> "$BATS_TEST_TMPDIR/msg"	# swaks's own CRLF before the dot
	deliver_and_compare "$BATS_TEST_TMPDIR/msg"
}

@test "swaks --pipeline: a pipelined session delivers intact" {
	run swaks --pipeline -s 127.0.0.1 -p "$port" -f a@target.example -t demo@example.com --data "$BATS_TEST_TMPDIR/msg"
	assert_success
	assert_output --partial '250-PIPELINING'
	assert_output --regexp '250 2\.6\.0 <[^>]+> Queued mail for delivery'
	printf '\r\n' >> "$BATS_TEST_TMPDIR/msg"
	deliver_and_compare "$BATS_TEST_TMPDIR/msg"
}

@test "BDAT with BODY=BINARYMIME from a socket client delivers intact" {
	run python3 - "$port" "$BATS_TEST_TMPDIR/msg" <<-'EOF'
	import socket, sys
	body = open(sys.argv[2], "rb").read()
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
	f = s.makefile("rb")
	def reply():
	    while True:
	        line = f.readline().decode().rstrip("\r\n")
	        if len(line) < 4 or line[3] != "-":
	            return line
	reply()
	s.sendall(b"EHLO x\r\n"); reply()
	# pipelined: MAIL, RCPT and both chunks in one write
	s.sendall(b"MAIL FROM:<a@target.example> BODY=BINARYMIME\r\nRCPT TO:<demo@example.com>\r\n"
	          + b"BDAT 20\r\n" + body[:20] + b"BDAT %d LAST\r\n" % (len(body) - 20) + body[20:])
	for _ in range(4):
	    print(reply())
	s.sendall(b"QUIT\r\n"); print(reply())
	EOF
	assert_line '250 2.0.0 20 octets received'
	assert_line --regexp '^250 2\.6\.0 '
	deliver_and_compare "$BATS_TEST_TMPDIR/msg" binary
}

@test "python smtplib sends 8BITMIME with DSN parameters; the message arrives intact" {
	run python3 - "$port" "$BATS_TEST_TMPDIR/msg" <<-'EOF'
	import smtplib, sys
	body = open(sys.argv[2], "rb").read()
	with smtplib.SMTP("127.0.0.1", int(sys.argv[1])) as c:
	    c.ehlo("client.example")
	    print(c.sendmail("a@target.example", ["demo@example.com"], body,
	          mail_options=["BODY=8BITMIME", "RET=HDRS", "ENVID=e1"],
	          rcpt_options=["NOTIFY=FAILURE,DELAY"]))
	EOF
	assert_success
	id=$(incoming_ids)
	grep -qx 'rcpt demo@example.com state=new notify=FAILURE,DELAY' "$BH_ROOT/spool/incoming/new/$id"
	deliver_and_compare "$BATS_TEST_TMPDIR/msg"
}
