#ifndef BH_CONNECTOR_H
#define BH_CONNECTOR_H
/*
 * connector: the SMTP connectors of cdb/connectors.cdb and the routing
 * decisions made with them (bh-route decides, bh-remote delivers).
 *
 * What bh-route writes on a remote envelope (spool/remote/new/NAME.Rn):
 *
 *	dest D          the destination: the connector's name, or the recipient
 *	                domain when mail goes by DNS without a connector; also
 *	                the name of its link-state file spool/state/D
 *	connector C     present when a connector was chosen: bh-remote reads
 *	                its attributes (tls, auth, helo, ...) from
 *	                connectors.cdb under "connector:C"
 *	hops H [H...]   one or more hop groups separated by single spaces,
 *	                tried in order; each group is
 *	                  mx:DOMAIN                  deliver by DNS MX of DOMAIN
 *	                  smarthost:E1,E2,...        these hosts, in this order
 *	                with entries [IP]:PORT, [IP] or FQDN[:PORT] (no port:
 *	                settings remote-port, default 25). The order of a
 *	                smarthost list is already shuffled by bh-route for load
 *	                balancing: bh-remote tries E1, then E2 when E1 fails
 *	                temporarily, and so on. Settings "direct-first yes" gives
 *	                two groups: "mx:DOMAIN smarthost:E1,..." = try DNS
 *	                first, and the smart hosts when DNS delivery fails
 *	                temporarily (or the domain has no usable MX/A).
 *	source S        present when the connector has source=: the virtual
 *	                server (servers.cdb "server:S") whose listen address
 *	                outgoing connections bind and whose host name they greet
 *	                with; bh-route rotates among the listed servers.
 * Every recipient of a remote envelope has state=remote and dest=D.
 *
 * Held and scheduled mail: the same envelope goes to spool/remote/hold/NAME
 * (hold=yes: waits for ETRN/ATRN) or spool/remote/scheduled/NAME (mtime =
 * the time its connector's window opens). bh-route moves scheduled entries
 * into spool/remote/new/ when their time comes; ETRN/ATRN move hold/ entries.
 */
#include <stddef.h>
#include <time.h>

#include "attr.h"
#include "buf.h"
#include "conf.h"
#include "priority.h"
#include "schedule.h"

struct connector {
	char *name;
	struct attrs attrs;	/* the record as compiled */
	long long cost;		/* cost=, default 1 */
	int is_tls_required;	/* tls=required */
};

struct connectors {
	struct conf cdb;
	struct connector *v;
	size_t n;
};

/* Opens connectors.cdb and loads every connector (none when missing). 0/-1. */
int connectors_open(struct connectors *cs);

/* Reloads when bh-config replaced connectors.cdb. 0 or -1. */
int connectors_refresh(struct connectors *cs);
void connectors_free(struct connectors *cs);

/* The connector named name, or NULL. */
const struct connector *connectors_find(const struct connectors *cs,
    const char *name);

/* The best match over the connector's address-space list (addrspace.h),
 * or -1. */
int connector_match(const struct connector *c, const char *domain);

/* The message priority of a header block: priority_of_headers (kept by
 * this name for its callers). */
int connector_priority(const char *headers, size_t len);

/* What routing needs to know about a message. */
struct route_facts {
	const char *sender;	/* "" for the null sender <> */
	long long size;		/* bytes */
	int priority;		/* PRIORITY_* */
};

/* Why a connector cannot take a message. */
enum {
	CONNECTOR_OK = 0,
	CONNECTOR_RESTRICTED,	/* senders, priorities, system=no: 5.7.1 */
	CONNECTOR_TOO_BIG,	/* max-size: 5.2.3 */
};
int connector_allows(const struct connector *c, const struct route_facts *m);

/* schedule_open (schedule.h), kept by this name for its callers. */
int connector_schedule_open(const char *schedule, time_t now, time_t *opens);

/* The schedule that applies to a message of `size` bytes: oversize-schedule
 * when oversize= is set and exceeded, else schedule= (default `always`). */
const char *connector_schedule(const struct connector *c, long long size);

/* Is a destination down (link state Retry)? Given to connectors_select. */
typedef int (*connector_down_fn)(const char *dest);

/* Chooses the connector for a recipient domain: the most specific address
 * space among the usable connectors (restrictions make one unusable; a
 * schedule never does: mail waits for its window), then the cheapest one
 * that is not down (ties broken at random: load balancing), else the
 * cheapest one (mail waits on it).
 * When the cheapest connector of the most specific match requires TLS, only
 * tls=required connectors are ever used for that domain.
 * Returns CONNECTOR_OK with *out set, or: -1 no connector matches (5.4.4),
 * CONNECTOR_TOO_BIG (5.2.3) when some matching connector refused only for
 * the size, else CONNECTOR_RESTRICTED (5.7.1); -2 out of memory. */
int connectors_select(const struct connectors *cs, const char *domain,
    const struct route_facts *m, connector_down_fn is_down,
    const struct connector **out);

/* Does c deliver by DNS (route=dns, or no smarthost=)? Then its hops
 * differ per recipient domain. */
int connector_is_dns(const struct connector *c);

/* Appends the hop groups of c for a recipient domain to b: "mx:DOMAIN" for
 * route=dns, else "smarthost:" its list in random order (hops.h). 0 or
 * -1. */
int connector_hops(const struct connector *c, const char *domain,
    struct buf *b);

#endif
