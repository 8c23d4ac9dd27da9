#ifndef BH_WORKER_H
#define BH_WORKER_H
/*
 * worker: the worker processes of bh-remote's scheduler (lib/dispatch) and
 * the pipes between them: forking a worker, a batch written to it, its
 * answer read back, and the pool of kept workers (which idle one takes the
 * next batch of its destination, which are retired). The worker's own end
 * of the pipes, dispatch_next and dispatch_answer (dispatch.h), is here
 * too. What the items and destinations are is the scheduler's business.
 */
#include <stddef.h>
#include <sys/types.h>

#include "dispatch.h"

enum { WORKER_BATCH_MAX = 100 };	/* names in a batch */

struct dsched;			/* a destination (dispatch.c) */
struct item;			/* an envelope (dispatch.c) */

struct worker {
	pid_t pid;
	struct dsched *d;
	struct item **items;	/* the batch in hand: busy while n > 0 */
	size_t n;
	int to_fd;		/* batches to it; -1: it is ending */
	int from_fd;		/* its answers; -1 once closed */
	long long born_ms, idle_ms;	/* monotonic: started, last answer */
	unsigned generation, uses;
};

struct worker_pool {
	struct stage *st;
	dispatch_worker_fn *run;
	struct worker *workers;
	int nworkers, max_workers, workers_cap;
	long long idle_max_ms;	/* remote-idle; 0: a worker ends after a batch */
	unsigned generation;	/* of the configuration: a worker started
				 * before a change takes no more batches */
};

/* Forks a worker for d, running p->run (sched_fd, the scheduler's own
 * descriptor, is closed in it); it counts in p->nworkers. Dies 111. */
struct worker *worker_new(struct worker_pool *p, struct dsched *d,
    int sched_fd);

/* Writes w's batch, names[0..w->n-1], to it. Without reuse (-1,
 * remote-idle 0) the pipe closes behind it. */
void worker_send(struct worker_pool *p, struct worker *w,
    const char *const *names);

/* Reads w's answer if there is one: 0 its batch was settled, 1 it failed;
 * -1 no answer (none yet, or w is ending: its exit status will tell). */
int worker_answer(struct worker *w);

/* Closing its pipe ends the worker once its batch (if any) is done. */
void worker_retire(struct worker *w);

/* Forgets the ended worker p->workers[idx]: the last one takes its slot. */
void worker_forget(struct worker_pool *p, int idx);

/* An idle worker of d that may take another batch, or NULL; *n counts them. */
struct worker *worker_idle_of(struct worker_pool *p, const struct dsched *d,
    int *n);

/* Ends idle workers that waited remote-idle, are old or predate a
 * configuration change, then those whose slots are needed: above a
 * lowered max-remote, or by `starved` destinations that found no free
 * slot. */
void worker_retire_idle(struct worker_pool *p, int starved);

/* Milliseconds until an idle worker is due to end, or -1: none is idle. */
long long worker_idle_wait_ms(const struct worker_pool *p);

#endif
