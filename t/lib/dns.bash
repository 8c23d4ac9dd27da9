# t/lib/dns.bash — helpers for the remote delivery tests: a dnsmasq on a
# high loopback port, SMTP sinks (t/lib/sink.py) and settings edits.
#   load lib/root
#   load lib/dns

# settings_set KEY VALUE — replaces (or adds) one line of cdb/settings and
# compiles the configuration.
settings_set() {
	local key=$1
	shift
	sed -i "/^$key[[:space:]]/d" "$BH_ROOT/cdb/settings"
	printf '%s %s\n' "$key" "$*" >> "$BH_ROOT/cdb/settings"
	config_make
}

# dns_start DNSMASQ-OPTION... — dnsmasq on 127.0.0.1:$DNS_PORT answering
# the given records (--mx-host=D,HOST,PREF --host-record=HOST,IP ...),
# NXDOMAIN for the rest of .test, and SERVFAIL for servfail.test (dnsmasq
# forwards it to a responder that always says SERVFAIL). Sets settings dns.
dns_start() {
	local dir="$BATS_TEST_TMPDIR/dns" fail_port
	mkdir -p "$dir"
	fail_port=$(free_port)
	python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    q, a = s.recvfrom(512)
    # same id and question, QR set, RCODE 2 (SERVFAIL)
    s.sendto(q[:2] + bytes([0x81, 0x82]) + q[4:6] + b"\0\0\0\0\0\0" + q[12:], a)
' "$fail_port" >"$dir/servfail.log" 2>&1 3>&- &
	kill_on_teardown $!
	DNS_PORT=$(free_port)
	dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll \
		--port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
		--pid-file="$dir/pid" --server="/servfail.test/127.0.0.1#$fail_port" \
		--local=/test/ "$@" >"$dir/log" 2>&1 3>&- &
	kill_on_teardown $!
	settings_set dns "127.0.0.1:$DNS_PORT"
	wait_until 5 test -s "$dir/pid"
}

# sink_start NAME IP SINK-OPTION... — t/lib/sink.py on IP:$SINK_PORT,
# recording into $BATS_TEST_TMPDIR/NAME; waits until it listens.
# SINK_PORT is chosen once per test (all sinks share it: it is the
# settings remote-port).
sink_start() {
	local name=$1 ip=$2 dir="$BATS_TEST_TMPDIR/$1"
	shift 2
	: "${SINK_PORT:=$(free_port)}"
	python3 "$TOP/t/lib/sink.py" --listen "$ip:$SINK_PORT" --dir "$dir" "$@" \
		>"$dir.log" 2>&1 3>&- &
	kill_on_teardown $!
	wait_until 5 test -s "$dir/ready"
}

# sink_count NAME — messages the sink accepted (also with --count-only).
sink_count() {
	if [ -f "$BATS_TEST_TMPDIR/$1/messages" ]; then
		cat "$BATS_TEST_TMPDIR/$1/messages"
	else
		find "$BATS_TEST_TMPDIR/$1" -name '*.env' 2>/dev/null | wc -l
	fi
}

# remote_put RCPT-LINE-EXTRAS... — queues a remote envelope: first
# argument the dest, second the hops, then rcpt lines and other fields.
remote_put() {
	local dest=$1 hops=$2
	shift 2
	envelope_put remote 'sender s@example.com' "dest $dest" "hops $hops" "$@"
}

# records KIND — the report records of that kind in spool/ndr.
records() {
	grep -l "^kind $1\$" "$BH_ROOT"/spool/ndr/new/* 2>/dev/null || true
}

# sink_has NAME N — the sink accepted N messages (for wait_until).
sink_has() {
	[ "$(sink_count "$1")" -eq "$2" ]
}

# has_records KIND — some record of that kind exists (for wait_until).
has_records() {
	[ -n "$(records "$1")" ]
}
