# t/route-e2e.bats — routing decisions proven end to end: bh-route chooses,
# bh-remote delivers to real receivers (Postfix's smtp-sink on loopback
# addresses), bh-smtpd answers ETRN.
load lib/root
load lib/route

setup() {
	root_new
	setting retry 1s,1s,1s,1s
}

teardown() {
	root_teardown
	sink_cleanup
}

# deliver — bh-route -1 then bh-remote -1 (a hang fails, not blocks, the run).
deliver() {
	bh-route -1 && timeout 30 bh-remote -1
}

# delivered IP ADDR — runs the stages once more and checks the sink on IP.
delivered() {
	deliver >/dev/null 2>&1
	sink_has "$1" "$2"
}

@test "failover: the cheaper smart host is down, mail goes through the next; when it returns, new mail uses it again" {
	port=$(free_port)
	setting retry 10m,10m,10m,10m
	sink_start 127.0.0.3
	connectors \
	    "cheap address-space=sink.test cost=1 smarthost=[127.0.0.2]:$port" \
	    "dear  address-space=sink.test cost=2 smarthost=[127.0.0.3]:$SINK_PORT"
	route_msg a@sink.test >/dev/null
	deliver
	grep -qx 'state Retry' "$BH_ROOT/spool/state/cheap"
	assert_equal "$(sink_count 127.0.0.3)" 0
	# the next message avoids the connector in Retry
	route_msg b@sink.test >/dev/null
	deliver
	sink_has 127.0.0.3 b@sink.test
	# the cheap smart host returns: the waiting message gets through (the
	# operator says retry now) and the link is Ready again
	sink_start 127.0.0.2 "$port"
	bh-queue retry cheap
	wait_until 10 delivered 127.0.0.2 a@sink.test
	[ ! -e "$BH_ROOT/spool/state/cheap" ] || grep -qx 'state Ready' "$BH_ROOT/spool/state/cheap"
	route_msg c@sink.test >/dev/null
	deliver
	sink_has 127.0.0.2 c@sink.test
	assert_equal "$(sink_count 127.0.0.3)" 1
}

@test "delivery restrictions choose the receiving smart host" {
	sink_start 127.0.0.2
	vip=$SINK_PORT
	sink_start 127.0.0.3
	connectors \
	    "vip  address-space=* cost=1 smarthost=[127.0.0.2]:$vip accept-senders=boss@example.com" \
	    "rest address-space=* cost=5 smarthost=[127.0.0.3]:$SINK_PORT max-size=2K"
	route_msg -f boss@example.com a@x.test >/dev/null
	route_msg -f clerk@example.com b@x.test >/dev/null
	route_msg -f clerk@example.com -z 5000 c@x.test >/dev/null
	deliver
	sink_has 127.0.0.2 a@x.test
	sink_has 127.0.0.3 b@x.test
	assert_equal "$(sink_count 127.0.0.2)" 1
	assert_equal "$(sink_count 127.0.0.3)" 1
	run ndr_of c@x.test
	assert_output --partial 'code=5.2.3'
}

@test "scheduled mail goes out once its connector's window opens" {
	sink_start 127.0.0.2
	later=$(date -d '+2 hours' +%H:%M)-$(date -d '+3 hours' +%H:%M)
	connectors "night address-space=* cost=1 smarthost=[127.0.0.2]:$SINK_PORT schedule=\"$later\""
	route_msg a@x.test >/dev/null
	deliver
	assert_equal "$(sink_count 127.0.0.2)" 0
	envelope_of scheduled a@x.test
	# the window is moved to now: the next run releases and delivers it
	connectors "night address-space=* cost=1 smarthost=[127.0.0.2]:$SINK_PORT schedule=\"$(date -d '-1 hour' +%H:%M)-$(date -d '+1 hour' +%H:%M)\""
	deliver
	sink_has 127.0.0.2 a@x.test
	assert_equal "$(queue_count remote)" 0
}

@test "oversize mail waits for its own window while small mail is delivered" {
	sink_start 127.0.0.2
	connectors "out address-space=* cost=1 smarthost=[127.0.0.2]:$SINK_PORT oversize=2K oversize-schedule=never"
	route_msg -z 500 small@x.test >/dev/null
	route_msg -z 5000 big@x.test >/dev/null
	deliver
	sink_has 127.0.0.2 small@x.test
	assert_equal "$(sink_count 127.0.0.2)" 1
	envelope_of scheduled big@x.test
	connectors "out address-space=* cost=1 smarthost=[127.0.0.2]:$SINK_PORT oversize=2K oversize-schedule=always"
	deliver
	sink_has 127.0.0.2 big@x.test
}

