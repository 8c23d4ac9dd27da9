# t/remote-reuse.bats — bh-remote keeps a worker and its SMTP session for
# more mail to the same destination (connection reuse), against SMTP sinks
# on loopback addresses (t/lib/sink.py, and a sink that ends idle sessions).
load lib/root
load lib/dns

setup() {
	root_new
	SINK_PORT=$(free_port)
	cat >> "$BH_ROOT/cdb/settings" <<-EOF
	remote-port $SINK_PORT
	timeout 5s
	retry 1s,1s,1s,1s
	remote-idle 30s
	EOF
	run config_make
	if [[ $output == *"unknown setting remote-idle"* ]]; then
		skip "bh-config does not know remote-idle yet (lib/confspec.c)"
	fi
	assert_success
}

remote_daemon() {
	bh-remote 2>"$BATS_TEST_TMPDIR/remote.log" 3>&- &
	REMOTE_PID=$!
	kill_on_teardown $!
}

# smart_put RCPT [IP] — one message for the smart host on IP (127.0.0.5).
smart_put() {
	local ip=${2:-127.0.0.5}
	envelope_put remote 'sender s@example.com' "dest smart-$ip" \
		"hops smarthost:[$ip]" "rcpt $1 state=remote" >/dev/null
}

# workers — the daemon's worker processes, one pid a line.
workers() {
	pgrep -P "$REMOTE_PID" || true
}

no_workers() {
	[ -z "$(workers)" ]
}

# quits NAME — how many sessions of sink NAME ended with QUIT.
quits() {
	grep -c '^[0-9]* QUIT' "$BATS_TEST_TMPDIR/$1/commands" || true
}

has_quits() {
	[ "$(quits "$1")" -ge "$2" ]
}

