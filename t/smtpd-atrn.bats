# t/smtpd-atrn.bats — bh-smtpd ATRN (RFC 2645, On-Demand Mail Relay): an
# authenticated customer turns the connection round and receives the mail
# held for its connector, delivered by bh-remote --turn.
load lib/root
load lib/smtpd

setup() {
	root_new
	printf 'odmr address-space=customer.example cost=1 smarthost=[127.0.0.1]:9 hold=yes trigger-accounts=cust\n' >> "$BH_ROOT/cdb/connectors"
	smtpd_user cust cust@example.com pw
	smtpd_user other other@example.com pw
	port=$(free_port)
	auth_cust=$(printf '\0cust\0pw' | base64 -w0)
	auth_other=$(printf '\0other\0pw' | base64 -w0)
}

# hold_put NAME RCPT — an envelope held for connector odmr, as bh-route
# leaves it, with its content.
hold_put() {
	mkdir -p "$BH_ROOT/spool/remote/hold"
	printf 'Subject: held %s\r\n\r\nfor the customer\r\n' "$1" > "$BH_ROOT/spool/msg/$1"
	printf 'sender a@example.com\narrived %s\nsize 50\ndest odmr\nconnector odmr\nhops smarthost:[127.0.0.1]:9\nrcpt %s state=remote dest=odmr\n' \
		"$(date +%s)" "$2" > "$BH_ROOT/spool/remote/hold/$1"
}

@test "ATRN is refused without atrn=yes (502), without AUTH (530), for others' domains (450), with no mail (453)" {
	run smtpd_inetd < <(printf 'EHLO x\r\nATRN customer.example\r\nQUIT\r\n')
	assert_line '502 5.5.1 Command not implemented'
	refute_line '250-ATRN'
	smtpd_server default listen=127.0.0.1:$port atrn=yes
	run smtpd_inetd < <(printf 'EHLO x\r\nATRN customer.example\r\nAUTH PLAIN %s\r\nATRN customer.example\r\nATRN\r\nQUIT\r\n' "$auth_other")
	assert_line '250-ATRN'
	assert_line '530 5.7.0 Authentication required'
	assert_line '450 4.7.1 ATRN request refused: customer.example'
	assert_line '450 4.7.1 ATRN request refused'
	run smtpd_inetd < <(printf 'EHLO x\r\nAUTH PLAIN %s\r\nATRN customer.example\r\nQUIT\r\n' "$auth_cust")
	assert_line '453 4.3.0 You have no mail'
}

@test "after ATRN the customer acts as the server and receives its held mail" {
	smtpd_server default listen=127.0.0.1:$port atrn=yes
	smtpd_start default 127.0.0.1 "$port"
	hold_put m1 u1@customer.example
	hold_put m2 u2@customer.example
	run python3 - "$port" "$auth_cust" <<-'EOF'
	import socket, sys
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
	f = s.makefile("rb")
	def reply():
	    while True:
	        line = f.readline().decode().rstrip("\r\n")
	        if len(line) < 4 or line[3] != "-":
	            return line
	reply()
	for cmd in (b"EHLO customer", b"AUTH PLAIN " + sys.argv[2].encode(), b"ATRN customer.example"):
	    s.sendall(cmd + b"\r\n")
	    print(reply())
	# now we are the server
	s.sendall(b"220 customer.example ODMR client ready\r\n")
	n = 0
	while True:
	    line = f.readline()
	    if not line:
	        break
	    cmd = line.decode().strip().upper()
	    if cmd.startswith("EHLO"):
	        s.sendall(b"250-customer.example\r\n250 8BITMIME\r\n")
	    elif cmd.startswith("MAIL") or cmd.startswith("RCPT"):
	        print("got", line.decode().strip())
	        s.sendall(b"250 2.0.0 ok\r\n")
	    elif cmd == "DATA":
	        s.sendall(b"354 go\r\n")
	        while f.readline() != b".\r\n":
	            pass
	        n += 1
	        s.sendall(b"250 2.0.0 stored\r\n")
	    elif cmd == "QUIT":
	        s.sendall(b"221 2.0.0 bye\r\n")
	        break
	    else:
	        s.sendall(b"250 2.0.0 ok\r\n")
	print("messages", n)
	EOF
	assert_line '235 2.7.0 Authentication successful'
	assert_line '250 2.0.0 OK now reversing the connection'
	assert_line --regexp '^got RCPT TO:<u1@customer.example>'
	assert_line --regexp '^got RCPT TO:<u2@customer.example>'
	assert_line 'messages 2'
	wait_until 10 queue_empty remote
	grep -q 'event=atrn peer=127.0.0.1 user=cust dests=odmr relay=0 exit=0' "$BATS_TEST_TMPDIR/smtpd-default.log"
}

@test "ATRN works inside STARTTLS: the turned session stays encrypted" {
	smtpd_cert
	smtpd_server default listen=127.0.0.1:$port atrn=yes cert=$BATS_TEST_TMPDIR/cert.pem key=$BATS_TEST_TMPDIR/key.pem
	smtpd_start default 127.0.0.1 "$port"
	hold_put m1 u1@customer.example
	run python3 - "$port" "$auth_cust" <<-'EOF'
	import socket, ssl, sys
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
	f = s.makefile("rb")
	def reply(f):
	    while True:
	        line = f.readline().decode().rstrip("\r\n")
	        if len(line) < 4 or line[3] != "-":
	            return line
	reply(f)
	s.sendall(b"EHLO customer\r\n"); reply(f)
	s.sendall(b"STARTTLS\r\n"); print(reply(f))
	ctx = ssl.create_default_context()
	ctx.check_hostname = False
	ctx.verify_mode = ssl.CERT_NONE
	t = ctx.wrap_socket(s)
	g = t.makefile("rb")
	for cmd in (b"EHLO customer", b"AUTH PLAIN " + sys.argv[2].encode(), b"ATRN"):
	    t.sendall(cmd + b"\r\n")
	    print(reply(g))
	t.sendall(b"220 customer.example ready\r\n")
	while True:
	    line = g.readline()
	    if not line:
	        break
	    cmd = line.decode().strip().upper()
	    if cmd == "DATA":
	        t.sendall(b"354 go\r\n")
	        body = b""
	        while (l := g.readline()) != b".\r\n":
	            body += l
	        print("body", body.decode().splitlines()[0])
	        t.sendall(b"250 2.0.0 stored\r\n")
	    elif cmd == "QUIT":
	        t.sendall(b"221 2.0.0 bye\r\n")
	        break
	    else:
	        t.sendall(b"250 ok\r\n")
	EOF
	assert_line '220 2.0.0 Ready to start TLS'
	assert_line '250 2.0.0 OK now reversing the connection'
	assert_line 'body Subject: held m1'
	wait_until 10 queue_empty remote
}
