# t/route-schedule.bats — connector schedules, oversize schedules and
# hold=yes: mail waits in spool/remote/scheduled (mtime = when it may go)
# or spool/remote/hold, its destination shows Scheduled or Held, and
# bh-route releases scheduled mail when the window opens.
load lib/root
load lib/route

setup() { root_new; }

# clock SECONDS — local HH:MM of now + SECONDS (windows relative to now).
clock() {
	date -d "@$(( $(date +%s) + $1 ))" +%H:%M
}

# minute_at SECONDS — the epoch of the minute holding now + SECONDS.
minute_at() {
	local t=$(( $(date +%s) + $1 ))
	date -d "$(date -d "@$t" '+%Y-%m-%d %H:%M')" +%s
}

@test "a connector inside its window sends at once" {
	connectors "now address-space=* cost=1 route=dns schedule=\"$(clock -3600)-$(clock 3600)\""
	route_msg a@x.net >/dev/null
	route_run
	assert_equal "$(connector_of a@x.net)" now
	assert_equal "$(queue_count remote)" 1
}

@test "a connector outside its window parks mail in spool/remote/scheduled until it opens" {
	connectors "night address-space=* cost=1 route=dns schedule=\"$(clock 7200)-$(clock 10800)\""
	id=$(route_msg a@x.net b@y.net)
	route_run
	assert_equal "$(ls "$BH_ROOT/spool/remote/new" | wc -l)" 0
	f=$(envelope_of scheduled a@x.net)
	assert_equal "$(field "$f" connector)" night
	assert_equal "$(field "$f" dest)" night
	assert_equal "$(stat -c %Y "$f")" "$(minute_at 7200)"
	[ -e "$BH_ROOT/spool/msg/$(basename "$f")" ]
	grep -qx 'state Scheduled' "$BH_ROOT/spool/state/night"
	grep -qx "next-attempt $(minute_at 7200)" "$BH_ROOT/spool/state/night"
	grep -q "event=routed id=$id .*connector=night.*queue=scheduled" "$BH_ROOT"/log/track/*
}

@test "a window that began yesterday evening is still open after midnight" {
	# starts in an hour, ends in half an hour: it opened 23 hours ago
	connectors "late address-space=* cost=1 route=dns schedule=\"daily $(clock 3600)-$(clock 1800)\""
	route_msg a@x.net >/dev/null
	route_run
	assert_equal "$(connector_of a@x.net)" late
}

@test "a schedule for another weekday waits for that day" {
	today=$(date +%a | tr A-Z a-z)
	tomorrow=$(date -d tomorrow +%a | tr A-Z a-z)
	connectors "days address-space=x.net cost=1 route=dns schedule=\"$today 00:00-24:00\"" \
	    "other address-space=y.net cost=1 route=dns schedule=\"$tomorrow 03:00-04:00\""
	route_msg a@x.net b@y.net >/dev/null
	route_run
	assert_equal "$(connector_of a@x.net)" days
	f=$(envelope_of scheduled b@y.net)
	assert_equal "$(stat -c %Y "$f")" "$(date -d 'tomorrow 03:00' +%s)"
}

@test "schedule=never waits until the configuration changes" {
	connectors 'off address-space=* cost=1 route=dns schedule=never'
	route_msg a@x.net >/dev/null
	route_run
	f=$(envelope_of scheduled a@x.net)
	grep -qx 'state Scheduled' "$BH_ROOT/spool/state/off"
	connectors 'off address-space=* cost=1 route=dns schedule=always'
	route_run
	assert_equal "$(connector_of a@x.net)" off
	[ ! -e "$f" ]
	[ ! -e "$BH_ROOT/spool/state/off" ]
}

@test "oversize mail waits for the oversize schedule, smaller mail goes at once" {
	connectors "out address-space=* cost=1 route=dns oversize=2K oversize-schedule=\"$(clock 7200)-$(clock 9000)\""
	route_msg -z 1000 small@x.net >/dev/null
	route_msg -z 5000 big@x.net >/dev/null
	route_run
	assert_equal "$(connector_of small@x.net)" out
	f=$(envelope_of scheduled big@x.net)
	assert_equal "$(stat -c %Y "$f")" "$(minute_at 7200)"
}

@test "hold=yes keeps mail in spool/remote/hold for ETRN and shows the destination Held" {
	connectors \
	    'branch address-space=branch.example.com cost=1 smarthost=[127.0.0.5]:2525 hold=yes' \
	    'star   address-space=* cost=1 route=dns'
	id=$(route_msg a@branch.example.com b@x.net)
	route_run
	f=$(envelope_of hold a@branch.example.com)
	assert_equal "$(basename "$f")" "$id.R1"
	assert_equal "$(field "$f" dest)" branch
	assert_equal "$(field "$f" hops)" 'smarthost:[127.0.0.5]:2525'
	assert_equal "$(connector_of b@x.net)" star
	grep -qx 'state Held' "$BH_ROOT/spool/state/branch"
}

@test "bh-queue shows held and scheduled destinations" {
	connectors \
	    'branch address-space=branch.example.com cost=1 route=dns hold=yes' \
	    "night address-space=* cost=1 route=dns schedule=\"$(clock 7200)-$(clock 10800)\""
	route_msg a@branch.example.com b@x.net >/dev/null
	route_run
	run bh-queue
	assert_success
	assert_line --regexp '^.*branch.*Held'
	assert_line --regexp '^.*night.*Scheduled'
}

@test "the running bh-route releases scheduled mail when the connector's schedule changes" {
	connectors 'off address-space=* cost=1 route=dns schedule=never'
	bh-route 2>"$BATS_TEST_TMPDIR/route.log" &
	kill_on_teardown $!
	route_msg a@x.net >/dev/null
	wait_until 5 envelope_of scheduled a@x.net
	connectors 'off address-space=* cost=1 route=dns'
	wait_until 5 envelope_of new a@x.net
	assert_equal "$(connector_of a@x.net)" off
	# and it keeps routing new input
	route_msg b@y.net >/dev/null
	wait_until 5 envelope_of new b@y.net
}

@test "the running bh-route releases scheduled mail by itself when the window opens" {
	# the window opens at the next full minute (the one after when that is
	# too close to route in time): up to 65 seconds of waiting
	opens=$(minute_at 60)
	[ $((opens - $(date +%s))) -ge 5 ] || opens=$(minute_at 120)
	connectors "soon address-space=* cost=1 route=dns schedule=\"$(date -d "@$opens" +%H:%M)-$(clock 900)\""
	bh-route 2>"$BATS_TEST_TMPDIR/route.log" &
	kill_on_teardown $!
	route_msg a@x.net >/dev/null
	wait_until 5 envelope_of scheduled a@x.net
	grep -qx "next-attempt $opens" "$BH_ROOT/spool/state/soon"
	wait_until 70 envelope_of new a@x.net
	[ "$(date +%s)" -ge "$opens" ]
	[ ! -e "$BH_ROOT/spool/state/soon" ]
}

@test "scheduled mail whose connector is removed is routed again" {
	connectors "night address-space=* cost=1 route=dns schedule=\"$(clock 7200)-$(clock 10800)\""
	id=$(route_msg a@x.net)
	route_run
	envelope_of scheduled a@x.net
	connectors 'day address-space=* cost=1 route=dns'
	route_run
	assert_output --partial "event=rerouted envelope=$id.R1 dest=night"
	f=$(envelope_of new a@x.net)
	assert_equal "$(basename "$f")" "$id.R1.R1"
	assert_equal "$(field "$f" connector)" day
	assert_equal "$(queue_count route)" 0
	[ -z "$(ls "$BH_ROOT/spool/remote/scheduled")" ]
	[ ! -e "$BH_ROOT/spool/state/night" ]
}

@test "held mail is routed again when its connector stops holding" {
	connectors 'branch address-space=branch.test cost=1 smarthost=[127.0.0.5]:2525 hold=yes'
	route_msg a@branch.test >/dev/null
	route_run
	envelope_of hold a@branch.test
	grep -qx 'state Held' "$BH_ROOT/spool/state/branch"
	connectors 'branch address-space=branch.test cost=1 smarthost=[127.0.0.5]:2525'
	route_run
	assert_equal "$(connector_of a@branch.test)" branch
	[ -z "$(ls "$BH_ROOT/spool/remote/hold")" ]
	[ ! -e "$BH_ROOT/spool/state/branch" ]
}
