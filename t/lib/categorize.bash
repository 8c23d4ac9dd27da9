# t/lib/categorize.bash — the categorizer's directory benchmark (not a
# timed test: the figures go into the README's categorize section).
#
#   bash t/lib/categorize.bash [MAILBOXES [GROUPS [MEMBERS]]]
#
# Builds a root in a temporary folder with MAILBOXES mailboxes (100000),
# GROUPS groups (1000) of 100 members each (every tenth nests the next
# group), and one group "big" of MEMBERS (500) mailboxes; times bh-config
# compiling it, then bh-categorize -1 on one message to big@example.com
# (the whole process: start, lookups, hand-over), best and median of 9.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BH_BIN:-$top/bin}
nbox=${1:-100000} ngroup=${2:-1000} nmember=${3:-500}
export BH_ROOT=$(mktemp -d)
trap 'rm -rf "$BH_ROOT"' EXIT
"$bin/bh-init" "$BH_ROOT" >/dev/null
awk -v nbox="$nbox" -v ngroup="$ngroup" -v nmember="$nmember" 'BEGIN {
	srand(1)
	for (i = 0; i < nbox; i++)
		printf "mailbox u%d addresses=u%d@example.com name=\"User %d\"\n", i, i, i
	for (g = 0; g < ngroup; g++) {
		printf "group g%d addresses=g%d@example.com members=", g, g
		for (m = 0; m < 100; m++)
			printf "%su%d", m ? "," : "", int(rand() * nbox)
		if (g % 10 == 0 && g + 1 < ngroup)
			printf ",g%d", g + 1
		printf "\n"
	}
	printf "group big addresses=big@example.com members="
	for (m = 0; m < nmember; m++)
		printf "%su%d", m ? "," : "", m * int(nbox / nmember)
	printf "\n"
}' >> "$BH_ROOT/cdb/directory"
rm -f "$BH_ROOT/cdb/"*.cdb "$BH_ROOT/cdb/.compiled"
start=$(date +%s%N)
make -s -C "$BH_ROOT/cdb" BH_CONFIG="$bin/bh-config"
echo "compile: $(( ($(date +%s%N) - start) / 1000000 )) ms" \
	"($nbox mailboxes, $ngroup groups, $(stat -c %s "$BH_ROOT/cdb/directory.cdb") bytes)"
times=()
for run in 1 2 3 4 5 6 7 8 9; do
	id="1000000000000000-$run"
	printf 'Subject: bench\r\n\r\nhello\r\n' > "$BH_ROOT/spool/msg/$id"
	printf 'sender a@example.net\nsize 30\nrcpt big@example.com state=new\n' \
		> "$BH_ROOT/spool/incoming/new/$id"
	start=$(date +%s%N)
	"$bin/bh-categorize" -1 2>/dev/null
	times+=($(( ($(date +%s%N) - start) / 1000 )))
	n=$(grep -c '^rcpt' "$BH_ROOT/spool/route/new/$id")
	rm -f "$BH_ROOT/spool/route/new/$id" "$BH_ROOT/spool/msg/$id"
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "categorize: message to a $n-recipient group: best ${sorted[0]} us," \
	"median ${sorted[4]} us (bh-categorize -1, whole process)"
