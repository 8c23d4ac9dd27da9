# t/supervise.bats — bh-runit writes a root's runit services; bh-supervise
# runs them under runsvdir, stops them cleanly, reloads on SIGHUP and never
# lets a stage run twice when runsvdir dies.
load lib/root
load lib/supervise

setup() { sv_root_new; }
teardown() { sv_teardown; root_teardown; }

STAGES="categorize local ndr remote route"

@test "bh-runit writes a service per stage and per virtual server" {
	run bh-runit "$BATS_TEST_TMPDIR/sv"
	assert_success
	assert_equal "$(ls "$BATS_TEST_TMPDIR/sv" | xargs)" \
		"categorize local ndr remote route smtpd-default"
	run cat "$BATS_TEST_TMPDIR/sv/smtpd-default/run"
	assert_line "BH_ROOT='$SV_REAL_ROOT'"
	assert_line "export BH_ROOT BH_BIN"
	assert_line "exec 2>&1"
	assert_line "exec '$(realpath "$BH_BIN")/bh-smtpd' -s 'default'"
	run cat "$BATS_TEST_TMPDIR/sv/route/log/run"
	assert_line "exec svlogd -tt '$SV_REAL_ROOT/log/route'"
	[ -x "$BATS_TEST_TMPDIR/sv/route/run" ]
	[ -x "$BATS_TEST_TMPDIR/sv/route/log/run" ]
	[ -d "$BH_ROOT/log/smtpd-default" ]
}

@test "a root whose path holds a space and a quote runs under supervision" {
	local odd="$BATS_TEST_TMPDIR/it's a root"
	mv "$BH_ROOT" "$odd"
	export BH_ROOT=$odd
	SV_REAL_ROOT=$(realpath "$BH_ROOT")
	run bh-runit "$BH_ROOT/service"
	assert_success
	run cat "$BH_ROOT/service/route/run"
	assert_line "BH_ROOT='$BATS_TEST_TMPDIR/it'\\''s a root'"
	sv_start
	wait_until 15 sv_all_running
	printf 'Subject: odd\n\nhello\n' | bh-inject demo@example.com
	wait_until 5 sv_delivered 1
	[ -s "$BH_ROOT/log/smtpd-default/current" ]
}

@test "bh-runit writes services only for programs that exist, and keeps what it need not change" {
	mkdir "$BATS_TEST_TMPDIR/bin"
	ln -s "$BH_BIN/bh-route" "$BATS_TEST_TMPDIR/bin/bh-route"
	BH_BIN="$BATS_TEST_TMPDIR/bin" run bh-runit "$BATS_TEST_TMPDIR/sv"
	assert_success
	assert_equal "$(ls "$BATS_TEST_TMPDIR/sv")" "route"
	touch -d '2001-01-01' "$BATS_TEST_TMPDIR/sv/route/run"
	BH_BIN="$BATS_TEST_TMPDIR/bin" run bh-runit "$BATS_TEST_TMPDIR/sv"
	assert_success
	assert_equal "$(stat -c %Y "$BATS_TEST_TMPDIR/sv/route/run")" \
		"$(date -d 2001-01-01 +%s)"
}

@test "bh-runit retires the services of removed servers and leaves others' services alone" {
	printf 'second listen=127.0.0.1:%s\n' "$(free_port)" >> "$BH_ROOT/cdb/servers"
	config_make
	mkdir -p "$BATS_TEST_TMPDIR/sv/foreign"
	printf '#!/bin/sh\nexec sleep 1000\n' > "$BATS_TEST_TMPDIR/sv/foreign/run"
	run bh-runit "$BATS_TEST_TMPDIR/sv"
	assert_success
	[ -f "$BATS_TEST_TMPDIR/sv/smtpd-second/run" ]
	sed -i '/^second/d' "$BH_ROOT/cdb/servers"
	config_make
	run bh-runit "$BATS_TEST_TMPDIR/sv"
	assert_success
	assert_output --partial "event=remove service=smtpd-second"
	assert_equal "$(ls -A "$BATS_TEST_TMPDIR/sv" | xargs)" \
		"categorize foreign local ndr remote route smtpd-default"
}

@test "bh-runit --install links each service into a system service directory" {
	mkdir "$BATS_TEST_TMPDIR/etc-service"
	run bh-runit --install "$BATS_TEST_TMPDIR/etc-service"
	assert_success
	assert_equal "$(readlink "$BATS_TEST_TMPDIR/etc-service/bh-route")" \
		"$SV_REAL_ROOT/service/route"
	[ -f "$BH_ROOT/service/smtpd-default/run" ]
	printf 'default listen=127.0.0.2:%s\n' "$SV_PORT" > "$BH_ROOT/cdb/servers"
	printf 'other listen=127.0.0.1:%s\n' "$SV_PORT" >> "$BH_ROOT/cdb/servers"
	config_make
	run bh-runit --install "$BATS_TEST_TMPDIR/etc-service" mail-
	assert_success
	[ -L "$BATS_TEST_TMPDIR/etc-service/mail-smtpd-other" ]
	run bh-runit --install "$BATS_TEST_TMPDIR/etc-service"
	assert_success
	[ -L "$BATS_TEST_TMPDIR/etc-service/bh-smtpd-other" ]
}

