# t/scenario-single.bats — chapter 4, scenario 1: a single server in its
# default configuration (examples/single): it receives mail for its domain
# from anyone and relays only for authenticated users.
load lib/root
load lib/scenario

setup() {
	sc_init
	sc_dns --mx-host=example.com,mail.example.com,10 \
		--host-record=mail.example.com,127.0.0.2 \
		--mx-host=outside.test,mx.outside.test,10 \
		--host-record=mx.outside.test,127.0.0.3
	export SC_SERVER_IP=127.0.0.2 SC_ALICE_HASH
	SC_ALICE_HASH=$(echo secret | bh-passwd)
	sc_root mail single
	sc_start mail
	sink_start internet 127.0.0.3
}

teardown() {
	sc_teardown
}

@test "single server: anonymous mail for its domain is delivered to the Maildir" {
	run sc_send 127.0.0.2 -f someone@outside.test -t alice@example.com --h-Subject "for alice"
	assert_success
	assert_output --partial '250 2.6.0 '
	sc_wait_mail mail alice 'Subject: for alice'
	f=$(sc_mail mail alice 'Subject: for alice')
	run cat "$f"
	assert_line 'Return-Path: <someone@outside.test>'
	assert_line 'Delivered-To: alice@example.com'
	assert_line 'hello from the scenario test'
}

@test "single server: anonymous relaying is refused with 550 5.7.1, an unknown user with 550 5.1.1" {
	run sc_send 127.0.0.2 -f someone@outside.test -t bob@outside.test
	assert_failure
	assert_output --partial '550 5.7.1'
	run sc_send 127.0.0.2 -f someone@outside.test -t nosuch@example.com
	assert_failure
	assert_output --partial '550 5.1.1'
	assert_equal "$(sink_count internet)" 0
	assert_equal "$(BH_ROOT=$BATS_TEST_TMPDIR/mail queue_count incoming)" 0
}

@test "single server: an authenticated user relays to the Internet (MX from DNS)" {
	run sc_send 127.0.0.2 -f alice@example.com -t bob@outside.test \
		-a PLAIN -au alice@example.com -ap secret --h-Subject "outbound"
	assert_success
	assert_output --partial '235 2.7.0'
	wait_until 30 sink_has internet 1
	sc_sink_mail internet 'rcpt <bob@outside.test>'
	sc_sink_mail internet 'Subject: outbound'
	sc_sink_mail internet 'by mail.example.com'
	# a wrong password relays nothing
	run sc_send 127.0.0.2 -f alice@example.com -t carol@outside.test \
		-a PLAIN -au alice@example.com -ap wrong
	assert_failure
	assert_output --partial '535 5.7.8'
}
