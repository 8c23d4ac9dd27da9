# t/track.bats — bh-track: message tracking search over the lines the stages
# write (lib/track.h), and removal of old tracking files.
load lib/root
load lib/queue

setup() { root_new; }

T='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z'

# deliver_local — runs the local pipeline once over what is queued.
deliver_local() {
	bh-categorize -1 && bh-route -1 && bh-local -1
}

# Hand-written tracking lines for three messages, in two days.
hand_lines() {
	mkdir -p "$BH_ROOT/log/track"
	cat > "$BH_ROOT/log/track/2026-11-20" <<'LINES'
time=2026-11-20T10:00:00Z event=received id=100-1-1 msgid=<one@a.example> sender=Ann@A.example size=10 server=default peer=127.0.0.9 status="250 2.6.0 queued"
time=2026-11-20T10:00:01Z event=routed id=100-1-1 msgid=<one@a.example> sender=Ann@A.example rcpt=x@b.example size=10 status="connector=out"
time=2026-11-20T11:00:00Z event=received id=200-2-2 msgid=<two@a.example> sender=bob@c.example size=20 server=default status="queued"
LINES
	cat > "$BH_ROOT/log/track/2026-11-21" <<'LINES'
time=2026-11-21T09:00:00Z event=delivered id=100-1-1.R1 msgid=<one@a.example> sender=Ann@A.example rcpt=x@b.example size=10 code=2.0.0 status="250 2.0.0 ok"
time=2026-11-21T09:30:00Z event=received id=300-3-3 msgid=<three@a.example> sender=<> size=30 status=queued
time=2026-11-21T09:30:01Z event=failed id=300-3-3 msgid=<three@a.example> sender=<> rcpt=ann@a.example code=5.1.1 status="550 5.1.1 no such user"
LINES
}

ONE='message 100-1-1 <one@a.example> from Ann@A.example
  2026-11-20T10:00:00Z received  size=10 server=default peer=127.0.0.9 status="250 2.6.0 queued"
  2026-11-20T10:00:01Z routed    rcpt=x@b.example status="connector=out"
  2026-11-21T09:00:00Z delivered id=100-1-1.R1 rcpt=x@b.example code=2.0.0 status="250 2.0.0 ok"'

@test "a delivered message's history comes from the stages' own lines" {
	printf 'Subject: hello there\nMessage-ID: <t1@example.com>\n\nbody\n' |
	    bh-inject -f sfine@example.com demo@example.com
	deliver_local
	run bh-track --message-id '<t1@example.com>'
	assert_success
	assert_line --index 0 --regexp '^message [0-9]{16}-[0-9]+-0 <t1@example.com> from sfine@example.com$'
	assert_line --index 1 --regexp "^  $T received  size=[0-9]+ server=inject status=\"queued by bh-inject\"\$"
	assert_line --index 2 --regexp "^  $T expanded  rcpt=demo@example.com status=\"local box=demo\"\$"
	assert_line --index 3 --regexp "^  $T routed    rcpt=demo@example.com status=local\$"
	assert_line --index 4 --regexp "^  $T delivered rcpt=demo@example.com code=2.0.0 status=\"250 2.0.0 delivered to demo\"\$"
	assert_equal "${#lines[@]}" 5
	refute_line --partial subject
}

@test "the subject is shown only when tracking-subjects is on" {
	echo 'tracking-subjects yes' >> "$BH_ROOT/cdb/settings"
	config_make
	printf 'Subject: hello there\nMessage-ID: <t2@example.com>\n\nbody\n' |
	    bh-inject -f sfine@example.com demo@example.com
	deliver_local
	run bh-track --recipient demo@example.com
	assert_line --index 1 '  subject "hello there"'
}

@test "categorize -1 lines of a failed recipient are found by sender and recipient" {
	printf 'Subject: x\nMessage-ID: <t3@example.com>\n\nbody\n' |
	    bh-inject -f sfine@example.com nobody@example.com
	bh-categorize -1
	run bh-track --sender SFINE@example.com --recipient nobody@example.com
	assert_success
	assert_line --regexp "^  $T failed    rcpt=nobody@example.com code=5.1.1 status=\".*\"\$"
}

@test "--id finds a message and the envelopes it was split into" {
	hand_lines
	run bh-track --id 100-1-1
	assert_success
	assert_output "$ONE"
	run bh-track --id 100-1-1.R1
	assert_output "$ONE"
}

@test "--sender and --recipient match whole addresses or @domain, in any case" {
	hand_lines
	run bh-track --sender ann@a.example
	assert_output "$ONE"
	run bh-track --sender nn@a.example
	assert_output ''
	run bh-track --recipient '@B.EXAMPLE'
	assert_output "$ONE"
	run bh-track --sender '<>'
	assert_output 'message 300-3-3 <three@a.example> from <>
  2026-11-21T09:30:00Z received  size=30 status=queued
  2026-11-21T09:30:01Z failed    rcpt=ann@a.example code=5.1.1 status="550 5.1.1 no such user"'
}

@test "messages are grouped, first seen first, and criteria combine" {
	hand_lines
	run bash -c "bh-track | grep '^message'"
	assert_output 'message 100-1-1 <one@a.example> from Ann@A.example
message 200-2-2 <two@a.example> from bob@c.example
message 300-3-3 <three@a.example> from <>'
	run bh-track --sender bob@c.example --message-id one@a.example
	assert_output ''
}

