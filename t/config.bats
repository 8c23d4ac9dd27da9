# t/config.bats — bh-config, cdb/Makefile and bh-passwd.
load lib/root
load lib/config

setup() { root_new; }

@test "the default configuration compiles into the documented layout" {
	assert_equal "$(cdb_value directory addr:demo@example.com)" "mailbox|demo|"
	assert_equal "$(cdb_value directory addr:root@localhost)" "alias|root|"
	assert_equal "$(cdb_attr directory mailbox:demo primary)" "demo@example.com"
	assert_equal "$(cdb_value directory mailboxes)" "postmaster|demo|"
	assert_equal "$(cdb_value domains domain:example.com)" "type|authoritative|"
	assert_equal "$(cdb_value domains domains)" "example.com|localhost|"
	assert_equal "$(cdb_attr servers server:default listen)" "127.0.0.1:2525"
	assert_equal "$(cdb_value servers servers)" "default|"
	assert_equal "$(cdb_value settings retry)" "10m,10m,10m,15m"
	[ -f "$BH_ROOT/cdb/connectors.cdb" ] && [ -f "$BH_ROOT/cdb/filters.cdb" ]
}

@test "a bad line in directory fails make with directory:LINE and keeps every old .cdb" {
	before=$(cdb_sums)
	printf 'mailbox bad addresses=bad@example.com quota=lots\n' | cfg_add directory
	printf 'expire 3d\n' | cfg_add settings
	config_fails
	line=$(wc -l < "$BH_ROOT/cdb/directory")
	assert_line "directory:$line: mailbox bad: quota: \"lots\" is not a size (N, NK, NM or NG)"
	assert_equal "$(cdb_sums)" "$before"
	run cdb -q "$BH_ROOT/cdb/directory.cdb" addr:bad@example.com
	assert_failure
	assert_equal "$(cdb_value settings expire)" "2d"
	ls "$BH_ROOT/cdb" | grep -v tmp >/dev/null
	[ -z "$(ls "$BH_ROOT"/cdb/*.tmp 2>/dev/null)" ]
}

@test "a later settings line overrides an earlier one" {
	printf 'expire 3d\n' | cfg_add settings
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	assert_equal "$(cdb_value settings expire)" "3d"
}

@test "after the error is fixed the next make compiles the pending changes" {
	printf 'expire 3d\n' | cfg_add settings
	printf 'mailbox bad quota=lots\n' | cfg_add directory
	config_fails
	sed -i 's/quota=lots/quota=1M/' "$BH_ROOT/cdb/directory"
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	assert_equal "$(cdb_value settings expire)" "3d"
	assert_equal "$(cdb_attr directory mailbox:bad quota)" "1M"
}

@test "every error of every file is printed, each as FILE:LINE: message" {
	printf 'bogus-key 1\n' | cfg_add settings
	printf 'mailbox x frob=1\n' | cfg_add directory
	printf 'c1 cost=1\n' | cfg_add connectors
	config_fails
	assert_line "settings:$(wc -l < "$BH_ROOT/cdb/settings"): unknown setting bogus-key"
	assert_line "directory:$(wc -l < "$BH_ROOT/cdb/directory"): mailbox x: unknown attribute frob"
	assert_line "connectors:$(wc -l < "$BH_ROOT/cdb/connectors"): connector c1: address-space= is missing"
	assert_line "bh-config: 3 errors, nothing written"
}

@test "syntax errors name their line" {
	cfg_set directory <<'EOF2'
  addresses=a@example.com
mailbox a name="unterminated
mailbox b name="x"y
mailbox c name="ok" # a comment
	wrong-word
group   d addresses=d@example.com
	  members=a,
	  b
EOF2
	printf 'mailbox e name=x\001y\n' | cfg_add directory
	run bh-config -n "$BH_ROOT/cdb/directory"
	assert_equal "$status" 100
	assert_line "directory:1: indented line outside a record (a record starts in column 0)"
	assert_line "directory:2: unterminated quoted value"
	assert_line "directory:3: text right after a quoted value (put a space between)"
	assert_line "directory:5: expected name=value after the first attribute"
	assert_line "directory:9: control character in line"
}

@test "a line longer than 65536 bytes is refused, and the rest still checked" {
	{ printf 'mailbox long name='; head -c 70000 /dev/zero | tr '\0' x; printf '\n'
	  printf 'mailbox next quota=big\n'; } | cfg_set directory
	run bh-config -n "$BH_ROOT/cdb/directory"
	assert_equal "$status" 100
	assert_line "directory:1: line too long (the limit is 65536 bytes)"
	assert_line "directory:2: mailbox next: quota: \"big\" is not a size (N, NK, NM or NG)"
}

