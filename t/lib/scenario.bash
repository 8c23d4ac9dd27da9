# t/lib/scenario.bash — deployment scenarios built from examples/NAME.
#   load lib/root
#   load lib/scenario
#   setup() { sc_init; }
#
# Each system of a scenario is a root of its own, $BATS_TEST_TMPDIR/SYSTEM,
# made with bh-init and given the text sources of examples/NAME[/ROLE]/cdb.
# The examples carry placeholders @NAME@ (upper case) for what differs per
# site: sc_root replaces each one by the value of the shell variable
# SC_NAME (fails when one is unset). Every system listens on its own
# loopback address and the same port, $SC_PORT, which is also every
# system's settings remote-port (the "port 25" of this little Internet);
# DNS is one dnsmasq on 127.0.0.1:$DNS_PORT (sc_dns).
load lib/dns

# sc_init — the shared port and the Internet hosts' sink port (t/lib/sink.py
# via sink_start, which takes $SINK_PORT).
sc_init() {
	export SC_PORT
	SC_PORT=$(free_port)
	SINK_PORT=$SC_PORT
	SC_SYSTEMS=()
}

sc_teardown() {
	root_teardown
}

# sc_dns DNSMASQ-OPTION... — dnsmasq on 127.0.0.1:$DNS_PORT answering the
# given records and NXDOMAIN for the rest of .test; call before sc_root.
sc_dns() {
	local dir="$BATS_TEST_TMPDIR/dns"
	mkdir -p "$dir"
	DNS_PORT=$(free_port)
	dnsmasq --keep-in-foreground --no-resolv --no-hosts --no-poll \
		--port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
		--pid-file="$dir/pid" --local=/test/ "$@" >"$dir/log" 2>&1 3>&- &
	kill_on_teardown $!
	wait_until 5 test -s "$dir/pid"
}

# sc_subst FILE — replaces every @NAME@ by $SC_NAME in FILE.
sc_subst() {
	perl -pi -e 's/\@([A-Z][A-Z0-9_]*)\@/exists $ENV{"SC_$1"} ? $ENV{"SC_$1"} : die "$ARGV: placeholder \@$1\@ has no value (SC_$1)\n"/ge' "$1"
}

# sc_root SYSTEM EXAMPLE — a fresh root $BATS_TEST_TMPDIR/SYSTEM with the
# sources of examples/EXAMPLE/cdb, placeholders filled, plus what only a
# test needs (its DNS server, the shared port as remote-port, quick retries
# and timeouts), compiled and checked by bh-check (no finding at all).
sc_root() {
	local dir="$BATS_TEST_TMPDIR/$1" src="$TOP/examples/$2/cdb" f rc=0
	[ -d "$src" ] || { echo "no example $src" >&2; return 1; }
	bh-init "$dir" >/dev/null
	cp "$src"/* "$dir/cdb/"
	for f in "$src"/*; do
		sc_subst "$dir/cdb/${f##*/}" || return 1
	done
	printf '%s\n' "dns 127.0.0.1:${DNS_PORT:?sc_dns first}" \
		"remote-port $SC_PORT" "retry 1s,1s,1s,1s" "timeout 5s" \
		>> "$dir/cdb/settings"
	make -s -C "$dir/cdb" >/dev/null || return 1
	touch -d '-2 seconds' "$dir/cdb/.compiled"
	# an example must pass bh-check without a warning
	BH_ROOT=$dir bh-check > "$dir/check.out" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || { cat "$dir/check.out" >&2; return 1; }
}