nothing_deferred() {
	[ -z "$(ls "$BH_ROOT/spool/remote/retry")" ] &&
		! grep -q 'event=deferred' "$BH_ROOT"/log/track/* 2>/dev/null
}

@test "twenty messages sent one after another to a smart host go over one connection" {
	sink_start smart 127.0.0.5
	remote_daemon
	local i
	for i in $(seq 20); do
		smart_put "u$i@far.test"
		wait_until 10 sink_has smart "$i"
		# settled, so the worker is idle again (not busy: a second one)
		wait_until 5 queue_empty remote
	done
	assert_equal "$(cat "$BATS_TEST_TMPDIR/smart/sessions")" 1
	assert_equal "$(grep -c '^1 EHLO' "$BATS_TEST_TMPDIR/smart/commands")" 1
	assert_equal "$(grep -c '^1 MAIL' "$BATS_TEST_TMPDIR/smart/commands")" 20
	assert_equal "$(workers | wc -l)" 1
	wait_until 5 queue_empty remote
	nothing_deferred
}

@test "an idle worker ends after remote-idle: its session says QUIT and the process is gone" {
	settings_set remote-idle 3s
	sink_start smart 127.0.0.5
	remote_daemon
	smart_put u@far.test
	wait_until 10 sink_has smart 1
	local delivered=$(date +%s%N) pid
	pid=$(workers)
	[ -n "$pid" ]
	assert_equal "$(quits smart)" 0
	wait_until 15 has_quits smart 1
	# not before remote-idle (less what noticing the delivery took)
	[ $(( $(date +%s%N) - delivered )) -ge 2000000000 ]
	wait_until 5 no_workers
	! kill -0 "$pid" 2>/dev/null
}

@test "a peer that closes the idle session does not defer the next message" {
	python3 - "$SINK_PORT" "$BATS_TEST_TMPDIR/idle" >"$BATS_TEST_TMPDIR/idle.log" 2>&1 3>&- <<-'EOF' &
	# an SMTP server that says 421 and closes a session idle for 0.5 s
	# after a message; counts sessions, messages and such closes
	import os, socket, sys, threading
	port, d = int(sys.argv[1]), sys.argv[2]
	os.makedirs(d, exist_ok=True)
	count = {"sessions": 0, "messages": 0, "closed": 0}
	lock = threading.Lock()
	def bump(k):
	    with lock:
	        count[k] += 1
	        with open(os.path.join(d, k + ".tmp"), "w") as f:
	            f.write("%d\n" % count[k])
	        os.rename(os.path.join(d, k + ".tmp"), os.path.join(d, k))
	def serve(c):
	    f = c.makefile("rb")
	    c.sendall(b"220 idle.test ESMTP\r\n")
	    while True:
	        try:
	            line = f.readline()
	        except socket.timeout:
	            c.sendall(b"421 4.4.2 idle.test: idle too long\r\n")
	            c.close()
	            bump("closed")
	            return
	        verb = line[:4].upper()
	        if not line or verb == b"QUIT":
	            c.sendall(b"221 bye\r\n") if line else None
	            c.close()
	            return
	        if verb == b"DATA":
	            c.sendall(b"354 go\r\n")
	            while f.readline() not in (b".\r\n", b""):
	                pass
	            c.sendall(b"250 2.0.0 queued\r\n")
	            bump("messages")
	            c.settimeout(0.5)
	        else:
	            c.settimeout(None)
	            c.sendall(b"250 idle.test\r\n")
	s = socket.socket()
	s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
	s.bind(("127.0.0.5", port))
	s.listen(8)
	open(os.path.join(d, "ready"), "w").write("1\n")
	while True:
	    c, _ = s.accept()
	    bump("sessions")
	    threading.Thread(target=serve, args=(c,), daemon=True).start()
	EOF
	kill_on_teardown $!
	wait_until 5 test -s "$BATS_TEST_TMPDIR/idle/ready"
	remote_daemon
	smart_put a@far.test
	wait_until 10 grep -qx 1 "$BATS_TEST_TMPDIR/idle/messages"
	wait_until 5 queue_empty remote
	local pid
	pid=$(workers)
	wait_until 10 grep -qx 1 "$BATS_TEST_TMPDIR/idle/closed"
	smart_put b@far.test
	wait_until 10 grep -qx 2 "$BATS_TEST_TMPDIR/idle/messages"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/idle/sessions")" 2
	# the same worker connected again
	assert_equal "$(workers)" "$pid"
	wait_until 5 queue_empty remote
	nothing_deferred
}

@test "a kept session answered 421 or closed at MAIL is opened again, the message not deferred" {
	sink_start smart 127.0.0.5 --reply 'mail@2=421 4.3.2 shutting down' \
		--reply 'mail@4=000'
	remote_daemon
	local i
	for i in 1 2 3; do
		smart_put "u$i@far.test"
		wait_until 10 sink_has smart "$i"
		wait_until 5 queue_empty remote
	done
	assert_equal "$(cat "$BATS_TEST_TMPDIR/smart/sessions")" 3
	wait_until 5 queue_empty remote
	nothing_deferred
}

@test "max-remote 1: an idle worker gives its slot to another destination" {
	settings_set max-remote 1
	sink_start a 127.0.0.5
	sink_start b 127.0.0.6
	remote_daemon
	smart_put x@a.test 127.0.0.5
	wait_until 10 sink_has a 1
	assert_equal "$(workers | wc -l)" 1
	# remote-idle is 30 s: b is served long before
	smart_put y@b.test 127.0.0.6
	wait_until 10 sink_has b 1
	assert_equal "$(quits a)" 1
	assert_equal "$(cat "$BATS_TEST_TMPDIR/b/max-concurrent")" 1
	smart_put z@a.test 127.0.0.5
	wait_until 10 sink_has a 2
	[ "$(workers | wc -l)" -le 1 ]
	wait_until 5 queue_empty remote
}

@test "the link state turns Ready after each batch, while the session is kept" {
	sink_start smart 127.0.0.5
	mkdir -p "$BH_ROOT/spool/state"
	printf 'state Retry\nerror 4.4.1 earlier\n' > "$BH_ROOT/spool/state/smart-127.0.0.5"
	remote_daemon
	smart_put u@far.test
	wait_until 10 sink_has smart 1
	wait_until 5 test ! -e "$BH_ROOT/spool/state/smart-127.0.0.5"
	assert_equal "$(workers | wc -l)" 1
	assert_equal "$(quits smart)" 0
}

@test "a configuration change ends idle workers: new settings reach the next session" {
	sink_start smart 127.0.0.5
	remote_daemon
	smart_put a@far.test
	wait_until 10 sink_has smart 1
	[ -n "$(workers)" ]
	settings_set hostname changed.example.test
	wait_until 10 has_quits smart 1
	wait_until 5 no_workers
	smart_put b@far.test
	wait_until 10 sink_has smart 2
	grep -qx '2 EHLO changed.example.test' "$BATS_TEST_TMPDIR/smart/commands"
}

@test "SIGTERM ends idle workers with the daemon" {
	sink_start smart 127.0.0.5
	remote_daemon
	smart_put a@far.test
	wait_until 10 sink_has smart 1
	local pid
	pid=$(workers)
	[ -n "$pid" ]
	kill -TERM "$REMOTE_PID"
	wait_until 5 sh -c "! kill -0 $REMOTE_PID 2>/dev/null"
	wait "$REMOTE_PID"
	! kill -0 "$pid" 2>/dev/null
	assert_equal "$(queue_count remote)" 0
}

@test "with -1 no worker waits for more: the run ends at once" {
	sink_start smart 127.0.0.5
	smart_put a@far.test
	smart_put b@far.test
	local start=$(date +%s)
	run bh-remote -1
	assert_success
	[ $(( $(date +%s) - start )) -lt 10 ]
	assert_equal "$(sink_count smart)" 2
	assert_equal "$(quits smart)" "$(cat "$BATS_TEST_TMPDIR/smart/sessions")"
}
