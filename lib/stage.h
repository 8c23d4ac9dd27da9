#ifndef BH_STAGE_H
#define BH_STAGE_H
/*
 * stage: what every queue-draining daemon shares: options (-1), signals,
 * its input queue, and the moves of an envelope between queues.
 *
 * A stage's loop:
 *	stage_start(&st, "route", "route", argc, argv);
 *	while (stage_next(&st, name, sizeof name))
 *		route_one(&st, name);
 *	return EXIT_DONE;
 */
#include <stddef.h>
#include <time.h>

#include "envelope.h"
#include "spool.h"

enum { STAGE_LOCKS = 64 };

struct stage {
	const char *name;
	int once;		/* -1: drain what is queued, then exit */
	struct spool in;
	struct {		/* inputs held with spool_lock, by name */
		char name[256];
		int fd;
	} locks[STAGE_LOCKS];
	struct {		/* the text of the input read last: a
				 * stage_move that leaves it unchanged only
				 * renames the file */
		char name[256];
		char *text;
		size_t len;
	} last;
};

/* Parses -1, names the log, blocks SIGTERM/SIGINT (delivered only while
 * waiting for work, so a message is never abandoned half-moved), raises
 * the stage's CPU priority (nice -5, when permitted: a single queue stage
 * must keep up with many session processes when the CPU is short), opens
 * the input queue and the stage's file pool spool/recycle/QUEUE
 * (lib/recycle.h:
 * finished inputs are reused for outputs instead of unlinked and
 * created). Dies 100 on bad usage, 111 when the queue cannot open. */
void stage_start(struct stage *st, const char *name, const char *queue,
    int argc, char **argv);

/* The next input name: 1, or 0 when done (-1 drained, or a stop signal). */
int stage_next(struct stage *st, char *name, size_t cap);

/* Locks (spool_lock) and reads the input envelope NAME from new/. The lock
 * is held until stage_done or stage_defer for NAME, so bh-queue cannot take
 * the envelope meanwhile. 0, or -1 with errno; ENOENT means the envelope was
 * taken by someone else first: leave it alone. */
int stage_read(struct stage *st, const char *name, struct envelope *e);

/* Writes e into queue `next` as NEWNAME. When NEWNAME differs from NAME the
 * content link msg/NEWNAME is made first. 0, or -1 with errno.
 * The text goes into a file of the stage's pool (or a new one in tmp/),
 * renamed to next's new/NEWNAME at the commit.
 * Group commit: the envelope is written now; its fsync, the
 * rename into new/ and the directory fsyncs are done for a batch of
 * outputs together, at the latest when the stage next asks stage_next for
 * work with none at hand (or a stop). Inputs given to stage_done meanwhile
 * are removed only after that, so the output is on disk before its input
 * goes. stage_move batches the same way. */
int stage_pass(const struct spool *next, const char *name,
    const char *newname, const struct envelope *e);

/* Hands the input NAME on to queue `next` under the same name, rewritten
 * as e: the input is rewritten in place (a pool file written and fsync'ed
 * takes the place of new/NAME by an exchange, the old file going to the
 * pool; or tmp, fsync, rename over new/NAME) and then moved by one rename
 * into next's new/. When e formats to the text stage_read read, nothing
 * is written: the file is only moved. The envelope is thus in
 * exactly one queue at every moment, and its content link goes with it:
 * were it briefly in both, the next stage could finish it and free the
 * content while a re-run of this stage still meant to hand it on. Replaces
 * stage_pass + stage_done for a same-name hand-over. 0, or -1 with errno
 * (ENOENT: bh-queue took the envelope meanwhile; leave it). */
int stage_move(struct stage *st, const struct spool *next, const char *name,
    const struct envelope *e);

/* Rewrites the input NAME as e into our own retry/ with its next attempt at
 * `when`, then removes it from new/. 0, or -1 with errno (input untouched). */
int stage_defer(struct stage *st, const char *name, const struct envelope *e,
    time_t when);

/* Removes the input NAME from new/ (into the pool, or unlinked), and its
 * content link unless the envelope went on under the same name
 * (keep_content). While outputs of
 * stage_pass/stage_move (or stage_sync_dir) wait for their commit, the
 * removal waits with them. */
void stage_done(struct stage *st, const char *name, int keep_content);

/* Has the directory fsync'ed at the next group commit (see stage_pass),
 * before any input finished after this call is removed: for a stage that
 * writes its own output files (bh-local's Maildir new/). 0 or -1. */
int stage_sync_dir(int dirfd);

/* Hands a report record to spool/ndr: a copy of e's head with kind
 * (failure, delay, success, relayed) and the given recipients (those with
 * pick(r) true), named NAME.<K><unique>. 0 (also when no recipient was
 * picked), or -1 with errno. */
int stage_report(const char *name, const struct envelope *e, const char *kind,
    int (*pick)(const struct rcpt *));

/* Builds "NAME.SUFFIX" into out; 0 or -1 when it does not fit. */
int stage_child_name(char *out, size_t cap, const char *name,
    const char *suffix);

#endif
