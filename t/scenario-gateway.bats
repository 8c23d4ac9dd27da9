# t/scenario-gateway.bats — chapter 4, scenario 2: a dual-homed gateway
# (examples/gateway). Virtual server "intranet" on 127.0.0.2 relays for the
# intranet's clients (127.0.1.0/24) through the * connector; virtual server
# "internet" on 127.0.0.3 takes anonymous mail for example.com only.
load lib/root
load lib/scenario

setup() {
	sc_init
	sc_dns --mx-host=example.com,mail.example.com,10 \
		--host-record=mail.example.com,127.0.0.3 \
		--mx-host=outside.test,mx.outside.test,10 \
		--host-record=mx.outside.test,127.0.0.4
	export SC_INTRANET_IP=127.0.0.2 SC_INTERNET_IP=127.0.0.3 \
		SC_INTRANET_NET=127.0.1.0/24
	sc_root gw gateway
	sc_start gw
	sink_start internet 127.0.0.4
}

teardown() {
	sc_teardown
}

@test "gateway: an intranet client relays out; the mail leaves from the Internet address by MX" {
	run sc_send 127.0.0.2 -li 127.0.1.5 -f alice@example.com -t bob@outside.test --h-Subject "going out"
	assert_success
	wait_until 30 sink_has internet 1
	sc_sink_mail internet 'rcpt <bob@outside.test>'
	sc_sink_mail internet 'peer 127.0.0.3'
	sc_sink_mail internet 'helo mail.example.com'
	sc_sink_mail internet 'Subject: going out'
}

@test "gateway: the Internet address takes mail for example.com, relays nothing and offers no AUTH" {
	run sc_send 127.0.0.3 -li 127.0.0.20 -f someone@outside.test -t alice@example.com --h-Subject "coming in"
	assert_success
	sc_wait_mail gw alice 'Subject: coming in'
	run sc_send 127.0.0.3 -li 127.0.0.20 -f someone@outside.test -t bob@outside.test
	assert_failure
	assert_output --partial '550 5.7.1'
	# an intranet client is no relay client on the Internet address either
	run sc_send 127.0.0.3 -li 127.0.1.5 -f alice@example.com -t bob@outside.test
	assert_failure
	assert_output --partial '550 5.7.1'
	run smtpd_ehlo 127.0.0.3
	refute_output --partial 'AUTH'
	assert_equal "$(sink_count internet)" 0
}

@test "gateway: a client outside the intranet may not relay through the intranet address" {
	run sc_send 127.0.0.2 -li 127.0.0.20 -f someone@outside.test -t bob@outside.test
	assert_failure
	assert_output --partial '550 5.7.1'
}

# smtpd_ehlo IP — the EHLO reply of the server on IP:$SC_PORT.
smtpd_ehlo() {
	swaks --server "$1" --port "$SC_PORT" --quit-after EHLO 2>&1
}
