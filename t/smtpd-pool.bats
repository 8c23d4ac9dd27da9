# t/smtpd-pool.bats — bh-smtpd's session processes: one process serves
# connections in turn, keeps nothing of the last one, idle processes do not
# count as connections, and SIGHUP or 100 connections end a process.
load lib/root
load lib/smtpd

setup() {
	root_new
	port=$(free_port)
	smtpd_user relayer ru@example.com s3cret
}

# pool_start ATTR... — bh-smtpd with the default server on $port; the
# listener's pid in $listener.
pool_start() {
	smtpd_server default listen=127.0.0.1:$port "$@"
	bh-smtpd 2>>"$BATS_TEST_TMPDIR/smtpd-default.log" &
	listener=$!
	kill_on_teardown $listener
	wait_until 10 smtpd_listening 127.0.0.1 "$port"
}

# The session processes of the listener, one pid per line.
pool_pids() { pgrep -P "$listener" | sort; }

pool_idle_is() { [ "$(pool_pids | wc -l)" = "$1" ]; }

# send_one FROM — one message over its own connection.
send_one() {
	swaks --server 127.0.0.1:$port --from "$1" --to demo@example.com \
		--h-Subject "from $1" --body x >/dev/null
}

@test "connections one after another are served by one session process" {
	pool_start
	for i in 1 2 3 4 5; do
		run send_one "s$i@example.net"
		assert_success
		wait_until 10 pool_idle_is 1
	done
	first=$(pool_pids)
	run send_one s6@example.net
	assert_success
	assert_equal "$(pool_pids)" "$first"
	assert_equal "$(queue_count incoming)" 6
	assert_equal "$(grep -c 'event=received' "$BATS_TEST_TMPDIR/smtpd-default.log")" 6
}

@test "a reused process keeps nothing of the last connection: transaction, AUTH, HELO" {
	pool_start relay-authenticated=yes
	auth=$(printf '\0relayer\0s3cret' | base64 -w0)
	run smtpd_chat 127.0.0.1 "$port" <<-EOF
	> EHLO first.example
	> AUTH PLAIN $auth
	> MAIL FROM:<ru@example.com>
	> RCPT TO:<b@target.example>
	EOF
	assert_line '235 2.7.0 Authentication successful'
	assert_line '250 2.1.5 Recipient <b@target.example> OK'
	wait_until 10 pool_idle_is 1
	first=$(pool_pids)
	run smtpd_chat 127.0.0.1 "$port" <<-'EOF'
	> RCPT TO:<demo@example.com>
	> EHLO second.example
	> MAIL FROM:<a@example.net>
	> RCPT TO:<b@target.example>
	> RCPT TO:<demo@example.com>
	> DATA
	raw b"Subject: second\r\n\r\nx\r\n.\r\n"
	=
	> QUIT
	EOF
	assert_equal "$(pool_pids)" "$first"
	assert_line '503 5.5.1 Need MAIL command first'
	assert_line '550 5.7.1 <b@target.example>: Unable to relay'
	assert_line --regexp '^250 2\.6\.0 '
	id=$(ls "$BH_ROOT/spool/incoming/new")
	run cat "$BH_ROOT/spool/incoming/new/$id"
	refute_line --partial 'auth '
	refute_line --partial 'first.example'
	assert_line 'helo second.example'
	run grep -c 'first.example\|authenticated' "$BH_ROOT/spool/msg/$id"
	assert_output 0
}

@test "STARTTLS works again in a reused process after a plain session" {
	smtpd_cert
	pool_start cert=$BATS_TEST_TMPDIR/cert.pem key=$BATS_TEST_TMPDIR/key.pem
	for i in 1 2; do
		run swaks --server 127.0.0.1:$port --from a@example.net \
			--to demo@example.com --tls --body x
		assert_success
		assert_output --partial '<-  220 2.0.0 Ready to start TLS'
		assert_output --partial '=== TLS started with cipher'
		run send_one "plain$i@example.net"
		assert_success
	done
	wait_until 10 pool_idle_is 1
	assert_equal "$(queue_count incoming)" 4
}

@test "idle session processes are no connections: max-connections=1 serves one client after another" {
	pool_start max-connections=1 max-connections-per-ip=1
	for i in 1 2 3; do
		run send_one "c$i@example.net"
		assert_success
		wait_until 10 pool_idle_is 1
	done
	assert_equal "$(queue_count incoming)" 3
	run grep -c 'event=busy' "$BATS_TEST_TMPDIR/smtpd-default.log"
	assert_output 0
}

@test "SIGHUP ends the idle session processes; the next connection gets a new one" {
	pool_start
	send_one a@example.net
	wait_until 10 pool_idle_is 1
	first=$(pool_pids)
	kill -HUP "$listener"
	wait_until 10 pool_idle_is 0
	send_one b@example.net
	wait_until 10 pool_idle_is 1
	[ "$(pool_pids)" != "$first" ]
	assert_equal "$(queue_count incoming)" 2
}

@test "a session process serves at most 100 connections, then exits" {
	pool_start	# its probe of the port was the first connection
	wait_until 10 pool_idle_is 1
	first=$(pool_pids)
	python3 - "$port" <<-'EOF'
	import socket, sys
	for i in range(99):
	    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 10)
	    f = s.makefile("rb")
	    assert f.readline().startswith(b"220 ")
	    s.sendall(b"QUIT\r\n")
	    assert f.readline().startswith(b"221 ")
	    assert f.readline() == b""
	    s.close()
	EOF
	wait_until 10 pool_idle_is 0
	send_one a@example.net
	wait_until 10 pool_idle_is 1
	[ "$(pool_pids)" != "$first" ]
	assert_equal "$(queue_count incoming)" 1
}

@test "SIGTERM ends idle session processes and the listener at once" {
	pool_start
	send_one a@example.net
	wait_until 10 pool_idle_is 1
	kill -TERM "$listener"
	wait_until 10 eval '! kill -0 $listener 2>/dev/null'
	run grep -c 'event=stopping server=default sessions=0' "$BATS_TEST_TMPDIR/smtpd-default.log"
	assert_output 1
}

@test "a reused session process sees a rebuilt .cdb at its next connection" {
	pool_start
	chat() {
		smtpd_chat 127.0.0.1 "$port" <<-'EOF'
		> EHLO x
		> MAIL FROM:<a@example.net>
		> RCPT TO:<newbox@example.com>
		> QUIT
		EOF
	}
	run chat
	assert_line '550 5.1.1 <newbox@example.com>: Recipient address rejected: User unknown'
	wait_until 10 pool_idle_is 1
	first=$(pool_pids)
	printf 'mailbox newbox addresses=newbox@example.com\n' >> "$BH_ROOT/cdb/directory"
	config_make
	run chat
	assert_line '250 2.1.5 Recipient <newbox@example.com> OK'
	assert_equal "$(pool_pids)" "$first"
}
