# t/interop-clients.bats — real mail clients submit through bridgehead with
# STARTTLS and AUTH: swaks, and msmtp (a real mail client's submission
# path). bridgehead: examples/single on 127.0.0.2 with a certificate and
# tls=required; mail for outside.test goes by MX to a sink on 127.0.0.3.
load lib/root
load lib/scenario

setup() {
	sc_init
	sc_dns --mx-host=outside.test,mx.outside.test,10 \
		--host-record=mx.outside.test,127.0.0.3
	export SC_SERVER_IP=127.0.0.2 SC_ALICE_HASH
	SC_ALICE_HASH=$(echo 'pa55 word' | bh-passwd)
	sc_root bh single
	BH=$BATS_TEST_TMPDIR/bh
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mail.example.com \
		-keyout "$BH/key.pem" -out "$BH/cert.pem" 2>/dev/null
	printf '          tls=required cert=%s key=%s\n' "$BH/cert.pem" "$BH/key.pem" >> "$BH/cdb/servers"
	make -s -C "$BH/cdb"
	sc_start bh
	sink_start internet 127.0.0.3
}

teardown() {
	sc_teardown
}

@test "swaks submits with STARTTLS and AUTH PLAIN, then LOGIN; both relay" {
	run sc_send 127.0.0.2 -tls -a PLAIN -au alice@example.com -ap 'pa55 word' \
		-f alice@example.com -t bob@outside.test --h-Subject "swaks plain"
	assert_success
	assert_output --partial '235 2.7.0'
	run sc_send 127.0.0.2 -tls -a LOGIN -au alice -ap 'pa55 word' \
		-f alice@example.com -t bob@outside.test --h-Subject "swaks login"
	assert_success
	wait_until 30 sink_has internet 2
	sc_sink_mail internet 'Subject: swaks plain'
	sc_sink_mail internet 'Subject: swaks login'
	sc_sink_mail internet 'with ESMTPSA'
}

@test "swaks: without STARTTLS no AUTH is offered and MAIL is refused (tls=required)" {
	run sc_send 127.0.0.2 -f alice@example.com -t bob@outside.test
	assert_failure
	assert_output --partial '530 5.7.0'
	run sc_send 127.0.0.2 -a PLAIN -au alice@example.com -ap 'pa55 word' \
		-f alice@example.com -t bob@outside.test
	assert_failure
	refute_output --partial '235 '
	assert_equal "$(sink_count internet)" 0
}

@test "msmtp submits with STARTTLS and AUTH; a wrong password is refused" {
	command -v msmtp >/dev/null ||
		skip "msmtp is not installed (Debian package msmtp; add it to DEB_TEST)"
	conf=$BATS_TEST_TMPDIR/msmtprc
	cat > "$conf" <<-EOF
	defaults
	tls on
	tls_starttls on
	tls_certcheck off
	logfile $BATS_TEST_TMPDIR/msmtp.log
	account bh
	host 127.0.0.2
	port $SC_PORT
	from alice@example.com
	auth plain
	user alice@example.com
	password pa55 word
	account default : bh
	EOF
	chmod 600 "$conf"
	run msmtp -C "$conf" bob@outside.test <<-EOF
	From: Alice <alice@example.com>
	To: bob@outside.test
	Subject: from msmtp

	sent by msmtp
	EOF
	assert_success
	wait_until 30 sink_has internet 1
	sc_sink_mail internet 'Subject: from msmtp'
	sc_sink_mail internet 'with ESMTPSA'
	sc_sink_mail internet 'mail <alice@example.com>'
	sed -i 's/^password .*/password wrong/' "$conf"
	run msmtp -C "$conf" bob@outside.test <<-EOF
	Subject: refused

	x
	EOF
	assert_failure
	assert_output --partial '535 5.7.8'
}
