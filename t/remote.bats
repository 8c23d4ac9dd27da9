# t/remote.bats — bh-remote and bh-mx against dnsmasq and SMTP sinks on
# loopback addresses (t/lib/sink.py).
load lib/root
load lib/dns

setup() {
	root_new
	SINK_PORT=$(free_port)
	sed -i '/^retry\|^delay-notify\|^expire/d' "$BH_ROOT/cdb/settings"
	cat >> "$BH_ROOT/cdb/settings" <<-EOF
	remote-port $SINK_PORT
	timeout 5s
	retry 1s,1s,1s,1s
	delay-notify 1h
	expire 1d
	EOF
	dns_start --mx-host=a.test,mx1.a.test,10 --mx-host=a.test,mx2.a.test,20 \
		--host-record=mx1.a.test,127.0.0.2 --host-record=mx2.a.test,127.0.0.3 \
		--mx-host=eq.test,e1.eq.test,10 --mx-host=eq.test,e2.eq.test,10 \
		--host-record=e1.eq.test,127.0.0.2 --host-record=e2.eq.test,127.0.0.3 \
		--host-record=implicit.test,127.0.0.4 \
		--mx-host=nullmx.test,.,0 \
		--host-record=relay.example.test,127.0.0.6 \
		--mx-host=b.test,mx1.a.test,10
}

remote_daemon() {
	bh-remote 2>"$BATS_TEST_TMPDIR/remote.log" 3>&- &
	kill_on_teardown $!
}

@test "bh-mx lists MX records in preference order with their addresses" {
	run bh-mx a.test
	assert_success
	assert_output "mx 10 mx1.a.test [127.0.0.2]:$SINK_PORT
mx 20 mx2.a.test [127.0.0.3]:$SINK_PORT"
	run bh-mx implicit.test
	assert_success
	assert_output "mx 0 implicit.test [127.0.0.4]:$SINK_PORT"
	run bh-mx --hops 'smarthost:relay.example.test:2526,[127.0.0.7]'
	assert_success
	assert_output "smarthost relay.example.test [127.0.0.6]:2526
smarthost [127.0.0.7] [127.0.0.7]:$SINK_PORT"
}

@test "bh-mx reports null MX, NXDOMAIN, SERVFAIL and bad smart hosts with their codes" {
	run bh-mx nullmx.test
	assert_failure 100
	assert_output "error 5.1.10 domain nullmx.test accepts no mail (null MX)"
	run bh-mx nowhere.test
	assert_failure 100
	assert_output "error 5.1.2 domain nowhere.test does not exist"
	run bh-mx servfail.test
	assert_failure 111
	assert_output "error 4.4.3 temporary DNS failure looking up MX of servfail.test"
	run bh-mx --hops smarthost:nohost.test
	assert_failure 100
	assert_output "error 5.4.0 smart host nohost.test does not resolve"
}

@test "equal MX preferences are tried in random order" {
	local firsts
	firsts=$(for i in $(seq 20); do bh-mx eq.test | head -1 | cut -d' ' -f3; done | sort -u | tr '\n' ' ')
	assert_equal "$firsts" "e1.eq.test e2.eq.test "
}

