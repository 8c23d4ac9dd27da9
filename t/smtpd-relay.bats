# t/smtpd-relay.bats — bh-smtpd: relay control, recipient validation,
# sender filters, anti-spoofing, connection control, AUTH, and virtual
# servers with opposite policies.
load lib/root
load lib/smtpd

setup() { root_new; }

# The open-relay battery (nmap smtp-open-relay's cases and more), as RCPT
# paths; our authoritative domain is example.com, the target elsewhere.
battery=(
	'<relaytest@target.example>'
	'<RelayTest@TARGET.EXAMPLE>'
	'<"relaytest@target.example">'
	'<"relaytest%target.example">'
	'<relaytest%target.example@example.com>'
	'<"relaytest@target.example"@example.com>'
	'<"relaytest%target.example"@example.com>'
	'<relaytest@target.example@example.com>'
	'<@example.com:relaytest@target.example>'
	'<@[127.0.0.1]:relaytest@target.example>'
	'<target.example!relaytest>'
	'<target.example!relaytest@example.com>'
	'<relaytest%target.example@[127.0.0.1]>'
	'<"relaytest@target.example"@[127.0.0.1]>'
	'<relaytest@target.example@[127.0.0.1]>'
	'<target.example!relaytest@[127.0.0.1]>'
	'<relaytest@[127.0.0.1]>'
	'<relaytest@[IPv6:::1]>'
	'<relaytest@target.example.>'
	'<relaytest@example.com.>'
	'<relaytest%target.example@EXAMPLE.COM>'
)

# Two sessions (each under the 20 errors that end a session): the given
# MAIL sender, then half of the battery's paths each.
battery_session() {
	local sender=$1 auth=$2 half p
	for half in 0 1; do
		{
			printf 'EHLO probe.example\r\n'
			[ -n "$auth" ] && printf 'AUTH PLAIN %s\r\n' "$auth"
			printf 'MAIL FROM:%s\r\n' "$sender"
			for p in "${battery[@]:half*11:11}"; do
				printf 'RCPT TO:%s\r\n' "$p"
			done
			printf 'QUIT\r\n'
		} > "$BATS_TEST_TMPDIR/battery"
		smtpd_inetd < "$BATS_TEST_TMPDIR/battery"
	done
}

@test "the open-relay battery is refused with 550 5.7.1 or 501 5.1.3, for every sender" {
	for sender in '<>' '<antispam@[127.0.0.1]>' '<antispam@example.com>' '<x@target.example>'; do
		run battery_session "$sender"
		refute_line --regexp '^250 2\.1\.5'
		assert_equal "$(grep -c '^550 5.7.1 .*Unable to relay$' <<<"$output")" 14
		assert_equal "$(grep -c '^501 5.1.3 ' <<<"$output")" 7
	done
}

@test "an authenticated session relays the syntactically valid paths; a failed AUTH does not" {
	smtpd_user relayer ru@example.com s3cret
	good=$(printf '\0ru@example.com\0s3cret' | base64 -w0)
	bad=$(printf '\0ru@example.com\0wrong' | base64 -w0)
	run battery_session '<ru@example.com>' "$good"
	assert_line '235 2.7.0 Authentication successful'
	# outside domains and address literals relay; tricks inside our own
	# domain are just unknown users there
	assert_equal "$(grep -c '^250 2.1.5 ' <<<"$output")" 9
	assert_equal "$(grep -c '^550 5.1.1 ' <<<"$output")" 5
	refute_line --regexp '^550 5\.7\.1'
	run battery_session '<ru@example.com>' "$bad"
	assert_line '535 5.7.8 Authentication credentials invalid'
	assert_equal "$(grep -c '^550 5.7.1 .*Unable to relay$' <<<"$output")" 14
	refute_line --regexp '^250 2\.1\.5'
}

@test "relay-from networks relay; relay-authenticated=no stops authenticated relaying" {
	smtpd_server default listen=127.0.0.1:2525 relay-from=192.0.2.0/24,10.0.0.0/8
	run smtpd_inetd 192.0.2.77 < <(printf 'EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@target.example>\r\nQUIT\r\n')
	assert_line '250 2.1.5 Recipient <b@target.example> OK'
	run smtpd_inetd 198.51.100.1 < <(printf 'EHLO x\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@target.example>\r\nQUIT\r\n')
	assert_line '550 5.7.1 <b@target.example>: Unable to relay'
	smtpd_user relayer ru@example.com s3cret
	smtpd_server default listen=127.0.0.1:2525 relay-authenticated=no
	auth=$(printf '\0relayer\0s3cret' | base64 -w0)
	run smtpd_inetd < <(printf 'EHLO x\r\nAUTH PLAIN %s\r\nMAIL FROM:<ru@example.com>\r\nRCPT TO:<b@target.example>\r\nQUIT\r\n' "$auth")
	assert_line '235 2.7.0 Authentication successful'
	assert_line '550 5.7.1 <b@target.example>: Unable to relay'
}