@test "comments, quotes, empty lists and continued lists are read as documented" {
	cfg_set servers <<'EOF2'
# a comment
default listen=127.0.0.1:2525 relay-from= banner="Hello # not a comment"   # comment
	max-size=10M
EOF2
	cfg_set directory <<'EOF2'
mailbox a addresses=a@example.com
mailbox b addresses=b@example.com
group   g addresses=g@example.com members=a
        members=b,x@example.net
EOF2
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	assert_equal "$(cdb_value servers server:default)" "listen|127.0.0.1:2525|relay-from||banner|Hello # not a comment|max-size|10M|"
	assert_equal "$(cdb_attr directory group:g members)" "a,b,x@example.net"
}

@test "value types are checked: sizes, times, booleans, enumerations, addresses" {
	cfg_set servers <<'EOF2'
default listen=127.0.0.1:99999 tls=maybe relay-from=10.0.0.0/33 vrfy=perhaps
	max-size=10Q timeout=5x auth=plain,kerberos
EOF2
	printf 'postmaster not-an-address\nretry 10m,,5m\nhostname bad_host!\n' | cfg_add settings
	config_fails
	assert_line 'servers:1: server default: listen: "127.0.0.1:99999" is not IP:PORT'
	assert_line 'servers:1: server default: tls: "maybe" is not one of off|optional|required'
	assert_line 'servers:1: server default: relay-from: "10.0.0.0/33" is not IP, IP/BITS or DOMAIN (a name beginning with a digit reads as an address)'
	assert_line 'servers:1: server default: vrfy: "perhaps" is not yes or no'
	assert_line 'servers:2: server default: max-size: "10Q" is not a size (N, NK, NM or NG)'
	assert_line 'servers:2: server default: timeout: "5x" is not a time (N, Ns, Nm, Nh or Nd)'
	assert_line 'servers:2: server default: auth: "kerberos" is not one of anonymous|plain|login'
	n=$(wc -l < "$BH_ROOT/cdb/settings")
	assert_line "settings:$((n - 2)): postmaster: \"not-an-address\" is not an address (local@domain)"
	assert_line "settings:$((n - 1)): retry: empty item in list"
	assert_line "settings:$n: hostname: \"bad_host!\" is not a host name"
}

@test "tls=required without a certificate is refused" {
	printf 'tls1 listen=127.0.0.1:2600 tls=required\n' | cfg_add servers
	config_fails
	assert_line "servers:$(wc -l < "$BH_ROOT/cdb/servers"): server tls1: tls=required needs cert= and key="
}

@test "an address claimed by two recipients is refused (5.1.4)" {
	printf 'contact c addresses=Demo@Example.com target=x@example.net\n' | cfg_add directory
	config_fails
	assert_line "directory:$(wc -l < "$BH_ROOT/cdb/directory"): contact c: address demo@example.com already belongs to mailbox demo (line 5)"
}

@test "a name used twice in the directory is refused" {
	printf 'group demo members=postmaster\n' | cfg_add directory
	config_fails
	assert_line "directory:$(wc -l < "$BH_ROOT/cdb/directory"): name demo already used by mailbox demo at line 5"
}

@test "alias and contact targets and group members must be addresses or directory names" {
	cfg_add directory <<'EOF2'
alias   a1 addresses=a1@example.com target=nobody
contact c1 addresses=c1@example.com target=also-nobody
group   g1 addresses=g1@example.com members=demo,ghost,x@example.net
alias   a2 addresses=a2@example.com target=demo
EOF2
	config_fails
	n=$(wc -l < "$BH_ROOT/cdb/directory")
	assert_line "directory:$((n - 3)): alias a1: target: nobody is not an address or a directory name"
	assert_line "directory:$((n - 2)): contact c1: target: also-nobody is not an address or a directory name"
	assert_line "directory:$((n - 1)): group g1: members: ghost is not an address or a directory name"
	refute_line --partial "alias a2"
}

@test "nested groups with a cycle compile" {
	cfg_add directory <<'EOF2'
group g1 addresses=g1@example.com members=demo,g2
group g2 addresses=g2@example.com members=postmaster,g1
EOF2
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	assert_equal "$(cdb_value directory addr:g2@example.com)" "group|g2|"
	assert_equal "$(cdb_value directory groups)" "g1|g2|"
}