@test "--since and --until take dates, times and durations" {
	hand_lines
	run bash -c "bh-track --until 2026-11-20 | grep '^ '"
	assert_output '  2026-11-20T10:00:00Z received  size=10 server=default peer=127.0.0.9 status="250 2.6.0 queued"
  2026-11-20T10:00:01Z routed    rcpt=x@b.example status="connector=out"
  2026-11-20T11:00:00Z received  size=20 server=default status=queued'
	run bash -c "bh-track --since 2026-11-21T09:15:00 --until=2026-11-21T09:30:00Z | grep -v '^message'"
	assert_output '  2026-11-21T09:30:00Z received  size=30 status=queued'
	run bh-track --since 1h
	assert_output ''
	run bh-track --since yesterdayish
	assert_failure 100
}

@test "a message's full history is found from its Message-ID after it crossed two roots" {
	A=$BH_ROOT
	B="$BATS_TEST_TMPDIR/b"
	port=$(free_port)
	bh-init "$B"
	sed -i "s/127.0.0.1:2525/127.0.0.1:$port/" "$B/cdb/servers"
	echo 'b.test type=authoritative' >> "$B/cdb/domains"
	echo 'mailbox bob addresses=bob@b.test' >> "$B/cdb/directory"
	BH_ROOT=$B make -s -C "$B/cdb" >/dev/null
	printf 'out address-space=* cost=1 smarthost=[127.0.0.1]:%s\n' "$port" >> "$A/cdb/connectors"
	config_make
	BH_ROOT=$B bh-smtpd 2>/dev/null &
	kill_on_teardown $!
	wait_until 5 bash -c "echo > /dev/tcp/127.0.0.1/$port" 2>/dev/null
	printf 'Subject: across\nMessage-ID: <x2@a.example>\n\nbody\n' |
	    bh-inject -f demo@example.com bob@b.test
	bh-categorize -1 && bh-route -1 && bh-remote -1
	BH_ROOT=$B bh-categorize -1 && BH_ROOT=$B bh-route -1 && BH_ROOT=$B bh-local -1
	run bh-track --message-id x2@a.example "$A/log/track" "$B/log/track"
	assert_success
	assert_line --index 0 --regexp '^message [0-9-]+ <x2@a.example> from demo@example.com$'
	assert_line --index 1 --regexp "^  $T received  size=[0-9]+ server=inject "
	assert_line --index 2 --regexp "^  $T expanded  rcpt=bob@b.test status=remote\$"
	assert_line --index 3 --regexp "^  $T routed    rcpt=bob@b.test status=\".*connector=out dest=out"
	assert_line --index 4 --regexp "^  $T delivered id=[0-9-]+\\.R1 rcpt=bob@b.test code=2\\.6\\.0 status=\"250 "
	# (bats leaves the blank line between messages out of $lines)
	assert_line --index 5 --regexp '^message [0-9-]+ <x2@a.example> from demo@example.com$'
	assert_line --index 6 --regexp "^  $T received  rcpt=bob@b.test size=[0-9]+ server=default peer=127.0.0.1 status=\"250 "
	assert_line --index 9 --regexp "^  $T delivered rcpt=bob@b.test code=2.0.0 status=\"250 2.0.0 delivered to bob\"\$"
	assert_equal "${#lines[@]}" 10
}

@test "--expire removes the days older than tracking-days" {
	mkdir -p "$BH_ROOT/log/track"
	for ago in 0 1 7 8 9; do
		touch "$BH_ROOT/log/track/$(date -u -d "$ago days ago" +%Y-%m-%d)"
	done
	touch "$BH_ROOT/log/track/notes"
	run bh-track --expire
	assert_success
	assert_line "removed log/track/$(date -u -d '8 days ago' +%Y-%m-%d)"
	assert_line "removed log/track/$(date -u -d '9 days ago' +%Y-%m-%d)"
	assert_equal "${#lines[@]}" 2
	[ -e "$BH_ROOT/log/track/$(date -u -d '7 days ago' +%Y-%m-%d)" ]
	[ -e "$BH_ROOT/log/track/notes" ]
	echo 'tracking-days 1' >> "$BH_ROOT/cdb/settings"
	config_make
	run bh-track --expire
	assert_output "removed log/track/$(date -u -d '7 days ago' +%Y-%m-%d)"
	assert_equal "$(ls "$BH_ROOT/log/track" | wc -l)" 3
}

@test "the tracking log expires by itself: a new day's first line removes days older than tracking-days" {
	mkdir -p "$BH_ROOT/log/track"
	echo old > "$BH_ROOT/log/track/2020-01-01"
	recent=$(date -u -d '-2 days' +%Y-%m-%d)
	echo recent > "$BH_ROOT/log/track/$recent"
	printf 'Subject: x\n\nx\n' | bh-inject demo@example.com
	[ ! -e "$BH_ROOT/log/track/2020-01-01" ]
	[ -e "$BH_ROOT/log/track/$recent" ]
	[ -s "$BH_ROOT/log/track/$(date -u +%Y-%m-%d)" ]
}
