# t/categorize-policy.bats — recipient policies at categorizing time:
# generated proxy addresses deliver, and mail a local mailbox submits
# leaves with its primary address as envelope sender (and From:).
load lib/root

recompile() {
	rm -f "$BH_ROOT/cdb/.compiled"
	config_make
}

setup() {
	root_new
	cat >> "$BH_ROOT/cdb/domains" <<-'EOF'
	seattle.example.com  type=authoritative
	policy seattle  filter=group:seattle addresses=%u@seattle.example.com
	                priority=10 primary=%u@seattle.example.com rewrite-from=yes
	policy everyone addresses=%g.%s@example.com priority=1
	                primary=%g.%s@example.com
	EOF
	cat >> "$BH_ROOT/cdb/directory" <<-'EOF'
	mailbox sfine   addresses=sfine@example.com name="Suzan Fine"
	mailbox tb      addresses=tb@example.com name="Ted Bremmer"
	group   seattle addresses=seattle@example.com members=sfine
	EOF
	recompile
}

@test "a generated proxy address delivers to its mailbox" {
	envelope_put incoming 'sender a@example.net' \
		'rcpt sfine@seattle.example.com state=new' \
		'rcpt ted.bremmer@example.com state=new'
	run bh-categorize -1
	assert_success
	run cat "$BH_ROOT"/spool/route/new/*
	assert_line 'rcpt sfine@seattle.example.com state=local box=sfine'
	assert_line 'rcpt ted.bremmer@example.com state=local box=tb'
}

@test "mail from bh-inject by a local mailbox leaves with the primary address as sender" {
	id=$(envelope_put incoming "sender tb@$(hostname)" 'submitter tb' \
		'rcpt b@example.net state=new')
	run bh-categorize -1
	assert_success
	run cat "$BH_ROOT/spool/route/new/$id"
	assert_line 'sender ted.bremmer@example.com'
	assert_line "original-sender tb@$(hostname)"
	# this policy does not rewrite From: the content is the same file
	[ -e "$BH_ROOT/spool/msg/$id" ]
}

@test "an authenticated sender is rewritten, and From: too when the policy says so" {
	printf 'From: "Suzan" <sfine@example.com>\r\nSubject: hi\r\n\r\nbody\r\n' \
		> "$BATS_TEST_TMPDIR/msg"
	id=$(envelope_put incoming 'sender sfine@example.com' 'auth sfine@example.com' \
		'rcpt b@example.net state=new' 'rcpt tb@example.com state=new' \
		< "$BATS_TEST_TMPDIR/msg")
	run bh-categorize -1
	assert_success
	[ ! -e "$BH_ROOT/spool/msg/$id" ]
	run cat "$BH_ROOT/spool/route/new/$id.f"
	assert_line 'sender sfine@seattle.example.com'
	assert_line 'rcpt b@example.net state=remote'
	assert_line 'rcpt tb@example.com state=local box=tb'
	assert_line "size $(stat -c %s "$BH_ROOT/spool/msg/$id.f")"
	assert_equal "$(cat "$BH_ROOT/spool/msg/$id.f")" \
		"$(printf 'From: "Suzan" <sfine@seattle.example.com>\r\nSubject: hi\r\n\r\nbody\r\n')"
}

@test "a sender that is not the submitter's own address is left alone" {
	id=$(envelope_put incoming 'sender list-bounces@lists.example.net' \
		'auth sfine' 'rcpt b@example.net state=new')
	run bh-categorize -1
	assert_success
	run cat "$BH_ROOT/spool/route/new/$id"
	assert_line 'sender list-bounces@lists.example.net'
	refute_line --partial original-sender
}

@test "mail arriving from outside keeps its sender" {
	id=$(envelope_put incoming 'sender sfine@example.com' 'peer 127.0.0.9' \
		'rcpt tb@example.com state=new')
	run bh-categorize -1
	assert_success
	run cat "$BH_ROOT/spool/route/new/$id"
	assert_line 'sender sfine@example.com'
}
