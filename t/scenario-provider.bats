# t/scenario-provider.bats — chapter 4, scenario 5: a network service
# provider (examples/provider, 127.0.0.2) holds the mail of a customer
# (examples/provider/customer, 127.0.0.3) until the customer's scheduled
# connector has delivered its outbound mail and asked ETRN (authenticated);
# and the ATRN role reversal of bh-remote --turn.
load lib/root
load lib/scenario

setup() {
	sc_init
	sc_dns --mx-host=customer.example.com,mail.provider.example.net,10 \
		--host-record=mail.provider.example.net,127.0.0.2 \
		--mx-host=outside.test,mx.outside.test,10 \
		--host-record=mx.outside.test,127.0.0.4
	export SC_PROVIDER_IP=127.0.0.2 SC_CUSTOMER_IP=127.0.0.3 \
		SC_CUSTOMER_PASSWORD=s3cret SC_CUSTOMER_HASH SC_SCHEDULE
	SC_CUSTOMER_HASH=$(echo s3cret | bh-passwd)
	# a window open now (the test runs at any time of day)
	SC_SCHEDULE="$(date -d '-1 hour' +%H:%M)-$(date -d '+1 hour' +%H:%M)"
	sc_root isp provider
	sc_root cust provider/customer
	sc_start isp
	sc_start cust
	sink_start internet 127.0.0.4
}

teardown() {
	sc_teardown
}

ISP() { echo "$BATS_TEST_TMPDIR/isp"; }

# held — the provider holds a message (spool/remote/hold).
held() {
	[ "$(find "$(ISP)/spool/remote/hold" -type f | wc -l)" -ge 1 ]
}

# etrn [USER PASSWORD] — ETRN customer.example.com at the provider; prints
# the reply.
etrn() {
	python3 - "$SC_PORT" "$@" <<'PY'
import smtplib, sys
s = smtplib.SMTP("127.0.0.2", int(sys.argv[1]), timeout=20)
s.ehlo("mail.customer.example.com")
if len(sys.argv) > 2:
    s.login(sys.argv[2], sys.argv[3])
code, text = s.docmd("ETRN", "customer.example.com")
print(code, text.decode())
s.quit()
PY
}

@test "provider: mail for the customer is held until the customer's connector sends, then asks ETRN" {
	run sc_send 127.0.0.2 -f someone@outside.test -t bob@customer.example.com --h-Subject "held for you"
	assert_success
	wait_until 30 held
	run env BH_ROOT="$(ISP)" bh-queue
	assert_output --regexp 'customer +1 .* Held'
	assert_equal "$(sc_mail_count cust bob)" 0
	# the customer's outbound mail goes in its window, then ETRN follows
	printf 'Subject: outbound\n\nhi\n' |
		BH_ROOT=$BATS_TEST_TMPDIR/cust bh-inject -f bob@customer.example.com carol@outside.test
	wait_until 30 sink_has internet 1
	sc_wait_mail cust bob 'Subject: held for you'
	grep -q 'event=etrn' "$BATS_TEST_TMPDIR/isp.log"
	run held
	assert_failure
}

@test "provider: held mail is released only to the authenticated trigger account" {
	run sc_send 127.0.0.2 -f someone@outside.test -t bob@customer.example.com
	assert_success
	wait_until 30 held
	run etrn
	assert_output --regexp '^459 4\.7\.1 '
	run etrn customer s3cret
	assert_output --regexp '^250 2\.0\.0 '
	sc_wait_mail cust bob 'Subject: scenario test'
}

@test "provider: outside its schedule the customer's mail waits (Scheduled)" {
	sed -i "s/schedule=\"[^\"]*\"/schedule=\"$(date -d '+2 hours' +%H:%M)-$(date -d '+3 hours' +%H:%M)\"/" \
		"$BATS_TEST_TMPDIR/cust/cdb/connectors"
	make -s -C "$BATS_TEST_TMPDIR/cust/cdb"
	printf 'Subject: later\n\nhi\n' |
		BH_ROOT=$BATS_TEST_TMPDIR/cust bh-inject -f bob@customer.example.com carol@outside.test
	wait_until 30 bash -c "ls '$BATS_TEST_TMPDIR/cust/spool/remote/scheduled' | grep -q ."
	run env BH_ROOT="$BATS_TEST_TMPDIR/cust" bh-queue
	assert_output --regexp 'provider +1 .* Scheduled'
	assert_equal "$(sink_count internet)" 0
}

@test "provider: ATRN role reversal — bh-remote --turn delivers held mail over a connection the customer opened" {
	run sc_send 127.0.0.2 -f someone@outside.test -t bob@customer.example.com --h-Subject "by turn"
	assert_success
	wait_until 30 held
	# bh-smtpd does not serve ATRN yet (502): the connection is made here
	# and handed to bh-remote --turn as bh-smtpd would after its 250
	run env BH_ROOT="$(ISP)" python3 -c '
import os, socket, subprocess, sys
s = socket.create_connection(("127.0.0.3", int(sys.argv[1])), timeout=20)
r = subprocess.run(["bh-remote", "--turn", "customer"], stdin=s.fileno(), timeout=30)
sys.exit(r.returncode)' "$SC_PORT"
	assert_success
	sc_wait_mail cust bob 'Subject: by turn'
	run held
	assert_failure
}
