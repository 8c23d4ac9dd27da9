#ifndef BH_ARRIVAL_H
#define BH_ARRIVAL_H
/*
 * arrival: what happens to a message between its acceptance and its
 * categorization: the transport event sinks (OnArrival hooks) and content
 * rewriting.
 *
 * Hooks: settings "hooks PROG,PROG..." and then the hooks= of the message's
 * virtual server (servers.cdb, envelope field server) run in order. Each
 * item is a program path (relative paths are under the root) optionally
 * followed by arguments, split at blanks; it is executed directly (no
 * shell), in its own process group, with
 *	stdin   the message (CRLF lines, as stored)
 *	stdout  a new copy of the message, or nothing
 *	stderr  the stage's log
 *	env     PATH, BH_ROOT, BH_ID, BH_SENDER (empty for <>), BH_RCPTS (the
 *	        recipients, blank-separated), BH_SIZE, BH_MSGID, BH_SUBJECT,
 *	        BH_PEER, BH_HELO, BH_AUTH, BH_SERVER, BH_SUBMITTER (empty when
 *	        the envelope lacks the field)
 * and its exit code decides:
 *	0    pass on; a non-empty stdout replaces the message for the next
 *	     hook and everything after
 *	100  reject: every recipient fails 5.7.1 with the first line of stdout
 *	99   drop the message silently (logged and tracked)
 *	111  try again later; so does any other code, death by a signal, and
 *	     a hook still running after settings hook-timeout (default 30s),
 *	     which is killed with its process group
 *
 * Content replacement: a message whose content changes travels on under a
 * new name NAME.hK (hook K) or NAME.f (rewritten header), written to
 * spool/msg/ and made durable before the envelope refers to it; the input
 * content spool/msg/NAME stays until the envelope is handed on, so a crash
 * at any point leaves the original message queued.
 */
#include <stddef.h>
#include <sys/types.h>

#include "envelope.h"

enum {
	ARRIVAL_PASS = 0,
	ARRIVAL_REJECT = 100,
	ARRIVAL_DROP = 99,
	ARRIVAL_RETRY = 111
};

enum { ARRIVAL_NAME_MAX = 256, ARRIVAL_MAX_HOOKS = 16 };

struct arrival {
	char name[ARRIVAL_NAME_MAX];	/* the input envelope's name */
	char current[ARRIVAL_NAME_MAX];	/* the content it has now */
	char hook[1024];		/* the hook that decided, for logs */
	char line[1024];		/* its first output line (REJECT) */
};

/* Starts with the message's own content. */
void arrival_init(struct arrival *a, const char *name);

/* Whether the content was replaced (current differs from name). */
int arrival_is_replaced(const struct arrival *a);

/* Runs every configured hook on the current content, stopping at the first
 * that does not pass. ARRIVAL_PASS, _REJECT (a->line), _DROP, _RETRY
 * (a->line says why), or -1 with errno on a system error. On a replacement
 * the envelope's size field is updated. */
int arrival_hooks(struct arrival *a, struct envelope *e);

/* Replaces the first header field named field (continuation lines
 * included) with "FIELD: value" in a new content NAME.f. 1 replaced, 0 no
 * such field (content unchanged), -1 error. */
int arrival_rewrite_header(struct arrival *a, struct envelope *e,
    const char *field, const char *value);

/* Reads the first header field named field of the current content into
 * out (unfolded, without the name and colon, blanks trimmed). 1, 0, -1. */
int arrival_header(const struct arrival *a, const char *field, char *out,
    size_t cap);

/* Drops replacement content not handed on (after a deferral, rejection or
 * drop); the original NAME stays. */
void arrival_discard(struct arrival *a);

#endif
