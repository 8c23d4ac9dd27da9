# t/lib/hardening.bash — helpers for the hardening tests (t/attack.bats,
# t/faults*.bats).
#   load lib/root
#   load lib/smtpd
#   load lib/hardening

# hard_server ATTR... — the default virtual server on a free port of
# 127.0.0.1 with these attributes; sets HARD_PORT.
hard_server() {
	HARD_PORT=$(free_port)
	smtpd_server default "listen=127.0.0.1:$HARD_PORT" "$@"
}

# hard_start [BIN] — runs the listening bh-smtpd (the sanitizer build, or
# BIN, e.g. the release build for memory figures without ASan's
# quarantine); sets HARD_PID and waits until it answers.
hard_start() {
	"${1:-bh-smtpd}" 2>>"$BATS_TEST_TMPDIR/smtpd.log" &
	HARD_PID=$!
	kill_on_teardown "$HARD_PID"
	wait_until 10 smtpd_listening 127.0.0.1 "$HARD_PORT"
}

# attack CMD ARGS... — t/lib/attack.py against the server; "key value" lines.
attack() {
	python3 "$TOP/t/lib/attack.py" "$@"
}

# value KEY — the value of line "KEY value" in $output.
value() {
	sed -n "s/^$1 //p" <<<"$output" | head -1
}
