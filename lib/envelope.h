#ifndef BH_ENVELOPE_H
#define BH_ENVELOPE_H
/*
 * envelope: the small text file that travels through the queues. One
 * "key value" per line; the sender line first, then other fields, then one
 * "rcpt ADDR name=value ..." line per recipient:
 *
 *	sender sfine@example.com          ("sender <>" is the null sender)
 *	id 17643291561234560001234        (message id; content is spool/msg/<name>)
 *	arrived 1764329156
 *	size 1234
 *	rcpt demo@example.com state=local box=demo
 *	rcpt x@example.net state=failed code=5.1.1 reason="550 5.1.1 unknown"
 *
 * Recipient attributes in use (more may be added; unknown ones are kept):
 *	state   new | local | remote | delivered | failed | deferred | relayed |
 *	        expanded        (what happened to it last)
 *	code    enhanced status code of the last outcome, e.g. 5.1.1
 *	reason  the last reply or explanation (text)
 *	notify  DSN NOTIFY list (NEVER or SUCCESS,FAILURE,DELAY), absent = default
 *	orcpt   DSN ORCPT (addr-type;xtext)
 *	box     the local mailbox name (state=local)
 *	dest    the remote destination (connector or domain) after routing
 *	relay-host  forward to this host (settings unresolved-host), for bh-route
 * Envelope fields in use: id, arrived, size, body, ret, envid, auth, helo,
 * peer, server, msgid, subject, submitter, original-sender (before a
 * primary-address rewrite), tries, first-failure, kind (report records),
 * report (marks a report bh-ndr wrote: failure, delay, success, postmaster),
 * note (why an envelope is in spool/badmail).
 */
#include <stddef.h>

#include "attr.h"
#include "buf.h"

enum { ENVELOPE_MAX = 8 << 20 };	/* bytes of envelope text we read */

struct rcpt {
	char *addr;
	struct attrs attrs;
};

struct envelope {
	char *sender;		/* "" for the null sender */
	struct attrs fields;
	struct rcpt *rcpt;
	size_t nrcpt, cap;
};

#define ENVELOPE_INIT { NULL, ATTRS_INIT, NULL, 0, 0 }

/* Parses envelope text. 0, or -1 with errno EINVAL (bad line) or ENOMEM. */
int envelope_parse(struct envelope *e, const char *text, size_t len);

/* Reads and parses the file dir/name (dirfd-relative). 0 or -1 with errno. */
int envelope_read(struct envelope *e, int dirfd, const char *name);

/* Appends the envelope as text to b. */
int envelope_format(const struct envelope *e, struct buf *b);

const char *envelope_get(const struct envelope *e, const char *key);
int envelope_set(struct envelope *e, const char *key, const char *value);
int envelope_set_sender(struct envelope *e, const char *addr);

/* Adds a recipient with no attributes; NULL on ENOMEM. The pointer is valid
 * until the next envelope_add_rcpt. */
struct rcpt *envelope_add_rcpt(struct envelope *e, const char *addr);

const char *rcpt_get(const struct rcpt *r, const char *key);
int rcpt_set(struct rcpt *r, const char *key, const char *value);

/* Copies the sender and every field of src into an empty dst. */
int envelope_copy_head(struct envelope *dst, const struct envelope *src);

/* Copies one recipient with its attributes into e. */
int envelope_copy_rcpt(struct envelope *e, const struct rcpt *r);

/* Records an outcome: state, code, reason in one call. */
int rcpt_outcome(struct rcpt *r, const char *state, const char *code,
    const char *reason);

void envelope_free(struct envelope *e);

#endif
