# t/spare.bats — content and envelope files kept for reuse
# (spool/spare/msg, spool/spare/env): the last link of a finished message
# is kept, the next message is written into it (emptied first), a spare
# with another link is never written, and the spares stop at 2048.
load lib/root
load lib/dns

setup() { root_new; }

drain() {
	bh-categorize -1 && bh-route -1 && bh-local -1
}

spares() { ls "$BH_ROOT/spool/spare/msg" | wc -l; }

@test "delivered messages' content files are kept and the next message is written into one, emptied first" {
	for i in 1 2 3 4 5 6 7 8; do
		{ printf 'Subject: big\n\n'; head -c 100000 /dev/zero | tr '\0' a | fold -w 70; } |
			bh-inject -f a@example.net demo@example.com
	done
	drain
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 0
	assert_equal "$(spares)" 8
	inodes=$(stat -c %i "$BH_ROOT"/spool/spare/msg/*)
	# over 64 KB a spare is emptied when given: only its inode is kept
	assert_equal "$(cat "$BH_ROOT"/spool/spare/msg/* | wc -c)" 0
	printf 'Subject: small\n\nsmall body\n' | bh-inject -f b@example.net demo@example.com
	assert_equal "$(spares)" 7
	id=$(ls "$BH_ROOT/spool/msg")
	grep -qx "$(stat -c %i "$BH_ROOT/spool/msg/$id")" <<<"$inodes"
	run sed -n '/^Subject/,$p' "$BH_ROOT/spool/msg/$id"
	assert_output "$(printf 'Subject: small\r\n\r\nsmall body\r')"
	[ "$(stat -c %s "$BH_ROOT/spool/msg/$id")" -lt 400 ]
	drain
	f=$(grep -l 'Subject: small' "$BH_ROOT"/mailroot/demo/Maildir/new/*)
	run sed -n '/^Subject/,$p' "$f"
	assert_output "$(printf 'Subject: small\n\nsmall body')"
}

@test "bh-smtpd writes over a bigger spare and cuts it at the end of the message" {
	for i in 1 2 3 4 5 6 7 8; do
		{ printf 'Subject: big\n\n'; head -c 100000 /dev/zero | tr '\0' a | fold -w 70; } |
			bh-inject -f a@example.net demo@example.com
	done
	drain
	inodes=$(stat -c %i "$BH_ROOT"/spool/spare/msg/*)
	run smtpd_once < <(printf 'HELO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: cut\r\n\r\nshort\r\n.\r\nQUIT\r\n')
	assert_line --regexp '^250 2\.6\.0 '
	id=$(ls "$BH_ROOT/spool/msg")
	grep -qx "$(stat -c %i "$BH_ROOT/spool/msg/$id")" <<<"$inodes"
	run sed -n '/^Subject/,$p' "$BH_ROOT/spool/msg/$id"
	assert_output "$(printf 'Subject: cut\r\n\r\nshort\r')"
	[ "$(stat -c %s "$BH_ROOT/spool/msg/$id")" -lt 400 ]
	grep -qx "size $(stat -c %s "$BH_ROOT/spool/msg/$id")" "$BH_ROOT/spool/incoming/new/$id"
}

@test "a spare of 64 KB or less keeps its blocks for the next message" {
	for i in 1 2 3 4 5 6 7 8; do
		{ printf 'Subject: mid\n\n'; head -c 10000 /dev/zero | tr '\0' a | fold -w 70; } |
			bh-inject -f a@example.net demo@example.com
	done
	drain
	assert_equal "$(spares)" 8
	for f in "$BH_ROOT"/spool/spare/msg/*; do
		[ "$(stat -c %s "$f")" -gt 10000 ]
	done
}

@test "fewer than 8 spares are left alone: a new file is created" {
	mkdir -p "$BH_ROOT/spool/spare/msg"
	touch "$BH_ROOT"/spool/spare/msg/s{1,2,3,4,5,6,7}
	printf 'Subject: new\n\nnew\n' | bh-inject -f a@example.net demo@example.com
	assert_equal "$(spares)" 7
}

@test "a spare that has another link is never written: the other file keeps its text" {
	mkdir -p "$BH_ROOT/spool/spare/msg"
	for i in 1 2 3 4 5 6 7 8; do
		printf 'precious %s\n' $i > "$BH_ROOT/spool/msg/keep$i"
		ln "$BH_ROOT/spool/msg/keep$i" "$BH_ROOT/spool/spare/msg/alias$i"
	done
	printf 'Subject: new\n\nnew\n' | bh-inject -f a@example.net demo@example.com
	for i in 1 2 3 4 5 6 7 8; do
		assert_equal "$(cat "$BH_ROOT/spool/msg/keep$i")" "precious $i"
		assert_equal "$(stat -c %h "$BH_ROOT/spool/msg/keep$i")" 1
	done
	assert_equal "$(spares)" 0
	id=$(ls "$BH_ROOT/spool/msg" | grep -v '^keep')
	run sed -n '/^Subject/,$p' "$BH_ROOT/spool/msg/$id"
	assert_output "$(printf 'Subject: new\r\n\r\nnew\r')"
}

@test "content shared by two envelopes is kept only when its last link goes" {
	printf 'Subject: two\n\nx\n' | bh-inject -f a@example.net demo@example.com x@remote.example
	bh-categorize -1 && bh-route -1 && bh-local -1
	assert_equal "$(spares)" 0
	assert_equal "$(queue_count remote)" 1
	name=$(ls "$BH_ROOT/spool/remote/new")
	grep -qx "$(printf 'Subject: two\r')" "$BH_ROOT/spool/msg/$name"
	assert_equal "$(stat -c %h "$BH_ROOT/spool/msg/$name")" 1
	bh-queue delete "$name" >/dev/null
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 0
	assert_equal "$(spares)" 1
}

@test "at 2048 spares a finished message's content is removed, not kept" {
	mkdir -p "$BH_ROOT/spool/spare/msg"
	(cd "$BH_ROOT/spool/spare/msg" && seq 2048 | xargs touch)
	printf 'Subject: full\n\nx\n' | bh-inject -f a@example.net demo@example.com
	assert_equal "$(spares)" 2047
	touch "$BH_ROOT/spool/spare/msg/extra"
	drain
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 0
	assert_equal "$(spares)" 2048
}

@test "bh-remote keeps the envelopes it finished; bh-smtpd writes the next envelope into one" {
	SINK_PORT=$(free_port)
	sink_start mx1 127.0.0.2
	for i in 1 2 3 4 5 6 7 8; do
		remote_put a.test 'smarthost:[127.0.0.2]' "rcpt x$i@a.test state=remote" >/dev/null
	done
	printf 'remote-port %s\n' "$SINK_PORT" >> "$BH_ROOT/cdb/settings"
	config_make
	bh-remote -1
	assert_equal "$(sink_count mx1)" 8
	assert queue_empty remote
	run ls "$BH_ROOT/spool/spare/env"
	assert_equal "${#lines[@]}" 8
	assert_line --regexp '^remote,[0-9]+-[0-9]+-[0-9]+$'
	inodes=$(stat -c %i "$BH_ROOT"/spool/spare/env/*)
	run smtpd_once < <(printf 'HELO x\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<demo@example.com>\r\nDATA\r\nSubject: e\r\n\r\nx\r\n.\r\nQUIT\r\n')
	assert_line --regexp '^250 2\.6\.0 '
	assert_equal "$(ls "$BH_ROOT/spool/spare/env" | wc -l)" 7
	id=$(ls "$BH_ROOT/spool/incoming/new")
	grep -qx "$(stat -c %i "$BH_ROOT/spool/incoming/new/$id")" <<<"$inodes"
	run cat "$BH_ROOT/spool/incoming/new/$id"
	assert_line 'sender a@example.net'
	assert_line --regexp '^rcpt demo@example.com state=new'
	refute_line --partial 'a.test'
	refute_line --partial 'hops'
}

smtpd_once() {
	TCPREMOTEIP=192.0.2.1 bh-smtpd -i 2>/dev/null | tr -d '\r'
}

@test "bh-init asks ext4 to spread the queues over block groups (spool/ has the T attribute)" {
	attrs=$(lsattr -d "$BH_ROOT/spool" 2>/dev/null) ||
		skip "this file system has no attributes (not ext2/3/4)"
	[[ ${attrs%% *} == *T* ]]
	# a second bh-init on the same root keeps it so
	bh-init "$BH_ROOT"
	attrs=$(lsattr -d "$BH_ROOT/spool")
	[[ ${attrs%% *} == *T* ]]
}
