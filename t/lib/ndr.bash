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
