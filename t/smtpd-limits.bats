# t/smtpd-limits.bats — bh-smtpd: size, session, recipient, connection and
# error limits, timeouts, spool write failures, SIGTERM, and load.
load lib/root
load lib/smtpd

setup() { root_new; }

mail_of() {	# mail_of BYTES — a message of about BYTES bytes
	printf 'Subject: big\r\n\r\n'
	{ head -c "$1" /dev/zero | tr '\0' a | fold -w 70; echo; } | sed 's/$/\r/'
}

@test "max-size: SIZE above it is 552 5.3.4 at MAIL, and an undeclared big message at the end" {
	smtpd_server default listen=127.0.0.1:2525 max-size=2K
	{
		printf 'EHLO x\r\nMAIL FROM:<a@ok.example> SIZE=5000\r\n'
		printf 'MAIL FROM:<a@ok.example> SIZE=1000\r\nRCPT TO:<demo@example.com>\r\nDATA\r\n'
		mail_of 4000
		printf '.\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\n'
		mail_of 1000
		printf '.\r\nQUIT\r\n'
	} > "$BATS_TEST_TMPDIR/in"
	run smtpd_inetd < "$BATS_TEST_TMPDIR/in"
	assert_line '250-SIZE 2048'
	assert_equal "$(grep -c '^552 5.3.4 Message size exceeds fixed maximum message size' <<<"$output")" 2
	assert_equal "$(grep -c '^250 2.6.0 ' <<<"$output")" 1
	assert_equal "$(queue_count incoming)" 1
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 1
}

@test "max-size also holds for BDAT: 552 5.3.4 and the transaction ends" {
	smtpd_server default listen=127.0.0.1:2525 max-size=1K
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nBDAT 2000\r\n%s' "$(head -c 2000 /dev/zero | tr '\0' b)"; printf 'BDAT 5 LAST\r\nhelloQUIT\r\n')
	assert_line '552 5.3.4 Message size exceeds fixed maximum message size'
	assert_line '503 5.5.1 Need MAIL command first'
	assert_equal "$(queue_count incoming)" 0
}

@test "max-session-size: the message that passes it gets 552 5.3.4, the next MAIL 421 4.7.0" {
	smtpd_server default listen=127.0.0.1:2525 max-session-size=3K
	{
		printf 'EHLO x\r\n'
		for i in 1 2 3; do
			printf 'MAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\n'
			mail_of 1400
			printf '.\r\n'
		done
		printf 'MAIL FROM:<a@ok.example>\r\nQUIT\r\n'
	} > "$BATS_TEST_TMPDIR/in"
	run smtpd_inetd < "$BATS_TEST_TMPDIR/in"
	assert_equal "$(grep -c '^250 2.6.0 ' <<<"$output")" 2
	assert_line '552 5.3.4 Message size exceeds fixed maximum message size'
	assert_line --regexp '^421 4\.7\.0 .* Too much mail in this session, closing connection$'
	refute_line --regexp '^221 '
}

@test "max-messages: after N messages MAIL gets 421 4.7.0 and the connection closes" {
	smtpd_server default listen=127.0.0.1:2525 max-messages=2
	one='MAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: n\r\n\r\nx\r\n.\r\n'
	run smtpd_inetd < <(printf "EHLO x\r\n${one}${one}${one}QUIT\r\n")
	assert_equal "$(grep -c '^250 2.6.0 ' <<<"$output")" 2
	assert_line --regexp '^421 4\.7\.0 '
	refute_line --regexp '^221 '
	assert_equal "$(queue_count incoming)" 2
}

@test "max-recipients: the extra recipients get 452 4.5.3" {
	smtpd_server default listen=127.0.0.1:2525 max-recipients=2
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nRCPT TO:<postmaster@example.com>\r\nRCPT TO:<root@example.com>\r\nRCPT TO:<root@localhost>\r\nDATA\r\nSubject: r\r\n\r\nx\r\n.\r\nQUIT\r\n')
	assert_equal "$(grep -c '^452 4.5.3 Too many recipients' <<<"$output")" 2
	id=$(incoming_ids)
	assert_equal "$(grep -c '^rcpt ' "$BH_ROOT/spool/incoming/new/$id")" 2
}

@test "too many errors end the session with 421 4.7.0" {
	run smtpd_inetd < <(for i in $(seq 25); do printf 'BOGUS\r\n'; done; printf 'QUIT\r\n')
	assert_equal "$(grep -c '^500 5.5.2 ' <<<"$output")" 20
	assert_line --regexp '^421 4\.7\.0 .* Too many errors, closing connection$'
	refute_line --regexp '^221 '
}

