#ifndef BH_REWRITE_H
#define BH_REWRITE_H
/*
 * rewrite: mail a local mailbox submitted (field auth, or bh-inject's
 * submitter) leaves with the mailbox's primary address as its envelope
 * sender (the old one kept as field original-sender), and with From:
 * rewritten too when the mailbox's rewrite-from=, else a policy with
 * rewrite-from=yes for the primary address's domain, says so. Only an
 * address that is the mailbox's own (one of its addresses, its NAME, or
 * NAME@hostname) is replaced. bh-categorize calls this once per message.
 */
#include "arrival.h"
#include "directory.h"
#include "envelope.h"

/* Rewrites e's sender (and arr's From: header) as above. 0 or -1 (a
 * directory or spool error: the message should be retried). */
int rewrite_sender(struct directory *d, struct arrival *arr,
    struct envelope *e);

#endif