@test "mail goes to the preferred MX, and to the next one when it is down" {
	sink_start mx2 127.0.0.3
	remote_put a.test mx:a.test 'rcpt x@a.test state=remote'
	run bh-remote -1
	assert_success
	assert_equal "$(sink_count mx2)" 1
	assert_equal "$(queue_count remote)" 0
	sink_start mx1 127.0.0.2
	remote_put a.test mx:a.test 'rcpt y@a.test state=remote'
	bh-remote -1
	assert_equal "$(sink_count mx1)" 1
	assert_equal "$(sink_count mx2)" 1
	grep -q 'event=delivered .*rcpt=y@a.test' "$BH_ROOT"/log/track/*
}

@test "a domain without MX is delivered to its own address (implicit MX)" {
	sink_start imp 127.0.0.4
	remote_put implicit.test mx:implicit.test 'rcpt x@implicit.test state=remote'
	bh-remote -1
	assert_equal "$(sink_count imp)" 1
	grep -qx 'rcpt <x@implicit.test>' "$BATS_TEST_TMPDIR"/imp/1.env
}

@test "null MX fails with 5.1.10 and NXDOMAIN with 5.1.2, SERVFAIL waits with 4.4.3" {
	remote_put nullmx.test mx:nullmx.test 'rcpt x@nullmx.test state=remote'
	remote_put nowhere.test mx:nowhere.test 'rcpt x@nowhere.test state=remote'
	remote_put servfail.test mx:servfail.test 'rcpt x@servfail.test state=remote'
	bh-remote -1
	assert_equal "$(records failure | wc -l)" 2
	grep -q 'rcpt x@nullmx.test state=failed code=5.1.10 reason="domain nullmx.test accepts no mail (null MX)"' $(records failure)
	grep -q 'rcpt x@nowhere.test state=failed code=5.1.2 ' $(records failure)
	assert_equal "$(ls "$BH_ROOT"/spool/remote/retry | wc -l)" 1
	grep -q 'rcpt x@servfail.test state=deferred code=4.4.3 ' "$BH_ROOT"/spool/remote/retry/*
	grep -qx 'tries 1' "$BH_ROOT"/spool/remote/retry/*
	grep -qx 'state Retry' "$BH_ROOT/spool/state/servfail.test"
}

@test "a recipient answered 4xx is delivered on the retry" {
	sink_start mx1 127.0.0.2 --reply 'rcpt:x@a.test@1=451 4.3.0 try again later'
	remote_put a.test mx:a.test 'rcpt x@a.test state=remote'
	remote_daemon
	wait_until 10 sink_has mx1 1
	wait_until 5 queue_empty remote
	grep -q 'event=deferred .*rcpt=x@a.test.*451 4.3.0 try again later' "$BH_ROOT"/log/track/*
	grep -q 'event=delivered .*rcpt=x@a.test.*250 2.0.0 queued' "$BH_ROOT"/log/track/*
	grep -q '^1 RCPT TO:<x@a.test>' "$BATS_TEST_TMPDIR/mx1/commands"
	assert_equal "$(grep -c 'RCPT TO:<x@a.test>' "$BATS_TEST_TMPDIR/mx1/commands")" 2
}

@test "5xx for one of three recipients: one failure record naming it, two delivered" {
	sink_start mx1 127.0.0.2 --reply 'rcpt:b@a.test=550 5.1.1 no such user'
	remote_put a.test mx:a.test 'rcpt a@a.test state=remote' \
		'rcpt b@a.test state=remote' 'rcpt c@a.test state=remote'
	bh-remote -1
	assert_equal "$(queue_count remote)" 0
	run cat "$BATS_TEST_TMPDIR/mx1/1.env"
	assert_line 'rcpt <a@a.test>'
	assert_line 'rcpt <c@a.test>'
	refute_line 'rcpt <b@a.test>'
	assert_equal "$(records failure | wc -l)" 1
	run grep '^rcpt ' $(records failure)
	assert_output "rcpt b@a.test state=failed code=5.1.1 reason=\"550 5.1.1 no such user\" remote-mta=mx1.a.test last-attempt=$(grep -o 'last-attempt=[0-9]*' $(records failure) | cut -d= -f2)"
}

@test "connection refused: a delay record, then expiry with 4.4.7" {
	settings_set delay-notify 1s
	settings_set expire 3s
	remote_put a.test 'smarthost:[127.0.0.9]' 'rcpt x@a.test state=remote'
	remote_daemon
	wait_until 15 has_records failure
	local delay failure
	delay=$(records delay)
	failure=$(records failure)
	assert_equal "$(echo "$delay" | wc -l)" 1
	grep -q 'rcpt x@a.test state=deferred code=4.4.1 reason="4.4.1 connect to \[127.0.0.9\]' "$delay"
	grep -q 'rcpt x@a.test state=failed code=4.4.7 reason="the message expired before it could be delivered; last error: 4.4.1 connect' "$failure"
	# names carry their time: the delay notice came first
	[ "${delay##*.D}" -lt "${failure##*.F}" ]
	wait_until 5 queue_empty remote
}

@test "tls=required to a receiver without STARTTLS sends nothing in clear and finally fails" {
	settings_set expire 3s
	sink_start plain 127.0.0.5
	printf 'secure address-space=*.sec.test cost=1 smarthost=[127.0.0.5] tls=required\n' \
		>> "$BH_ROOT/cdb/connectors"
	config_make
	envelope_put remote 'sender s@example.com' 'dest secure' 'connector secure' \
		'hops smarthost:[127.0.0.5]' 'rcpt x@y.sec.test state=remote'
	bh-remote -1
	grep -q 'rcpt x@y.sec.test state=deferred code=4.7.10 ' "$BH_ROOT"/spool/remote/retry/*
	grep -qx 'state Retry' "$BH_ROOT/spool/state/secure"
	remote_daemon
	wait_until 15 has_records failure
	grep -q 'code=4.4.7 .*TLS is required' $(records failure)
	run grep -E ' (MAIL|RCPT|DATA|AUTH)' "$BATS_TEST_TMPDIR/plain/commands"
	assert_failure
}

@test "STARTTLS is used whenever offered, and AUTH to a smart host that asks for it" {
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx.a.test \
		-keyout "$BATS_TEST_TMPDIR/key.pem" -out "$BATS_TEST_TMPDIR/cert.pem" 2>/dev/null
	sink_start tls 127.0.0.5 --tls "$BATS_TEST_TMPDIR/cert.pem,$BATS_TEST_TMPDIR/key.pem" \
		--auth 'relay:s3cret'
	printf 'up address-space=* cost=1 smarthost=[127.0.0.5] auth=relay:s3cret\n' \
		>> "$BH_ROOT/cdb/connectors"
	config_make
	envelope_put remote 'sender s@example.com' 'dest up' 'connector up' \
		'hops smarthost:[127.0.0.5]' 'rcpt x@far.test state=remote'
	bh-remote -1
	assert_equal "$(sink_count tls)" 1
	run cat "$BATS_TEST_TMPDIR/tls/1.env"
	assert_line 'tls yes'
	assert_line 'auth relay'
	# before TLS: EHLO and STARTTLS only
	run sed -n '1,/STARTTLS/p' "$BATS_TEST_TMPDIR/tls/commands"
	assert_output "1 EHLO $(hostname)
1 STARTTLS"
}

@test "DSN parameters are passed on; without DSN, NOTIFY=SUCCESS gives a relayed record" {
	sink_start dsn 127.0.0.2
	sink_start nodsn 127.0.0.4 --ext PIPELINING,8BITMIME
	printf 'Subject: dsn\r\n\r\nhello\r\n' | remote_put a.test mx:a.test 'ret HDRS' 'envid QQ314159' \
		'rcpt x@a.test state=remote notify=SUCCESS,FAILURE orcpt=rfc822;x@a.test'
	remote_put implicit.test mx:implicit.test 'ret HDRS' \
		'rcpt y@implicit.test state=remote notify=SUCCESS'
	bh-remote -1
	run cat "$BATS_TEST_TMPDIR/dsn/1.env"
	assert_line 'mail <s@example.com> SIZE=23 RET=HDRS ENVID=QQ314159'
	assert_line 'rcpt <x@a.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@a.test'
	run cat "$BATS_TEST_TMPDIR/nodsn/1.env"
	assert_line 'mail <s@example.com>'
	assert_line 'rcpt <y@implicit.test>'
	assert_equal "$(records relayed | wc -l)" 1
	grep -q '^rcpt y@implicit.test state=relayed .*code=2.0.0 reason="250 2.0.0 queued"' $(records relayed)
}

@test "8-bit mail to a server without 8BITMIME fails 5.6.3; too big for SIZE fails 5.3.4" {
	sink_start old 127.0.0.2 --ext PIPELINING,SIZE --size 10
	remote_put a.test mx:a.test 'body 8BITMIME' 'rcpt x@a.test state=remote'
	bh-remote -1
	grep -q 'rcpt x@a.test state=failed code=5.6.3 ' $(records failure)
	rm "$BH_ROOT"/spool/ndr/new/*
	printf 'Subject: big\r\n\r\nhello\r\n' | remote_put a.test mx:a.test 'rcpt y@a.test state=remote'
	bh-remote -1
	grep -q 'rcpt y@a.test state=failed code=5.3.4 reason="552 5.3.4 message size 23 exceeds the limit 10' $(records failure)
	assert_equal "$(sink_count old)" 0
}

@test "BINARYMIME goes with BDAT, exactly as stored" {
	sink_start mx1 127.0.0.2
	printf 'Subject: bin\r\n\r\n\x01\x02 bare\nlf\r\n.\r\n' |
		remote_put a.test mx:a.test 'body BINARYMIME' 'rcpt x@a.test state=remote' >/dev/null
	bh-remote -1
	assert_equal "$(sink_count mx1)" 1
	grep -q '^1 BDAT 31 LAST' "$BATS_TEST_TMPDIR/mx1/commands"
	cmp "$BATS_TEST_TMPDIR/mx1/1.eml" <(printf 'Subject: bin\r\n\r\n\x01\x02 bare\nlf\r\n.\r\n')
}

@test "a frozen destination keeps its mail" {
	sink_start mx1 127.0.0.2
	mkdir -p "$BH_ROOT/spool/state"
	printf 'state Frozen\n' > "$BH_ROOT/spool/state/a.test"
	remote_put a.test mx:a.test 'rcpt x@a.test state=remote'
	bh-remote -1
	assert_equal "$(sink_count mx1)" 0
	assert_equal "$(queue_count remote)" 1
	grep -qx 'state Frozen' "$BH_ROOT/spool/state/a.test"
	grep -q 'rcpt x@a.test state=remote' "$BH_ROOT"/spool/remote/retry/*
	! grep -q '^tries' "$BH_ROOT"/spool/remote/retry/*
}

@test "mail that expires while its destination is frozen fails with 4.3.2" {
	settings_set expire 1h
	mkdir -p "$BH_ROOT/spool/state"
	printf 'state Frozen\n' > "$BH_ROOT/spool/state/a.test"
	remote_put a.test mx:a.test "arrived $(( $(date +%s) - 7200 ))" \
		'rcpt x@a.test state=remote'
	bh-remote -1
	assert_equal "$(queue_count remote)" 0
	grep -q 'rcpt x@a.test state=failed code=4.3.2 reason="the destination was frozen until the message expired"' $(records failure)
}

@test "2000 messages to 200 domains within the concurrency limits, nothing lost" {
	settings_set max-remote 12
	settings_set max-remote-per-domain 2
	local mx=() i
	for i in $(seq 0 199); do
		mx+=("--mx-host=d$i.load.test,mx.load.test,10")
	done
	dns_start "${mx[@]}" --host-record=mx.load.test,127.0.0.8
	sink_start load 127.0.0.8 --count-only
	python3 - "$BH_ROOT" <<-'EOF'
	import os, sys
	root = sys.argv[1]
	for i in range(2000):
	    d = "d%d.load.test" % (i % 200)
	    name = "1700000000%06d-1-%d" % (i, i)
	    with open(os.path.join(root, "spool/msg", name), "w") as f:
	        f.write("Subject: load %d\r\n\r\nbody\r\n" % i)
	    tmp = os.path.join(root, "spool/remote/tmp", name)
	    with open(tmp, "w") as f:
	        f.write("sender s@example.com\ndest %s\nhops mx:%s\nrcpt u%d@%s state=remote\n"
	                % (d, d, i, d))
	    os.rename(tmp, os.path.join(root, "spool/remote/new", name))
	EOF
	run bh-remote -1
	assert_success
	assert_equal "$(sink_count load)" 2000
	assert_equal "$(queue_count remote)" 0
	[ "$(cat "$BATS_TEST_TMPDIR/load/max-concurrent")" -le 12 ]
	[ "$(sort -k2 -n "$BATS_TEST_TMPDIR/load/max-per-domain" | tail -1 | cut -d' ' -f2)" -le 2 ]
	assert_equal "$(wc -l < "$BATS_TEST_TMPDIR/load/max-per-domain")" 200
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 0
}

@test "a connector's source server, helo=yes, rate and etrn-request" {
	local out_port
	out_port=$(free_port)
	sink_start gw 127.0.0.5
	printf 'out listen=127.0.0.7:%s hostname=gw.example.test\n' "$out_port" \
		>> "$BH_ROOT/cdb/servers"
	printf 'gw address-space=*.gw.test cost=1 smarthost=[127.0.0.5] helo=yes rate=60/min\n' \
		>> "$BH_ROOT/cdb/connectors"
	printf 'dial address-space=*.dial.test cost=1 smarthost=[127.0.0.5] etrn-request=dial.example.test\n' \
		>> "$BH_ROOT/cdb/connectors"
	config_make
	envelope_put remote 'sender s@example.com' 'dest gw' 'connector gw' 'source out' \
		'hops smarthost:[127.0.0.5]' 'rcpt x@a.gw.test state=remote'
	envelope_put remote 'sender s@example.com' 'dest gw' 'connector gw' 'source out' \
		'hops smarthost:[127.0.0.5]' 'rcpt y@a.gw.test state=remote'
	bh-remote -1
	assert_equal "$(sink_count gw)" 2
	run cat "$BATS_TEST_TMPDIR/gw/1.env" "$BATS_TEST_TMPDIR/gw/2.env"
	assert_line 'helo gw.example.test'
	assert_line 'peer 127.0.0.7'
	grep -qx '1 HELO gw.example.test' "$BATS_TEST_TMPDIR/gw/commands"
	# rate=60/min: one message a second over one connection
	assert_equal "$(cat "$BATS_TEST_TMPDIR/gw/sessions")" 1
	python3 -c 'import sys; t=[float(open(f).read().split("time ")[1].split()[0]) for f in sys.argv[1:]]; sys.exit(0 if abs(t[1]-t[0]) >= 0.9 else 1)' \
		"$BATS_TEST_TMPDIR/gw/1.env" "$BATS_TEST_TMPDIR/gw/2.env"
	envelope_put remote 'sender s@example.com' 'dest dial' 'connector dial' \
		'hops smarthost:[127.0.0.5]' 'rcpt z@a.dial.test state=remote'
	bh-remote -1
	assert_equal "$(sink_count gw)" 3
	grep -qx '2 ETRN dial.example.test' "$BATS_TEST_TMPDIR/gw/commands"
}

@test "SIGTERM abandons a slow delivery and keeps its envelope" {
	sink_start slow 127.0.0.2 --delay 30
	remote_put a.test mx:a.test 'rcpt x@a.test state=remote'
	bh-remote 2>"$BATS_TEST_TMPDIR/remote.log" 3>&- &
	local pid=$!
	kill_on_teardown $pid
	wait_until 10 grep -q '^1 MAIL' "$BATS_TEST_TMPDIR/slow/commands"
	kill -TERM $pid
	wait_until 5 sh -c "! kill -0 $pid 2>/dev/null"
	wait $pid
	assert_equal "$(ls "$BH_ROOT/spool/remote/new" | wc -l)" 1
	grep -qx 'rcpt x@a.test state=remote' "$BH_ROOT"/spool/remote/new/*
	assert_equal "$(sink_count slow)" 0
}

@test "recipients over the server's limit (452) go in a second transaction at once" {
	sink_start mx1 127.0.0.2 --reply 'rcpt:b@a.test@1=452 4.5.3 too many recipients'
	remote_put a.test mx:a.test 'rcpt a@a.test state=remote' \
		'rcpt b@a.test state=remote' 'rcpt c@a.test state=remote'
	bh-remote -1
	assert_equal "$(queue_count remote)" 0
	assert_equal "$(sink_count mx1)" 2
	assert_equal "$(cat "$BATS_TEST_TMPDIR/mx1/sessions")" 1
	run cat "$BATS_TEST_TMPDIR/mx1/2.env"
	assert_line 'rcpt <b@a.test>'
}

@test "bh-remote --turn delivers held mail over a connection the ATRN client opened" {
	sink_start cust 127.0.0.5 --reply 'rcpt:b@cust.test=451 4.2.0 later'
	local id
	id=$(envelope_put remote 'sender s@example.com' 'dest cust' 'connector cust' \
		'hops smarthost:[127.0.0.5]' 'rcpt a@cust.test state=remote' \
		'rcpt b@cust.test state=remote')
	mkdir -p "$BH_ROOT/spool/remote/hold"
	mv "$BH_ROOT/spool/remote/new/$id" "$BH_ROOT/spool/remote/hold/$id"
	envelope_put remote 'sender s@example.com' 'dest other' \
		'hops smarthost:[127.0.0.5]' 'rcpt c@other.test state=remote' >/dev/null
	mv "$BH_ROOT"/spool/remote/new/* "$BH_ROOT/spool/remote/hold/"
	# the connection as bh-smtpd would pass it after "250" to ATRN
	python3 -c '
import os, socket, sys
s = socket.create_connection(("127.0.0.5", int(sys.argv[1])))
os.dup2(s.fileno(), 0)
os.execvp("bh-remote", ["bh-remote", "--turn", "cust", "cust.test"])
' "$SINK_PORT"
	assert_equal "$(sink_count cust)" 1
	run cat "$BATS_TEST_TMPDIR/cust/1.env"
	assert_line 'rcpt <a@cust.test>'
	refute_line 'rcpt <c@other.test>'
	# b waits in hold/ for the next ATRN; the other destination is untouched
	assert_equal "$(ls "$BH_ROOT/spool/remote/hold" | wc -l)" 2
	grep -q 'rcpt a@cust.test state=delivered .*remote-mta=cust.test' "$BH_ROOT/spool/remote/hold/$id"
	grep -q 'rcpt b@cust.test state=deferred code=4.2.0 ' "$BH_ROOT/spool/remote/hold/$id"
	assert_equal "$(queue_count remote)" 2
}

# remote_queued — every envelope waiting in spool/remote (new/ and retry/).
remote_queued() {
	cat "$BH_ROOT"/spool/remote/new/* "$BH_ROOT"/spool/remote/retry/* 2>/dev/null
}

# connector_only NAME ATTR=VALUE... — the connectors source holds that one
# connector, compiled by bh-config.
connector_only() {
	local name=$1
	shift
	printf '%s %s\n' "$name" "$*" > "$BH_ROOT/cdb/connectors"
	config_make
}

@test "tls-ca: the server's certificate must verify, name included, or nothing is sent" {
	local d=$BATS_TEST_TMPDIR
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx1.a.test \
		-keyout "$d/key.pem" -out "$d/cert.pem" 2>/dev/null
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other.test \
		-keyout "$d/okey.pem" -out "$d/other.pem" 2>/dev/null
	sink_start mx1 127.0.0.2 --tls "$d/cert.pem,$d/key.pem"
	connector_only v address-space=* smarthost=mx1.a.test "tls-ca=$d/cert.pem"
	envelope_put remote 'sender s@example.com' 'dest v' 'connector v' \
		'hops smarthost:mx1.a.test' 'rcpt x@far.test state=remote' >/dev/null
	bh-remote -1
	assert_equal "$(sink_count mx1)" 1
	grep -qx 'tls yes' "$d/mx1/1.env"
	connector_only v address-space=* smarthost=mx1.a.test "tls-ca=$d/other.pem"
	envelope_put remote 'sender s@example.com' 'dest v' 'connector v' \
		'hops smarthost:mx1.a.test' 'rcpt y@far.test state=remote' >/dev/null
	bh-remote -1
	assert_equal "$(sink_count mx1)" 1
	# deferred to retry/, or back in new/ when its 1 s retry came due
	remote_queued | grep -q 'rcpt y@far.test state=deferred code=4.7.5 reason="4.7.5 certificate of \[127.0.0.2\]'
	run grep -c 'MAIL FROM' "$d/mx1/commands"
	assert_output 1
	# a trusted certificate for another name
	sink_start mx2 127.0.0.3 --tls "$d/cert.pem,$d/key.pem"
	connector_only w address-space=* smarthost=mx2.a.test "tls-ca=$d/cert.pem"
	envelope_put remote 'sender s@example.com' 'dest w' 'connector w' \
		'hops smarthost:mx2.a.test' 'rcpt z@far.test state=remote' >/dev/null
	bh-remote -1
	remote_queued | grep -q 'rcpt z@far.test state=deferred code=4.7.5 reason="4.7.5 certificate of \[127.0.0.3\]:[0-9]* not trusted: hostname mismatch'
	run grep -c 'MAIL FROM' "$d/mx2/commands"
	assert_output 0
}

@test "a server that stops answering times out: deferred 4.4.2, the stage goes on" {
	settings_set timeout 1s
	sink_start slow 127.0.0.2 --delay 20
	sink_start imp 127.0.0.4
	remote_put a.test mx:a.test 'rcpt x@a.test state=remote' >/dev/null
	remote_put implicit.test mx:implicit.test 'rcpt y@implicit.test state=remote' >/dev/null
	run timeout 15 bh-remote -1
	assert_success
	assert_equal "$(sink_count imp)" 1
	grep -q 'rcpt x@a.test state=deferred code=4.4.2 reason="4.4.2 timeout while reading a reply from \[127.0.0.2\]' \
		"$BH_ROOT"/spool/remote/retry/*
}

@test "AUTH LOGIN when the smart host offers only LOGIN" {
	sink_start login 127.0.0.5 --ext 'PIPELINING,AUTH LOGIN' --auth 'relay:s3cret'
	printf 'up address-space=* cost=1 smarthost=[127.0.0.5] auth=relay:s3cret\n' \
		>> "$BH_ROOT/cdb/connectors"
	config_make
	envelope_put remote 'sender s@example.com' 'dest up' 'connector up' \
		'hops smarthost:[127.0.0.5]' 'rcpt x@far.test state=remote' >/dev/null
	bh-remote -1
	assert_equal "$(sink_count login)" 1
	grep -qx 'auth relay' "$BATS_TEST_TMPDIR/login/1.env"
	grep -qx '1 AUTH LOGIN' "$BATS_TEST_TMPDIR/login/commands"
}

@test "max-remote-per-domain counts recipient domains, also behind one route=dns connector" {
	settings_set max-remote-per-domain 1
	sink_start mx1 127.0.0.2 --delay 1
	printf 'internet address-space=* cost=1 route=dns\n' >> "$BH_ROOT/cdb/connectors"
	config_make
	local dom
	for dom in a.test a.test b.test b.test; do
		envelope_put remote 'sender s@example.com' 'dest internet' 'connector internet' \
			"hops mx:$dom" "rcpt x@$dom state=remote" >/dev/null
	done
	bh-remote -1
	assert_equal "$(sink_count mx1)" 4
	assert_equal "$(cat "$BATS_TEST_TMPDIR/mx1/max-concurrent")" 2
	assert_equal "$(cat "$BATS_TEST_TMPDIR/mx1/sessions")" 2
	run cat "$BATS_TEST_TMPDIR/mx1/max-per-domain"
	assert_output "a.test 1
b.test 1"
}

@test "SMTPUTF8 mail goes with MAIL FROM ... SMTPUTF8, and fails 5.6.7 to a server without it" {
	sink_start mx1 127.0.0.2 --ext PIPELINING,SIZE,8BITMIME,SMTPUTF8
	envelope_put remote 'sender jörg@exämple.test' 'dest a.test' 'hops mx:a.test' \
		'smtputf8 yes' 'body 8BITMIME' 'rcpt x@a.test state=remote' >/dev/null
	bh-remote -1
	assert_equal "$(sink_count mx1)" 1
	grep -qx '1 MAIL FROM:<jörg@exämple.test> SIZE=[0-9]* SMTPUTF8 BODY=8BITMIME' \
		"$BATS_TEST_TMPDIR/mx1/commands"
	# plain mail to the same server carries no SMTPUTF8
	remote_put a.test mx:a.test 'rcpt y@a.test state=remote' >/dev/null
	bh-remote -1
	grep -qx '2 MAIL FROM:<s@example.com> SIZE=[0-9]*' "$BATS_TEST_TMPDIR/mx1/commands"
	sink_start mx2 127.0.0.3 --ext PIPELINING,SIZE,8BITMIME
	envelope_put remote 'sender jörg@exämple.test' 'dest b.test' 'hops smarthost:[127.0.0.3]' \
		'smtputf8 yes' 'rcpt z@b.test state=remote' >/dev/null
	bh-remote -1
	grep -q 'rcpt z@b.test state=failed code=5.6.7 reason="553 5.6.7 \[127.0.0.3\]:[0-9]* does not accept internationalized mail (no SMTPUTF8)"' \
		$(records failure)
	run grep -c 'MAIL FROM' "$BATS_TEST_TMPDIR/mx2/commands"
	assert_output 0
	assert_equal "$(queue_count remote)" 0
}

@test "ETRN: mail moved to new/ goes at once, though the destination is in Retry until later" {
	load lib/smtpd
	sink_start mx1 127.0.0.2
	local now later id
	now=$(date +%s)
	later=$((now + 3600))
	mkdir -p "$BH_ROOT/spool/state"
	printf 'state Retry\nerror 421 4.4.2 down\nnext-attempt %s\nsince %s\n' \
		"$later" "$now" > "$BH_ROOT/spool/state/a.test"
	id=$(remote_put a.test mx:a.test 'tries 3' "first-failure $now" \
		'rcpt x@a.test state=deferred code=4.4.2 reason="421 4.4.2 down"')
	mv "$BH_ROOT/spool/remote/new/$id" "$BH_ROOT/spool/remote/retry/$id"
	touch -d "@$later" "$BH_ROOT/spool/remote/retry/$id"
	bh-remote -1
	assert_equal "$(sink_count mx1)" 0
	run smtpd_inetd 127.0.0.1 < <(printf 'EHLO client.test\r\nETRN a.test\r\nQUIT\r\n')
	assert_line '250 2.0.0 Queuing for node a.test started'
	[ -f "$BH_ROOT/spool/remote/new/$id" ]
	bh-remote -1
	assert_equal "$(sink_count mx1)" 1
	assert_equal "$(queue_count remote)" 0
	[ ! -f "$BH_ROOT/spool/state/a.test" ] || grep -qx 'state Ready' "$BH_ROOT/spool/state/a.test"
}
