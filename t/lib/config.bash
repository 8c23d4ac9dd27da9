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
