#ifndef BH_POLICY_H
#define BH_POLICY_H
/*
 * policy: the directory's recipients as bh-config checks them, and the
 * recipient policies (domains records "policy NAME addresses=PATTERN,...
 * [primary=] [priority=] [filter=] [rewrite-from=]") that give mailboxes
 * proxy addresses and a primary address. Patterns put %u (the name), %g
 * (given name), %s (surname), %i (initial) or %% in the local part.
 */
#include <stddef.h>

#include "source.h"
#include "strtable.h"

enum { POLICY_MAILBOX, POLICY_CONTACT, POLICY_GROUP, POLICY_ALIAS,
    POLICY_NKINDS };

struct policy_entry {
	struct source_record *rec;
	int kind;			/* POLICY_MAILBOX ... */
	const char *name;
	char **addr;			/* lower case: given, then generated */
	size_t naddr, addrcap;
	const char *primary;		/* one of addr, or NULL */
	int rewrite_from;		/* from the policy that gave primary; -1 */
	size_t mark;			/* policy filter visits */
};

/* Every recipient, found by name and by address (each address owned by
 * one recipient: the key is the entry's own addr[] string). */
struct policy_dir {
	struct policy_entry *v;
	size_t n;
	struct strtable names;		/* NAME -> entry */
	struct strtable addrs;		/* lower-case address -> entry */
	/* reports a problem of a policy, on a line of the domains source */
	void (*error)(unsigned line, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
};

/* Appends address key (owned, lower case) to e's list. */
void policy_entry_add_addr(struct policy_entry *e, char *key);

/* Applies the n policy records of list (reordered: highest priority
 * first, then by line) to the mailboxes their filter selects: each pattern
 * gives an address; the first policy that yields a primary address gives
 * it. A recipient left without one gets its first address. */
void policy_apply_all(struct policy_dir *d, struct source_record **list,
    size_t n);

#endif
