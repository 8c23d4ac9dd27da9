# t/route-restrict.bats — connector restrictions: senders, priorities,
# system messages and size make a connector unusable for a message; routing
# takes the next matching one, or fails with 5.7.1 / 5.2.3.
load lib/root
load lib/route

setup() { root_new; }

@test "accept-senders lets only the listed senders use a connector" {
	connectors \
	    'vip  address-space=* cost=1 smarthost=[127.0.0.2]:25 accept-senders=boss@example.com,@board.example.com' \
	    'rest address-space=* cost=5 smarthost=[127.0.0.3]:25'
	route_msg -f boss@example.com a@x.net >/dev/null
	route_msg -f Member@Board.Example.Com b@x.net >/dev/null
	route_msg -f clerk@example.com c@x.net >/dev/null
	route_run
	assert_equal "$(connector_of a@x.net)" vip
	assert_equal "$(connector_of b@x.net)" vip
	assert_equal "$(connector_of c@x.net)" rest
}

@test "reject-senders keeps the listed senders off a connector, and 5.7.1 when none is left" {
	connectors 'only address-space=* cost=1 route=dns reject-senders=spam@example.com,example.org'
	route_msg -f spam@example.com a@x.net >/dev/null
	route_msg -f someone@example.org b@x.net >/dev/null
	route_msg -f fine@example.com c@x.net >/dev/null
	route_run
	run ndr_of a@x.net
	assert_output --partial 'state=failed code=5.7.1'
	run ndr_of b@x.net
	assert_output --partial 'code=5.7.1'
	assert_equal "$(connector_of c@x.net)" only
}

@test "a restricted specific connector gives way to the next matching one" {
	connectors \
	    'mil  address-space=*.mil cost=1 smarthost=[127.0.0.2]:25 accept-senders=@army.mil' \
	    'star address-space=* cost=1 route=dns'
	route_msg -f a@army.mil u@navy.mil >/dev/null
	route_msg -f b@example.com v@navy.mil >/dev/null
	route_run
	assert_equal "$(connector_of u@navy.mil)" mil
	assert_equal "$(connector_of v@navy.mil)" star
}

@test "priorities restrict by the Priority, X-Priority and Importance headers" {
	connectors \
	    'fast address-space=* cost=1 route=dns priorities=high' \
	    'slow address-space=* cost=2 route=dns priorities=normal,low'
	route_msg -h 'X-Priority: 1 (Highest)' a@x.net >/dev/null
	route_msg -h 'Importance: high' b@x.net >/dev/null
	route_msg -h 'Priority: urgent' c@x.net >/dev/null
	route_msg -h 'X-Priority: 5' d@x.net >/dev/null
	route_msg e@x.net >/dev/null
	route_run
	assert_equal "$(connector_of a@x.net)" fast
	assert_equal "$(connector_of b@x.net)" fast
	assert_equal "$(connector_of c@x.net)" fast
	assert_equal "$(connector_of d@x.net)" slow
	assert_equal "$(connector_of e@x.net)" slow
}

@test "priorities=high alone refuses normal mail with 5.7.1" {
	connectors 'fast address-space=* cost=1 route=dns priorities=high'
	route_msg -h 'Importance: low' a@x.net >/dev/null
	route_run
	run ndr_of a@x.net
	assert_output --partial 'code=5.7.1'
}

@test "system=no keeps reports from the null sender off a connector" {
	connectors \
	    'users   address-space=* cost=1 route=dns system=no' \
	    'reports address-space=* cost=9 smarthost=[127.0.0.3]:25'
	route_msg -f '<>' a@x.net >/dev/null
	route_msg b@x.net >/dev/null
	route_run
	assert_equal "$(connector_of a@x.net)" reports
	assert_equal "$(connector_of b@x.net)" users
}

@test "max-size sends large mail to the next connector, and fails with 5.2.3 when none is left" {
	connectors \
	    'small address-space=* cost=1 route=dns max-size=1K' \
	    'big   address-space=x.net cost=5 route=dns max-size=10K'
	route_msg -z 500 a@x.net >/dev/null
	route_msg -z 5000 b@x.net >/dev/null
	route_msg -z 50000 c@x.net >/dev/null
	route_msg -z 5000 d@y.net >/dev/null
	route_run
	assert_equal "$(connector_of a@x.net)" big
	assert_equal "$(connector_of b@x.net)" big
	run ndr_of c@x.net
	assert_output --partial 'state=failed code=5.2.3'
	run ndr_of d@y.net
	assert_output --partial 'code=5.2.3'
}

@test "a restriction never moves mail off a tls=required connector" {
	connectors \
	    'mil  address-space=*.mil cost=1 smarthost=[127.0.0.2]:25 tls=required max-size=1K' \
	    'star address-space=* cost=1 route=dns'
	route_msg -z 5000 u@navy.mil >/dev/null
	route_run
	run ndr_of u@navy.mil
	assert_output --partial 'code=5.2.3'
	assert_equal "$(queue_count remote)" 0
}
