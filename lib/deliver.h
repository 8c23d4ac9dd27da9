#ifndef BH_DELIVER_H
#define BH_DELIVER_H
/*
 * deliver: one bh-remote worker's SMTP session to a next hop. A link
 * carries what the session fits (route, connector, source server) and
 * what it learnt; envelopes that fit the same link go over the same
 * session. Every recipient's outcome is set through lib/outcome (between
 * outcome_start and outcome_end of its envelope).
 */
#include <sys/socket.h>
#include <time.h>

#include "client.h"
#include "dns.h"
#include "envelope.h"

struct deliver_link {
	char key[4096];		/* hops, connector, source: what the session fits */
	char helo[256], user[256], pass[256], etrn[256], ca[512];
	int use_helo, tls_required, has_auth, rate_per_min, port, timeout_cap;
	struct sockaddr_storage bind;
	socklen_t bind_len;
	struct dns_hosts hosts;
	int resolved;		/* 1 hosts, 0 none (hosts.code), -1 not yet */
	struct client c;
	int is_open, failed;	/* failed: no host took a session: stop trying */
	int is_reused;		/* the open session has carried a message */
	char status[16], reason[CLIENT_REPLY_MAX], mta[300];
	time_t last_send;
};

/* What connections are counted and shared by: "mx:DOMAIN" for mail going
 * by its own MX, else the destination (field dest). */
void deliver_route_key(const struct envelope *e, char *out, size_t cap);

/* Sets up l for envelope e (connector attributes from connectors.cdb, the
 * source server's address and name from servers.cdb) unless it already
 * fits; a session open for another fit is closed. 1 changed, 0 same. */
int deliver_prepare(struct deliver_link *l, const struct envelope *e);

/* After the greeting: EHLO (HELO with helo=yes or when EHLO is refused),
 * STARTTLS when offered and try_tls, AUTH when configured. 0 ready; -1
 * not (l->c holds the reason); -2 a TLS handshake failed that may be
 * retried in clear. */
int deliver_hello(struct deliver_link *l, int try_tls);

/* Resolves and connects as needed (once per link), waits for the rate,
 * then delivers e's active recipients. Each gets an outcome, unless a
 * stop was requested. l->is_open, l->status and l->reason tell the
 * worker how the destination fared. A session kept from earlier messages
 * that turns out closed before MAIL was answered (the peer ended an idle
 * connection, or says 421) is opened again once and e goes over the new
 * one: a kept connection never defers mail by itself. */
void deliver_attempt(struct deliver_link *l, struct envelope *e,
    const char *name);

/* The open session's connection became readable while idle (the peer
 * closed it or said 421): it is closed; the next attempt connects again. */
void deliver_idle_lost(struct deliver_link *l);

#endif
