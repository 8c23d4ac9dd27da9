# t/privilege.bats — least privilege: with settings user, programs started
# as root run as that user (bh-smtpd once its ports are bound).
load lib/root

setup() {
	[ "$(id -u)" -eq 0 ] || skip "needs root to change users"
	id bh-test >/dev/null 2>&1 ||
		useradd --system --no-create-home --shell /usr/sbin/nologin bh-test
	root_new
	echo 'user bh-test' >> "$BH_ROOT/cdb/settings"
	config_make
	chown -R bh-test "$BH_ROOT/spool" "$BH_ROOT/log" "$BH_ROOT/mailroot"
	# the test's temporary folders are private to root: let the user pass
	local d=$BH_ROOT
	while [ "$d" != / ] && [ "$d" != /tmp ]; do
		chmod o+x "$d"
		d=$(dirname "$d")
	done
	uid=$(id -u bh-test)
}

# uid_of PID — the real uid of a process.
uid_of() {
	awk '/^Uid:/ { print $2 }' "/proc/$1/status"
}

@test "started as root, bh-smtpd binds its port and then serves as settings user" {
	port=$(free_port)
	sed -i "s/127\.0\.0\.1:2525/127.0.0.1:$port/" "$BH_ROOT/cdb/servers"
	config_make
	bh-smtpd -s default 2>"$BATS_TEST_TMPDIR/smtpd.log" &
	pid=$!
	kill_on_teardown $pid
	wait_until 10 python3 -c "import smtplib; smtplib.SMTP('127.0.0.1', $port).quit()"
	assert_equal "$(uid_of $pid)" "$uid"
	run python3 -c "
import smtplib
s = smtplib.SMTP('127.0.0.1', $port)
print(s.sendmail('a@example.net', ['demo@example.com'], 'Subject: p\r\n\r\nx\r\n') or 'sent')
s.quit()"
	assert_output sent
	f=$(ls "$BH_ROOT"/spool/incoming/new/*)
	assert_equal "$(stat -c %u "$f")" "$uid"
}

@test "started as root, the queue stages deliver as settings user" {
	printf 'Subject: p\n\nx\n' | bh-inject demo@example.com
	assert_equal "$(stat -c %u "$BH_ROOT"/spool/incoming/new/*)" "$uid"
	bh-categorize -1 && bh-route -1 && bh-local -1
	assert_equal "$(maildir_count demo)" 1
	assert_equal "$(stat -c %u "$BH_ROOT"/mailroot/demo/Maildir/new/*)" "$uid"
	run bh-check
	refute_output --partial 'does not belong'
}

@test "a stage refuses to run as root when settings user names no account" {
	sed -i 's/^user bh-test/user no-such-account/' "$BH_ROOT/cdb/settings"
	config_make
	run bh-route -1
	assert_equal "$status" 111
	assert_output --partial 'settings user no-such-account: no such account'
	run bh-check
	assert_output --partial 'error: settings user no-such-account: no such account'
}

@test "bh-check says when the spool does not belong to settings user" {
	chown -R root "$BH_ROOT/spool"
	run bh-check
	assert_output --partial "error: spool does not belong to settings user bh-test"
	run bh-local -1
	assert_equal "$status" 111
	assert_output --partial 'Permission denied'
}
