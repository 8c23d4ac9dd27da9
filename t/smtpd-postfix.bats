# t/smtpd-postfix.bats — bh-smtpd receives from a real MTA: a private
# Postfix instance relays to it (PIPELINING, DSN parameters, 8-bit data).
load lib/root
load lib/smtpd

setup() {
	command -v postfix >/dev/null && [ -x /usr/sbin/sendmail ] ||
		skip "postfix is not installed"
	root_new
	port=$(free_port)
	smtpd_server default listen=127.0.0.1:$port
	smtpd_start default 127.0.0.1 "$port"
	# Postfix's processes run as user postfix: its folders must be
	# reachable, which Bats's private test folder is not
	pf=$(mktemp -d /tmp/bh-smtpd-pf.XXXXXX)
	chmod 755 "$pf"
	mkdir -p "$pf/conf" "$pf/queue" "$pf/data" "$pf/log"
	cp /etc/postfix/master.cf "$pf/conf/"
	cat > "$pf/conf/main.cf" <<-EOF
	compatibility_level = 3.6
	queue_directory = $pf/queue
	data_directory = $pf/data
	maillog_file = $pf/log/maillog
	maillog_file_prefixes = $pf/log
	myhostname = pf.test
	mydomain = pf.test
	inet_interfaces = loopback-only
	inet_protocols = ipv4
	master_service_disable = inet
	smtp_dns_support_level = disabled
	relayhost = [127.0.0.1]:$port
	mydestination =
	alias_maps =
	alias_database =
	EOF
	chown postfix "$pf/data"
	script -qc "postfix -c $pf/conf start" /dev/null >/dev/null
}

teardown() {
	if [ -n "$pf" ]; then
		script -qc "postfix -c $pf/conf stop" /dev/null >/dev/null
		rm -rf "$pf"
	fi
	root_teardown
}

@test "Postfix relays to bh-smtpd: DSN parameters kept, content intact" {
	printf 'Subject: from postfix\n\nhello \xc3\xa9\n.dot\nend\n' |
		/usr/sbin/sendmail -C "$pf/conf" -N success,failure -V envid123 -f a@pf.test demo@example.com
	wait_until 30 bash -c "[ \$(ls '$BH_ROOT/spool/incoming/new' | wc -l) -eq 1 ]"
	id=$(incoming_ids)
	assert_equal "$(incoming_field "$id" sender)" a@pf.test
	assert_equal "$(incoming_field "$id" envid)" envid123
	assert_equal "$(incoming_field "$id" helo)" pf.test
	grep -qx 'rcpt demo@example.com state=new notify=SUCCESS,FAILURE orcpt=rfc822;demo@example.com' "$BH_ROOT/spool/incoming/new/$id"
	content_body "$id" | grep -q "$(printf '^hello \xc3\xa9\r$')"
	content_body "$id" | grep -q $'^\.dot\r$'
	wait_until 10 grep -q 'status=sent (250 2.6.0 <' "$pf/log/maillog"
}

@test "Postfix sees our refusals: 550 5.1.1 bounces, nothing queued here" {
	printf 'Subject: nobody\n\nx\n' |
		/usr/sbin/sendmail -C "$pf/conf" -f a@pf.test nobody@example.com
	wait_until 30 grep -q 'said: 550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown' "$pf/log/maillog"
	assert_equal "$(queue_count incoming)" 0
}
