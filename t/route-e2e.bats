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

# deliver — bh-route -1 then bh-remote -1.
deliver() {
	bh-route -1 && bh-remote -1
}

# delivered IP ADDR — runs the stages once more and checks the sink on IP.
delivered() {
	deliver >/dev/null 2>&1
	sink_has "$1" "$2"
}

@test "failover: the cheaper smart host is down, mail goes through the next; when it returns, new mail uses it again" {
	port=$(free_port)
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
	# the cheap smart host returns: the waiting message gets through and
	# the link is Ready again
	sink_start 127.0.0.2 "$port"
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
	bh-remote -1
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
