# t/queue.bats — bh-queue: the queue viewer and its actions on real queued
# mail (envelopes as the stages write them, link-state files as bh-remote
# writes them).
load lib/root
load lib/queue

setup() {
	root_new
	NOW=$(date +%s)
}

@test "the summary shows every queue with its count, size, age and meaning" {
	envelope_put_in incoming new - 'sender a@example.com' "arrived $((NOW - 3690))" \
	    'size 1000' 'rcpt demo@example.com state=new'
	envelope_put_in incoming new - 'sender a@example.com' "arrived $((NOW - 100))" \
	    'size 2072' 'rcpt demo@example.com state=new'
	envelope_put_in route new - 'sender a@example.com' "arrived $((NOW - 300))" \
	    'size 10' 'rcpt demo@example.com state=local box=demo'
	envelope_put_in local retry $((NOW + 600)) 'sender a@example.com' \
	    "arrived $((NOW - 7300))" 'size 5' 'rcpt demo@example.com state=deferred'
	run squeezed bh-queue
	assert_success
	assert_line --index 0 'QUEUE MESSAGES SIZE OLDEST STATE NEXT-ATTEMPT INFO'
	assert_line --index 1 'incoming 2 3.0K 1h01m Ready - awaiting directory lookup'
	assert_line --index 2 'route 1 10 5m Ready - waiting to be routed'
	assert_line --index 3 "local 1 5 2h01m Retry $(utc $((NOW + 600))) local delivery"
	assert_line --index 4 'ndr 0 0 - Ready - delivery reports to build'
	assert_line --index 5 'badmail 0 0 - Ready - reports that could not be delivered'
	assert_equal "${#lines[@]}" 6
}

@test "the summary aligns its columns" {
	envelope_put_in remote new - 'sender a@example.com' 'dest a-rather-long-destination.example' \
	    'size 12' 'rcpt x@a-rather-long-destination.example state=remote'
	run bh-queue
	assert_success
	# every line has its STATE column at the same place
	col=$(printf '%s\n' "${lines[0]}" | awk '{ print index($0, "STATE") }')
	for l in "${lines[@]:1}"; do
		[ "$(printf '%s\n' "$l" | awk '{ print index($0, "Ready") }')" -eq "$col" ]
	done
}

@test "remote destinations show Retry with the last error and next attempt" {
	envelope_put_in remote retry $((NOW + 300)) 'sender a@example.com' 'dest contoso.com' \
	    'size 2000' "arrived $((NOW - 120))" 'rcpt x@contoso.com state=deferred code=4.4.1'
	envelope_put_in remote new - 'sender a@example.com' 'dest contoso.com' \
	    'size 48' "arrived $((NOW - 60))" 'rcpt y@contoso.com state=remote'
	state_put contoso.com Retry '421 4.4.1 connection refused by [127.0.0.1]:9' \
	    $((NOW + 300)) $((NOW - 120))
	run squeezed bh-queue
	assert_success
	assert_line "contoso.com 2 2.0K 2m Retry $(utc $((NOW + 300))) 421 4.4.1 connection refused by [127.0.0.1]:9"
}

@test "a destination not Ready for unreachable-after is Unreachable" {
	envelope_put_in remote retry $((NOW + 300)) 'sender a@example.com' 'dest fabrikam' \
	    'size 1' "arrived $((NOW - 4000))" 'rcpt x@fabrikam.com state=deferred'
	state_put fabrikam Retry '451 4.4.1 no answer' $((NOW + 300)) $((NOW - 3601))
	run squeezed bh-queue
	assert_line "fabrikam 1 1 1h06m Unreachable $(utc $((NOW + 300))) 451 4.4.1 no answer"
	echo 'unreachable-after 2h' >> "$BH_ROOT/cdb/settings"
	config_make
	run squeezed bh-queue
	assert_line "fabrikam 1 1 1h06m Retry $(utc $((NOW + 300))) 451 4.4.1 no answer"
}

