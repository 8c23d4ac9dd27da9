#ifndef BH_EXPANSION_H
#define BH_EXPANSION_H
/*
 * expansion: one recipient address expanded through the directory
 * (directory.h) into final recipients, as the categorizer needs it (the
 * names keep the directory_ prefix their callers know):
 *
 *	mailbox  -> a local delivery (box=NAME), after its restrictions
 *	            (accept-from, reject-from: 5.7.1) and max-size (5.2.3)
 *	alias    -> its target, looked up again
 *	contact  -> its target (normally outside), looked up again
 *	group    -> every member (mailbox or group NAMEs, addresses), nested;
 *	            a group met again is skipped (a cycle), a member that does
 *	            not exist is skipped; restrictions as for a mailbox
 *	unknown  -> remote when the domain is not accepted or shared; in an
 *	            authoritative domain 5.1.1, or remote to settings
 *	            unresolved-host when that is set
 * An alias or contact chain that comes back to itself is a forwarding loop
 * (5.4.6). An expansion stops at DIRECTORY_MAX_TARGETS final recipients:
 * the recipient being expanded then fails 5.5.3 for the rest. Each final
 * recipient appears once per expansion (a mailbox once by NAME, an outside
 * address once case-insensitively), however many groups or addresses lead
 * to it.
 *
 * A restriction list (accept-from=, reject-from=) holds addresses
 * (user@dom), domains (@dom), mailbox NAMEs (any address of the mailbox) and
 * group NAMEs (any address of a mailbox that is a member, nested).
 */
#include <stddef.h>

#include "directory.h"

enum {
	DIRECTORY_LOCAL,		/* deliver to mailbox box */
	DIRECTORY_REMOTE,		/* route on (relay_host when forced) */
	DIRECTORY_FAILED,		/* code and reason say why */
	DIRECTORY_SKIPPED		/* nothing to deliver (a duplicate, a cycle, a
					 * missing member): reason for logs */
};

enum { DIRECTORY_MAX_DEPTH = 32, DIRECTORY_MAX_TARGETS = 100000 };

struct directory_target {
	char *addr;		/* the final address */
	int how;		/* DIRECTORY_LOCAL, ... */
	char *box;		/* LOCAL: the mailbox NAME */
	char *relay_host;	/* REMOTE: the next hop forced by unresolved-host */
	char code[16];		/* FAILED: enhanced status code */
	char *reason;		/* FAILED: the reply text; SKIPPED: why */
	int is_expanded;	/* reached through a group, alias or contact */
};

struct directory_set {
	char **slot;
	size_t n, cap;
};

/* One expansion: the message facts restrictions need, the results, and
 * what was seen (final recipients, groups) across every recipient of the
 * message. Fill sender and size, zero the rest. */
struct directory_expansion {
	const char *sender;	/* envelope sender, "" for <> */
	long long size;		/* message bytes, -1 when unknown */
	struct directory_target *v;
	size_t n, cap;
	struct directory_set seen, groups;
	char sender_kind[16], sender_name[256];
	int sender_known;	/* sender_kind/name looked up */
	int is_truncated;	/* DIRECTORY_MAX_TARGETS reached (5.5.3 noted) */
};

/* Expands addr into x->v (appending). 0, or -1 with errno on a system
 * error (the message should be retried); directory outcomes, failures
 * included, are targets, never -1. */
int directory_expand(struct directory *d, struct directory_expansion *x,
    const char *addr);

void directory_expansion_free(struct directory_expansion *x);

#endif
