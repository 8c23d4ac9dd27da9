# t/lib/queue.bash — helpers for the operations tests (bh-queue, bh-track).

# envelope_put_in QUEUE SUB MTIME LINE... — queues an envelope as
# envelope_put does, then moves it into SUB (retry, hold, scheduled,
# frozen) with the given mtime (unix time; "-" keeps it). Prints its name.
envelope_put_in() {
	local q=$1 sub=$2 when=$3 id
	shift 3
	id=$(printf 'Subject: test\r\nFrom: a@example.com\r\n\r\nhello\r\n' |
	    envelope_put "$q" "$@")
	mkdir -p "$BH_ROOT/spool/$q/$sub"
	if [ "$sub" != new ]; then
		mv "$BH_ROOT/spool/$q/new/$id" "$BH_ROOT/spool/$q/$sub/$id"
	fi
	if [ "$when" != - ]; then
		touch -d "@$when" "$BH_ROOT/spool/$q/$sub/$id"
	fi
	echo "$id"
}

# state_put DEST STATE ERROR NEXT SINCE — a link-state file as bh-remote
# writes it.
state_put() {
	mkdir -p "$BH_ROOT/spool/state"
	printf 'state %s\nerror %s\nnext-attempt %s\nsince %s\n' "$2" "$3" "$4" \
	    "$5" > "$BH_ROOT/spool/state/$1"
}

# The output of a command with runs of blanks squeezed to one space.
squeezed() {
	"$@" | tr -s ' '
}

# utc UNIXTIME — the time as bh-queue prints it.
utc() {
	date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ
}

# The envelopes of a queue, as QUEUE/SUB/NAME lines.
queue_files() {
	(cd "$BH_ROOT/spool" && find "$1" -path '*/tmp' -prune -o -type f -print | sort)
}
