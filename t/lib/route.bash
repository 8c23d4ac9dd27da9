# t/lib/route.bash — helpers for the routing tests (t/route*.bats).
#   load lib/root
#   load lib/route

# connectors LINE... — replaces cdb/connectors with these records, compiles.
# The stamp cdb/.compiled goes first: file times here tick every 4 ms, and
# make would skip a source written in the same tick as the last build
# (every .cdb is then rebuilt, each replaced atomically).
connectors() {
	printf '%s\n' "$@" > "$BH_ROOT/cdb/connectors"
	rm -f "$BH_ROOT/cdb/.compiled"
	config_make
}

# setting KEY VALUE — adds a line to cdb/settings, compiles.
setting() {
	printf '%s %s\n' "$1" "$2" >> "$BH_ROOT/cdb/settings"
	rm -f "$BH_ROOT/cdb/.compiled"
	config_make
}

# route_msg [-f SENDER] [-z SIZE] [-h HEADER] ADDR... — queues one message
# in spool/route as the categorizer leaves it: ADDR "l:BOX@DOMAIN" is a
# local recipient, "x:ADDR" a failed one, anything else remote. Prints
# the message's name. Content: the headers given and a short body, or
# SIZE bytes of body.
route_msg() {
	local sender=a@example.com size= headers=() lines=() a
	while [ $# -gt 0 ]; do
		case $1 in
		-f) sender=$2; shift 2 ;;
		-z) size=$2; shift 2 ;;
		-h) headers+=("$2"); shift 2 ;;
		*) break ;;
		esac
	done
	for a in "$@"; do
		case $a in
		l:*) a=${a#l:}; lines+=("rcpt $a state=local box=${a%@*}") ;;
		x:*) lines+=("rcpt ${a#x:} state=failed code=5.1.1 reason=\"550 5.1.1 no such user\"") ;;
		*) lines+=("rcpt $a state=remote") ;;
		esac
	done
	{
		printf '%s\r\n' "${headers[@]}" "Subject: route test"
		printf '\r\n'
		if [ -n "$size" ]; then
			head -c "$size" /dev/zero | tr '\0' x
		else
			printf 'hello\r\n'
		fi
	} | envelope_put route "sender $sender" "size ${size:-64}" "${lines[@]}"
}

# route_run — bh-route -1, which must succeed.
route_run() {
	run bh-route -1
	assert_success
}

# envelope_of SUB ADDR — the path of the envelope in spool/remote/SUB (new,
# hold, scheduled) that carries recipient ADDR; fails when none does.
envelope_of() {
	local f
	f=$(grep -l "^rcpt $2 " "$BH_ROOT/spool/remote/$1/"* 2>/dev/null | head -1)
	[ -n "$f" ] || { echo "no envelope for $2 in spool/remote/$1" >&2; return 1; }
	echo "$f"
}

# field FILE KEY — the value of envelope field KEY.
field() {
	sed -n "s/^$2 //p" "$1" | head -1
}

# connector_of ADDR — the connector field of the remote envelope of ADDR
# in spool/remote/new.
connector_of() {
	local f
	f=$(envelope_of new "$1") || return 1
	field "$f" connector
}

# ndr_of ADDR — the recipient line for ADDR in the spool/ndr records.
ndr_of() {
	grep -h "^rcpt $1 " "$BH_ROOT"/spool/ndr/new/* 2>/dev/null
}

# dest_state DEST STATE — writes spool/state/DEST as bh-remote would.
dest_state() {
	mkdir -p "$BH_ROOT/spool/state"
	printf 'state %s\nerror %s\nnext-attempt %s\nsince %s\n' "$2" \
		"421 4.4.1 test" "$(( $(date +%s) + 600 ))" "$(date +%s)" \
		> "$BH_ROOT/spool/state/$1"
}

# clean_queues — empties the queues routing writes (between cases of a
# table-driven test).
clean_queues() {
	find "$BH_ROOT/spool/remote" "$BH_ROOT/spool/local" "$BH_ROOT/spool/ndr" \
		-path '*/tmp' -prune -o -type f -exec rm -f {} +
}

# sink_start IP [PORT] — runs Postfix's smtp-sink on IP and PORT (default a
# free one), keeping
# each message as a file in $SINK_DIR/IP/; sets SINK_PORT. smtp-sink runs
# as nobody, so its folder is outside the test's private tmp dir; call
# sink_cleanup from teardown.
sink_start() {
	local port
	[ -n "$SINK_DIR" ] || SINK_DIR=$(mktemp -d /tmp/route-sink.XXXXXX)
	chmod 755 "$SINK_DIR"
	mkdir -p "$SINK_DIR/$1"
	chmod 777 "$SINK_DIR/$1"
	port=${2:-$(free_port)}
	smtp-sink -u nobody -d "$SINK_DIR/$1/%M." "$1:$port" 256 &
	kill_on_teardown $!
	wait_until 5 bash -c "exec 3<>/dev/tcp/$1/$port" 2>/dev/null
	SINK_PORT=$port
}

sink_cleanup() {
	[ -z "$SINK_DIR" ] || rm -rf "$SINK_DIR"
}

# sink_count IP — messages the sink on IP has received.
sink_count() {
	find "$SINK_DIR/$1" -type f 2>/dev/null | wc -l
}

# sink_has IP ADDR — the sink on IP received a message for ADDR.
sink_has() {
	grep -qs "^X-Rcpt-Args: <$2>" "$SINK_DIR/$1"/*
}
