# t/readme.bats — the README documents the whole configuration language:
# every settings key and every attribute bh-config accepts (the spec tables
# of stages/config.c, or of lib/confspec.c once they live there) appears in
# README backquoted, as `NAME` or `NAME=...`.
load lib/root

# accepted — "TABLE NAME" for every entry of the spec tables, TABLE being
# settings, server, domain, policy, mailbox, contact, group, alias or
# connector.
accepted() {
	local f
	for f in "$TOP/stages/config.c" "$TOP/lib/confspec.c"; do
		[ -f "$f" ] || continue
		awk '/^(static )?const struct (conf)?spec [a-z_]+\[\] = \{/ {
			t = $0; sub(/\[\].*/, "", t); sub(/.* /, "", t)
			sub(/^confspec_/, "", t); sub(/_spec$/, "", t) }
		     t != "" && /^\t\{ "[a-z0-9-]+",/ { n = $2; gsub(/[",]/, "", n); print t, n }
		     /^};/ { t = "" }' "$f"
	done | sort -u
}

@test "readme: the spec tables can be read (the test would pass on nothing otherwise)" {
	run accepted
	assert_success
	assert_line 'settings hostname'
	assert_line 'server listen'
	assert_line 'connector address-space'
	assert_line 'mailbox password'
	[ "${#lines[@]}" -gt 80 ]
}

@test "readme: every settings key and attribute bh-config accepts is documented" {
	missing=$(accepted | while read -r table name; do
		grep -Eq "\`$name(\`|=)" "$TOP/README" || echo "$table $name"
	done)
	[ -z "$missing" ] || { echo "not in README (backquoted): $missing"; false; }
}

@test "readme: every source file bh-config compiles has its own part" {
	for f in settings servers domains directory connectors filters; do
		grep -q "^### $f " "$TOP/README"
	done
}

@test "readme: every example root of examples/ is described in the scenarios section" {
	sect=$(sed -n '/<!-- section: scenarios -->/,/<!-- end: scenarios -->/p' "$TOP/README")
	[ -n "$sect" ]
	for d in "$TOP"/examples/*/cdb "$TOP"/examples/*/*/cdb; do
		[ -d "$d" ] || continue
		d=${d#"$TOP"/}
		d=${d%/cdb}
		grep -qF "\`$d/\`" <<< "$sect" || { echo "$d/ not described"; false; }
	done
}

@test "readme: every program (stages/NAME.c) is described" {
	for f in "$TOP"/stages/*.c; do
		n=bh-$(basename "$f" .c)
		grep -Eq "(^|[^a-z-])$n([^a-z-]|\$)" "$TOP/README" || { echo "$n is not in README"; false; }
	done
}
