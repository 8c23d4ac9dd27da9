#ifndef BH_ROUTEPLAN_H
#define BH_ROUTEPLAN_H
/*
 * routeplan: bh-route's decision for one message. Every recipient that is
 * not finished goes to the local envelope (state=local), to the group of
 * its next hop (one remote envelope per group, its head carrying dest,
 * connector, hops and source: see connector.h), or fails (5.4.4 no route,
 * 5.7.1 restricted, 5.2.3 too big, 5.3.5 a hop back to this server).
 * Writing the plan out is bh-route's business; this only decides.
 *
 * config  cdb/connectors.cdb (given loaded), cdb/settings.cdb (smarthost,
 *         direct-first), spool/state/DEST (connectors in Retry avoided),
 *         spool/msg/NAME (size, and the header when priorities= is used)
 */
#include <stddef.h>
#include <time.h>

#include "connector.h"
#include "dest.h"
#include "envelope.h"

/* One next hop of the message being routed, and its recipients. */
struct route_group {
	const struct connector *conn;	/* NULL: DNS or settings smarthost */
	char dest[DEST_NAME_MAX];
	char domain[256];		/* for mx: hops, else "" */
	char relay[256];		/* relay-host= of unresolved recipients */
	const char *where;		/* "new", "hold" or "scheduled" */
	time_t when;			/* scheduled: when the window opens */
	const char *fail_code;		/* set: its recipients fail */
	char fail_reason[256];
	struct envelope env;
};

/* A recipient this run fails: its code, and the reason for the report. */
struct route_failure {
	const char *code;		/* NULL: not failed */
	char reason[600];
};

/* The choice made for a domain, reused for its other recipients: equal
 * costs are broken at random, and one message's recipients in one domain
 * belong in one envelope. */
struct route_choice {
	char domain[256];
	const struct connector *conn;
	size_t decided_by;		/* the recipient whose failure it shares */
};

struct routeplan {
	const struct connectors *cs;	/* the connectors routed with */
	unsigned long *turn;		/* [64]: rotates source= servers, per
					 * connector (by its index) */
	struct route_group *v;
	size_t n, cap;
	struct route_choice *choices;
	size_t nchoices;
	struct envelope local;
	struct route_failure *fail;	/* one per input recipient */
};

/* Sorts every recipient of e (spool name `name`) into p, which the caller
 * zeroed and gave cs and turn. 0 or -1 (ENOMEM). */
int routeplan_make(struct routeplan *p, const char *name,
    const struct envelope *e);
void routeplan_free(struct routeplan *p);

#endif
