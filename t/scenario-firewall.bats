# t/scenario-firewall.bats — chapter 4, scenario 3: a bridgehead behind a
# firewall (examples/firewall): the bridgehead (127.0.0.2) takes inbound
# mail for example.com and routes it to the member holding the mailbox
# (member1 127.0.0.3: alice, member2 127.0.0.4: bob); the members send all
# outbound mail to the bridgehead's * connector.
load lib/root
load lib/scenario

setup() {
	sc_init
	sc_dns --mx-host=example.com,mail.example.com,10 \
		--host-record=mail.example.com,127.0.0.2 \
		--mx-host=outside.test,mx.outside.test,10 \
		--host-record=mx.outside.test,127.0.0.5
	export SC_BRIDGEHEAD_IP=127.0.0.2 SC_MEMBER1_IP=127.0.0.3 SC_MEMBER2_IP=127.0.0.4
	sc_root bh firewall
	sc_root m1 firewall/member1
	sc_root m2 firewall/member2
	sc_start bh
	sc_start m1
	sc_start m2
	sink_start internet 127.0.0.5
}

teardown() {
	sc_teardown
}

@test "firewall: inbound mail reaches the member holding each mailbox" {
	run sc_send 127.0.0.2 -f someone@outside.test -t alice@example.com --h-Subject "to alice"
	assert_success
	run sc_send 127.0.0.2 -f someone@outside.test -t bob@example.com --h-Subject "to bob"
	assert_success
	sc_wait_mail m1 alice 'Subject: to alice'
	sc_wait_mail m2 bob 'Subject: to bob'
	# the address the sender used is kept in the header
	grep -q '^To: alice@example.com' "$(sc_mail m1 alice 'Subject: to alice')"
	assert_equal "$(sc_mail_count m1 alice)" 1
	assert_equal "$(sc_mail_count m2 bob)" 1
}

@test "firewall: a member's outbound mail leaves through the bridgehead; mail between members too" {
	printf 'Subject: out via bridgehead\n\nhi\n' |
		BH_ROOT=$BATS_TEST_TMPDIR/m1 bh-inject -f alice@example.com carol@outside.test
	printf 'Subject: alice to bob\n\nhi\n' |
		BH_ROOT=$BATS_TEST_TMPDIR/m1 bh-inject -f alice@example.com bob@example.com
	wait_until 30 sink_has internet 1
	# it came from member1 (its address and EHLO name) through the bridgehead
	sc_sink_mail internet "from m1.corp.example.com ([127.0.0.3])"
	sc_sink_mail internet 'by mail.example.com'
	sc_sink_mail internet 'Subject: out via bridgehead'
	sc_wait_mail m2 bob 'Subject: alice to bob'
	# the path: member1, then the bridgehead, then member2
	run grep -c '^Received: ' "$(sc_mail m2 bob 'Subject: alice to bob')"
	assert_output 3
}

@test "firewall: a user nobody has fails once, with an NDR from the member; no loop" {
	printf 'Subject: typo\n\nhi\n' |
		BH_ROOT=$BATS_TEST_TMPDIR/m1 bh-inject -f alice@example.com nosuch@example.com
	sc_wait_mail m1 alice 'Subject: Undeliverable: typo'
	run sc_dsn "$(sc_mail m1 alice 'Subject: Undeliverable: typo')"
	assert_line 'rcpt nosuch@example.com Status: 5.1.1'
	assert_line --regexp '^rcpt nosuch@example.com Diagnostic-Code: smtp; 550 5\.1\.1 '
	# the bridgehead refused it at RCPT: it never took it in
	assert_equal "$(sc_received bh nosuch@example.com)" 0
	run sc_send 127.0.0.2 -f someone@outside.test -t nosuch@example.com
	assert_failure
	assert_output --partial '550 5.1.1'
}
