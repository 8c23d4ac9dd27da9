#ifndef BH_QUEUE_H
#define BH_QUEUE_H
/*
 * queue: what the administrator's tools see of the spool. Walks the queue
 * directories, summarises envelopes, and takes an envelope away from the
 * stages for an action (freeze, delete, requeue) without racing them.
 *
 * Sub-folders of a queue that hold finished-for-now envelopes:
 *	new/        ready: the queue's stage takes these
 *	retry/      deferred; mtime = next attempt
 *	frozen/     frozen by bh-queue: no stage reads it
 *	hold/       (remote) kept for ETRN/ATRN
 *	scheduled/  (remote) waiting for the connector schedule; mtime = when
 *
 * Taking an envelope (queue_take) is one rename(2), made while holding an
 * flock(2) on the envelope file: whoever renames first owns the envelope, the
 * loser sees ENOENT and must not act. A stage that locks its input envelope
 * (LOCK_EX, from reading it until its input is removed, re-checking after the
 * lock that new/NAME is still the file it opened) can never have an envelope
 * taken from under it while it works on it.
 */
#include <stddef.h>
#include <time.h>

#include "envelope.h"

#define QUEUE_NAMES "incoming", "route", "local", "remote", "ndr", "badmail"
#define QUEUE_SUBS "new", "retry", "frozen", "hold", "scheduled"

/* The state a sub-folder stands for: Ready, Retry, Frozen, Held,
 * Scheduled (another name is returned as it is). */
const char *queue_sub_state(const char *sub);

struct queue_entry {
	const char *queue;	/* incoming, route, local, remote, ndr, badmail */
	const char *sub;	/* new, retry, frozen, hold, scheduled */
	const char *name;	/* envelope (file) name */
	time_t mtime;		/* retry/scheduled: the time it may go */
	struct envelope *env;	/* parsed envelope */
};

/* Calls fn for every envelope of queue (all sub-folders but tmp/), in name
 * order; fn returning non-zero stops the walk with that value. Envelopes that
 * vanish or do not parse while we look are skipped. 0, fn's value, or -1. */
int queue_scan(const char *queue,
    int (*fn)(const struct queue_entry *, void *), void *arg);

/* Whether envelope name belongs to message id (equal, or "ID." prefix). */
int queue_name_matches(const char *name, const char *id);

/* The entry's arrival time: the arrived field, else the time in its id,
 * else its mtime. */
time_t queue_arrived(const struct queue_entry *q);

/* The message size: the size field, else the content file's size, else 0. */
long long queue_size(const struct queue_entry *q);

/* The remote destination: the dest field, else the first recipient's dest
 * attribute, else the first recipient's domain. */
const char *queue_dest(const struct queue_entry *q);

/* Moves QUEUE/FROM/NAME to QUEUE/TO/NEWNAME (NEWNAME NULL: same name) by one
 * rename that never replaces an existing file, under a non-blocking flock,
 * then fsyncs the directories. 0; -1 with errno ENOENT (gone: someone else
 * took it), EBUSY (a stage is working on it), EEXIST (the target exists: a
 * stage is in the middle of moving it), or another error. */
int queue_take(const char *queue, const char *from, const char *name,
    const char *to, const char *newname);

/* ---- the summary: one line per queue and remote destination ---- */

struct queue_line {
	char name[256];		/* the queue, or the destination */
	int is_dest;
	const char *info;	/* a queue's meaning, or a destination's error */
	long long count, bytes, nnew, nretry, nfrozen, nheld, nscheduled;
	time_t oldest, next_retry, next_scheduled;
	char state[16];		/* Ready Retry Frozen Held Scheduled Unreachable */
	char error[512];	/* a destination's last error */
	time_t next;		/* the next attempt, 0 = none */
};

struct queue_summary {
	struct queue_line *v;
	size_t n, cap;
};

/* Whether name is one of incoming, route, local, ndr, badmail. */
int queue_is_fixed(const char *name);

/* Builds the summary as of now: the fixed queues in pipeline order, then
 * the destinations by name (those of remote envelopes, and those with a
 * state file), each with its state. A destination in Retry for
 * unreachable_after seconds or more is Unreachable. 0, or -1 with errno. */
int queue_summary_build(struct queue_summary *s, time_t now,
    long long unreachable_after);
void queue_summary_free(struct queue_summary *s);

/* ---- selecting envelopes, and acting on each ---- */

enum { QUEUE_ACT_PASSES = 5 };

struct queue_match {
	char queue[16], sub[16], name[256];
	time_t mtime;
};

struct queue_selection {
	const char *id;		/* a message id (queue_name_matches), or NULL */
	const char *dest;	/* a remote destination, or NULL */
	const char *subs;	/* sub-folders as " new retry " (blank-framed) */
	const char *queues;	/* queues as " route local ", NULL = all */
	struct queue_match *v;
	size_t n, cap;
};

/* Fills s->v (s->n) with the matching envelopes. 0 or -1. */
int queue_select(struct queue_selection *s);

/* Runs act on every selected envelope; act returns 0, or -1 with errno.
 * An envelope that moved under us (ENOENT: a stage passed it on; EEXIST: a
 * stage is in the middle of deferring it; EBUSY: a stage holds it) is
 * looked for again, up to QUEUE_ACT_PASSES times, so a message is caught
 * in its new place. The number acted on, with *nbusy the envelopes a stage
 * still held at the end; -1 when act failed otherwise (*failed says on
 * which envelope, errno why). */
int queue_act(struct queue_selection *s, int (*act)(const struct queue_match *),
    int *nbusy, struct queue_match *failed);
void queue_selection_free(struct queue_selection *s);

#endif
