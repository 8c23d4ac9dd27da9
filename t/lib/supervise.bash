# t/lib/supervise.bash — helpers for the tests of a supervised root
# (t/supervise.bats, t/crash.bats, t/idle.bats).
#   load lib/root
#   load lib/supervise
#   setup() { sv_root_new; }
#   teardown() { sv_teardown; root_teardown; }

# A fresh root whose default virtual server listens on a free port, so
# roots of tests running side by side never fight over 127.0.0.1:2525.
sv_root_new() {
	root_new
	SV_PORT=$(free_port)
	sed -i "s/127\.0\.0\.1:2525/127.0.0.1:$SV_PORT/" "$BH_ROOT/cdb/servers"
	config_make
	SV_REAL_ROOT=$(realpath "$BH_ROOT")
}

# Starts bh-supervise in the background; its own log goes to
# $BATS_TEST_TMPDIR/supervise.log. Sets SV_PID.
sv_start() {
	bh-supervise 2>"$BATS_TEST_TMPDIR/supervise.log" &
	SV_PID=$!
	kill_on_teardown "$SV_PID"
}

# The service names bh-runit wrote.
sv_services() {
	ls "$BH_ROOT/service"
}

# True when service NAME and its logger report "run" for at least a second.
sv_running() {
	local out
	out=$(sv status "$BH_ROOT/service/$1" 2>/dev/null) || return 1
	[[ $out =~ ^run:\ .*\(pid\ [0-9]+\)\ [1-9][0-9]*s\;\ run:\ log: ]]
}

# True when every service and its logger report "run" for at least a
# second (a stage that dies at once shows 0s and goes down again).
sv_all_running() {
	local s list
	list=$(sv_services 2>/dev/null)
	[ -n "$list" ] || return 1
	for s in $list; do
		sv_running "$s" || return 1
	done
}

# "PID COMM" of every process of this root: runsvdir, runsv, svlogd and the
# bh-* programs whose environment holds our BH_ROOT (the test's own shell
# holds it too, and is left out by its name). A program's own helpers
# (bh-smtpd's session processes, bh-remote's workers: children with the
# same name) are not counted: they come and go with the load.
sv_procs() {
	local f pid comm ppid
	for f in $(grep -lzxF -e "BH_ROOT=$BH_ROOT" -e "BH_ROOT=$SV_REAL_ROOT" \
			/proc/[0-9]*/environ 2>/dev/null); do
		pid=${f#/proc/}
		pid=${pid%/environ}
		comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
		ppid=$(awk '{ sub(/.*\) /, ""); print $2 }' "/proc/$pid/stat" 2>/dev/null)
		[ -n "$ppid" ] && [ "$(cat "/proc/$ppid/comm" 2>/dev/null)" = "$comm" ] &&
			continue
		case $comm in
		runsvdir|runsv|svlogd|bh-*) echo "$pid $comm" ;;
		esac
	done
}

sv_count() {
	sv_procs | awk -v c="$1" '$2 == c' | wc -l
}

# True once demo's Maildir/new holds at least N messages.
sv_delivered() {
	[ "$(maildir_count demo)" -ge "$1" ]
}

sv_none_left() {
	[ -z "$(sv_procs)" ]
}

# The pid of the runsv supervising service NAME (its working directory).
sv_runsv_pid() {
	local pid comm
	while read -r pid comm; do
		[ "$comm" = runsv ] || continue
		[ "$(readlink "/proc/$pid/cwd")" = "$SV_REAL_ROOT/service/$1" ] \
			&& echo "$pid"
	done < <(sv_procs)
}

sv_runsv_gone() {
	[ -z "$(sv_runsv_pid "$1")" ]
}

# The pid of the program running as service NAME (runsv writes it).
sv_stage_pid() {
	cat "$BH_ROOT/service/$1/supervise/pid" 2>/dev/null
}

# The runsvdir child of bh-supervise.
sv_runsvdir_pid() {
	pgrep -x -P "$SV_PID" runsvdir
}

# Stops bh-supervise (TERM, as kill_on_teardown would) and makes sure no
# process of this root outlives the test, whatever the test did.
sv_teardown() {
	local pid comm
	if [ -n "${SV_PID:-}" ]; then
		kill -TERM "$SV_PID" 2>/dev/null || true
		wait_until 30 sv_none_left || true
	fi
	while read -r pid comm; do
		kill -KILL "$pid" 2>/dev/null || true
	done < <(sv_procs)
}

# The utime+stime clock ticks of the given pids, summed.
sv_ticks() {
	local pid sum=0 stat f
	for pid in "$@"; do
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
		# after "pid (comm) ": state is f[0], utime f[11], stime f[12]
		read -r -a f <<< "${stat##*) }"
		sum=$((sum + f[11] + f[12]))
	done
	echo "$sum"
}
