# t/interop-dovecot.bats — Dovecot (dovecot-imapd, a private instance on
# 127.0.0.3) serves the Maildir bh-local wrote, with
# mail_location=maildir:ROOT/mailroot/%u/Maildir, and Python's imaplib
# reads the delivered message. bridgehead: examples/single on 127.0.0.2.
load lib/root
load lib/scenario

setup() {
	command -v dovecot >/dev/null ||
		skip "dovecot is not installed (Debian package dovecot-imapd; add it to DEB_TEST)"
	sc_init
	sc_dns --mx-host=example.com,mail.example.com,10 \
		--host-record=mail.example.com,127.0.0.2
	export SC_SERVER_IP=127.0.0.2 SC_ALICE_HASH
	SC_ALICE_HASH=$(echo secret | bh-passwd)
	sc_root bh single
	BH=$BATS_TEST_TMPDIR/bh
	sc_start bh
	dovecot_start
}

teardown() {
	sc_teardown
}

# dovecot_start — Dovecot with its own configuration, runtime and log in
# the test's folder; IMAP on 127.0.0.3:$IMAP_PORT, any user with password
# "imap-secret" (passdb static), mail processes as nobody (Dovecot never
# runs them as root), so the folders on the way to the Maildirs must be
# passable (o+x) and the Maildir belong to nobody (dovecot_own).
dovecot_start() {
	local d=$BATS_TEST_TMPDIR/dovecot p
	mkdir -p "$d/run" "$d/state"
	IMAP_PORT=$(free_port)
	cat > "$d/dovecot.conf" <<-EOF
	protocols = imap
	listen = 127.0.0.3
	base_dir = $d/run
	state_dir = $d/state
	log_path = $d/log
	ssl = no
	disable_plaintext_auth = no
	auth_mechanisms = plain
	mail_location = maildir:$BH/mailroot/%u/Maildir
	passdb {
	  driver = static
	  args = password=imap-secret
	}
	userdb {
	  driver = static
	  args = uid=nobody gid=nogroup home=$BH/mailroot/%u
	}
	service imap-login {
	  inet_listener imap {
	    address = 127.0.0.3
	    port = $IMAP_PORT
	  }
	  inet_listener imaps {
	    port = 0
	  }
	}
	service pop3-login {
	  inet_listener pop3 {
	    port = 0
	  }
	}
	service submission-login {
	  inet_listener submission {
	    port = 0
	  }
	}
	EOF
	p=$BH
	while [ "$p" != / ]; do
		chmod o+x "$p"
		p=$(dirname "$p")
	done
	chmod o+x "$BH/mailroot" 2>/dev/null || mkdir -m 711 "$BH/mailroot"
	dovecot -c "$d/dovecot.conf" -F 2>>"$d/log" &
	kill_on_teardown $!
	wait_until 10 smtp_answers 127.0.0.3 "$IMAP_PORT"
}

# dovecot_own BOX — the Maildir of BOX to Dovecot's mail user.
dovecot_own() {
	chown -R nobody:nogroup "$BH/mailroot/$1"
}

# imap_fetch USER — logs in over IMAP and prints the first message of the
# INBOX (CRLF turned to LF), then "flags" and its flags after the fetch.
imap_fetch() {
	python3 - "$IMAP_PORT" "$1" <<-'PY'
	import imaplib, sys
	m = imaplib.IMAP4("127.0.0.3", int(sys.argv[1]))
	m.login(sys.argv[2], "imap-secret")
	typ, data = m.select("INBOX")
	assert typ == "OK", data
	print("exists", data[0].decode())
	typ, data = m.fetch("1", "(RFC822)")
	assert typ == "OK", data
	sys.stdout.write(data[0][1].decode().replace("\r\n", "\n"))
	typ, data = m.fetch("1", "(FLAGS)")
	print("flags", data[0].decode())
	m.logout()
	PY
}

@test "dovecot: a message bridgehead delivered is read over IMAP, byte for byte" {
	run sc_send 127.0.0.2 -f someone@outside.test -t alice@example.com --h-Subject "read me over IMAP"
	assert_success
	sc_wait_mail bh alice 'Subject: read me over IMAP'
	# Dovecot moves what it has seen to cur/: keep a copy to compare
	cp "$(sc_mail bh alice 'Subject: read me over IMAP')" "$BATS_TEST_TMPDIR/delivered"
	dovecot_own alice
	run imap_fetch alice
	assert_success
	assert_line 'exists 1'
	assert_line 'Return-Path: <someone@outside.test>'
	assert_line 'Delivered-To: alice@example.com'
	assert_line 'Subject: read me over IMAP'
	assert_line 'hello from the scenario test'
	assert_line --regexp '^flags 1 \(FLAGS \(.*\\Seen.*\)\)$'
	# what IMAP returned is the Maildir file
	diff <(printf '%s\n' "$output" | sed '1d;$d') "$BATS_TEST_TMPDIR/delivered"
}

@test "dovecot: two messages, the second arriving while Dovecot has the folder indexed" {
	run sc_send 127.0.0.2 -f someone@outside.test -t alice@example.com --h-Subject "first"
	sc_wait_mail bh alice 'Subject: first'
	dovecot_own alice
	run imap_fetch alice
	assert_line 'exists 1'
	run sc_send 127.0.0.2 -f someone@outside.test -t alice@example.com --h-Subject "second"
	sc_wait_mail bh alice 'Subject: second'
	dovecot_own alice
	run imap_fetch alice
	assert_line 'exists 2'
}
