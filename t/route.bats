# t/route.bats — bh-route: local and remote recipients, next hops without
# connectors, address-space selection, cost, link state, TLS floor, loops.
load lib/root
load lib/route

setup() { root_new; }

@test "route sends local recipients to spool/local and groups remote ones per domain" {
	id=$(route_msg l:demo@example.com b@x.net c@X.NET d@y.org x:gone@example.com)
	route_run
	assert_equal "$(queue_count route)" 0
	assert_equal "$(grep -c '^rcpt' "$BH_ROOT/spool/local/new/$id")" 1
	grep -q '^rcpt demo@example.com state=local box=demo$' "$BH_ROOT/spool/local/new/$id"
	f=$(envelope_of new b@x.net)
	assert_equal "$f" "$(envelope_of new c@X.NET)"
	assert_equal "$(field "$f" dest)" x.net
	assert_equal "$(field "$f" hops)" mx:x.net
	assert_equal "$(grep -c '^connector' "$f")" 0
	grep -q '^rcpt b@x.net state=remote dest=x.net$' "$f"
	g=$(envelope_of new d@y.org)
	assert_equal "$(field "$g" hops)" mx:y.org
	assert_equal "$(ls "$BH_ROOT/spool/remote/new" | sort | tr '\n' ' ')" "$id.R1 $id.R2 "
	# every envelope has its own content link; the failed rcpt is not reported again
	assert_equal "$(stat -c %h "$BH_ROOT/spool/msg/$id")" 3
	assert_equal "$(queue_count ndr)" 0
	assert_equal "$(queue_count remote)" 2
}

@test "route without local recipients frees the input's own content link" {
	id=$(route_msg b@x.net)
	route_run
	[ ! -e "$BH_ROOT/spool/msg/$id" ]
	[ -e "$BH_ROOT/spool/msg/$id.R1" ]
}

@test "route sends everything to settings smarthost, or tries DNS first with direct-first" {
	setting smarthost '[127.0.0.9]:2525'
	route_msg b@x.net >/dev/null
	route_run
	f=$(envelope_of new b@x.net)
	assert_equal "$(field "$f" hops)" 'smarthost:[127.0.0.9]:2525'
	assert_equal "$(field "$f" dest)" x.net
	clean_queues
	setting direct-first yes
	route_msg b@x.net >/dev/null
	route_run
	assert_equal "$(field "$(envelope_of new b@x.net)" hops)" \
	    'mx:x.net smarthost:[127.0.0.9]:2525'
}

