# t/queue-race.bats — bh-queue actions racing a running stage lose and
# duplicate nothing: every message ends up exactly once in the Maildir, in
# the list of deleted ids, or still queued (frozen).
load lib/root
load lib/queue

setup() { root_new; }

# seq_put N SUB [MTIME] — queues a message for demo carrying X-Seq: N into
# spool/local/SUB (through tmp/, as a stage would), and records its id.
seq_put() {
	local id="$(date +%s%N | cut -c1-16)-$$-$1"
	printf 'Subject: race %s\r\nX-Seq: %s\r\n\r\nbody\r\n' "$1" "$1" > "$BH_ROOT/spool/msg/$id"
	printf 'sender a@example.com\nmsgid <race%s@example.com>\nrcpt demo@example.com state=local box=demo\n' \
	    "$1" > "$BH_ROOT/spool/local/tmp/$id"
	[ -z "${3:-}" ] || touch -d "@$3" "$BH_ROOT/spool/local/tmp/$id"
	mv "$BH_ROOT/spool/local/tmp/$id" "$BH_ROOT/spool/local/$2/$id"
	echo "$id $1" >> "$BATS_TEST_TMPDIR/ids"
	echo "$id"
}

local_idle() {
	[ -z "$(find "$BH_ROOT/spool/local/new" "$BH_ROOT/spool/local/retry" -type f)" ]
}

# One round of the race for message N, by kind:
#   new-delete new-freeze  act on an envelope bh-local may be delivering
#   due-retry              "retry" while bh-local releases the same entry
#   retry-freeze retry-delete retry-retry  act on a deferred envelope
race_one() {
	local n=$1 kind=$2 id now=$(date +%s)
	case $kind in
	new-delete)	id=$(seq_put $n new)
			bh-queue delete "$id" >> "$BATS_TEST_TMPDIR/deleted" 2>/dev/null || true ;;
	new-freeze)	id=$(seq_put $n new)
			bh-queue freeze "$id" >/dev/null 2>&1 || true ;;
	due-retry)	seq_put $n retry $now >/dev/null
			bh-queue retry >/dev/null 2>&1 || true ;;
	retry-freeze)	id=$(seq_put $n retry $((now + 3600)))
			bh-queue freeze "$id" >/dev/null 2>&1 || true ;;
	retry-delete)	id=$(seq_put $n retry $((now + 3600)))
			bh-queue delete "$id" >> "$BATS_TEST_TMPDIR/deleted" 2>/dev/null || true ;;
	retry-retry)	seq_put $n retry $((now + 3600)) >/dev/null
			bh-queue retry >/dev/null 2>&1 || true ;;
	esac
}

# race ROUNDS KIND... — runs ROUNDS rounds against a running bh-local,
# cycling through the kinds, then checks every message's fate.
race() {
	local rounds=$1 i places="$BATS_TEST_TMPDIR/places"
	shift
	local kinds=("$@")
	bh-local 2>"$BATS_TEST_TMPDIR/local.log" &
	kill_on_teardown $!
	: > "$BATS_TEST_TMPDIR/deleted"
	for i in $(seq 1 "$rounds"); do
		race_one "$i" "${kinds[$((i % ${#kinds[@]}))]}"
	done
	wait_until 30 local_idle
	# where each message ended, as "SEQ place" lines
	grep -h '^X-Seq: ' "$BH_ROOT"/mailroot/demo/Maildir/new/* 2>/dev/null |
	    awk '{ print $2, "maildir" }' > "$places"
	for f in "$BH_ROOT"/spool/local/frozen/*; do
		[ -e "$f" ] || continue
		sed -n 's/^msgid <race\([0-9]*\)@.*/\1 frozen/p' "$f" >> "$places"
	done
	sed -n 's|^deleted local/||p' "$BATS_TEST_TMPDIR/deleted" | while read -r id; do
		awk -v id="$id" '$1 == id { print $2, "deleted" }' "$BATS_TEST_TMPDIR/ids"
	done >> "$places"
	# nothing twice, nothing lost, and every outcome happened
	run bash -c "cut -d' ' -f1 '$places' | sort -n | uniq -c | awk '\$1 != 1'"
	assert_output ''
	assert_equal "$(cut -d' ' -f1 "$places" | sort -u | wc -l)" "$rounds"
	grep -q ' frozen$' "$places"
	grep -q ' deleted$' "$places"
	grep -q ' maildir$' "$places"
	run grep -c 'event=fatal' "$BATS_TEST_TMPDIR/local.log"
	assert_output 0
}

@test "200 deletes, freezes and retries of deferred mail racing bh-local lose and duplicate nothing" {
	race 200 due-retry retry-freeze retry-delete retry-retry due-retry
}

@test "200 deletes, freezes and retries racing bh-local's deliveries lose and duplicate nothing" {
	# A stage works on new/NAME in place; only its flock on the envelope
	# (spool_lock, taken in stage_read) keeps bh-queue from taking an
	# envelope the stage is delivering at that moment.
	race 200 new-delete new-freeze due-retry retry-freeze retry-delete retry-retry
}