@test "a policy domain equal to settings hostname or a server's host name is refused (5.4.8)" {
	printf 'hostname mail.example.com\n' | cfg_add settings
	printf 'relay listen=127.0.0.1:2601 hostname=mx.example.com\n' | cfg_add servers
	cfg_add domains <<'EOF2'
policy p1 addresses=%u@mail.example.com
policy p2 addresses=%u@example.com,%u@MX.example.com
EOF2
	config_fails
	n=$(wc -l < "$BH_ROOT/cdb/domains")
	assert_line "domains:$((n - 1)): policy p1: domain mail.example.com is the host name of settings hostname (5.4.8: a policy domain must not equal a server's FQDN)"
	assert_line "domains:$n: policy p2: domain MX.example.com is the host name of server relay (5.4.8: a policy domain must not equal a server's FQDN)"
}

@test "policies generate proxy addresses; the highest priority gives the primary" {
	cfg_add directory <<'EOF2'
mailbox sfine   name="Suzan Fine"
mailbox sfine2  name="Suzan Fine" addresses=second@example.com
mailbox tb      name="Ted Bremmer" department=Sales
mailbox solo    name="Cher"
group   seattle members=sub
group   sub     members=tb,seattle
EOF2
	cfg_add domains <<'EOF2'
policy default addresses=%u@example.com,%g.%s@example.com priority=1
policy seattle filter=group:seattle addresses=%u@seattle.example.com
               priority=10 rewrite-from=yes
policy sales   filter=attr:department=sales addresses=%i%s@sales.example.com
               primary=%i%s@sales.example.com priority=5
EOF2
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	assert_equal "$(cdb_attr directory mailbox:sfine addresses)" "sfine@example.com,suzan.fine@example.com"
	assert_equal "$(cdb_attr directory mailbox:sfine primary)" "sfine@example.com"
	assert_equal "$(cdb_attr directory mailbox:sfine2 addresses)" "second@example.com,sfine2@example.com,suzan.fine2@example.com"
	assert_equal "$(cdb_attr directory mailbox:tb addresses)" "tb@seattle.example.com,tbremmer@sales.example.com,tb@example.com,ted.bremmer@example.com"
	assert_equal "$(cdb_attr directory mailbox:tb primary)" "tb@seattle.example.com"
	assert_equal "$(cdb_attr directory mailbox:tb rewrite-from)" "yes"
	assert_equal "$(cdb_attr directory mailbox:solo addresses)" "solo@example.com"
	assert_equal "$(cdb_attr directory mailbox:demo primary)" "demo@example.com"
	assert_equal "$(cdb_value directory addr:suzan.fine2@example.com)" "mailbox|sfine2|"
	assert_equal "$(cdb_value domains policies)" "default|seattle|sales|"
}

@test "a policy filter naming no group is refused" {
	printf 'policy p filter=group:nosuch addresses=%%u@example.com\n' | cfg_add domains
	config_fails
	assert_line "domains:$(wc -l < "$BH_ROOT/cdb/domains"): policy p: filter: no group nosuch in directory"
}

@test "a connector source must name a server" {
	printf 'out address-space=* source=default,ghost\n' | cfg_add connectors
	config_fails
	assert_line "connectors:3: connector out: source: no server ghost in servers"
}