@test "held, scheduled and frozen destinations show their state" {
	envelope_put_in remote hold - 'sender a@example.com' 'dest etrn-site' 'size 7' \
	    "arrived $((NOW - 600))" 'rcpt x@etrn.example state=remote'
	envelope_put_in remote scheduled $((NOW + 3600)) 'sender a@example.com' \
	    'dest night' 'size 9' "arrived $((NOW - 600))" 'rcpt x@night.example state=remote'
	state_put quiet Frozen 'frozen by administrator' 0 $NOW
	run squeezed bh-queue
	assert_line 'etrn-site 1 7 10m Held - remote delivery'
	assert_line "night 1 9 10m Scheduled $(utc $((NOW + 3600))) remote delivery"
	assert_line 'quiet 0 0 - Frozen - frozen by administrator'
}

@test "--json gives the summary for scripts" {
	envelope_put_in remote retry $((NOW + 300)) 'sender a@example.com' 'dest contoso.com' \
	    'size 2000' "arrived $((NOW - 120))" 'rcpt x@contoso.com state=deferred'
	state_put contoso.com Retry '421 4.4.1 refused' $((NOW + 300)) $NOW
	run bash -c "bh-queue --json | jq -c '.[] | select(.queue == \"contoso.com\") | [.type, .messages, .bytes, .state, .next_attempt, .error]'"
	assert_success
	assert_output "[\"destination\",1,2000,\"Retry\",\"$(utc $((NOW + 300)))\",\"421 4.4.1 refused\"]"
	run bash -c "bh-queue --json | jq -r '.[0].queue, .[0].info'"
	assert_output "$(printf 'incoming\nawaiting directory lookup')"
}

@test "list enumerates a queue's messages, at most -n of them" {
	a=$(envelope_put_in local new - 'sender a@example.com' 'size 10' "arrived $((NOW - 600))" \
	    'rcpt demo@example.com state=local box=demo' 'rcpt postmaster@example.com state=local box=postmaster')
	b=$(envelope_put_in local retry $((NOW + 60)) 'sender <>' 'size 20' "arrived $((NOW - 300))" \
	    'rcpt demo@example.com state=deferred')
	c=$(envelope_put_in local frozen - 'sender c@example.com' 'size 30' "arrived $((NOW - 120))" \
	    'rcpt demo@example.com state=local')
	run squeezed bh-queue list local
	assert_success
	assert_line --index 0 'ID QUEUE STATE NEXT-ATTEMPT AGE SIZE SENDER RECIPIENTS'
	assert_line --index 1 "$a local Ready - 10m 10 a@example.com demo@example.com,postmaster@example.com"
	assert_line --index 2 "$b local Retry $(utc $((NOW + 60))) 5m 20 <> demo@example.com"
	assert_line --index 3 "$c local Frozen - 2m 30 c@example.com demo@example.com"
	run squeezed bh-queue list local -n 1
	assert_line --index 1 --partial "$a local Ready"
	assert_line --index 2 '(2 more not shown)'
	run bash -c "bh-queue list local --json | jq -r '.[1].state, .[1].sender, .[1].recipients[0]'"
	assert_output "$(printf 'Retry\n<>\ndemo@example.com')"
}

@test "list DEST shows only that destination's mail" {
	a=$(envelope_put_in remote new - 'sender a@example.com' 'dest contoso.com' 'size 1' \
	    'rcpt x@contoso.com state=remote')
	envelope_put_in remote new - 'sender a@example.com' 'dest other' 'size 1' \
	    'rcpt x@other.example state=remote'
	run squeezed bh-queue list contoso.com
	assert_success
	assert_equal "${#lines[@]}" 2
	assert_line --index 1 --partial "$a contoso.com Ready"
}

@test "show prints the envelope, each recipient's state and reply, and the headers" {
	id=$(envelope_put_in remote retry $((NOW + 60)) 'sender a@example.com' 'dest contoso.com' \
	    'size 40' 'rcpt x@contoso.com state=deferred code=4.4.1 reason="421 4.4.1 try later"' \
	    'rcpt y@contoso.com state=failed code=5.1.1 reason="550 5.1.1 no such user"')
	run bh-queue show "$id"
	assert_success
	assert_line --index 0 "== remote/retry/$id"
	assert_line --index 1 "next attempt $(utc $((NOW + 60)))"
	assert_line 'sender a@example.com'
	assert_line 'dest contoso.com'
	assert_line 'x@contoso.com  deferred  4.4.1  421 4.4.1 try later'
	assert_line 'y@contoso.com  failed    5.1.1  550 5.1.1 no such user'
	assert_line 'Subject: test'
	assert_line 'From: a@example.com'
	refute_line 'hello'
	run bash -c "bh-queue show $id --json | jq -r '.[0].recipients[1].reason, .[0].fields.dest'"
	assert_output "$(printf '550 5.1.1 no such user\ncontoso.com')"
	run bh-queue show 1234567890123456-1-1
	assert_failure 100
	assert_output 'bh-queue: no message 1234567890123456-1-1'
}

