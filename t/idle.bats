# t/idle.bats — a supervised root that has nothing to do uses no CPU: every
# stage waits on inotify, runsv and svlogd on their pipes, bh-supervise in
# sigwaitinfo. Measured from /proc/PID/stat (utime + stime, in clock ticks)
# of bh-supervise, runsvdir, every runsv and svlogd and every stage.
#
# Tolerance: 2 ticks over 5 seconds for all of them together. The kernel
# charges CPU time by ticks: a process found running when the timer fires
# is charged a whole tick (10 ms at USER_HZ 100), however short its run.
# runsvdir wakes about once a second to look at the service directory (a
# stat(2), microseconds), so a tick may now and then fall on it. A stage
# that polled or spun would show tens to hundreds of ticks, not one or two.
load lib/root
load lib/supervise

setup() { sv_root_new; }
teardown() { sv_teardown; root_teardown; }

IDLE_SEC=5
IDLE_TICKS=2

# "PID COMM TICKS" for bh-supervise and every process of the root.
idle_snapshot() {
	local pid comm
	{ echo "$SV_PID bh-supervise"; sv_procs; } | sort -n |
	while read -r pid comm; do
		echo "$pid $comm $(sv_ticks "$pid")"
	done
}

# Measures over IDLE_SEC; fails when a process came or went (a restarted
# stage would hide its CPU use) or the ticks grew by more than IDLE_TICKS.
idle_check() {
	local before after used
	before=$(idle_snapshot)
	sleep "$IDLE_SEC"	# the measurement interval itself, not a wait
	after=$(idle_snapshot)
	assert_equal "$(cut -d' ' -f1,2 <<< "$after")" \
		"$(cut -d' ' -f1,2 <<< "$before")"
	used=$(join <(echo "$before") <(echo "$after") |
		awk '{ d = $5 - $3; if (d) print $2 "=" d }')
	echo "# ticks used in ${IDLE_SEC}s by $(wc -l <<< "$after") processes:" \
		"${used:-none}" >&3
	[ "$(awk -F= '{ s += $2 } END { print s + 0 }' <<< "$used")" \
		-le "$IDLE_TICKS" ] || fail "CPU used while idle: $used"
}

@test "an idle supervised root uses no CPU over 5 seconds" {
	sv_start
	wait_until 15 sv_all_running
	assert_equal "$(sv_count runsv)" 6
	idle_check
}

@test "after delivering a message the root goes back to using no CPU" {
	sv_start
	wait_until 15 sv_all_running
	printf 'Subject: idle\n\nhello\n' | bh-inject demo@example.com
	wait_until 5 sv_delivered 1
	idle_check
}
