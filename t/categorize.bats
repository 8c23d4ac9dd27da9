# t/categorize.bats — bh-categorize: the directory, recipient policies,
# groups, contacts, aliases, restrictions and their outcomes in spool/route
# and spool/ndr.
load lib/root

# Compiles the changed sources. The stamp goes first: a change made in the
# same clock tick as the last compilation would look up to date to make.
recompile() {
	rm -f "$BH_ROOT/cdb/.compiled"
	config_make
}

setup() {
	root_new
	cat >> "$BH_ROOT/cdb/domains" <<-'EOF'
	shared.example    type=shared
	EOF
	cat >> "$BH_ROOT/cdb/directory" <<-'EOF'
	mailbox sfine     addresses=sfine@example.com,suzan.fine@example.com
	                  name="Suzan Fine"
	mailbox small     addresses=small@example.com max-size=1K
	mailbox boss      addresses=boss@example.com accept-from=sfine,@partner.test
	mailbox picky     addresses=picky@example.com reject-from=@spam.test
	mailbox vip       addresses=vip@example.com accept-from=outer
	group   outer     members=inner
	group   inner     members=demo,outer
	contact away      addresses=away@example.com target=back@example.com
	alias   back      addresses=back@example.com target=away
	contact unixuser  addresses=unix.user@example.com target=uu@unix.example.net
	alias   pm        addresses=pm@example.com target=sfine@example.com
	alias   loop1     addresses=loop1@example.com target=loop2@example.com
	alias   loop2     addresses=loop2@example.com target=loop1@example.com
	group   sales     addresses=sales@example.com
	                  members=sfine,demo,emea,tb@contoso.test
	group   emea      addresses=emea@example.com
	                  members=sales,postmaster,demo@example.com,unixuser
	group   managers  addresses=managers@example.com members=sfine,demo
	                  accept-from=sfine
	group   partial   addresses=partial@example.com
	                  members=demo,ghost@example.com
	EOF
	recompile
}