@test "bh-supervise starts every stage and server under runsv, one each" {
	sv_start
	wait_until 15 sv_all_running
	for s in $STAGES; do
		assert_equal "$(sv_count "bh-$s")" 1
		assert_equal "$(cat "/proc/$(sv_stage_pid "$s")/comm")" "bh-$s"
	done
	assert_equal "$(sv_count bh-smtpd)" 1
	assert_equal "$(sv_count runsvdir)" 1
	assert_equal "$(sv_count runsv)" 6
	assert_equal "$(sv_count svlogd)" 6
	# the virtual server answers on its port
	run python3 -c "import smtplib; s=smtplib.SMTP('127.0.0.1', $SV_PORT); print(s.noop()[0]); s.quit()"
	assert_output 250
}

@test "SIGTERM to bh-supervise stops every service and exits 0" {
	sv_start
	wait_until 15 sv_all_running
	local rc=0
	kill -TERM "$SV_PID"
	wait "$SV_PID" || rc=$?
	assert_equal "$rc" 0
	run sv_procs
	assert_output ""
	run cat "$BATS_TEST_TMPDIR/supervise.log"
	assert_output --partial "stage=supervise event=stopped"
}

@test "SIGHUP adds a new server's service and removes a dropped one without restarting the others" {
	local s before after port2
	sv_start
	wait_until 15 sv_all_running
	runsvdir=$(sv_runsvdir_pid)
	for s in $STAGES smtpd-default; do
		before+="$s:$(sv_runsv_pid "$s"):$(sv_stage_pid "$s") "
	done
	port2=$(free_port)
	printf 'other listen=127.0.0.1:%s\n' "$port2" >> "$BH_ROOT/cdb/servers"
	config_make
	kill -HUP "$SV_PID"
	wait_until 15 sv_running smtpd-other
	wait_until 5 python3 -c "import smtplib; smtplib.SMTP('127.0.0.1', $port2).quit()"
	for s in $STAGES smtpd-default; do
		after+="$s:$(sv_runsv_pid "$s"):$(sv_stage_pid "$s") "
	done
	assert_equal "$after" "$before"
	assert_equal "$(sv_runsvdir_pid)" "$runsvdir"
	kill -0 "$SV_PID"

	sed -i '/^other/d' "$BH_ROOT/cdb/servers"
	config_make
	kill -HUP "$SV_PID"
	wait_until 15 test ! -e "$BH_ROOT/service/smtpd-other"
	wait_until 10 sv_runsv_gone smtpd-other
	assert_equal "$(sv_count bh-smtpd)" 1
	assert_equal "$(sv_runsvdir_pid)" "$runsvdir"
}

@test "SIGHUP makes a running virtual server take up a changed listen= address" {
	local port2
	sv_start
	wait_until 15 sv_all_running
	port2=$(free_port)
	sed -i "s/127\.0\.0\.1:$SV_PORT/127.0.0.1:$port2/" "$BH_ROOT/cdb/servers"
	config_make
	kill -HUP "$SV_PID"
	wait_until 10 python3 -c "import smtplib; smtplib.SMTP('127.0.0.1', $port2).quit()"
	assert_equal "$(sv_count bh-smtpd)" 1
}

# Samples the processes of the root until it runs again in full, failing as
# soon as any stage or runsvdir runs twice.
sv_never_twice() {
	local end=$(( $(date +%s) + 20 )) name n
	while [ "$(date +%s)" -lt "$end" ]; do
		while read -r n name; do
			case $name in
			bh-*|runsvdir) [ "$n" -le 1 ] || {
				echo "$n processes $name" >&2; return 1; } ;;
			esac
		done < <(sv_procs | awk '{print $2}' | sort | uniq -c)
		if [ -n "$(sv_runsvdir_pid)" ] && sv_all_running &&
		    [ "$(sv_count bh-route)" -eq 1 ]; then
			return 0
		fi
	done
	echo "the services did not come back" >&2
	return 1
}

@test "when runsvdir is killed, its orphans stop before a new runsvdir starts: no stage runs twice" {
	local old
	sv_start
	wait_until 15 sv_all_running
	old=$(sv_stage_pid route)
	kill -KILL "$(sv_runsvdir_pid)"
	sv_never_twice
	[ "$(sv_stage_pid route)" != "$old" ]
	run cat "$BATS_TEST_TMPDIR/supervise.log"
	assert_output --partial "event=runsvdir-exit"
	assert_output --partial "event=orphans"
}

@test "svlogd writes each service's log into log/NAME/current, time-stamped" {
	sv_start
	wait_until 15 sv_all_running
	printf 'Subject: logged\n\nhello\n' | bh-inject demo@example.com
	wait_until 10 grep -q 'stage=categorize' "$BH_ROOT/log/categorize/current"
	run cat "$BH_ROOT/log/categorize/current"
	assert_line --regexp '^[0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]+ stage=categorize '
	run cat "$BH_ROOT/log/smtpd-default/current"
	assert_line --regexp "^[0-9_:.-]+ stage=smtpd event=listening"
}

@test "when bh-supervise is killed, runsvdir gets HUP and stops every service" {
	sv_start
	wait_until 15 sv_all_running
	kill -KILL "$SV_PID"
	wait "$SV_PID" || true
	wait_until 15 sv_none_left
}

@test "a second bh-supervise on the same root refuses to start" {
	sv_start
	wait_until 15 sv_all_running
	run bh-supervise
	assert_failure 111
	assert_output --partial "root already supervised"
	assert_equal "$(sv_count runsvdir)" 1
}
