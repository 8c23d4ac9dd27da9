# t/lib/ndr.bash — helpers for the bh-ndr tests (load lib/root first).

# ndr_setting KEY VALUE... — sets settings lines (replacing the same keys)
# and recompiles the config.
ndr_setting() {
	while [ $# -ge 2 ]; do
		sed -i "/^$1[[:space:]]/d" "$BH_ROOT/cdb/settings"
		printf '%s %s\n' "$1" "$2" >> "$BH_ROOT/cdb/settings"
		shift 2
	done
	config_make
}

# ndr_put NAME LINE... — queues the record NAME in spool/ndr (content from
# stdin, as envelope_put), for tests that need names of one message such
# as ID.R1.F1 and ID.R2.F2.
ndr_put() {
	local name=$1
	shift
	if [ -t 0 ]; then
		printf 'Subject: test\r\n\r\nhello\r\n' > "$BH_ROOT/spool/msg/$name"
	else
		cat > "$BH_ROOT/spool/msg/$name"
	fi
	printf '%s\n' "$@" > "$BH_ROOT/spool/ndr/tmp/$name"
	mv "$BH_ROOT/spool/ndr/tmp/$name" "$BH_ROOT/spool/ndr/new/$name"
}

# A small original message, CRLF line ends as stored by bh-smtpd.
ndr_original() {
	printf 'Received: from client.example.com\r\nFrom: Demo <demo@example.com>\r\n'
	printf 'To: a@example.net\r\nSubject: quarterly numbers\r\n'
	printf 'Message-ID: <orig.1@example.com>\r\n%s\r\n' "$*"
	printf 'first line of the body\r\nsecond line\r\n'
}

# The envelope names in spool/incoming/new (the reports submitted).
ndr_reports() {
	ls "$BH_ROOT/spool/incoming/new"
}

# ndr_facts [NAME] — the report's facts (t/lib/ndr.py) for NAME, or for the
# only envelope in spool/incoming/new.
ndr_facts() {
	local name=${1:-}
	if [ -z "$name" ]; then
		[ "$(ndr_reports | wc -l)" -eq 1 ] || { echo "not one report" >&2; return 1; }
		name=$(ndr_reports)
	fi
	python3 "$TOP/t/lib/ndr.py" "$BH_ROOT/spool/msg/$name"
}

# ndr_envelope [NAME] — the envelope of the report (only one by default).
ndr_envelope() {
	cat "$BH_ROOT/spool/incoming/new/${1:-$(ndr_reports)}"
}

# ndr_count_is QUEUE N — succeeds when QUEUE holds N envelopes (wait_until).
ndr_count_is() {
	[ "$(queue_count "$1")" -eq "$2" ]
}

# ndr_carry FROM TO — stands in for bh-remote and the peer's bh-smtpd
# between two roots: every envelope in FROM/spool/remote/new is received by
# TO as a new message (same sender, msgid, subject and size, its
# recipients state=new, content copied) and leaves FROM. Prints how many
# it carried.
ndr_carry() {
	local from=$1 to=$2 n=0 f name id
	for f in "$from"/spool/remote/new/*; do
		[ -e "$f" ] || continue
		name=${f##*/}
		id="$(date +%s%N | cut -c1-16)-$$-$RANDOM"
		cp "$from/spool/msg/$name" "$to/spool/msg/$id"
		awk '/^(sender|msgid|subject|size) / { print }
		    /^rcpt / { print "rcpt " $2 " state=new" }' \
		    "$f" > "$to/spool/incoming/tmp/$id"
		mv "$to/spool/incoming/tmp/$id" "$to/spool/incoming/new/$id"
		rm "$f" "$from/spool/msg/$name"
		n=$((n + 1))
	done
	echo "$n"
}

# ndr_root NAME DOMAIN — a second root in $BATS_TEST_TMPDIR/NAME serving
# DOMAIN (mailboxes user and postmaster), compiled.
ndr_root() {
	local dir="$BATS_TEST_TMPDIR/$1" domain=$2
	bh-init "$dir" >/dev/null
	printf 'hostname mx.%s\npostmaster postmaster@%s\n' "$domain" "$domain" \
	    > "$dir/cdb/settings"
	printf '%s type=authoritative\n' "$domain" > "$dir/cdb/domains"
	printf 'mailbox postmaster addresses=postmaster@%s\nmailbox user addresses=user@%s\n' \
	    "$domain" "$domain" > "$dir/cdb/directory"
	make -s -C "$dir/cdb" >/dev/null
}

# ndr_smtp_root NAME DOMAIN PORT OTHER-DOMAIN OTHER-PORT — ndr_root, plus a
# virtual server on 127.0.0.1:PORT and a connector that sends OTHER-DOMAIN
# to 127.0.0.1:OTHER-PORT; starts its bh-smtpd (killed in teardown).
ndr_smtp_root() {
	local dir="$BATS_TEST_TMPDIR/$1"
	ndr_root "$1" "$2"
	printf 'default listen=127.0.0.1:%s relay-from=\n' "$3" > "$dir/cdb/servers"
	printf 'peer address-space=%s cost=1 smarthost=[127.0.0.1]:%s\n' "$4" "$5" \
	    > "$dir/cdb/connectors"
	make -s -C "$dir/cdb" >/dev/null
	BH_ROOT=$dir bh-smtpd 2>>"$dir/smtpd.log" &
	kill_on_teardown $!
	wait_until 10 ndr_listening "$3" || { cat "$dir/smtpd.log" >&2; return 1; }
}

# ndr_listening PORT — succeeds when something accepts on 127.0.0.1:PORT.
ndr_listening() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ndr_pipeline [remote] — runs every local stage once (and bh-remote when
# asked), round after round while work remains (at most 10 rounds), in
# the root $BH_ROOT.
ndr_pipeline() {
	local round s stages="categorize ndr route local"
	[ "${1:-}" = remote ] && stages="$stages remote"
	for round in 1 2 3 4 5 6 7 8 9 10; do
		for s in $stages; do
			"bh-$s" -1 2>>"$BATS_TEST_TMPDIR/stages.log" || return 1
		done
		ndr_count_is incoming 0 && ndr_count_is ndr 0 &&
		    ndr_count_is route 0 && ndr_count_is local 0 &&
		    { [ "${1:-}" != remote ] || ndr_count_is remote 0; } && return 0
	done
	return 1
}

# ndr_peer — starts t/lib/ndr_peer.py on a free port (killed in teardown)
# and routes example.net to it with a connector; sets PEER_PORT.
ndr_peer() {
	PEER_PORT=$(free_port)
	python3 "$TOP/t/lib/ndr_peer.py" "$PEER_PORT" &
	kill_on_teardown $!
	printf 'peer address-space=example.net cost=1 smarthost=[127.0.0.1]:%s\n' \
	    "$PEER_PORT" >> "$BH_ROOT/cdb/connectors"
	config_make
	wait_until 10 ndr_listening "$PEER_PORT"
}

# ndr_maildir_report BOX — the file in BOX's Maildir/new that is a report.
ndr_maildir_report() {
	grep -l 'multipart/report' "$BH_ROOT/mailroot/$1/Maildir/new/"* 2>/dev/null
}