# sc_start SYSTEM — runs the whole pipeline of that root in the background
# (one bh-smtpd per record of cdb/servers, bh-categorize, bh-route,
# bh-local, bh-remote, bh-ndr; their log in $BATS_TEST_TMPDIR/SYSTEM.log)
# and waits until every listen= address answers.
sc_start() {
	local dir="$BATS_TEST_TMPDIR/$1" log="$BATS_TEST_TMPDIR/$1.log" s a
	for s in $(sed -n 's/^\([A-Za-z0-9._-][A-Za-z0-9._-]*\)[[:space:]].*/\1/p' "$dir/cdb/servers"); do
		BH_ROOT=$dir bh-smtpd -s "$s" 2>>"$log" 3>&- &
		kill_on_teardown $!
	done
	for s in categorize route local remote ndr; do
		BH_ROOT=$dir "bh-$s" 2>>"$log" 3>&- &
		kill_on_teardown $!
	done
	for a in $(grep -o 'listen=[^[:space:]]*' "$dir/cdb/servers" | cut -d= -f2 | tr , ' '); do
		wait_until 10 smtp_answers "${a%:*}" "${a##*:}"
	done
	SC_SYSTEMS+=("$1")
}

# sc_supervise SYSTEM — the same under runit: bh-supervise runs the root
# (one service per stage and per virtual server, logs in log/NAME/current);
# waits until every listen= address answers.
sc_supervise() {
	local dir="$BATS_TEST_TMPDIR/$1" a
	BH_ROOT=$dir bh-supervise 2>>"$BATS_TEST_TMPDIR/$1.log" 3>&- &
	kill_on_teardown $!
	for a in $(grep -o 'listen=[^[:space:]]*' "$dir/cdb/servers" | cut -d= -f2 | tr , ' '); do
		wait_until 20 smtp_answers "${a%:*}" "${a##*:}"
	done
	SC_SYSTEMS+=("$1")
}

smtp_answers() {
	python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 1).close()' "$1" "$2" 2>/dev/null
}

# sc_send IP [SWAKS-OPTION...] — one message by SMTP to IP:$SC_PORT (swaks;
# its transcript on stdout, exit status as swaks's: 0 accepted).
sc_send() {
	local ip=$1
	shift
	swaks --server "$ip" --port "$SC_PORT" --timeout 20 \
		--h-Subject "scenario test" --body "hello from the scenario test" "$@" 2>&1
}

# sc_maildir SYSTEM BOX — the Maildir/new folder of that mailbox.
sc_maildir() {
	echo "$BATS_TEST_TMPDIR/$1/mailroot/$2/Maildir/new"
}

# sc_mail_count SYSTEM BOX — messages in the mailbox.
sc_mail_count() {
	find "$(sc_maildir "$1" "$2")" -type f 2>/dev/null | wc -l
}

# sc_has SYSTEM BOX N — the mailbox holds N messages (for wait_until).
sc_has() {
	[ "$(sc_mail_count "$1" "$2")" -eq "$3" ]
}

# sc_mail SYSTEM BOX PATTERN — the first message of the mailbox holding
# the fixed string PATTERN (for checks on its text).
sc_mail() {
	grep -l -F -- "$3" "$(sc_maildir "$1" "$2")"/* 2>/dev/null | head -1
}

# sc_wait_mail SYSTEM BOX PATTERN — waits (30 s) for such a message.
sc_wait_mail() {
	wait_until 30 sc_mail_present "$@"
}

sc_mail_present() {
	[ -n "$(sc_mail "$@")" ]
}

# sc_track SYSTEM — that root's tracking log.
sc_track() {
	cat "$BATS_TEST_TMPDIR/$1"/log/track/* 2>/dev/null
}

# sc_received SYSTEM RCPT — how many times the root's smtpd received a
# message for RCPT (tracking lines "received"): loop checks.
sc_received() {
	sc_track "$1" | grep ' event=received ' | grep -c -F "rcpt=$2" || true
}

# sc_dsn FILE — the report's fields as t/lib/ndr.py prints them.
sc_dsn() {
	python3 "$TOP/t/lib/ndr.py" "$1"
}

# sc_sink_mail NAME PATTERN — true when the sink NAME accepted a message
# whose envelope or text holds PATTERN.
sc_sink_mail() {
	grep -q -F -- "$2" "$BATS_TEST_TMPDIR/$1"/*.env "$BATS_TEST_TMPDIR/$1"/*.eml 2>/dev/null
}
