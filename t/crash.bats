# t/crash.bats — the spine's acceptance under supervision: a supervised root
# delivers injected mail within a second, and no message is lost while its
# stages are killed at random (runsv restarts them).
load lib/root
load lib/supervise

setup() { sv_root_new; }
teardown() { sv_teardown; root_teardown; }

# Maildir of demo: "SUBJECT COUNT" per distinct Subject, read with Python's
# mailbox module as a mail client would.
crash_subjects() {
	python3 - "$BH_ROOT/mailroot/demo/Maildir" <<-'EOF'
	import collections, mailbox, sys
	box = mailbox.Maildir(sys.argv[1], factory=None, create=False)
	count = collections.Counter(m['Subject'] for m in box)
	for subject, n in sorted(count.items()):
	    print(f'{subject}\t{n}')
	EOF
}

# Until $BATS_TEST_TMPDIR/stop exists: SIGKILL a random pipeline stage every
# 0.5 s (each stage about every 1.5 s; runsv waits 1 s before restarting a
# stage that ran less than a second, so faster killing only stalls the
# pipeline), checking the pid is still that stage (runsv's pid file may be
# stale).
crash_killer() {
	local names=(categorize route local) name pid
	while [ ! -e "$BATS_TEST_TMPDIR/stop" ]; do
		name=${names[RANDOM % 3]}
		pid=$(sv_stage_pid "$name")
		if [ -n "$pid" ] &&
		    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "bh-$name" ] &&
		    kill -KILL "$pid" 2>/dev/null; then
			echo "$name" >> "$BATS_TEST_TMPDIR/kills"
		fi
		sleep 0.5
	done
}

# What is where, for a test that failed.
crash_dump() {
	local s
	find "$BH_ROOT/spool" -type f | grep -v /msg/ | head -20
	for s in $(sv_services); do sv status "$BH_ROOT/service/$s"; done
	tail -n 5 "$BH_ROOT"/log/*/current
	cat "$BATS_TEST_TMPDIR/supervise.log"
}

# The envelopes left in the queues on the way to the Maildir whose content
# is gone: a message that was delivered, and then handed on once more by a
# stage killed before it removed its input.
crash_ghosts() {
	local f
	for f in $(find "$BH_ROOT"/spool/{incoming,route,local} -path '*/tmp' \
			-prune -o -type f -print); do
		[ -e "$BH_ROOT/spool/msg/${f##*/}" ] || echo "${f#$BH_ROOT/}"
	done
}

# Drained: nothing left but ghosts, which no stage can ever finish.
crash_drained() {
	local q n=0
	for q in incoming route local; do
		n=$((n + $(queue_count "$q")))
	done
	[ "$n" -eq "$(crash_ghosts | wc -l)" ]
}

@test "500 messages injected while stages are killed at random all reach the Maildir, and the queues drain" {
	local killer n
	sv_start
	wait_until 15 sv_all_running
	crash_killer &
	killer=$!
	kill_on_teardown "$killer"
	seq 1 500 | xargs -I{} sh -c \
		'printf "Subject: crash {}\n\nline crash-{}\n" | bh-inject demo@example.com'
	# keep killing while the pipeline delivers, not only while it receives
	wait_until 40 sv_delivered 350 || true
	touch "$BATS_TEST_TMPDIR/stop"
	wait "$killer"
	wait_until 30 crash_drained || { crash_dump; false; }
	wait_until 15 sv_all_running
	run crash_subjects
	assert_success
	for n in $(seq 1 500); do
		[[ $output == *"crash $n"$'\t'* ]] || fail "message crash $n is lost"
	done
	assert_equal "$(printf '%s\n' "$output" | wc -l)" 500
	n=$(printf '%s\n' "$output" | awk -F'\t' '{d += $2 - 1} END {print d}')
	echo "# $(wc -l < "$BATS_TEST_TMPDIR/kills") stages killed;" \
		"$n duplicate deliveries of 500 messages" >&3
	assert_equal "$(queue_count ndr)" 0
	assert_equal "$(queue_count remote)" 0
	run crash_ghosts
	[ -z "$output" ] || fail "delivered, yet queued again without content: $output"
}

# The time from the start of bh-inject until the message is in new/, in ms,
# or nothing after 5 s.
crash_latency() {
	local start end
	start=$(date +%s%N)
	printf 'Subject: quick\n\nsupervised delivery\n' | bh-inject demo@example.com
	end=$(( start + 5000000000 ))
	until [ "$(maildir_count demo)" -gt 0 ]; do
		[ "$(date +%s%N)" -lt "$end" ] || return 1
		sleep 0.01
	done
	echo $(( ($(date +%s%N) - start) / 1000000 ))
}

@test "a supervised root delivers an injected message to Maildir/new within one second" {
	local ms
	sv_start
	wait_until 15 sv_all_running
	ms=$(crash_latency)
	echo "# delivered in ${ms} ms" >&3
	[ "$ms" -lt 1000 ]
	run python3 - "$BH_ROOT/mailroot/demo/Maildir" <<-'EOF'
	import mailbox, sys
	box = mailbox.Maildir(sys.argv[1], factory=None, create=False)
	(msg,) = list(box)
	print(msg['Subject'])
	print(msg['Delivered-To'])
	print(msg.get_payload().strip())
	EOF
	assert_success
	assert_line --index 0 "quick"
	assert_line --index 1 "demo@example.com"
	assert_line --index 2 "supervised delivery"
}
