#ifndef BH_DISPATCH_H
#define BH_DISPATCH_H
/*
 * dispatch: the scheduler of bh-remote. It lists spool/remote/new (after
 * due retries come back into it), groups envelopes by destination (the route
 * key of lib/deliver: recipient domain for MX delivery, else the
 * connector), and hands batches of at most 100 names to worker processes:
 * at most settings max-remote (20) workers at once and
 * max-remote-per-domain (5) per destination, 1 for a connector with rate=
 * (and its workers spaced by the rate). Limits are read again when
 * settings.cdb is replaced.
 * A batch that fails leaves its envelopes alone for a minute. With -1
 * (once), each envelope is tried once and the run ends when none is left.
 * SIGTERM is passed on to the workers, then dispatch_run returns.
 *
 * Workers are kept for more work (connection reuse): a worker answers
 * each batch and, while its session is open, waits for the next batch of
 * its destination, which the scheduler prefers to forking a new worker.
 * Only the scheduler ends an idle worker (it closes the worker's pipe):
 * after settings remote-idle (2 s) without work, after DISPATCH_AGE_SEC or
 * DISPATCH_USES_MAX batches, when another destination needs its slot, when
 * the configuration changed, on SIGTERM. With -1 or remote-idle 0 a worker
 * ends after its batch.
 */
#include <stddef.h>

#include "stage.h"

enum {
	DISPATCH_AGE_SEC = 300,	/* DNS answers and settings are not kept longer */
	DISPATCH_USES_MAX = 1000,
};

/* A worker's end of its pipes to the scheduler (see dispatch.c). */
struct dispatch_chan;

/* A worker: takes batches with dispatch_next, delivers each one's names
 * from st->in, answers with dispatch_answer, and exits (0 when the last
 * batch was settled) once dispatch_next says so or it cannot go on; it
 * must not return. */
typedef void dispatch_worker_fn(struct stage *st, struct dispatch_chan *ch);

void dispatch_run(struct stage *st, dispatch_worker_fn *run);

enum { DISPATCH_END = 0, DISPATCH_BATCH = 1, DISPATCH_WATCHED = 2 };

/* Waits for the next batch: DISPATCH_BATCH with its names in *names[0..*n-1]
 * (valid until the next call); DISPATCH_END when the scheduler ends the
 * worker or a stop was requested; DISPATCH_WATCHED when watch_fd (unless
 * -1: the worker's idle connection) became readable first: the peer closed
 * it or said something unasked, such as 421. */
int dispatch_next(struct dispatch_chan *ch, int watch_fd, char ***names,
    size_t *n);

/* Tells the scheduler the batch is over: 0 every envelope was settled (or
 * vanished), else its envelopes are left alone for a while. The worker
 * then waits for the next batch. 0, or -1 (the scheduler is gone). */
int dispatch_answer(struct dispatch_chan *ch, int status);

#endif