@test "unknown users of authoritative domains get 550 5.1.1; shared and relay=yes domains accept anyone" {
	printf 'northwind.example type=shared\n' >> "$BH_ROOT/cdb/domains"
	printf 'fourth address-space=fourthcoffee.example cost=1 smarthost=[127.0.0.1]:25 relay=yes\n' >> "$BH_ROOT/cdb/connectors"
	config_make
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@target.example>\r\nRCPT TO:<nobody@example.com>\r\nRCPT TO:<Demo@Example.COM>\r\nRCPT TO:<anyone@northwind.example>\r\nRCPT TO:<anyone@fourthcoffee.example>\r\nRCPT TO:<x%%y@northwind.example>\r\nQUIT\r\n')
	assert_line '550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown'
	assert_line '250 2.1.5 Recipient <Demo@Example.COM> OK'
	assert_line '250 2.1.5 Recipient <anyone@northwind.example> OK'
	assert_line '250 2.1.5 Recipient <anyone@fourthcoffee.example> OK'
	assert_line '550 5.7.1 <x%y@northwind.example>: Unable to relay'
}

@test "settings unresolved-host accepts unknown local parts of authoritative domains" {
	echo 'unresolved-host [127.0.0.1]:2600' >> "$BH_ROOT/cdb/settings"
	config_make
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@target.example>\r\nRCPT TO:<nobody@example.com>\r\nQUIT\r\n')
	assert_line '250 2.1.5 Recipient <nobody@example.com> OK'
}

@test "sender filters refuse with 550 5.7.1 on servers with filter=yes only" {
	printf '@spam.example\nbad@ok.example\n' >> "$BH_ROOT/cdb/filters"
	config_make
	session='EHLO x\r\nMAIL FROM:<x@spam.example>\r\nRSET\r\nMAIL FROM:<BAD@ok.example>\r\nRSET\r\nMAIL FROM:<good@ok.example>\r\nQUIT\r\n'
	run smtpd_inetd < <(printf "$session")
	refute_line --regexp '^550'
	smtpd_server default listen=127.0.0.1:2525 filter=yes
	run smtpd_inetd < <(printf "$session")
	assert_line '550 5.7.1 <x@spam.example>: Sender address rejected'
	assert_line '550 5.7.1 <BAD@ok.example>: Sender address rejected'
	assert_line '250 2.1.0 Sender <good@ok.example> OK'
}

@test "anti-spoof=yes refuses unauthenticated senders of our own domains" {
	smtpd_user relayer ru@example.com s3cret
	smtpd_server default listen=127.0.0.1:2525 anti-spoof=yes
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<demo@example.com>\r\nMAIL FROM:<a@target.example>\r\nQUIT\r\n')
	assert_line '550 5.7.1 <demo@example.com>: Sender address rejected: authentication required for this domain'
	assert_line '250 2.1.0 Sender <a@target.example> OK'
	auth=$(printf '\0ru@example.com\0s3cret' | base64 -w0)
	run smtpd_inetd < <(printf 'EHLO x\r\nAUTH PLAIN %s\r\nMAIL FROM:<demo@example.com>\r\nQUIT\r\n' "$auth")
	assert_line '250 2.1.0 Sender <demo@example.com> OK'
}

@test "deny-from and allow-from refuse the connection with 554 5.7.1, then only QUIT works" {
	smtpd_server default listen=127.0.0.1:2525 deny-from=192.0.2.0/24
	run smtpd_inetd 192.0.2.9 < <(printf 'EHLO x\r\nQUIT\r\n')
	assert_line --index 0 --regexp '^554 5\.7\.1 .* Access denied$'
	assert_line --index 1 '503 5.7.1 Connection refused; send QUIT'
	assert_line --index 2 --regexp '^221 2\.0\.0 '
	run smtpd_inetd 198.51.100.9 < <(printf 'QUIT\r\n')
	assert_line --index 0 --regexp '^220 '
	smtpd_server default listen=127.0.0.1:2525 allow-from=10.0.0.0/8,2001:db8::/32
	run smtpd_inetd 198.51.100.9 < <(printf 'QUIT\r\n')
	assert_line --index 0 --regexp '^554 5\.7\.1 '
	run smtpd_inetd 10.1.2.3 < <(printf 'QUIT\r\n')
	assert_line --index 0 --regexp '^220 '
	run smtpd_inetd 2001:db8::5 < <(printf 'QUIT\r\n')
	assert_line --index 0 --regexp '^220 '
}

