# t/scenario-provider.bats — chapter 4, scenario 5: a network service
# provider (examples/provider, 127.0.0.2) holds the mail of a customer
# (examples/provider/customer, 127.0.0.3) until the customer's scheduled
# connector has delivered its outbound mail and asked ETRN (authenticated);
# and ATRN (RFC 2645): the customer turns its connection round and its own
# bh-smtpd -i receives the held mail from the provider's bh-remote --turn.
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

@test "provider: ATRN — the authenticated customer turns the connection round and its own bh-smtpd receives the held mail" {
	run sc_send 127.0.0.2 -f someone@outside.test -t bob@customer.example.com --h-Subject "by turn"
	assert_success
	wait_until 30 held
	# the customer (a dial-up host without a fixed address) connects, asks
	# ATRN, and on 250 serves the connection with bh-smtpd -i of its root
	run env BH_ROOT="$BATS_TEST_TMPDIR/cust" python3 -c '
import base64, os, socket, subprocess, sys
s = socket.create_connection(("127.0.0.2", int(sys.argv[1])), timeout=20)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline().decode().rstrip("\r\n")
        if len(line) < 4 or line[3] != "-":
            return line
reply()
auth = base64.b64encode(b"\0customer\0s3cret")
for cmd in (b"EHLO customer.example.com", b"AUTH PLAIN " + auth,
            b"ATRN customer.example.com"):
    s.sendall(cmd + b"\r\n")
    print(reply())
r = subprocess.run(["bh-smtpd", "-i"], stdin=s.fileno(), stdout=s.fileno(), timeout=30)
sys.exit(r.returncode)' "$SC_PORT"
	assert_success
	assert_line --index 1 --regexp '^235 2\.7\.0'
	assert_line --index 2 --regexp '^250 '
	sc_wait_mail cust bob 'Subject: by turn'
	run held
	assert_failure
}

@test "provider: ATRN without authentication is refused with 530 5.7.0 and nothing leaves the hold" {
	run sc_send 127.0.0.2 -f someone@outside.test -t bob@customer.example.com --h-Subject "kept"
	wait_until 30 held
	run python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.2", int(sys.argv[1])), timeout=20)
f = s.makefile("rb")
f.readline()
s.sendall(b"EHLO customer.example.com\r\n")
while True:
    line = f.readline().decode()
    if line[3] != "-":
        break
s.sendall(b"ATRN customer.example.com\r\n")
print(f.readline().decode().strip())' "$SC_PORT"
	assert_output '530 5.7.0 Authentication required'
	held
}