@test "make rebuilds only what changed, and what a changed source feeds" {
	# sources edited long ago (root_new dates the stamp back 2 s)
	touch -d '-5 seconds' "$BH_ROOT"/cdb/{settings,servers,domains,directory,connectors,filters}
	for f in settings servers domains directory connectors filters; do
		eval "t_$f=$(mtime "$BH_ROOT/cdb/$f.cdb")"
	done
	run make -C "$BH_ROOT/cdb"
	assert_success
	refute_output --partial bh-config
	printf 'mailbox new1 addresses=new1@example.com\n' | cfg_add directory
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	[ "$(mtime "$BH_ROOT/cdb/directory.cdb")" != "$t_directory" ]
	# domains.cdb is checked against directory (policy filter groups)
	[ "$(mtime "$BH_ROOT/cdb/domains.cdb")" != "$t_domains" ]
	t_domains=$(mtime "$BH_ROOT/cdb/domains.cdb")
	for f in settings servers connectors filters; do
		eval "old=\$t_$f"
		assert_equal "$(mtime "$BH_ROOT/cdb/$f.cdb")" "$old"
	done
	t_directory=$(mtime "$BH_ROOT/cdb/directory.cdb")
	printf 'example.org type=shared\n' | cfg_add domains
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	[ "$(mtime "$BH_ROOT/cdb/directory.cdb")" != "$t_directory" ]
	[ "$(mtime "$BH_ROOT/cdb/domains.cdb")" != "$t_domains" ]
	assert_equal "$(mtime "$BH_ROOT/cdb/settings.cdb")" "$t_settings"
	t_directory=$(mtime "$BH_ROOT/cdb/directory.cdb")
	t_domains=$(mtime "$BH_ROOT/cdb/domains.cdb")
	printf 'hostname mail.example.com\n' | cfg_add settings
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	[ "$(mtime "$BH_ROOT/cdb/settings.cdb")" != "$t_settings" ]
	[ "$(mtime "$BH_ROOT/cdb/domains.cdb")" != "$t_domains" ]
	assert_equal "$(mtime "$BH_ROOT/cdb/directory.cdb")" "$t_directory"
	t_settings=$(mtime "$BH_ROOT/cdb/settings.cdb")
	rm "$BH_ROOT/cdb/filters.cdb"
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	[ -f "$BH_ROOT/cdb/filters.cdb" ]
	assert_equal "$(mtime "$BH_ROOT/cdb/settings.cdb")" "$t_settings"
	assert_equal "$(mtime "$BH_ROOT/cdb/directory.cdb")" "$t_directory"
}

@test "a rebuilt .cdb replaces the old one atomically: open readers keep the old, lookups see the new" {
	exec 7< "$BH_ROOT/cdb/directory.cdb"
	old=$(sha256sum < "$BH_ROOT/cdb/directory.cdb")
	printf 'mailbox fresh addresses=fresh@example.com\n' | cfg_add directory
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	assert_equal "$(cdb_value directory addr:fresh@example.com)" "mailbox|fresh|"
	assert_equal "$(sha256sum <&7)" "$old"
	exec 7<&-
}

@test "bh-config without arguments compiles the stale sources of \$BH_ROOT/cdb" {
	printf 'mailbox plain addresses=plain@example.com\n' | cfg_add directory
	t_settings=$(mtime "$BH_ROOT/cdb/settings.cdb")
	run bh-config
	assert_success
	assert_equal "$(cdb_value directory addr:plain@example.com)" "mailbox|plain|"
	assert_equal "$(mtime "$BH_ROOT/cdb/settings.cdb")" "$t_settings"
}

@test "bh-passwd prints a SHA-512 crypt hash that verifies and that bh-config accepts" {
	run sh -c 'printf "s3cret pass\n" | bh-passwd'
	assert_success
	hash=$output
	[[ $hash == '$6$'* ]]
	salt=$(printf '%s' "$hash" | cut -d'$' -f3)
	assert_equal "$(openssl passwd -6 -salt "$salt" 's3cret pass')" "$hash"
	other=$(printf 's3cret pass\n' | bh-passwd)
	[ "$other" != "$hash" ]
	printf 'mailbox pw addresses=pw@example.com password=%s\n' "$hash" | cfg_add directory
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	assert_equal "$(cdb_attr directory mailbox:pw password)" "$hash"
	run sh -c 'printf "" | bh-passwd'
	assert_equal "$status" 100
}

@test "a plain password in password= is refused" {
	printf 'mailbox pw password=secret\n' | cfg_add directory
	config_fails
	assert_line "directory:$(wc -l < "$BH_ROOT/cdb/directory"): mailbox pw: password: \"secret\" is not a crypt hash (make one with bh-passwd)"
}

@test "random bytes in every source are refused without a crash" {
	for f in settings servers domains directory connectors filters; do
		head -c 3000 /dev/urandom > "$BH_ROOT/cdb/$f"
	done
	run bh-config -n "$BH_ROOT/cdb/directory"
	assert_equal "$status" 100
}

