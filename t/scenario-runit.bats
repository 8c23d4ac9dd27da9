# t/scenario-runit.bats — a scenario run the way an administrator runs it:
# the dual-homed gateway (examples/gateway) under bh-supervise (runit), one
# service per stage and per virtual server, logs in log/NAME/current.
load lib/root
load lib/scenario

setup() {
	command -v runsvdir >/dev/null || skip "runit is not installed (Debian package runit)"
	sc_init
	sc_dns --mx-host=outside.test,mx.outside.test,10 \
		--host-record=mx.outside.test,127.0.0.4
	export SC_INTRANET_IP=127.0.0.2 SC_INTERNET_IP=127.0.0.3 \
		SC_INTRANET_NET=127.0.1.0/24
	sc_root gw gateway
	sc_supervise gw
	sink_start internet 127.0.0.4
}

teardown() {
	sc_teardown
}

logged() {
	grep -q -- "$2" "$BATS_TEST_TMPDIR/gw/log/$1/current" 2>/dev/null
}

@test "runit: the gateway runs as services; mail flows in and out, each server logs to its own file" {
	run ls "$BATS_TEST_TMPDIR/gw/service"
	assert_output "$(printf '%s\n' categorize local ndr remote route smtpd-internet smtpd-intranet)"
	run sc_send 127.0.0.3 -li 127.0.0.20 -f someone@outside.test -t alice@example.com --h-Subject "in under runit"
	assert_success
	run sc_send 127.0.0.2 -li 127.0.1.5 -f alice@example.com -t bob@outside.test --h-Subject "out under runit"
	assert_success
	sc_wait_mail gw alice 'Subject: in under runit'
	wait_until 30 sink_has internet 1
	sc_sink_mail internet 'Subject: out under runit'
	wait_until 10 logged smtpd-internet 'event=received'
	wait_until 10 logged smtpd-intranet 'event=received'
	wait_until 10 logged local 'event='
	run env BH_ROOT="$BATS_TEST_TMPDIR/gw" bh-track --recipient bob@outside.test
	assert_output --regexp 'delivered .*rcpt=bob@outside.test'
}