@test "hold=yes keeps mail until ETRN, then it goes to the domain's own host" {
	sink_start 127.0.0.2
	connectors "branch address-space=branch.test cost=1 smarthost=[127.0.0.2]:$SINK_PORT hold=yes"
	route_msg a@branch.test >/dev/null
	deliver
	envelope_of hold a@branch.test
	assert_equal "$(sink_count 127.0.0.2)" 0
	run bash -c "printf 'EHLO client.test\r\nETRN branch.test\r\nQUIT\r\n' | bh-smtpd -i"
	assert_output --partial '250 2.0.0 Queuing for node branch.test started'
	timeout 30 bh-remote -1
	sink_has 127.0.0.2 a@branch.test
	assert_equal "$(queue_count remote)" 0
}

@test "source= makes outgoing connections leave from the named virtual server's address" {
	sink_start 127.0.0.2
	printf '%s\n' "default listen=127.0.0.1:$(free_port)" \
	    "gw listen=127.0.0.9:$(free_port)" > "$BH_ROOT/cdb/servers"
	connectors "out address-space=* cost=1 smarthost=[127.0.0.2]:$SINK_PORT source=gw"
	route_msg a@x.test >/dev/null
	deliver
	sink_has 127.0.0.2 a@x.test
	grep -qx 'X-Client-Addr: 127.0.0.9' "$SINK_DIR/127.0.0.2"/*
}

@test "the book's two connectors end to end: *.mil only over TLS to its smart host, the rest by DNS" {
	# the Internet: dnsmasq answers the MX of example.test, smtp-sink is that MX
	sink_start 127.0.0.5
	dns=$(free_port)
	dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll \
	    --port="$dns" --listen-address=127.0.0.1 --bind-interfaces --pid-file \
	    --mx-host=example.test,mx.example.test,10 \
	    --host-record=mx.example.test,127.0.0.5 --local=/test/ 2>/dev/null &
	kill_on_teardown $!
	setting dns "127.0.0.1:$dns"
	setting remote-port "$SINK_PORT"
	# the .mil smart host: another bridgehead root with STARTTLS
	mil="$BATS_TEST_TMPDIR/mil"
	bh-init "$mil"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=gw.mil.test \
	    -keyout "$mil/key.pem" -out "$mil/cert.pem" 2>/dev/null
	tls=$(free_port)
	printf 'default listen=127.0.0.4:%s cert=%s key=%s relay-from=127.0.0.0/8\n' \
	    "$tls" "$mil/cert.pem" "$mil/key.pem" > "$mil/cdb/servers"
	make -s -C "$mil/cdb" >/dev/null
	BH_ROOT="$mil" bh-smtpd 2>"$BATS_TEST_TMPDIR/mil.log" &
	kill_on_teardown $!
	wait_until 5 bash -c "exec 3<>/dev/tcp/127.0.0.4/$tls" 2>/dev/null
	connectors \
	    "mil      address-space=*.mil cost=1 smarthost=[127.0.0.4]:$tls tls=required" \
	    'internet address-space=* cost=1 route=dns'
	route_msg u@navy.mil w@example.test >/dev/null
	deliver
	sink_has 127.0.0.5 w@example.test
	run sink_has 127.0.0.5 u@navy.mil
	assert_failure
	grep -q '^rcpt u@navy.mil ' "$mil"/spool/incoming/new/*
	grep -q 'with ESMTPS' "$mil"/spool/msg/*
	assert_equal "$(queue_count remote)" 0
}

@test "mail for a tls=required connector never goes in clear to a smart host without STARTTLS" {
	sink_start 127.0.0.2
	connectors \
	    "mil address-space=*.mil cost=1 smarthost=[127.0.0.2]:$SINK_PORT tls=required" \
	    'internet address-space=* cost=1 route=dns'
	route_msg u@navy.mil >/dev/null
	deliver || true
	assert_equal "$(sink_count 127.0.0.2)" 0
	# it waits for the mil connector; nothing moved it to the DNS connector
	f=$(find "$BH_ROOT/spool/remote" -path '*/tmp' -prune -o -type f -print)
	assert_equal "$(field "$f" connector)" mil
}
