# t/scenario-perimeter.bats — chapter 4, scenario 4: a relay server in a
# perimeter network (examples/perimeter, 127.0.0.2) in front of the internal
# bridgehead (examples/perimeter/internal, 127.0.0.3).
load lib/root
load lib/scenario

setup() {
	sc_init
	sc_dns --mx-host=example.com,relay.example.com,10 \
		--host-record=relay.example.com,127.0.0.2 \
		--mx-host=outside.test,mx.outside.test,10 \
		--host-record=mx.outside.test,127.0.0.4
	export SC_PERIMETER_IP=127.0.0.2 SC_INTERNAL_IP=127.0.0.3
	sc_root relay perimeter
	sc_root internal perimeter/internal
	sc_start relay
	sc_start internal
	sink_start internet 127.0.0.4
}

teardown() {
	sc_teardown
}

@test "perimeter: inbound mail for the organisation passes the relay to the internal bridgehead" {
	run sc_send 127.0.0.2 -f someone@outside.test -t alice@example.com --h-Subject "inbound"
	assert_success
	sc_wait_mail internal alice 'Subject: inbound'
	f=$(sc_mail internal alice 'Subject: inbound')
	grep -q 'by relay.example.com' "$f"
	grep -q '^Received: from relay.example.com' "$f"
}

@test "perimeter: the relay refuses to relay for anyone but the internal bridgehead" {
	run sc_send 127.0.0.2 -f someone@outside.test -t bob@outside.test
	assert_failure
	assert_output --partial '550 5.7.1'
	run sc_send 127.0.0.2 -li 127.0.0.9 -f alice@example.com -t bob@outside.test
	assert_failure
	assert_output --partial '550 5.7.1'
	assert_equal "$(sink_count internet)" 0
}

@test "perimeter: outbound mail goes from the internal bridgehead through the relay to the Internet" {
	printf 'Subject: outbound\n\nhi\n' |
		BH_ROOT=$BATS_TEST_TMPDIR/internal bh-inject -f alice@example.com bob@outside.test
	wait_until 30 sink_has internet 1
	sc_sink_mail internet 'rcpt <bob@outside.test>'
	sc_sink_mail internet 'from mail.corp.example.com ([127.0.0.3])'
	sc_sink_mail internet 'by relay.example.com'
}

@test "perimeter: an unknown user is refused by the internal bridgehead; the relay returns the NDR" {
	run sc_send 127.0.0.2 -f someone@outside.test -t nosuch@example.com
	assert_success
	wait_until 30 sink_has internet 1
	sc_sink_mail internet 'rcpt <someone@outside.test>'
	f=$(ls "$BATS_TEST_TMPDIR"/internet/*.eml)
	run sc_dsn "$f"
	assert_line 'rcpt nosuch@example.com Status: 5.1.1'
	assert_line --regexp '^rcpt nosuch@example.com Diagnostic-Code: smtp; 550 5\.1\.1 '
	assert_line --regexp '^header From: .*MAILER-DAEMON@relay.example.com'
}
