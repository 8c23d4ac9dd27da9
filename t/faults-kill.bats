# t/faults-kill.bats — every queue stage killed with SIGKILL at random
# moments under load, in a root run by bh-supervise (runsv restarts each
# stage a second later). Half of the mail is local, half goes through
# bh-remote to an SMTP sink, so bh-remote dies in the middle of SMTP
# transactions too. Every message answered 250 must arrive (in the Maildir
# or at the sink); a message may arrive twice (a stage killed after its
# hand-over but before removing its input redoes the work), and the
# duplicates are counted and shown, never a loss.
load lib/root
load lib/smtpd
load lib/dns
load lib/supervise
load lib/hardening

setup() {
	sv_root_new
	sed -i "s/^\(default .*\)$/\1 relay-from=127.0.0.0\/8/" "$BH_ROOT/cdb/servers"
	SINK_PORT=$(free_port)
	printf 'far address-space=far.test cost=1 smarthost=[127.0.0.1]:%s\n' \
		"$SINK_PORT" > "$BH_ROOT/cdb/connectors"
	config_make
}

teardown() { sv_teardown; root_teardown; }

# killer SECONDS — SIGKILLs a random queue stage every 0.1 to 0.6 s; the
# number of kills goes to $BATS_TEST_TMPDIR/kills.
killer() {
	local end=$(( $(date +%s) + $1 )) stages=(categorize route local remote ndr)
	local n=0 name pid
	while [ "$(date +%s)" -lt "$end" ]; do
		name=${stages[RANDOM % ${#stages[@]}]}
		pid=$(sv_stage_pid "$name")
		if [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; then
			n=$((n + 1))
		fi
		sleep "0.$(( RANDOM % 5 + 1 ))"
	done
	echo "$n" > "$BATS_TEST_TMPDIR/kills"
}

# seqs FILES... — the X-Seq of each message file, one per line.
seqs() {
	sed -n 's/^X-Seq: \([0-9]*\)\r\{0,1\}$/\1/p' "$@" 2>/dev/null | sort -n
}

local_seqs() { seqs "$BH_ROOT"/mailroot/demo/Maildir/new/*; }
sink_seqs() { seqs "$BATS_TEST_TMPDIR"/far/*.eml; }

# all_arrived — every accepted sequence number is in the Maildir or sink.
all_arrived() {
	[ -z "$(comm -23 <(sort -u "$BATS_TEST_TMPDIR/want-local") <(local_seqs | sort -u))" ] &&
	[ -z "$(comm -23 <(sort -u "$BATS_TEST_TMPDIR/want-far") <(sink_seqs | sort -u))" ]
}

@test "SIGKILL to any stage at any moment under load loses nothing (duplicates counted)" {
	sink_start far 127.0.0.1
	sv_start
	wait_until 30 sv_all_running
	killer 25 &
	local killer_pid=$!
	attack send "$SV_PORT" 1 120 3000 demo@example.com > "$BATS_TEST_TMPDIR/sent-local" &
	local a=$!
	attack send "$SV_PORT" 1001 120 3000 x@far.test > "$BATS_TEST_TMPDIR/sent-far"
	wait "$a"
	wait "$killer_pid"
	sed -n 's/^msg \([0-9]*\) 250_2.6.0$/\1/p' "$BATS_TEST_TMPDIR/sent-local" > "$BATS_TEST_TMPDIR/want-local"
	sed -n 's/^msg \([0-9]*\) 250_2.6.0$/\1/p' "$BATS_TEST_TMPDIR/sent-far" > "$BATS_TEST_TMPDIR/want-far"
	# bh-smtpd was never killed: every message was accepted
	assert_equal "$(wc -l < "$BATS_TEST_TMPDIR/want-local")" 120
	assert_equal "$(wc -l < "$BATS_TEST_TMPDIR/want-far")" 120
	[ "$(cat "$BATS_TEST_TMPDIR/kills")" -ge 20 ]
	wait_until 120 all_arrived
	for q in incoming route local remote; do
		wait_until 30 queue_empty "$q"
	done
	local dup_local dup_far
	dup_local=$(( $(local_seqs | wc -l) - $(local_seqs | sort -u | wc -l) ))
	dup_far=$(( $(sink_seqs | wc -l) - $(sink_seqs | sort -u | wc -l) ))
	echo "# kills $(cat "$BATS_TEST_TMPDIR/kills"), duplicates: local $dup_local, remote $dup_far" >&3
	# nothing arrived that was not sent
	assert_equal "$(local_seqs | sort -nu)" "$(sort -n "$BATS_TEST_TMPDIR/want-local")"
	assert_equal "$(sink_seqs | sort -nu)" "$(sort -n "$BATS_TEST_TMPDIR/want-far")"
	# a duplicate needs a kill between a hand-over (or the sink's 250) and
	# the removal of the input; bh-remote may have several transactions
	# in flight when it dies, so no tighter bound than "not every message"
	[ "$dup_local" -lt 120 ] && [ "$dup_far" -lt 120 ]
	assert_equal "$(records failure | wc -l)" 0
}