@test "AUTH PLAIN and LOGIN accept an address or the mailbox name; the envelope records the user" {
	smtpd_user rfine rf@example.com pw1
	login_user=$(printf 'rfine' | base64 -w0)
	login_pass=$(printf 'pw1' | base64 -w0)
	run smtpd_inetd < <(printf 'EHLO x\r\nAUTH LOGIN\r\n%s\r\n%s\r\nMAIL FROM:<rf@example.com>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: a\r\n\r\nx\r\n.\r\nQUIT\r\n' "$login_user" "$login_pass")
	assert_line '334 VXNlcm5hbWU6'
	assert_line '334 UGFzc3dvcmQ6'
	assert_line '235 2.7.0 Authentication successful'
	id=$(incoming_ids)
	assert_equal "$(incoming_field "$id" auth)" rfine
	assert_equal "$(incoming_field "$id" submitter)" rfine
	grep -q 'with ESMTPA id' "$BH_ROOT/spool/msg/$id"
	grep -q 'authenticated as rfine' "$BH_ROOT/spool/msg/$id"
	plain=$(printf '\0rf@example.com\0pw1' | base64 -w0)
	run smtpd_inetd < <(printf 'EHLO x\r\nAUTH PLAIN\r\n%s\r\nAUTH PLAIN %s\r\nQUIT\r\n' "$plain" "$plain")
	assert_line '334 '
	assert_line '235 2.7.0 Authentication successful'
	assert_line '503 5.5.1 Already authenticated'
}

@test "AUTH errors: 504 5.5.4, 501 on cancel and bad base64, 421 after three failures" {
	smtpd_user rfine rf@example.com pw1
	bad=$(printf '\0rfine\0nope' | base64 -w0)
	run smtpd_inetd < <(printf 'AUTH PLAIN\r\nEHLO x\r\nAUTH CRAM-MD5\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN !!!!\r\nAUTH PLAIN %s\r\nAUTH PLAIN %s\r\nAUTH PLAIN %s\r\nNOOP\r\n' "$bad" "$bad" "$bad")
	assert_line '503 5.5.1 Send EHLO first'
	assert_line '504 5.5.4 Unrecognized authentication type'
	assert_line '501 5.0.0 Authentication cancelled'
	assert_line '501 5.5.2 Bad base64 data'
	assert_equal "$(grep -c '^535 5.7.8 ' <<<"$output")" 3
	assert_line --regexp '^421 4\.7\.0 .* Too many authentication failures$'
	refute_line '250 2.0.0 OK'
	grep -q 'event=auth-failed peer=192.0.2.1 user=rfine failures=3' "$BATS_TEST_TMPDIR/smtpd-inetd.log"
}

@test "a server without auth=anonymous wants AUTH before MAIL: 530 5.7.0" {
	smtpd_user rfine rf@example.com pw1
	smtpd_server default listen=127.0.0.1:2525 auth=plain
	plain=$(printf '\0rfine\0pw1' | base64 -w0)
	run smtpd_inetd < <(printf 'EHLO x\r\nMAIL FROM:<a@target.example>\r\nAUTH PLAIN %s\r\nMAIL FROM:<a@target.example>\r\nQUIT\r\n' "$plain")
	assert_line '530 5.7.0 Authentication required'
	assert_line '250-AUTH PLAIN'
	assert_line '250 2.1.0 Sender <a@target.example> OK'
}

@test "two virtual servers on 127.0.0.2 and 127.0.0.3 keep opposite relay policies" {
	port=$(free_port)
	smtpd_server inside listen=127.0.0.2:$port relay-from=127.0.0.0/8 banner=inside
	smtpd_server outside listen=127.0.0.3:$port relay-from= banner=outside
	smtpd_start inside 127.0.0.2 "$port"
	smtpd_start outside 127.0.0.3 "$port"
	run swaks -s 127.0.0.2 -p "$port" -f a@example.com -t far@target.example --quit-after RCPT
	assert_output --regexp '220 .* ESMTP inside'
	assert_output --partial '250 2.1.5 Recipient <far@target.example> OK'
	run swaks -s 127.0.0.3 -p "$port" -f a@example.com -t far@target.example --quit-after RCPT
	assert_output --regexp '220 .* ESMTP outside'
	assert_output --partial '550 5.7.1 <far@target.example>: Unable to relay'
	run swaks -s 127.0.0.3 -p "$port" -f a@target.example -t demo@example.com
	assert_output --partial '250 2.6.0'
	id=$(incoming_ids)
	assert_equal "$(incoming_field "$id" server)" outside
	assert_equal "$(incoming_field "$id" peer)" 127.0.0.1
}

