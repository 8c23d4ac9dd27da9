# t/scenario-shared-domain.bats — chapter 4, scenario 7: example.com shared
# by two systems. The first (127.0.0.2) knows alice, the other (127.0.0.3,
# examples/shared-domain/other) knows bob and is the last in the chain.
# Method 1 (examples/shared-domain): type=shared plus a connector to the
# other system. Method 2 (examples/shared-domain/unresolved): authoritative
# with settings unresolved-host.
load lib/root
load lib/scenario

setup() {
	sc_init
	sc_dns --mx-host=example.com,mail.example.com,10 \
		--host-record=mail.example.com,127.0.0.2 \
		--mx-host=outside.test,mx.outside.test,10 \
		--host-record=mx.outside.test,127.0.0.4
	export SC_FIRST_IP=127.0.0.2 SC_OTHER_IP=127.0.0.3
	sc_root other shared-domain/other
	sc_start other
	sink_start internet 127.0.0.4
}

teardown() {
	sc_teardown
}

# method EXAMPLE — builds and starts the first system from that example.
method() {
	sc_root first "$1"
	sc_start first
}

# users_reach_their_system — mail for both users, sent to the first system.
users_reach_their_system() {
	run sc_send 127.0.0.2 -f someone@outside.test -t bob@example.com --h-Subject "to bob"
	assert_success
	run sc_send 127.0.0.2 -f someone@outside.test -t alice@example.com --h-Subject "to alice"
	assert_success
	sc_wait_mail other bob 'Subject: to bob'
	sc_wait_mail first alice 'Subject: to alice'
	assert_equal "$(sc_mail_count first alice)" 1
	assert_equal "$(sc_mail_count other bob)" 1
}

# unknown_fails_once — a user neither system has: the first system takes
# it, the other refuses it (550 5.1.1), the first returns the NDR, and the
# message was received once only: no loop.
unknown_fails_once() {
	run sc_send 127.0.0.2 -f someone@outside.test -t nosuch@example.com --h-Subject "to nobody"
	assert_success
	wait_until 30 sink_has internet 1
	run sc_dsn "$(ls "$BATS_TEST_TMPDIR"/internet/*.eml)"
	assert_line 'header To: someone@outside.test'
	assert_line 'rcpt nosuch@example.com Status: 5.1.1'
	assert_line --regexp '^rcpt nosuch@example.com Diagnostic-Code: smtp; 550 5\.1\.1 '
	assert_line 'rcpt nosuch@example.com Remote-MTA: dns; [127.0.0.3]'
	assert_equal "$(sc_received first nosuch@example.com)" 1
	assert_equal "$(sc_received other nosuch@example.com)" 0
	assert_equal "$(BH_ROOT=$BATS_TEST_TMPDIR/first queue_count remote)" 0
}

@test "shared domain, method 1 (shared + connector): each user's mail reaches the system holding the mailbox" {
	method shared-domain
	users_reach_their_system
}

@test "shared domain, method 1: an unknown user is refused by the last system and bounces once, no loop" {
	method shared-domain
	unknown_fails_once
}

@test "shared domain, method 2 (unresolved-host): each user's mail reaches the system holding the mailbox" {
	method shared-domain/unresolved
	users_reach_their_system
}

@test "shared domain, method 2: an unknown user is refused by the last system and bounces once, no loop" {
	method shared-domain/unresolved
	unknown_fails_once
}

@test "shared domain, misconfigured: both systems shared towards each other — the hop count ends the loop with an NDR" {
	method shared-domain
	other=$BATS_TEST_TMPDIR/other
	sed -i 's/type=authoritative/type=shared/' "$other/cdb/domains"
	printf '%s\n' "back address-space=example.com cost=1 smarthost=[127.0.0.2]:$SC_PORT" \
		'internet address-space=* cost=1 route=dns' > "$other/cdb/connectors"
	echo 'max-hops 8' >> "$other/cdb/settings"
	echo 'max-hops 8' >> "$BATS_TEST_TMPDIR/first/cdb/settings"
	make -s -C "$other/cdb"
	make -s -C "$BATS_TEST_TMPDIR/first/cdb"
	run sc_send 127.0.0.2 -f someone@outside.test -t nosuch@example.com --h-Subject "round and round"
	assert_success
	wait_until 60 sink_has internet 1
	run sc_dsn "$(ls "$BATS_TEST_TMPDIR"/internet/*.eml)"
	assert_line 'rcpt nosuch@example.com Status: 5.4.6'
	assert_line --regexp '^rcpt nosuch@example.com Diagnostic-Code: smtp; 554 5\.4\.6 '
	# with max-hops 8 it went round four times (hops 1, 3, 5, 7 at the
	# first system, 2, 4, 6, 8 at the other), then the ninth was refused
	assert_equal "$(sc_received first nosuch@example.com)" 4
	assert_equal "$(sc_received other nosuch@example.com)" 4
}