@test "mail keeps flowing on the old configuration after a failed compile" {
	printf 'mailbox later addresses=later@example.com quota=lots\n' | cfg_add directory
	config_fails
	envelope_put incoming 'sender a@example.net' 'rcpt demo@example.com state=new' \
		'rcpt later@example.com state=new' >/dev/null
	run bh-categorize -1
	assert_success
	run cat "$BH_ROOT"/spool/route/new/*
	assert_line 'rcpt demo@example.com state=local box=demo'
	run cat "$BH_ROOT"/spool/ndr/new/*
	assert_line --regexp '^rcpt later@example.com state=failed .*code=5.1.1'
}

@test "a running stage sees a rebuilt directory.cdb without a restart" {
	bh-categorize 2>"$BATS_TEST_TMPDIR/categorize.log" &
	kill_on_teardown $!
	# a first message: the stage has the old directory.cdb open
	envelope_put incoming 'sender a@example.net' 'rcpt demo@example.com state=new' >/dev/null
	wait_until 10 queue_has route 1
	printf 'mailbox fresh addresses=fresh@example.com\n' | cfg_add directory
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	envelope_put incoming 'sender a@example.net' 'rcpt fresh@example.com state=new' >/dev/null
	wait_until 10 queue_has route 2
	run cat "$BH_ROOT"/spool/route/new/*
	assert_line 'rcpt demo@example.com state=local box=demo'
	assert_line 'rcpt fresh@example.com state=local box=fresh'
	assert queue_empty ndr
}

@test "a database gets the permissions of its source (password hashes stay private)" {
	chmod 600 "$BH_ROOT/cdb/directory"
	printf 'mailbox p2 addresses=p2@example.com\n' | cfg_add directory
	run make -s -C "$BH_ROOT/cdb"
	assert_success
	assert_equal "$(stat -c %a "$BH_ROOT/cdb/directory.cdb")" 600
	assert_equal "$(stat -c %a "$BH_ROOT/cdb/settings.cdb")" 644
}

@test "record shapes, names and the remaining value types are checked" {
	cfg_set settings <<'EOF2'
hostname
remote-port 70000
max-remote ten
dns 127.0.0.1:53,nameserver
smarthost [10.0.0.1]:25,bad..host
log-level smtp=max,*=loud
tracking-days 7w
EOF2
	cfg_set servers <<'EOF2'
default listen=127.0.0.1:2525 cert=/x.pem
default listen=127.0.0.1:2526
bad/name listen=127.0.0.1:2527
EOF2
	cfg_set domains <<'EOF2'
example.com type=authoritative
example.com type=shared
bad_domain! type=authoritative
sub.example.com type=owned
policy p1 addresses=%x@example.com
policy p2 addresses=%u@example.com filter=attr:shoesize=9
policy p3 addresses=%u@example.com filter=nobody
EOF2
	cfg_set directory <<'EOF2'
person x addresses=x@example.com
mailbox one two three four five
mailbox a name=A name=B
mailbox b accept-from=@@bad
mailbox Bad-Name! name=x
EOF2
	cfg_set connectors <<'EOF2'
c1 address-space=*,**.net route=dns smarthost=mx.example.com
c2 address-space=* auth=nopassword schedule="mon-fri 25:00-26:00"
c3 address-space=* accept-senders=<bad> cost=cheap
EOF2
	cfg_set filters <<'EOF2'
@contoso.com
@Contoso.COM
not an address
EOF2
	run bh-config -n "$BH_ROOT/cdb/settings"
	assert_equal "$status" 100
	assert_line 'settings:1: expected KEY VALUE (quote a value with spaces)'
	assert_line 'settings:2: remote-port: "70000" is not a port (1-65535)'
	assert_line 'settings:3: max-remote: "ten" is not a number'
	assert_line 'settings:4: dns: "nameserver" is not IP or IP:PORT'
	assert_line 'settings:5: smarthost: "bad..host" is not [IP]:PORT, [IP] or HOST[:PORT]'
	assert_line 'settings:6: log-level: "*=loud" is not LEVEL or CATEGORY=LEVEL (none, min, medium, max)'
	assert_line 'settings:7: tracking-days: "7w" is not a number of days (N or Nd)'
	assert_line 'servers:1: server default: cert= and key= go together'
	assert_line 'servers:2: server default already defined at line 1'
	assert_line "servers:3: bad name \"bad/name\" (use letters, digits, '.', '_' and '-')"
	assert_line 'domains:2: domain example.com already defined at line 1'
	assert_line 'domains:3: bad domain "bad_domain!"'
	assert_line 'domains:4: domain sub.example.com: type: "owned" is not one of authoritative|shared'
	assert_line 'domains:5: policy p1: addresses: "%x@example.com" is not an address pattern (%u, %g, %s, %i in the local part, then @domain)'
	assert_line 'domains:6: policy p2: filter: mailboxes have no attribute shoesize'
	assert_line 'domains:7: policy p3: filter: "nobody" is not all, group:NAME or attr:NAME=VALUE'
	assert_line 'directory:1: unknown kind "person" (mailbox, contact, group or alias)'
	assert_line 'directory:2: too many words (attributes are written name=value)'
	assert_line 'directory:3: mailbox a: name given twice'
	assert_line 'directory:4: mailbox b: accept-from: "@@bad" is not @DOMAIN, an address or a directory name'
	assert_line "directory:5: bad name \"Bad-Name!\" (use letters, digits, '.', '_' and '-')"
	assert_line 'connectors:1: connector c1: address-space: "**.net" is not *, *.DOMAIN or DOMAIN'
	assert_line 'connectors:1: connector c1: route=dns and smarthost= exclude each other'
	assert_line 'connectors:2: connector c2: auth: "nopassword" is not USER:PASSWORD'
	assert_line 'connectors:2: connector c2: schedule: "mon-fri 25:00-26:00" is not always, never or a list of [DAYS ]HH:MM-HH:MM'
	assert_line 'connectors:3: connector c3: accept-senders: "<bad>" is not <>, @DOMAIN, DOMAIN or an address'
	assert_line 'connectors:3: connector c3: cost: "cheap" is not a number'
	assert_line 'filters:2: filter @contoso.com already defined at line 1'
	assert_line 'filters:3: expected one @DOMAIN or ADDRESS per line'
}

@test "access lists take IPs, networks and domain names; connectors take tls-ca and rate=N/min" {
	cfg_set servers <<'EOF2'
default listen=127.0.0.1:2525 relay-from=10.0.0.0/8,::1,trusted.example,.corp.example
	allow-from=localhost,192.0.2.7 deny-from=bad.example,2001:db8::/32
EOF2
	cfg_set connectors <<'EOF2'
c1 address-space=* smarthost=[127.0.0.1] tls-ca=/etc/ssl/ca.pem rate=30/min
c2 address-space=*.b.test smarthost=[127.0.0.1] rate=5
EOF2
	run bh-config "$BH_ROOT/cdb/servers" "$BH_ROOT/cdb/connectors"
	assert_success
	assert_equal "$(cdb_attr servers server:default relay-from)" "10.0.0.0/8,::1,trusted.example,.corp.example"
	assert_equal "$(cdb_attr servers server:default allow-from)" "localhost,192.0.2.7"
	assert_equal "$(cdb_attr connectors connector:c1 tls-ca)" "/etc/ssl/ca.pem"
	assert_equal "$(cdb_attr connectors connector:c1 rate)" "30/min"
	cfg_set servers <<'EOF2'
default listen=127.0.0.1:2525 relay-from=10.0.0.300 allow-from=bad_name!
	deny-from=1und1.example,::1/129
EOF2
	cfg_set connectors <<'EOF2'
c1 address-space=* smarthost=[127.0.0.1] tls-ca= rate=30/hour
c2 address-space=* smarthost=[127.0.0.1] rate=/min
EOF2
	run bh-config -n "$BH_ROOT/cdb/servers"
	assert_equal "$status" 100
	local why='is not IP, IP/BITS or DOMAIN (a name beginning with a digit reads as an address)'
	assert_line "servers:1: server default: relay-from: \"10.0.0.300\" $why"
	assert_line "servers:1: server default: allow-from: \"bad_name!\" $why"
	assert_line "servers:2: server default: deny-from: \"1und1.example\" $why"
	assert_line 'connectors:1: connector c1: tls-ca: "" is not a path'
	assert_line 'connectors:1: connector c1: rate: "30/hour" is not a rate (N or N/min)'
	assert_line 'connectors:2: connector c2: rate: "/min" is not a rate (N or N/min)'
}

@test "reader limits: attribute names, attribute counts, NUL bytes" {
	{ printf 'mailbox a Name=x\n'
	  printf 'mailbox b %s=1\n' "$(head -c 80 /dev/zero | tr '\0' n)"
	  printf 'mailbox c'; for i in $(seq 1 33); do printf ' a%s=1' "$i"; done; printf '\n'
	  printf 'mailbox d name=x\0y\n'
	  printf 'mailbox e =value\n'; } | cfg_set directory
	run bh-config -n "$BH_ROOT/cdb/directory"
	assert_equal "$status" 100
	assert_line 'directory:1: bad attribute name "Name" (use a-z, 0-9 and -)'
	assert_line 'directory:2: attribute name too long'
	assert_line 'directory:3: too many attributes (the limit is 32)'
	assert_line 'directory:4: NUL byte in line'
	assert_line 'directory:5: attribute without a name'
}
