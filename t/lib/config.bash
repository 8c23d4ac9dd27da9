# t/lib/config.bash — helpers for t/config.bats.

CDB="$BH_ROOT/cdb"

# cfg_add FILE — appends standard input to the root's source FILE.
cfg_add() {
	cat >> "$BH_ROOT/cdb/$1"
}

# cfg_set FILE — replaces the root's source FILE with standard input.
cfg_set() {
	cat > "$BH_ROOT/cdb/$1"
}

# cdb_value DB KEY — the value of KEY in DB.cdb with NULs shown as '|'.
cdb_value() {
	cdb -q "$BH_ROOT/cdb/$1.cdb" "$2" | tr '\0' '|'
}

# cdb_attr DB KEY NAME — one attribute of a record blob.
cdb_attr() {
	cdb -q "$BH_ROOT/cdb/$1.cdb" "$2" | tr '\0' '\n' | sed -n "/^$3\$/{n;p;q}"
}

# Checksums of every compiled database, one line each.
cdb_sums() {
	(cd "$BH_ROOT/cdb" && sha256sum ./*.cdb)
}

# mtime in nanoseconds.
mtime() {
	stat -c %.9Y "$1" | tr -d .
}

# config_fails — make -C cdb fails; its output is in $output.
config_fails() {
	run make -s -C "$BH_ROOT/cdb"
	assert_failure
}

# queue_has QUEUE N — QUEUE holds N envelopes (for wait_until).
queue_has() {
	[ "$(queue_count "$1")" -eq "$2" ]
}

# config_big DIR — writes the benchmark configuration of the README into
# DIR (an existing cdb/ with the default sources): 100,000 mailboxes, 1,000
# groups of 500 members (each group also holding the one before), and two
# policies over every mailbox. Then: time bh-config DIR/directory ...
config_big() {
	python3 - "$1" <<'PY'
import random, sys
d = sys.argv[1]
random.seed(1)
with open(d + '/directory', 'w') as f:
    for i in range(100000):
        f.write(f'mailbox user{i} addresses=user{i}@example.com,u{i}@example.net\n'
                f'   name="Given{i} Surname{i}" quota=100M\n')
    for g in range(1000):
        members = ','.join(f'user{random.randrange(100000)}' for _ in range(500))
        f.write(f'group grp{g} addresses=grp{g}@example.com members={members}'
                + (f',grp{g - 1}' if g else '') + '\n')
with open(d + '/domains', 'w') as f:
    f.write('example.com type=authoritative\nexample.net\n'
            'policy all addresses=%g.%s@example.com,%u@example.org priority=1\n'
            'policy g5 filter=group:grp5 addresses=%u@seattle.example.com priority=10\n')
PY
}
