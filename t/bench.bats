# t/bench.bats — the smoke variant of `make bench`: the harness starts a
# private Postfix and a bridgehead root, runs tiny workloads against both,
# prints the table, writes the results file, and leaves nothing behind.
load lib/root

setup() {
	command -v smtp-source >/dev/null && command -v postfix >/dev/null ||
		skip "postfix (smtp-source, smtp-sink) is not installed"
	[ "$(id -u)" -eq 0 ] || skip "a private Postfix instance needs root"
}

@test "bench/run (BENCH_QUICK=1) measures both MTAs and cleans up" {
	export BENCH_QUICK=1
	export BENCH_RESULTS=$BATS_TEST_TMPDIR/results.md
	run timeout 120 "$TOP/bench/run"
	assert_success
	assert_line --regexp '^\| acceptance 1 KB, 10 sessions \(msg/s, higher is better\) \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$'
	assert_line --regexp '^\| end to end 1 KB, 10 sessions '
	assert_line --regexp '^\| local delivery 1 KB, 10 sessions \(msg/s, higher is better\) \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$'
	assert_line --regexp '^\| memory per session \(RSS\) '
	assert_line --regexp '^Disk \(the spool.s file system\): [0-9]+ append\+fsync/s'
	assert_line --partial 'smtp-source errors: Postfix 0, bridgehead 0.'
	grep -q '^## Run of ' "$BENCH_RESULTS"
	grep -q '^Machine: .*, [0-9]* cores, ' "$BENCH_RESULTS"
	# the work directory is gone, and nothing of it still runs
	w=$(sed -n 's/^bench: work directory //p' <<< "$output")
	[ -n "$w" ] && [ ! -e "$w" ]
	! grep -lzF "$w/" /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null
}
