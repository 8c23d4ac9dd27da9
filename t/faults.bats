# t/faults.bats — fault injection: a spool whose disk fills up while mail
# arrives, and DNS servers that time out or answer garbage. Whatever the
# fault, a message answered 250 is never lost, and nothing is refused for
# good that could go later.
load lib/root
load lib/smtpd
load lib/dns
load lib/hardening

setup() { root_new; }
teardown() { faults_teardown; }

# content_ok ID — the stored message is whole: its size is the envelope's
# and it ends with the last line the sender wrote.
content_ok() {
	local f="$BH_ROOT/spool/msg/$1"
	[ "$(stat -c %s "$f")" = "$(incoming_field "$1" size)" ] &&
		[ "$(tail -c 3 "$f" | od -An -tx1 | tr -d ' \n')" = 780d0a ]
}

@test "a full spool disk answers 452 4.3.1, keeps every accepted message whole, and flow resumes" {
	need_root
	spool_on_tmpfs 2M
	hard_server
	hard_start
	# 30 messages of 200 KB into 2 MB: the disk fills on the way
	run attack send "$HARD_PORT" 1 30 200000 demo@example.com
	assert_success
	assert_line --regexp '^msg [0-9]+ 452_4\.3\.1$'
	refute_line --regexp '^msg [0-9]+ (5|421|connect)'
	accepted_before=$(accepted)
	[ -n "$accepted_before" ]
	# exactly the accepted ones are queued, each whole; no partial content
	assert_equal "$(spool_seqs incoming)" "$(sort -n <<<"$accepted_before")"
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" "$(wc -l <<<"$accepted_before")"
	for id in $(incoming_ids); do content_ok "$id"; done
	assert_equal "$(find "$BH_ROOT"/spool/*/tmp -type f | wc -l)" 0
	# the categorizer cannot write either: it keeps everything queued
	run bh-categorize -1
	assert_equal "$(spool_seqs incoming route)" "$(sort -n <<<"$accepted_before")"
	# room again: new mail is accepted and the queued mail moves on
	spool_resize 64M
	run attack send "$HARD_PORT" 100 5 200000 demo@example.com
	assert_equal "$(grep -c '250_2.6.0$' <<<"$output")" 5
	run bh-categorize -1
	assert_success
	run bh-route -1
	assert_success
	run bh-local -1
	assert_success
	assert_equal "$(maildir_count demo)" $(( $(wc -l <<<"$accepted_before") + 5 ))
	for n in $accepted_before 100 101 102 103 104; do
		grep -lqE "^X-Seq: $n"$'\r'"?\$" "$BH_ROOT"/mailroot/demo/Maildir/new/*
	done
}

# remote_dns_fault — one message for mx:far.test queued in spool/remote,
# then bh-remote -1 against the DNS server of settings dns.
remote_dns_fault() {
	remote_put far.test mx:far.test 'rcpt x@far.test state=remote'
	start=$(date +%s)
	run timeout 60 bh-remote -1
	elapsed=$(( $(date +%s) - start ))
}

# deferred_443 — the message waits in spool/remote/retry with 4.4.3, and
# no failure report was written.
deferred_443() {
	assert_equal "$(ls "$BH_ROOT"/spool/remote/retry | wc -l)" 1
	grep -q 'rcpt x@far.test state=deferred code=4.4.3 ' "$BH_ROOT"/spool/remote/retry/*
	assert_equal "$(records failure | wc -l)" 0
	grep -qx 'state Retry' "$BH_ROOT/spool/state/far.test"
}

@test "a DNS server that never answers only delays mail: deferred 4.4.3, not failed" {
	local port
	port=$(free_port)
	# a bound UDP port that reads every query and answers none
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    s.recvfrom(512)
' "$port" 3>&- &
	kill_on_teardown $!
	settings_set dns "127.0.0.1:$port"
	remote_dns_fault
	deferred_443
	# udns gives up after its timeouts (2 s, 2 tries): no long hang
	[ "$elapsed" -lt 30 ]
}

@test "a DNS server answering garbage only delays mail: deferred 4.4.3, not failed" {
	local port
	port=$(free_port)
	# replies with the query's id and question and then broken records,
	# or plain random bytes, alternately
	python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
n = 0
while True:
    q, a = s.recvfrom(512)
    n += 1
    if n % 2:
        s.sendto(q[:2] + b"\x81\x80" + q[4:6] + b"\x00\x05\x00\x00\x00\x00"
                 + q[12:] + os.urandom(40), a)
    else:
        s.sendto(os.urandom(60), a)
' "$port" 3>&- &
	kill_on_teardown $!
	settings_set dns "127.0.0.1:$port"
	remote_dns_fault
	deferred_443
	[ "$elapsed" -lt 30 ]
}