@test "an idle client is dropped after the server's timeout with 421 4.4.2" {
	port=$(free_port)
	smtpd_server default listen=127.0.0.1:$port timeout=1s
	smtpd_start default 127.0.0.1 "$port"
	run smtpd_chat 127.0.0.1 "$port" <<-EOF
	> EHLO x
	=
	EOF
	assert_line --regexp '^421 4\.4\.2 .* timeout'
}

@test "max-connections and max-connections-per-ip answer excess connections 421 4.7.0" {
	port=$(free_port)
	smtpd_server default listen=0.0.0.0:$port max-connections=3 max-connections-per-ip=2
	smtpd_start default 127.0.0.1 "$port"
	run python3 - "$port" <<-'EOF'
	import socket, sys, time
	port = int(sys.argv[1])
	def greet(src):
	    s = socket.socket()
	    s.bind((src, 0))
	    s.connect(("127.0.0.1", port))
	    s.settimeout(10)
	    return s, s.recv(200).decode().strip()
	held = []
	for src in ("127.0.0.4", "127.0.0.4", "127.0.0.4", "127.0.0.5", "127.0.0.6"):
	    s, line = greet(src)
	    held.append(s)
	    print(src, line[:9])
	for s in held:
	    s.close()
	EOF
	assert_line --index 0 --regexp '^127\.0\.0\.4 220 '
	assert_line --index 1 --regexp '^127\.0\.0\.4 220 '
	assert_line --index 2 '127.0.0.4 421 4.7.0'
	assert_line --index 3 --regexp '^127\.0\.0\.5 220 '
	assert_line --index 4 '127.0.0.6 421 4.7.0'
	grep -q 'event=busy peer=127.0.0.4 reason=per-ip' "$BATS_TEST_TMPDIR/smtpd-default.log"
	grep -q 'event=busy peer=127.0.0.6 reason=total' "$BATS_TEST_TMPDIR/smtpd-default.log"
}

@test "a spool write failure answers 452 4.3.1, leaves no partial content and keeps what was accepted" {
	one='MAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: n\r\n\r\nx\r\n.\r\n'
	{
		printf "EHLO x\r\n${one}"
		printf 'MAIL FROM:<a@ok.example>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\n'
		mail_of 300000
		printf ".\r\n${one}QUIT\r\n"
	} > "$BATS_TEST_TMPDIR/in"
	# a file size limit stands in for a full disk
	run bash -c "ulimit -f 100; TCPREMOTEIP=192.0.2.1 bh-smtpd -i < '$BATS_TEST_TMPDIR/in' 2>/dev/null | tr -d '\r'"
	assert_line '452 4.3.1 Insufficient system storage'
	assert_equal "$(grep -c '^250 2.6.0 ' <<<"$output")" 2
	assert_equal "$(queue_count incoming)" 2
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 2
	# and when the envelope cannot be handed over
	rm -rf "$BH_ROOT/spool/incoming/new"
	touch "$BH_ROOT/spool/incoming/new"
	run smtpd_inetd < <(printf "EHLO x\r\n${one}QUIT\r\n")
	assert_line '452 4.3.1 Insufficient system storage'
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 2
}

@test "SIGTERM stops accepting; a transaction in progress finishes, then 421 4.3.2" {
	port=$(free_port)
	smtpd_server default listen=127.0.0.1:$port
	bh-smtpd -s default 2>>"$BATS_TEST_TMPDIR/smtpd.log" &
	pid=$!
	kill_on_teardown $pid
	wait_until 10 smtpd_listening 127.0.0.1 "$port"
	coproc CHAT { smtpd_chat 127.0.0.1 "$port"; }
	printf '%s\n' '> EHLO x' '> MAIL FROM:<a@ok.example>' >&"${CHAT[1]}"
	until [[ $line == "250 2.1.0"* ]]; do read -r -t 10 -u "${CHAT[0]}" line; done
	kill -TERM "$pid"
	wait_until 10 bash -c "! python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", $port), 1)' 2>/dev/null"
	printf '%s\n' '> RCPT TO:<demo@example.com>' '> DATA' \
		'>> Subject: late' '>> ' '>> x' '> .' '=' >&"${CHAT[1]}"
	exec {CHAT[1]}>&-
	run cat <&"${CHAT[0]}"
	assert_line --regexp '^250 2\.6\.0 '
	assert_line --regexp '^421 4\.3\.2 .* Service shutting down, closing connection$'
	wait "$pid"
	assert_equal "$(queue_count incoming)" 1
}