@test "a frozen message is not delivered until it is thawed" {
	id=$(envelope_put_in local new - 'sender a@example.com' 'msgid <f1@example.com>' "arrived $((NOW - 600))" \
	    'rcpt demo@example.com state=local box=demo')
	run bh-queue freeze "$id"
	assert_success
	assert_output "frozen local/$id"
	[ -f "$BH_ROOT/spool/local/frozen/$id" ]
	run bh-local -1
	assert_equal "$(maildir_count demo)" 0
	run squeezed bh-queue
	assert_line 'local 1 45 10m Frozen - local delivery'
	run bh-queue freeze "$id"
	assert_output "local/$id is already Frozen"
	run bh-queue thaw "$id"
	assert_success
	assert_output "thawed local/$id"
	run bh-local -1
	assert_equal "$(maildir_count demo)" 1
	grep -q "event=frozen id=$id msgid=<f1@example.com>" "$BH_ROOT"/log/track/*
	grep -q "event=thawed id=$id" "$BH_ROOT"/log/track/*
}

@test "a thawed message whose retry time is still to come waits in retry/" {
	id=$(envelope_put_in remote retry $((NOW + 900)) 'sender a@example.com' 'dest d' \
	    'rcpt x@d.example state=deferred')
	run bh-queue freeze "$id"
	assert_output "frozen remote/$id"
	run bh-queue thaw "$id"
	assert_output "thawed remote/$id"
	[ "$(stat -c %Y "$BH_ROOT/spool/remote/retry/$id")" -eq $((NOW + 900)) ]
}

@test "freeze and thaw a destination" {
	r=$(envelope_put_in remote retry $((NOW + 900)) 'sender a@example.com' 'dest contoso.com' \
	    "arrived $((NOW - 600))" 'rcpt x@contoso.com state=deferred code=4.3.2')
	run bh-queue freeze contoso.com
	assert_success
	assert_output 'frozen destination contoso.com'
	run grep -c '^state Frozen$' "$BH_ROOT/spool/state/contoso.com"
	assert_output 1
	run squeezed bh-queue
	assert_line 'contoso.com 1 45 10m Frozen - frozen by administrator'
	run bh-queue thaw contoso.com
	assert_success
	assert_line --index 0 'thawed destination contoso.com'
	assert_line --index 1 "retry remote/$r"
	[ ! -e "$BH_ROOT/spool/state/contoso.com" ]
	[ -f "$BH_ROOT/spool/remote/new/$r" ]
	run bh-queue thaw contoso.com
	assert_output 'destination contoso.com is not frozen'
	run bh-queue freeze ../etc
	assert_failure 100
}

@test "retry DEST moves its deferred mail to new/ now and clears Retry" {
	a=$(envelope_put_in remote retry $((NOW + 900)) 'sender a@example.com' 'dest contoso.com' \
	    'rcpt x@contoso.com state=deferred')
	b=$(envelope_put_in remote retry $((NOW + 900)) 'sender a@example.com' 'dest other' \
	    'rcpt x@other.example state=deferred')
	state_put contoso.com Retry '421 4.4.1 refused' $((NOW + 900)) $NOW
	state_put other Retry '421 4.4.1 refused' $((NOW + 900)) $NOW
	run bh-queue retry contoso.com
	assert_success
	assert_line --index 0 "retry remote/$a"
	assert_line --index 1 'destination contoso.com is Ready'
	[ -f "$BH_ROOT/spool/remote/new/$a" ]
	[ -f "$BH_ROOT/spool/remote/retry/$b" ]
	[ ! -e "$BH_ROOT/spool/state/contoso.com" ]
	[ -e "$BH_ROOT/spool/state/other" ]
}

@test "retry with no destination releases every queue's retry/" {
	a=$(envelope_put_in local retry $((NOW + 900)) 'sender a@example.com' \
	    'rcpt demo@example.com state=deferred box=demo')
	b=$(envelope_put_in remote retry $((NOW + 900)) 'sender a@example.com' 'dest other' \
	    'rcpt x@other.example state=deferred')
	state_put other Retry 'x' $((NOW + 900)) $NOW
	state_put frozen.example Frozen 'frozen by administrator' 0 $NOW
	run bh-queue retry
	assert_success
	assert_line "retry local/$a"
	assert_line "retry remote/$b"
	assert_line 'destination other is Ready'
	[ -f "$BH_ROOT/spool/local/new/$a" ]
	[ -f "$BH_ROOT/spool/remote/new/$b" ]
	[ -e "$BH_ROOT/spool/state/frozen.example" ]
}

@test "delete removes every envelope of a message and its content" {
	id=$(envelope_put_in route new - 'sender a@example.com' 'rcpt demo@example.com state=local')
	mv "$BH_ROOT/spool/route/new/$id" "$BH_ROOT/spool/route/new/$id.R1"
	ln "$BH_ROOT/spool/msg/$id" "$BH_ROOT/spool/msg/$id.R1"
	cp "$BH_ROOT/spool/route/new/$id.R1" "$BH_ROOT/spool/remote/new/$id.R2"
	ln "$BH_ROOT/spool/msg/$id" "$BH_ROOT/spool/msg/$id.R2"
	rm "$BH_ROOT/spool/msg/$id"
	run bh-queue delete "$id"
	assert_success
	assert_line "deleted route/$id.R1"
	assert_line "deleted remote/$id.R2"
	assert_equal "$(queue_count route)$(queue_count remote)$(queue_count ndr)" 000
	assert_equal "$(ls "$BH_ROOT/spool/msg" | wc -l)" 0
	grep -q "event=deleted id=$id.R1 .*status=\"deleted by administrator\"" "$BH_ROOT"/log/track/*
	run bh-queue delete "$id"
	assert_failure 100
}

@test "delete --ndr reports the recipients with 5.7.1 deleted by administrator" {
	id=$(envelope_put_in remote retry $((NOW + 900)) 'sender demo@example.com' 'dest contoso.com' \
	    'rcpt x@contoso.com state=deferred code=4.4.1 reason="421 4.4.1 refused"' \
	    'rcpt y@contoso.com state=delivered code=2.0.0')
	run bh-queue delete "$id" --ndr
	assert_success
	assert_output "deleted remote/$id, failure report for 1 recipient"
	rec=$(ls "$BH_ROOT/spool/ndr/new/")
	run cat "$BH_ROOT/spool/ndr/new/$rec"
	assert_line 'kind failure'
	assert_line 'rcpt x@contoso.com state=failed code=5.7.1 reason="deleted by administrator"'
	refute_line --partial 'y@contoso.com'
	[ -f "$BH_ROOT/spool/msg/$rec" ]
	[ ! -e "$BH_ROOT/spool/msg/$id" ]
	# bh-ndr turns the record into a report mailed back to the sender
	bh-ndr -1
	bh-categorize -1
	bh-route -1
	bh-local -1
	assert_equal "$(maildir_count demo)" 1
	run cat "$BH_ROOT"/mailroot/demo/Maildir/new/*
	assert_line --partial 'Status: 5.7.1'
	assert_line --partial 'deleted by administrator'
}

@test "delete DEST removes all mail for a destination" {
	envelope_put_in remote new - 'sender a@example.com' 'dest gone' 'rcpt x@gone.example state=remote'
	envelope_put_in remote retry $((NOW + 60)) 'sender a@example.com' 'dest gone' \
	    'rcpt y@gone.example state=deferred'
	keep=$(envelope_put_in remote new - 'sender a@example.com' 'dest kept' 'rcpt x@kept.example state=remote')
	run bh-queue delete gone
	assert_success
	assert_line '2 messages deleted for gone'
	assert_equal "$(queue_files remote)" "remote/new/$keep"
}

@test "requeue sends a message back to routing with its routing forgotten" {
	id=$(envelope_put_in remote retry $((NOW + 900)) 'sender a@example.com' 'dest contoso.com' \
	    'connector internet' 'hops mx:contoso.com' 'tries 3' "first-failure $NOW" \
	    'rcpt x@contoso.com state=deferred code=4.4.1 reason="421 refused" dest=contoso.com' \
	    'rcpt y@contoso.com state=delivered code=2.0.0')
	run bh-queue requeue "$id"
	assert_success
	assert_output "requeued remote/$id"
	assert_equal "$(queue_count remote)" 0
	run cat "$BH_ROOT/spool/route/new/$id"
	refute_line --partial 'dest '
	refute_line --partial 'hops '
	refute_line --partial 'tries '
	refute_line --partial 'connector '
	assert_line 'rcpt x@contoso.com state=remote'
	assert_line 'rcpt y@contoso.com state=delivered code=2.0.0'
	[ -f "$BH_ROOT/spool/msg/$id" ]
	run bh-queue requeue "$id"
	assert_output "route/$id is already waiting to be routed"
}

@test "bad usage exits 100" {
	run bh-queue frobnicate x
	assert_failure 100
	run bh-queue list
	assert_failure 100
	run bh-queue requeue contoso.com
	assert_failure 100
}

@test "a destination failing at a closed port: view, freeze, retry, thaw, delete --ndr" {
	closed=$(free_port)
	printf 'out address-space=* cost=1 smarthost=[127.0.0.1]:%s\n' "$closed" >> "$BH_ROOT/cdb/connectors"
	config_make
	printf 'Subject: far\nMessage-ID: <far@example.com>\n\nbody\n' |
	    bh-inject -f demo@example.com x@remote.test
	bh-categorize -1 2>/dev/null
	bh-route -1 2>/dev/null
	bh-remote -1 2>/dev/null
	id=$(ls "$BH_ROOT/spool/remote/retry/")
	run squeezed bh-queue
	assert_line --regexp "^out 1 [0-9]+ [0-9]+s Retry [0-9T:Z-]+ 4\\.4\\.1 connect to \\[127\\.0\\.0\\.1\\]:$closed: Connection refused\$"
	run squeezed bh-queue list out
	assert_line --index 1 --regexp "^$id out Retry [0-9T:Z-]+ [0-9]+s [0-9]+ demo@example.com x@remote.test\$"
	run bh-queue show "$id"
	assert_line 'dest out'
	assert_line --regexp '^x@remote\.test  deferred  4\.4\.1  4\.4\.1 connect to '
	assert_line 'Message-ID: <far@example.com>'
	# frozen: retry moves the mail to new/, but bh-remote does not send it
	run bh-queue freeze out
	assert_output 'frozen destination out'
	run bh-queue retry out
	assert_output "retry remote/$id"
	bh-remote -1 2>/dev/null
	run squeezed bh-queue
	assert_line --regexp '^out 1 [0-9]+ [0-9]+s Frozen - frozen by administrator$'
	run bh-queue thaw out
	assert_line --index 0 'thawed destination out'
	run bh-queue delete "$id" --ndr
	assert_success
	assert_output "deleted remote/$id, failure report for 1 recipient"
	assert_equal "$(queue_count remote)" 0
	bh-ndr -1 2>/dev/null
	bh-categorize -1 2>/dev/null
	bh-route -1 2>/dev/null
	bh-local -1 2>/dev/null
	run cat "$BH_ROOT"/mailroot/demo/Maildir/new/*
	assert_line --partial 'Final-Recipient: rfc822; x@remote.test'
	assert_line --partial 'Status: 5.7.1'
	run bh-track --message-id far@example.com
	assert_line --regexp "^  [0-9T:Z-]+ deleted   id=$id status=\"deleted by administrator\"\$"
}

@test "an envelope a stage holds locked is left alone: busy, exit 111" {
	id=$(envelope_put_in remote new - 'sender a@example.com' 'dest d' 'rcpt x@d.example state=remote')
	# what spool_lock does in a stage working on the envelope
	( exec 9<"$BH_ROOT/spool/remote/new/$id"; flock 9; exec sleep 30 ) &
	kill_on_teardown $!
	wait_until 5 bash -c "! flock -n '$BH_ROOT/spool/remote/new/$id' true"
	run bh-queue freeze "$id"
	assert_failure 111
	assert_output "bh-queue: $id: a stage is working on it, try again"
	run bh-queue delete "$id"
	assert_failure 111
	[ -f "$BH_ROOT/spool/remote/new/$id" ]
	[ -f "$BH_ROOT/spool/msg/$id" ]
}