# The one envelope in a queue's new/ (fails when there is not exactly one).
only() {
	local files=("$BH_ROOT"/spool/$1/new/*)
	[ "${#files[@]}" -eq 1 ] && [ -f "${files[0]}" ] || {
		echo "expected one envelope in spool/$1/new: ${files[*]}" >&2
		return 1
	}
	cat "${files[0]}"
}

categorize() {
	run bh-categorize -1
	assert_success
}

@test "a mailbox address becomes a local delivery under the same name" {
	id=$(envelope_put incoming 'sender a@example.net' 'size 30' \
		'rcpt demo@example.com state=new')
	categorize
	run cat "$BH_ROOT/spool/route/new/$id"
	assert_line 'rcpt demo@example.com state=local box=demo'
	assert_line 'sender a@example.net'
	[ -f "$BH_ROOT/spool/msg/$id" ]
	assert_equal "$(queue_count incoming)" 0
	assert_equal "$(queue_count ndr)" 0
	grep -q "event=expanded id=$id .*rcpt=demo@example.com" "$BH_ROOT"/log/track/*
}

@test "an alias resolves to its target mailbox" {
	envelope_put incoming 'sender a@example.net' 'rcpt pm@example.com state=new'
	categorize
	run only route
	assert_line 'rcpt sfine@example.com orcpt=rfc822;pm@example.com state=local box=sfine'
}

@test "an unknown local part of an authoritative domain fails 5.1.1 into spool/ndr" {
	id=$(envelope_put incoming 'sender a@example.net' \
		'rcpt nobody@example.com state=new' 'rcpt demo@example.com state=new')
	categorize
	run only ndr
	assert_line 'kind failure'
	assert_line 'rcpt nobody@example.com state=failed code=5.1.1 reason="550 5.1.1 <nobody@example.com>: recipient not found"'
	refute_line --partial 'demo@example.com'
	run only route
	assert_line 'rcpt demo@example.com state=local box=demo'
	refute_line --partial 'nobody'
	grep -q "event=failed id=$id .*rcpt=nobody@example.com code=5.1.1" "$BH_ROOT"/log/track/*
}

@test "a message whose every recipient fails goes only to spool/ndr" {
	id=$(envelope_put incoming 'sender a@example.net' 'rcpt x@example.com state=new')
	categorize
	assert_equal "$(queue_count route)" 0
	assert_equal "$(queue_count incoming)" 0
	run only ndr
	assert_line --partial 'code=5.1.1'
	[ ! -e "$BH_ROOT/spool/msg/$id" ]
}

@test "an unknown local part of a shared domain is routed on, of another domain too" {
	envelope_put incoming 'sender a@example.net' \
		'rcpt someone@shared.example state=new' 'rcpt b@example.net state=new'
	categorize
	run only route
	assert_line 'rcpt someone@shared.example state=remote'
	assert_line 'rcpt b@example.net state=remote'
	assert_equal "$(queue_count ndr)" 0
}

@test "settings unresolved-host forwards unknown recipients of authoritative domains" {
	echo 'unresolved-host [127.0.0.9]:2525' >> "$BH_ROOT/cdb/settings"
	recompile
	envelope_put incoming 'sender a@example.net' 'rcpt nobody@example.com state=new' \
		'rcpt demo@example.com state=new'
	categorize
	run only route
	assert_line 'rcpt nobody@example.com state=remote relay-host=[127.0.0.9]:2525'
	assert_line 'rcpt demo@example.com state=local box=demo'
	assert_equal "$(queue_count ndr)" 0
}

@test "two addresses of one mailbox deliver once" {
	envelope_put incoming 'sender a@example.net' 'rcpt sfine@example.com state=new' \
		'rcpt Suzan.Fine@example.com state=new' 'rcpt pm@example.com state=new'
	categorize
	run only route
	assert_equal "$(grep -c '^rcpt' <<<"$output")" 1
	assert_line 'rcpt sfine@example.com state=local box=sfine'
}

@test "nested groups with a cycle expand to each final recipient once" {
	id=$(envelope_put incoming 'sender a@example.net' 'rcpt sales@example.com state=new')
	categorize
	run only route
	assert_equal "$(grep -c '^rcpt' <<<"$output")" 5
	assert_line 'rcpt sfine@example.com orcpt=rfc822;sales@example.com state=local box=sfine'
	assert_line 'rcpt demo@example.com orcpt=rfc822;sales@example.com state=local box=demo'
	assert_line 'rcpt postmaster@example.com orcpt=rfc822;sales@example.com state=local box=postmaster'
	assert_line 'rcpt uu@unix.example.net orcpt=rfc822;sales@example.com state=remote'
	assert_line 'rcpt tb@contoso.test orcpt=rfc822;sales@example.com state=remote'
	refute_line --partial 'rcpt sales@'
	assert_equal "$(queue_count ndr)" 0
	grep -q "event=expanded id=$id .*status=\"group sales already expanded" "$BH_ROOT"/log/track/*
}

@test "a group whose one member is missing still delivers to the rest" {
	envelope_put incoming 'sender a@example.net' 'rcpt partial@example.com state=new'
	categorize
	run only route
	assert_line 'rcpt demo@example.com orcpt=rfc822;partial@example.com state=local box=demo'
	run only ndr
	assert_line --partial 'rcpt ghost@example.com orcpt=rfc822;partial@example.com state=failed code=5.1.1'
}

@test "a contact sends the mail to its target outside" {
	envelope_put incoming 'sender a@example.net' 'rcpt unix.user@example.com state=new notify=FAILURE'
	categorize
	run only route
	assert_line 'rcpt uu@unix.example.net notify=FAILURE orcpt=rfc822;unix.user@example.com state=remote'
}

@test "a forwarding loop of aliases fails 5.4.6" {
	envelope_put incoming 'sender a@example.net' 'rcpt loop1@example.com state=new'
	categorize
	assert_equal "$(queue_count route)" 0
	run only ndr
	assert_line --regexp '^rcpt loop1@example.com .*state=failed code=5.4.6 reason="554 5.4.6 <loop1@example.com>: forwarding loop'
}

@test "a group restricted to some senders refuses the others with 5.7.1" {
	envelope_put incoming 'sender a@example.net' 'rcpt managers@example.com state=new'
	categorize
	assert_equal "$(queue_count route)" 0
	run only ndr
	assert_line 'rcpt managers@example.com state=failed code=5.7.1 reason="550 5.7.1 <managers@example.com>: sender not allowed to send to this recipient"'

	rm -f "$BH_ROOT"/spool/ndr/new/*
	envelope_put incoming 'sender Suzan.Fine@example.com' 'rcpt managers@example.com state=new'
	categorize
	run only route
	assert_line 'rcpt demo@example.com orcpt=rfc822;managers@example.com state=local box=demo'
	assert_equal "$(queue_count ndr)" 0
}

@test "mailbox restrictions by sender: accept-from names and domains, reject-from domains" {
	envelope_put incoming 'sender x@partner.test' 'rcpt boss@example.com state=new' \
		'rcpt picky@example.com state=new'
	envelope_put incoming 'sender y@mail.spam.test' 'rcpt boss@example.com state=new' \
		'rcpt picky@example.com state=new'
	categorize
	run cat "$BH_ROOT"/spool/route/new/*
	assert_line 'rcpt boss@example.com state=local box=boss'
	assert_line 'rcpt picky@example.com state=local box=picky'
	assert_equal "$(grep -c '^rcpt' <<<"$output")" 2
	run cat "$BH_ROOT"/spool/ndr/new/*
	assert_line 'sender y@mail.spam.test'
	assert_line --regexp '^rcpt boss@example.com state=failed code=5.7.1 '
	assert_line --regexp '^rcpt picky@example.com state=failed code=5.7.1 '
}

@test "a message too large for one recipient fails 5.2.3 for that one only" {
	head -c 3000 /dev/zero | tr '\0' 'x' > "$BATS_TEST_TMPDIR/big"
	envelope_put incoming 'sender a@example.net' 'size 3000' \
		'rcpt small@example.com state=new' 'rcpt demo@example.com state=new' \
		< "$BATS_TEST_TMPDIR/big"
	categorize
	run only route
	assert_line 'rcpt demo@example.com state=local box=demo'
	refute_line --partial small
	run only ndr
	assert_line 'rcpt small@example.com state=failed code=5.2.3 reason="552 5.2.3 <small@example.com>: message too large for this recipient (3000 bytes, limit 1024)"'
}

@test "postmaster of an accepted domain always reaches the postmaster" {
	envelope_put incoming 'sender a@example.net' 'rcpt PostMaster@localhost state=new'
	categorize
	run only route
	assert_line --regexp '^rcpt PostMaster@localhost .*state=local box=postmaster'
}

@test "a changed directory is used without a restart" {
	envelope_put incoming 'sender a@example.net' 'rcpt newbie@example.com state=new'
	categorize
	run only ndr
	assert_line --partial 'code=5.1.1'
	echo 'mailbox newbie addresses=newbie@example.com' >> "$BH_ROOT/cdb/directory"
	recompile
	envelope_put incoming 'sender a@example.net' 'rcpt newbie@example.com state=new'
	categorize
	run only route
	assert_line 'rcpt newbie@example.com state=local box=newbie'
}

@test "a group asked for NOTIFY=SUCCESS reports expanded; its members lose SUCCESS" {
	envelope_put incoming 'sender sfine@example.com' \
		'rcpt managers@example.com state=new notify=SUCCESS,FAILURE'
	categorize
	run only route
	assert_line 'rcpt demo@example.com notify=FAILURE orcpt=rfc822;managers@example.com state=local box=demo'
	assert_line 'rcpt sfine@example.com notify=FAILURE orcpt=rfc822;managers@example.com state=local box=sfine'
	refute_line --partial 'rcpt managers@'
	run only ndr
	assert_line 'kind expanded'
	assert_line 'rcpt managers@example.com state=expanded notify=SUCCESS,FAILURE code=2.1.5 reason="250 2.1.5 <managers@example.com>: expanded to 2 recipients"'
}

@test "the bare address postmaster reaches the postmaster; another bare name fails 5.1.3" {
	envelope_put incoming 'sender a@example.net' 'rcpt postmaster state=new' \
		'rcpt someone state=new'
	categorize
	run only route
	assert_line 'rcpt postmaster@example.com orcpt=rfc822;postmaster state=local box=postmaster'
	run only ndr
	assert_line 'rcpt someone state=failed code=5.1.3 reason="501 5.1.3 <someone>: the address has no domain"'
}

@test "accept-from a group admits its members, nested groups included" {
	envelope_put incoming 'sender demo@localhost' 'rcpt vip@example.com state=new'
	envelope_put incoming 'sender sfine@example.com' 'rcpt vip@example.com state=new'
	categorize
	run only route
	assert_line 'sender demo@localhost'
	assert_line 'rcpt vip@example.com state=local box=vip'
	run only ndr
	assert_line 'sender sfine@example.com'
	assert_line --regexp '^rcpt vip@example.com state=failed code=5.7.1 '
}

@test "a contact whose target comes back to it is a forwarding loop (5.4.6)" {
	envelope_put incoming 'sender a@example.net' 'rcpt away@example.com state=new' \
		'rcpt demo@example.com state=new'
	categorize
	run only route
	assert_line 'rcpt demo@example.com state=local box=demo'
	refute_line --partial away
	run only ndr
	assert_line --regexp '^rcpt away@example.com state=failed code=5.4.6 reason="554 5.4.6 <away@example.com>: forwarding loop: contact away leads back to itself"'
}