@test "SIGTERM closes idle sessions at once with 421 4.3.2 and the server exits" {
	port=$(free_port)
	smtpd_server default listen=127.0.0.1:$port
	bh-smtpd -s default 2>>"$BATS_TEST_TMPDIR/smtpd.log" &
	pid=$!
	kill_on_teardown $pid
	wait_until 10 smtpd_listening 127.0.0.1 "$port"
	coproc CHAT { smtpd_chat 127.0.0.1 "$port"; }
	echo '> EHLO x' >&"${CHAT[1]}"
	until [[ $line == "250 "* ]]; do read -r -t 10 -u "${CHAT[0]}" line; done
	kill -TERM "$pid"
	echo '=' >&"${CHAT[1]}"
	read -r -t 10 -u "${CHAT[0]}" line
	assert_equal "${line:0:9}" "421 4.3.2"
	exec {CHAT[1]}>&-
	wait_until 10 bash -c "! kill -0 $pid 2>/dev/null"
}

@test "50 concurrent sessions sending 20 messages each: all 1000 queued" {
	port=$(free_port)
	smtpd_server default listen=127.0.0.1:$port max-connections=100 max-connections-per-ip=100
	smtpd_start default 127.0.0.1 "$port"
	run timeout 80 smtp-source -s 50 -m 1000 -d -f a@ok.example -t demo@example.com 127.0.0.1:"$port"
	assert_success
	assert_equal "$(queue_count incoming)" 1000
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 1000
	assert_equal "$(cat "$BH_ROOT"/log/track/* | grep -c 'event=received')" 1000
}

@test "max-errors sets the number of refusals before 421" {
	smtpd_server default listen=127.0.0.1:2525 max-errors=3
	run smtpd_inetd < <(for i in $(seq 5); do printf 'BOGUS\r\n'; done)
	assert_equal "$(grep -c '^500 5.5.2 ' <<<"$output")" 3
	assert_line --regexp '^421 4\.7\.0 '
}

@test "SIGHUP rebinds a changed listen= without dropping the session in progress" {
	port=$(free_port)
	port2=$(free_port)
	smtpd_server default listen=127.0.0.1:$port
	bh-smtpd -s default 2>>"$BATS_TEST_TMPDIR/smtpd.log" &
	pid=$!
	kill_on_teardown $pid
	wait_until 10 smtpd_listening 127.0.0.1 "$port"
	coproc CHAT { smtpd_chat 127.0.0.1 "$port"; }
	read -r -u "${CHAT[0]}" greeting
	smtpd_server default listen=127.0.0.1:$port2,127.0.0.2:$port2
	kill -HUP "$pid"
	wait_until 10 smtpd_listening 127.0.0.2 "$port2"
	smtpd_listening 127.0.0.1 "$port2"
	run smtpd_listening 127.0.0.1 "$port"
	assert_failure
	printf '%s\n' '> EHLO x' '> MAIL FROM:<a@ok.example>' '> RCPT TO:<demo@example.com>' '> DATA' \
		'>> Subject: after reload' '>> ' '>> x' '> .' '> QUIT' >&"${CHAT[1]}"
	exec {CHAT[1]}>&-
	run cat <&"${CHAT[0]}"
	assert_line --regexp '^250 2\.6\.0 '
	assert_equal "$(queue_count incoming)" 1
}

@test "a client silent in the middle of DATA past data-timeout gets 421 4.4.2; nothing is queued" {
	port=$(free_port)
	smtpd_server default listen=127.0.0.1:$port data-timeout=1s
	smtpd_start default 127.0.0.1 "$port"
	run smtpd_chat 127.0.0.1 "$port" <<-EOF
	> EHLO x
	> MAIL FROM:<a@ok.example>
	> RCPT TO:<demo@example.com>
	> DATA
	>> Subject: stalled
	=
	EOF
	assert_line --regexp '^421 4\.4\.2 '
	assert_equal "$(queue_count incoming)" 0
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 0
}

@test "a client trickling a command a byte at a time is cut off at the command timeout" {
	port=$(free_port)
	smtpd_server default listen=127.0.0.1:$port timeout=2s
	smtpd_start default 127.0.0.1 "$port"
	run python3 - "$port" <<-'EOF'
	import socket, sys, time
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=20)
	f = s.makefile("rb")
	f.readline()
	start = time.time()
	try:
	    for c in b"NOOP" * 100:
	        s.sendall(bytes([c]))
	        time.sleep(0.3)
	        s.setblocking(False)
	        try:
	            line = s.recv(200)
	        except BlockingIOError:
	            line = b""
	        s.setblocking(True)
	        if line:
	            print(line.decode().strip())
	            break
	except (BrokenPipeError, ConnectionResetError):
	    pass
	print("seconds", int(time.time() - start))
	EOF
	assert_line --regexp '^421 4\.4\.2 '
	seconds=$(sed -n 's/^seconds //p' <<<"$output")
	[ "$seconds" -le 4 ]
}