@test "domain entries match a client by its confirmed reverse name (localhost)" {
	grep -q '^127.0.0.1[[:space:]].*localhost' /etc/hosts || skip "127.0.0.1 is not localhost here"
	smtpd_server default listen=127.0.0.1:2525 deny-from=localhost
	run smtpd_inetd 127.0.0.1 < <(printf 'QUIT\r\n')
	assert_line --index 0 --regexp '^554 5\.7\.1 '
	smtpd_server default listen=127.0.0.1:2525 allow-from=localhost,10.0.0.0/8
	run smtpd_inetd 127.0.0.1 < <(printf 'QUIT\r\n')
	assert_line --index 0 --regexp '^220 '
	smtpd_server default listen=127.0.0.1:2525 relay-from=localhost
	run smtpd_inetd 127.0.0.1 < <(printf 'EHLO x\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<b@far.example>\r\nQUIT\r\n')
	assert_line '250 2.1.5 Recipient <b@far.example> OK'
	run smtpd_inetd 192.0.2.1 < <(printf 'EHLO x\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<b@far.example>\r\nQUIT\r\n')
	assert_line '550 5.7.1 <b@far.example>: Unable to relay'
}

@test "a server on 0.0.0.0 (All Unassigned) and one on 127.0.0.2 share a port; each gets its own connections" {
	port=$(free_port)
	smtpd_server all listen=0.0.0.0:$port banner=all-unassigned
	smtpd_server inside listen=127.0.0.2:$port banner=inside relay-from=127.0.0.0/8
	smtpd_start all 127.0.0.3 "$port"
	smtpd_start inside 127.0.0.2 "$port"
	run smtpd_chat 127.0.0.2 "$port" <<<'> QUIT'
	assert_line --index 0 --regexp '^220 .* ESMTP inside$'
	run smtpd_chat 127.0.0.3 "$port" <<<'> QUIT'
	assert_line --index 0 --regexp '^220 .* ESMTP all-unassigned$'
	run smtpd_chat 127.0.0.1 "$port" <<<'> QUIT'
	assert_line --index 0 --regexp '^220 .* ESMTP all-unassigned$'
}

# dns_answers PORT — the DNS server on 127.0.0.1:PORT answers a query.
dns_answers() {
	python3 - "$1" <<-'EOF'
	import socket, struct, sys
	q = struct.pack(">HHHHHH", 1, 0x100, 1, 0, 0, 0)
	q += b"".join(bytes([len(l)]) + l for l in b"client.trusted.example".split(b".")) + b"\0"
	q += struct.pack(">HH", 1, 1)
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.settimeout(0.5)
	s.sendto(q, ("127.0.0.1", int(sys.argv[1])))
	s.recv(512)
	EOF
}

@test "domain entries use settings dns: a PTR name counts only when its forward lookup confirms it" {
	dport=$(free_port)
	dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll --port="$dport" \
		--listen-address=127.0.0.1 --bind-interfaces --pid-file= \
		--host-record=client.trusted.example,127.0.0.5 \
		--ptr-record=6.0.0.127.in-addr.arpa,liar.trusted.example \
		--host-record=liar.trusted.example,127.0.0.99 \
		--local=/example/ 2>/dev/null &
	kill_on_teardown $!
	echo "dns 127.0.0.1:$dport" >> "$BH_ROOT/cdb/settings"
	config_make
	smtpd_server default listen=127.0.0.1:2525 relay-from=trusted.example
	wait_until 5 dns_answers "$dport"
	session='EHLO x\r\nMAIL FROM:<a@ok.example>\r\nRCPT TO:<b@far.example>\r\nQUIT\r\n'
	run smtpd_inetd 127.0.0.5 < <(printf "$session")
	assert_line '250 2.1.5 Recipient <b@far.example> OK'
	run smtpd_inetd 127.0.0.6 < <(printf "$session")
	assert_line '550 5.7.1 <b@far.example>: Unable to relay'
	run smtpd_inetd 127.0.0.7 < <(printf "$session")
	assert_line '550 5.7.1 <b@far.example>: Unable to relay'
}
