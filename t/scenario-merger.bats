# t/scenario-merger.bats — chapter 4, scenario 6: two SMTP domains after a
# merger. Northwind Traders (examples/merger, 127.0.0.2) is the MX of both
# domains and keeps northwindtraders.com; fourthcoffee.com is accepted
# through a relay=yes connector to the Fourth Coffee system
# (examples/merger/fourthcoffee, 127.0.0.3).
load lib/root
load lib/scenario

setup() {
	sc_init
	sc_dns --mx-host=northwindtraders.com,mail.northwindtraders.com,10 \
		--mx-host=fourthcoffee.com,mail.northwindtraders.com,10 \
		--host-record=mail.northwindtraders.com,127.0.0.2 \
		--mx-host=outside.test,mx.outside.test,10 \
		--host-record=mx.outside.test,127.0.0.4
	export SC_NORTHWIND_IP=127.0.0.2 SC_FOURTHCOFFEE_IP=127.0.0.3
	sc_root nw merger
	sc_root fc merger/fourthcoffee
	sc_start nw
	sc_start fc
	sink_start internet 127.0.0.4
}

teardown() {
	sc_teardown
}

@test "merger: Internet mail for both domains arrives at Northwind; fourthcoffee.com's goes on to Fourth Coffee" {
	run sc_send 127.0.0.2 -f someone@outside.test -t carol@fourthcoffee.com --h-Subject "to carol"
	assert_success
	run sc_send 127.0.0.2 -f someone@outside.test -t alice@northwindtraders.com --h-Subject "to alice"
	assert_success
	sc_wait_mail fc carol 'Subject: to carol'
	sc_wait_mail nw alice 'Subject: to alice'
	grep -q 'by mail.northwindtraders.com' "$(sc_mail fc carol 'Subject: to carol')"
}

@test "merger: the relay=yes connector opens fourthcoffee.com only, not the rest of the world" {
	run sc_send 127.0.0.2 -f someone@outside.test -t bob@outside.test
	assert_failure
	assert_output --partial '550 5.7.1'
	assert_equal "$(sink_count internet)" 0
}

@test "merger: Northwind users reach Fourth Coffee; an unknown Fourth Coffee user brings an NDR naming that system" {
	printf 'Subject: hello carol\n\nhi\n' |
		BH_ROOT=$BATS_TEST_TMPDIR/nw bh-inject -f alice@northwindtraders.com carol@fourthcoffee.com
	printf 'Subject: hello nobody\n\nhi\n' |
		BH_ROOT=$BATS_TEST_TMPDIR/nw bh-inject -f alice@northwindtraders.com nosuch@fourthcoffee.com
	sc_wait_mail fc carol 'Subject: hello carol'
	sc_wait_mail nw alice 'Subject: Undeliverable: hello nobody'
	run sc_dsn "$(sc_mail nw alice 'Subject: Undeliverable: hello nobody')"
	assert_line 'rcpt nosuch@fourthcoffee.com Status: 5.1.1'
	assert_line 'rcpt nosuch@fourthcoffee.com Remote-MTA: dns; [127.0.0.3]'
}