@test "route balances a smart host list in random order" {
	setting smarthost '[127.0.0.7],[127.0.0.8]:26,relay.example.net'
	seen=
	for i in $(seq 12); do
		route_msg b@x.net >/dev/null
	done
	route_run
	for f in "$BH_ROOT"/spool/remote/new/*; do
		h=$(field "$f" hops)
		# always the same three entries
		assert_equal "$(echo "${h#smarthost:}" | tr ',' '\n' | sort | tr '\n' ' ')" \
		    '[127.0.0.7] [127.0.0.8]:26 relay.example.net '
		seen="$seen${h%%,*} "
	done
	# 12 messages: more than one host came first
	[ "$(echo $seen | tr ' ' '\n' | sort -u | wc -l)" -gt 1 ]
}

@test "route picks the most specific address space, then the lowest cost" {
	connectors \
	    'star     address-space=* cost=1 route=dns' \
	    'mil      address-space=*.mil cost=1 smarthost=[127.0.0.2]:25' \
	    'army     address-space=army.mil cost=1 smarthost=[127.0.0.3]:25' \
	    'com      address-space=*.com,*.org cost=1 route=dns' \
	    'sales    address-space=*.sales.contoso.com cost=1 route=dns' \
	    'dear     address-space=contoso.com cost=5 smarthost=[127.0.0.4]:25' \
	    'cheap    address-space=contoso.com cost=2 smarthost=[127.0.0.5]:25'
	while read -r domain want; do
		clean_queues
		route_msg "u@$domain" >/dev/null
		route_run
		assert_equal "$domain:$(connector_of "u@$domain")" "$domain:$want"
	done <<-EOF
	army.mil		army
	ARMY.MIL		army
	x.army.mil		mil
	navy.mil		mil
	mil			star
	contoso.com		cheap
	www.contoso.com		com
	a.sales.contoso.com	sales
	sales.contoso.com	com
	example.org		com
	example.net		star
	EOF
}

@test "route writes dest, connector and hops of the chosen connector" {
	connectors \
	    'internet address-space=* cost=1 route=dns' \
	    'relay    address-space=fabrikam.com cost=1 smarthost=[127.0.0.5]:2526'
	id=$(route_msg a@fabrikam.com b@x.net c@y.net)
	route_run
	f=$(envelope_of new a@fabrikam.com)
	assert_equal "$(field "$f" dest)" relay
	assert_equal "$(field "$f" connector)" relay
	assert_equal "$(field "$f" hops)" 'smarthost:[127.0.0.5]:2526'
	# route=dns: one envelope per domain, all with the connector's dest
	f=$(envelope_of new b@x.net)
	assert_equal "$(field "$f" dest)" internet
	assert_equal "$(field "$f" hops)" mx:x.net
	assert_equal "$(field "$(envelope_of new c@y.net)" hops)" mx:y.net
	assert_equal "$(queue_count remote)" 3
	grep -q "event=routed id=$id .*rcpt=a@fabrikam.com.*connector=relay" "$BH_ROOT"/log/track/*
}

@test "route fails recipients no connector matches with 5.4.4" {
	connectors 'mil address-space=*.mil cost=1 smarthost=[127.0.0.2]:25'
	id=$(route_msg a@navy.mil b@example.net)
	route_run
	assert_equal "$(connector_of a@navy.mil)" mil
	run ndr_of b@example.net
	assert_output --partial 'state=failed code=5.4.4'
	assert_output --partial 'no route to example.net'
	f=$(ls "$BH_ROOT"/spool/ndr/new/)
	assert_equal "$(field "$BH_ROOT/spool/ndr/new/$f" kind)" failure
	[ "$(grep -c '^rcpt' "$BH_ROOT/spool/ndr/new/$f")" -eq 1 ]
	grep -q "event=failed id=$id .*rcpt=b@example.net.*code=5.4.4" "$BH_ROOT"/log/track/*
}

@test "route fails over from a connector in Retry to the next cheapest of the same address space" {
	connectors \
	    'star  address-space=* cost=1 route=dns' \
	    'cheap address-space=contoso.com cost=1 smarthost=[127.0.0.5]:25' \
	    'mid   address-space=contoso.com cost=2 smarthost=[127.0.0.6]:25' \
	    'dear  address-space=contoso.com cost=3 smarthost=[127.0.0.7]:25'
	dest_state cheap Retry
	route_msg u@contoso.com >/dev/null
	route_run
	assert_equal "$(connector_of u@contoso.com)" mid
	# all in Retry: the mail waits on the cheapest; the more general * never takes over
	clean_queues
	dest_state mid Retry
	dest_state dear Retry
	route_msg u@contoso.com >/dev/null
	route_run
	assert_equal "$(connector_of u@contoso.com)" cheap
	# back to Ready: new mail uses the cheapest again
	clean_queues
	rm "$BH_ROOT/spool/state/cheap"
	route_msg u@contoso.com >/dev/null
	route_run
	assert_equal "$(connector_of u@contoso.com)" cheap
	# a Retry whose next attempt is due no longer keeps new mail away
	clean_queues
	printf 'state Retry\nerror x\nnext-attempt %s\nsince %s\n' \
	    "$(( $(date +%s) - 5 ))" "$(( $(date +%s) - 600 ))" > "$BH_ROOT/spool/state/cheap"
	route_msg u@contoso.com >/dev/null
	route_run
	assert_equal "$(connector_of u@contoso.com)" cheap
}

@test "route never moves mail from a tls=required connector to a weaker one" {
	connectors \
	    'milssl  address-space=*.mil cost=1 smarthost=[127.0.0.2]:25 tls=required' \
	    'milplain address-space=*.mil cost=2 smarthost=[127.0.0.3]:25' \
	    'star    address-space=* cost=1 route=dns'
	dest_state milssl Retry
	route_msg u@navy.mil >/dev/null
	route_run
	assert_equal "$(connector_of u@navy.mil)" milssl
	clean_queues
	connectors \
	    'milssl  address-space=*.mil cost=1 smarthost=[127.0.0.2]:25 tls=required' \
	    'milplain address-space=*.mil cost=2 smarthost=[127.0.0.3]:25' \
	    'milssl2 address-space=*.mil cost=3 smarthost=[127.0.0.4]:25 tls=required'
	route_msg u@navy.mil >/dev/null
	route_run
	assert_equal "$(connector_of u@navy.mil)" milssl2
}

@test "the book's two connectors: an SSL-only smart host for *.mil, DNS for the rest" {
	connectors \
	    'mil      address-space=*.mil cost=1 smarthost=[127.0.0.2]:465 tls=required' \
	    'internet address-space=* cost=1 route=dns'
	route_msg u@navy.mil v@af.mil w@example.com >/dev/null
	route_run
	f=$(envelope_of new u@navy.mil)
	assert_equal "$f" "$(envelope_of new v@af.mil)"
	assert_equal "$(field "$f" connector)" mil
	assert_equal "$(field "$f" hops)" 'smarthost:[127.0.0.2]:465'
	f=$(envelope_of new w@example.com)
	assert_equal "$(field "$f" connector)" internet
	assert_equal "$(field "$f" hops)" mx:example.com
}

@test "route rotates a connector's source servers" {
	printf '%s\n' 'gw1 listen=127.0.0.2:'"$(free_port)" \
	    'gw2 listen=127.0.0.3:'"$(free_port)" > "$BH_ROOT/cdb/servers"
	connectors 'out address-space=* cost=1 route=dns source=gw1,gw2'
	route_msg a@x.net >/dev/null
	route_msg b@x.net >/dev/null
	route_msg c@x.net >/dev/null
	route_run
	got="$(field "$(envelope_of new a@x.net)" source) $(field "$(envelope_of new b@x.net)" source) $(field "$(envelope_of new c@x.net)" source)"
	assert_equal "$got" "gw1 gw2 gw1"
}

@test "route fails a next hop that is this server itself with 5.3.5" {
	port=$(free_port)
	printf 'default listen=127.0.0.1:%s\n' "$port" > "$BH_ROOT/cdb/servers"
	setting hostname mail.self.test
	connectors \
	    'back address-space=loop.test cost=1 smarthost=[127.0.0.1]:'"$port" \
	    'named address-space=named.test cost=1 smarthost=mail.self.test:'"$port" \
	    'other address-space=other.test cost=1 smarthost=[127.0.0.1]:'"$((port + 1))" \
	    'root2 address-space=root2.test cost=1 smarthost=mail.self.test:'"$((port + 1))" \
	    'star address-space=* cost=1 route=dns'
	route_msg a@loop.test b@mail.self.test d@named.test c@other.test e@root2.test >/dev/null
	route_run
	run ndr_of a@loop.test
	assert_output --partial 'code=5.3.5'
	assert_output --partial 'is this server itself'
	run ndr_of b@mail.self.test
	assert_output --partial 'code=5.3.5'
	run ndr_of d@named.test
	assert_output --partial 'code=5.3.5'
	# the same address or name on another port is another root, not a loop
	assert_equal "$(connector_of c@other.test)" other
	assert_equal "$(connector_of e@root2.test)" root2
}

@test "equal costs share the load across messages, one message's domain stays in one envelope" {
	connectors \
	    'left  address-space=* cost=1 smarthost=[127.0.0.2]:25' \
	    'right address-space=* cost=1 smarthost=[127.0.0.3]:25'
	for i in $(seq 16); do
		route_msg "a$i@x.net" "b$i@x.net" "c$i@x.net" >/dev/null
	done
	route_run
	assert_equal "$(queue_count remote)" 16
	for f in "$BH_ROOT"/spool/remote/new/*; do
		assert_equal "$(grep -c '^rcpt' "$f")" 3
	done
	used=$(grep -h '^connector ' "$BH_ROOT"/spool/remote/new/* | sort -u | tr '\n' ' ')
	assert_equal "$used" 'connector left connector right '
}

@test "unresolved recipients go to the categorizer's relay-host, past the connectors" {
	connectors 'mil address-space=*.mil cost=1 smarthost=[127.0.0.2]:25'
	envelope_put route 'sender a@example.com' 'size 10' \
	    'rcpt nobody@example.com state=remote relay-host=[127.0.0.9]:2525' \
	    'rcpt u@navy.mil state=remote' </dev/null >/dev/null
	route_run
	f=$(envelope_of new nobody@example.com)
	assert_equal "$(field "$f" hops)" 'smarthost:[127.0.0.9]:2525'
	assert_equal "$(field "$f" dest)" example.com
	assert_equal "$(grep -c '^connector' "$f")" 0
	assert_equal "$(connector_of u@navy.mil)" mil
}

@test "route never drops a recipient: finished ones are skipped, any other state is routed" {
	envelope_put route 'sender a@example.com' 'size 10' \
	    'rcpt done@x.net state=delivered code=2.0.0' \
	    'rcpt later@x.net state=deferred code=4.4.1 reason="421 4.4.1 busy"' \
	    'rcpt bare@y.net' </dev/null >/dev/null
	run bh-route -1
	assert_success
	assert_output --partial 'rcpt=later@x.net state=deferred msg="routed as remote"'
	grep -q '^rcpt later@x.net state=remote ' "$(envelope_of new later@x.net)"
	envelope_of new bare@y.net
	run envelope_of new done@x.net
	assert_failure
	assert_equal "$(queue_count ndr)" 0
}

@test "the running bh-route routes new mail at once and stops cleanly on SIGTERM" {
	bh-route 2>"$BATS_TEST_TMPDIR/route.log" &
	pid=$!
	kill_on_teardown $pid
	route_msg a@x.net >/dev/null
	wait_until 5 envelope_of new a@x.net
	kill -TERM $pid
	rc=0
	wait $pid || rc=$?
	assert_equal "$rc" 0
}

@test "an envelope that cannot be parsed is set aside in spool/route/retry" {
	printf 'sender a@example.com\nrcpt "unterminated state=remote\n' \
	    > "$BH_ROOT/spool/route/new/1795866000000000-1-1"
	route_msg b@x.net >/dev/null
	run bh-route -1
	assert_success
	assert_output --partial 'event=error id=1795866000000000-1-1'
	[ -e "$BH_ROOT/spool/route/retry/1795866000000000-1-1" ]
	[ "$(stat -c %Y "$BH_ROOT/spool/route/retry/1795866000000000-1-1")" -gt "$(( $(date +%s) + 3000 ))" ]
	envelope_of new b@x.net
}
