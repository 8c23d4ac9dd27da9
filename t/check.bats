# t/check.bats — bh-check: each finding with its exact text and exit status
# (0 clean, 1 warnings, 2 errors), on configurations compiled by bh-config.
load lib/root

setup() {
	root_new
	echo 'hostname mail.example.net' >> "$BH_ROOT/cdb/settings"
	config_make
}

add() {
	printf '%s\n' "$2" >> "$BH_ROOT/cdb/$1"
	config_make
}

@test "the default configuration is clean" {
	run bh-check
	assert_success
	assert_output 'no problems found'
}

@test "a * connector with relay=yes is an open relay" {
	add connectors 'open address-space=* cost=1 route=dns relay=yes'
	run bh-check
	assert_failure 2
	assert_output 'error: connector open: relay=yes with address-space * makes an open relay: the server accepts mail from anyone for every domain, and spammers will use it. Fix: list only the domains you relay for in address-space, or remove relay=yes.'
}

@test "relay-from covering every address is an open relay" {
	sed -i 's|relay-from=|relay-from=127.0.0.0/8,0.0.0.0/0|' "$BH_ROOT/cdb/servers"
	config_make
	run bh-check
	assert_failure 2
	assert_output 'error: server default: relay-from=0.0.0.0/0 lets every client relay: an open relay is found within hours and used to send spam, and the server ends up on block lists. Fix: list only your own networks in relay-from and let other users authenticate.'
}

@test "a policy domain equal to the host name is 5.4.8" {
	add domains 'mail.example.net type=authoritative'
	run bh-check
	assert_failure 2
	assert_output 'error: domains: mail.example.net is the host name of this server: mail addressed to the server itself is then taken for mail of the recipient policy, and messages fail with 5.4.8. Fix: use the parent domain in the policy and keep host names out of it.'
}

@test "a policy domain equal to a virtual server's host name is 5.4.8" {
	add domains 'smtp.example.org type=authoritative'
	add servers 'second listen=127.0.0.1:2626 hostname=smtp.example.org'
	run bh-check
	assert_failure 2
	assert_output 'error: domains: smtp.example.org is the host name of server second: mail addressed to the server itself is then taken for mail of the recipient policy, and messages fail with 5.4.8. Fix: use the parent domain in the policy and keep host names out of it.'
}

@test "a connector address space covering an authoritative domain is a 5.3.5 loop" {
	add connectors 'internet address-space=* cost=1 route=dns'
	add connectors 'dotcom address-space=*.com,contoso.com cost=1 route=dns'
	add domains 'northwindtraders.com type=shared'
	run bh-check
	assert_failure 2
	assert_output 'error: connector dotcom: address-space *.com covers the authoritative domain example.com: mail for it would leave through the connector and come back, a loop that ends in 5.3.5 NDRs. Fix: remove *.com from the address space, or make the domain type=shared if another system holds some of its mailboxes.'
}

@test "a smart host that is neither [IP] nor an FQDN" {
	add connectors 'internet address-space=* cost=1 smarthost=relay'
	run bh-check
	assert_failure 2
	assert_output 'error: connector internet: smart host relay is neither [IP] nor a fully qualified domain name: an address without brackets is looked up as a host name, and a short name does not resolve, so mail waits and then fails with 5.4.0. Fix: write an IP address in brackets ([192.0.2.1]) or a full host name (relay.example.net).'
}

@test "a smart host that is this server" {
	add connectors 'internet address-space=* cost=1 smarthost=[192.0.2.7]:25,[127.0.0.1]:2525'
	run bh-check
	assert_failure 2
	assert_output 'error: connector internet: smart host [127.0.0.1]:2525 is this server: mail sent there comes straight back, a loop that ends in 5.3.5 or hop-count (5.4.6) NDRs. Fix: name the next server on the way out, not this one.'
}

@test "two virtual servers on the same address and port" {
	add servers 'other listen=0.0.0.0:2525 auth=anonymous'
	run bh-check
	assert_failure 2
	assert_output 'error: servers default and other both listen on 127.0.0.1:2525: only the first to start gets the address and the other cannot serve. Fix: give each virtual server its own address or port.'
}

@test "connectors without a * address space" {
	add connectors 'partner address-space=contoso.com cost=1 smarthost=mail.contoso.com'
	run bh-check
	assert_failure 1
	assert_output 'warning: no connector has address-space *: once connectors exist, mail for a domain that none of them lists has no route and fails with 5.4.4. Fix: give the connector for Internet mail address-space=* (route=dns to deliver by MX).'
}

@test "anonymous access off on a server that receives Internet mail" {
	add servers 'mx listen=127.0.0.2:25 auth=plain,login'
	run bh-check
	assert_failure 1
	assert_output 'warning: server mx: anonymous access is off, but it receives Internet mail: other servers never authenticate, so their mail is refused with 530 5.7.0. Fix: add anonymous to auth=, or keep this server for submission and receive on another.'
}

@test "AUTH allowed in clear on a network address" {
	add servers 'lan listen=192.0.2.10:587 auth=anonymous,login'
	run bh-check
	assert_failure 1
	assert_output 'warning: server lan: AUTH PLAIN/LOGIN without TLS sends passwords in clear text that anyone on the path can read. Fix: set cert= and key= (tls=optional or required), or remove plain and login from auth=.'
}

@test "no postmaster" {
	sed -i '/^postmaster/d' "$BH_ROOT/cdb/settings"
	config_make
	run bh-check
	assert_failure 1
	assert_output 'warning: settings postmaster is not set: RFC 5321 requires a postmaster mailbox, and NDR copies have nowhere to go. Fix: add "postmaster postmaster@YOUR-DOMAIN" to settings.'
}

@test "errors outrank warnings, and every finding is listed" {
	add connectors 'partner address-space=contoso.com cost=1 smarthost=relay'
	run bh-check
	assert_failure 2
	assert_line --index 0 --partial 'error: connector partner: smart host relay'
	assert_line --index 1 --partial 'warning: no connector has address-space *'
	assert_equal "${#lines[@]}" 2
}

@test "a source changed after it was compiled" {
	touch -d '+1 minute' "$BH_ROOT/cdb/filters"
	run bh-check
	assert_failure 1
	assert_output 'warning: cdb/filters changed after cdb/filters.cdb was compiled: the stages (and this check) still use the old configuration. Fix: run make -C cdb (bh-config reports any error in the source).'
}

@test "a log-level category no stage uses" {
	echo 'log-level smtp=max,smpt=medium,min' >> "$BH_ROOT/cdb/settings"
	config_make
	run bh-check
	assert_failure 1
	assert_output 'warning: settings log-level names the category smpt, which no stage uses: its level changes nothing. Fix: use smtp, categorize, route, queue, local, remote or ndr.'
}
