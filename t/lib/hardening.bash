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

# spool_on_tmpfs SIZE — puts the root's spool on a tmpfs of SIZE (as
# root), with the queue folders bh-init made; faults_teardown unmounts it.
spool_on_tmpfs() {
	local probe="$BATS_TEST_TMPDIR/probe"
	mkdir -p "$probe"
	mount -t tmpfs -o size=64k bh-probe "$probe" 2>/dev/null ||
		skip "cannot mount a tmpfs here (a container without CAP_SYS_ADMIN?)"
	umount "$probe"
	HARD_MOUNT="$BH_ROOT/spool"
	mv "$BH_ROOT/spool" "$BH_ROOT/spool.disk"
	mkdir "$BH_ROOT/spool"
	mount -t tmpfs -o "size=$1,mode=0755" bh-hardening "$HARD_MOUNT"
	cp -a "$BH_ROOT/spool.disk/." "$BH_ROOT/spool/"
}

# spool_resize SIZE — gives the tmpfs more (or less) room, in place.
spool_resize() {
	mount -o "remount,size=$1" "$HARD_MOUNT"
}

faults_teardown() {
	root_teardown
	local rc=$?
	if [ -n "${HARD_MOUNT:-}" ]; then
		umount "$HARD_MOUNT" 2>/dev/null || umount -l "$HARD_MOUNT" || true
	fi
	return $rc
}

# need_root — skips a test that must mount or change users.
need_root() {
	[ "$(id -u)" -eq 0 ] || skip "needs root (mounts a tmpfs or drops privileges)"
}

# accepted — the sequence numbers of the messages "send" saw accepted.
accepted() {
	sed -n 's/^msg \([0-9]*\) 250_2.6.0$/\1/p' <<<"$output"
}

# spool_seqs QUEUE... — the X-Seq of every message queued in those queues
# (envelope in QUEUE, content in spool/msg), one per line, sorted.
spool_seqs() {
	local q f name
	for q in "$@"; do
		find "$BH_ROOT/spool/$q" -path '*/tmp' -prune -o -type f -print
	done | while read -r f; do
		name=$(basename "$f")
		sed -n 's/^X-Seq: \([0-9]*\)\r$/\1/p' "$BH_ROOT/spool/msg/$name"
	done | sort -n
}
