#ifndef BH_DISPATCH_H
#define BH_DISPATCH_H
/*
 * dispatch: the scheduler of bh-remote. It lists spool/remote/new (after
 * due retries come back into it), groups envelopes by destination (the route
 * key of lib/deliver: recipient domain for MX delivery, else the
 * connector), and forks a worker per connection with a batch of at most
 * 100 names: at most settings max-remote (20) workers at once and
 * max-remote-per-domain (5) per destination, 1 for a connector with rate=
 * (and its workers spaced by the rate). Limits are read again each round.
 * A worker that fails leaves its envelopes alone for a minute. With -1
 * (once), each envelope is tried once and the run ends when none is left.
 * SIGTERM is passed on to the workers, then dispatch_run returns.
 */
#include <stddef.h>

#include "stage.h"

/* A worker: delivers the envelopes names[0..n-1] of st->in, then exits
 * (0 when every one was settled); it must not return. */
typedef void dispatch_worker_fn(struct stage *st, char **names, size_t n);

void dispatch_run(struct stage *st, dispatch_worker_fn *run);

#endif
